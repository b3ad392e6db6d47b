// The tree's published limits and its tunable node sizes. README "Limits" lists them;
// every one is checked at the API boundary before any state changes.

import { InvalidArgumentError } from '../errors.js'

/**
 * Longest key, in bytes, when pages are large enough (keyBytesMax: pages of the page cache's
 * default 1 MiB segments are). Separators in index nodes are keys, so this bounds fan-out too.
 */
export const MAX_KEY_BYTES = 4096
/** The key limit never goes below this; smaller pages are refused at open. */
export const MIN_KEY_BYTES = 64
/**
 * Upper cap on a value's bytes; a page store without large pages may lower it (valueBytesMax).
 * A leaf holding a value too big for an inline page is stored whole as a blob (DESIGN.md,
 * "Tree: large values").
 */
export const MAX_VALUE_BYTES_CAP = 64 * 1024 * 1024
/** Most named trees in one database (besides the default tree), when pages are large enough. */
export const MAX_TREES = 1024
/** Longest tree name, in UTF-8 bytes. */
export const MAX_TREE_NAME_BYTES = 128
/** Most operations in one applyBatch(). */
export const MAX_BATCH_OPS = 100_000
/** Bytes of the META page besides its entries (tag, default root, count), at their widest. */
const META_HEADER_BYTES = 32
/** Bytes of one META entry at its widest: name length, the longest name, a root id. */
const META_ENTRY_BYTES_MAX = 2 + MAX_TREE_NAME_BYTES + 8
/** Bytes a node's header and one entry's framing can take beyond its key and value. */
export const ENTRY_OVERHEAD_BYTES = 32

export const DEFAULT_NODE_MAX_BYTES = 16 * 1024
export const DEFAULT_NODE_MAX_ENTRIES = 1024
export const DEFAULT_ID_PERSIST_INTERVAL = 1_000_000

export interface TreeConfig {
  /** A node splits when its encoded size exceeds this (unless it holds one entry). */
  nodeMaxBytes: number
  /** A node splits when it holds more entries (children, for an index node) than this. */
  nodeMaxEntries: number
  /** generateId() persists a new high-water mark every this many ids. */
  idPersistInterval: number
  /** Largest page or delta the store accepts (PageStore.maxPageBytes). */
  maxPageBytes: number
  /** Largest page the store accepts through stageLarge() (PageStore.maxLargePageBytes). */
  maxLargePageBytes: number
  /** The key limit for these pages: MAX_KEY_BYTES, or less on small pages. */
  keyBytesMax: number
  /** The tree-count limit for these pages: MAX_TREES, or less on small pages. */
  treesMax: number
}

/** An index node of three children with keys of keyBytes must fit a page (limits below). */
function indexOfThreeBytes(keyBytes: number): number {
  return 3 * (keyBytes + ENTRY_OVERHEAD_BYTES) + ENTRY_OVERHEAD_BYTES
}
/** Smallest page the tree runs on: three children with keys of MIN_KEY_BYTES. */
export const MIN_PAGE_BYTES = indexOfThreeBytes(MIN_KEY_BYTES)

export function makeTreeConfig(
  maxPageBytes: number,
  o: {
    nodeMaxBytes?: number
    nodeMaxEntries?: number
    idPersistInterval?: number
    maxLargePageBytes?: number
  } = {},
): TreeConfig {
  const maxLargePageBytes = o.maxLargePageBytes ?? maxPageBytes
  const nodeMaxBytes = o.nodeMaxBytes ?? Math.min(DEFAULT_NODE_MAX_BYTES, maxPageBytes)
  const nodeMaxEntries = o.nodeMaxEntries ?? DEFAULT_NODE_MAX_ENTRIES
  const idPersistInterval = o.idPersistInterval ?? DEFAULT_ID_PERSIST_INTERVAL
  if (!Number.isSafeInteger(maxPageBytes) || maxPageBytes < MIN_PAGE_BYTES) {
    throw new InvalidArgumentError(
      `the page store accepts pages of ${maxPageBytes} bytes; the tree needs at least ${MIN_PAGE_BYTES}`,
    )
  }
  if (!Number.isSafeInteger(nodeMaxBytes) || nodeMaxBytes < 16 || nodeMaxBytes > maxPageBytes) {
    throw new InvalidArgumentError(`nodeMaxBytes must be an integer in 16..${maxPageBytes}`)
  }
  if (!Number.isSafeInteger(nodeMaxEntries) || nodeMaxEntries < 4 || nodeMaxEntries > 1 << 20) {
    throw new InvalidArgumentError('nodeMaxEntries must be an integer in 4..1048576')
  }
  if (!Number.isSafeInteger(idPersistInterval) || idPersistInterval < 1) {
    throw new InvalidArgumentError('idPersistInterval must be a positive integer')
  }
  if (!Number.isSafeInteger(maxLargePageBytes) || maxLargePageBytes < maxPageBytes) {
    throw new InvalidArgumentError(
      `the page store's large pages (${maxLargePageBytes} bytes) are below its pages`,
    )
  }
  // The longest key such that an index node of three such children fits a page.
  const keyBytesMax = Math.min(
    MAX_KEY_BYTES,
    Math.floor((maxPageBytes - ENTRY_OVERHEAD_BYTES) / 3) - ENTRY_OVERHEAD_BYTES,
  )
  // The catalog of trees is one page: every name at its longest, with its length and the
  // widest root id, must fit, so the published limit holds for any names.
  const treesMax = Math.max(
    1,
    Math.min(MAX_TREES, Math.floor((maxPageBytes - META_HEADER_BYTES) / META_ENTRY_BYTES_MAX)),
  )
  return {
    nodeMaxBytes,
    nodeMaxEntries,
    idPersistInterval,
    maxPageBytes,
    maxLargePageBytes,
    keyBytesMax,
    treesMax,
  }
}

/**
 * The largest value the tree accepts: a leaf holding one entry of the longest key and this
 * value must still fit one page, a large one (a blob) when the store has them.
 */
export function valueBytesMax(c: TreeConfig): number {
  return Math.min(MAX_VALUE_BYTES_CAP, c.maxLargePageBytes - c.keyBytesMax - 2 * ENTRY_OVERHEAD_BYTES)
}
