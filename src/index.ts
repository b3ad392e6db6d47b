// bobsled's public API. Today: the durable append-only log (the database layers build on it).
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
export type { Lsn } from './util/brand.js'
