// Counters of one log instance, read through Log.metrics(). Cheap enough to stay on.

export interface LogMetrics {
  recordsAppended: number
  bytesReserved: number
  /** Bytes handed to positional writes (padding included). */
  bytesWritten: number
  writes: number
  /** Sync rounds that were one O_DSYNC write (Storage.writeSynced), counted in syncs too. */
  syncedWrites: number
  /** Lone rounds written on the main thread (StorageFile.writeSyncedNow); those that succeeded count in syncedWrites too. */
  inlineWrites: number
  /** Inline writes that took over INLINE_SLOW_MS (a few of them close together send the next rounds to the pool). */
  inlineSlowWrites: number
  /** Lone rounds fit to go inline sent to the pool: after a slow write, or the file could not then. */
  inlineFallbacks: number
  /** Zeros written ahead over the rest of a segment at the end of the file (pre-extension). */
  preExtendedBytes: number
  syncs: number
  syncMsTotal: number
  syncMsMax: number
  /** Bytes made stable by each datasync, by power-of-two bucket (key = upper bound). */
  bytesPerSync: Record<string, number>
  /** Waiters released by each datasync, by power-of-two bucket. */
  waitersPerSync: Record<string, number>
  /** Time callers spent in whenWritable() because too many bytes were in flight. */
  stallMsTotal: number
  stalls: number
  blobsWritten: number
  /** Pointers logged by relinkBlob() to blob files an earlier pointer names (not staged ones). */
  blobsRelinked: number
  batches: number
  segmentsOpened: number
  recoveryMs: number
  recoveredRecords: number
  recoveredBytes: number
}

export function emptyMetrics(): LogMetrics {
  return {
    recordsAppended: 0,
    bytesReserved: 0,
    bytesWritten: 0,
    writes: 0,
    syncedWrites: 0,
    inlineWrites: 0,
    inlineSlowWrites: 0,
    inlineFallbacks: 0,
    preExtendedBytes: 0,
    syncs: 0,
    syncMsTotal: 0,
    syncMsMax: 0,
    bytesPerSync: {},
    waitersPerSync: {},
    stallMsTotal: 0,
    stalls: 0,
    blobsWritten: 0,
    blobsRelinked: 0,
    batches: 0,
    segmentsOpened: 0,
    recoveryMs: 0,
    recoveredRecords: 0,
    recoveredBytes: 0,
  }
}

export function bump(histogram: Record<string, number>, value: number): void {
  let bucket = 1
  while (bucket < value) bucket *= 2
  const key = String(bucket)
  histogram[key] = (histogram[key] ?? 0) + 1
}
