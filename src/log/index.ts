// The log layer's public face: other layers import only this file.
export { type FailpointName, Failpoints } from './failpoints.js'
export {
  DEFAULT_SEGMENT_BYTES,
  FORMAT_VERSION,
  MAX_SEGMENT_BYTES,
  MIN_SEGMENT_BYTES,
  messageHeaderBytes,
  readVarint,
  varintBytes,
  writeVarint,
} from './format.js'
export { type BlobRef, Log, type LogOptions, type LogRecord, type Reservation } from './log.js'
export type { LogMetrics } from './metrics.js'
export { MAX_RUN_READ_BYTES } from './record-reader.js'
