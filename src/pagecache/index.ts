// The page cache layer's public face: the tree and tools import only this file.
export { PageCache, type PageCacheOptions, type PageCacheStats } from './page-cache.js'
export type { PageCodec, PageId, PageStore, PageWrite } from './page-store.js'
