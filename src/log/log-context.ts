// What the parts of one Log instance share: the file, its parameters, the counters and the
// sticky failure. One object per instance (never process-global), made by the Log facade.

import type { StorageError } from '../errors.js'
import type { StorageFile } from '../io/index.js'
import type { Conf } from './conf.js'
import type { Failpoints } from './failpoints.js'
import type { LogMetrics } from './metrics.js'

export const LOG_FILE = 'log'

export interface LogContext {
  /** The log file; until the open is accepted, a read-only view of it as repaired. */
  file: StorageFile
  readonly conf: Conf
  readonly segmentBytes: number
  readonly failpoints: Failpoints
  readonly stats: LogMetrics
  /** `<location>/log`, for error messages. */
  readonly fileLabel: string
  /** The error that poisoned the instance; once set, nothing more is written or synced. */
  poisonError: StorageError | undefined
  /** Poisons the instance (first error wins) and rejects every waiter; see Log.poison. */
  poison(cause: unknown, what: string): void
}
