// The page cache layer's public face: the tree and tools import only this file.

export { type ArenaStats, POISON_BYTE } from './arena.js'
export {
  CLEAN_ROUND_BYTES,
  PageCache,
  type PageCacheMemory,
  type PageCacheOptions,
  type PageCacheStats,
  type WarmUpStats,
} from './page-cache.js'
export type { ArenaPageBuilder, PageCodec, PageId, PageStore, PageWrite } from './page-store.js'
export { WARM_HINT_NAME } from './warm-hint.js'
