// bobsled's public API: the key-value database (db.ts) and the durable log it builds on.
export {
  Batch,
  type Bytes,
  type CasResult,
  Db,
  type DbStats,
  type Limits,
  type OpenOptions,
  open,
  type RangeIterable,
  type RangeOptions,
  Tree,
  type WriteOptions,
} from './db.js'
export * from './errors.js'
export {
  type FailpointName,
  Failpoints,
  Log,
  type LogMetrics,
  type LogOptions,
  type LogRecord,
  type Reservation,
} from './log/index.js'
export {
  MAX_BATCH_OPS,
  MAX_KEY_BYTES,
  MAX_TREE_NAME_BYTES,
  MAX_TREES,
  MAX_VALUE_BYTES_CAP,
} from './tree/index.js'
export type { Lsn } from './util/brand.js'
