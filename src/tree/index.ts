// The tree layer's public face: db.ts imports only this.
export {
  type Bound,
  type Chunk,
  clearTree,
  getValue,
  getValueCopy,
  readChunk,
  treePids,
  writeKey,
} from './btree.js'
export { treeCodec } from './codec.js'
export type { OpContext } from './context.js'
export {
  COUNTER_PID,
  Forest,
  META_PID,
  type TreeRef,
  type WriteDone,
  type WriteJob,
  type WriteKeys,
} from './forest.js'
export { compareBytes, equalBytes, prefixEnd } from './keys.js'
export {
  DEFAULT_ID_PERSIST_INTERVAL,
  DEFAULT_NODE_MAX_BYTES,
  DEFAULT_NODE_MAX_ENTRIES,
  MAX_BATCH_OPS,
  MAX_KEY_BYTES,
  MAX_TREE_NAME_BYTES,
  MAX_TREES,
  MAX_VALUE_BYTES_CAP,
  makeTreeConfig,
  type TreeConfig,
  valueBytesMax,
} from './limits.js'
export type { TreePage } from './node.js'
export { type VerifyReport, verifyForest } from './verify.js'
