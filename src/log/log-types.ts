// The public shapes of the log API: options, records and reservations.

import type { Storage } from '../io/index.js'
import type { Lsn } from '../util/brand.js'
import type { Failpoints } from './failpoints.js'

export interface LogOptions {
  /** Storage backend; defaults to real files in the folder given to open(). */
  storage?: Storage
  /** Segment size for a new log (power of two, 1 KiB..8 MiB). An existing log keeps its own. */
  segmentBytes?: number
  /** Background flush period; 0 turns it off. Default 500. */
  flushEveryMs?: number
  /**
   * Written but unsynced bytes that start a datasync in the background, with nobody
   * waiting (as RocksDB's `wal_bytes_per_sync`): the final flush of a bulk load then syncs
   * only the last few MiB. 0 turns it off (syncs only for waiters and the flusher).
   * Default 8 MiB.
   */
  syncEveryBytes?: number
  /** Bytes of issued but unfinished writes above which whenWritable() makes callers wait. */
  writeHighWaterBytes?: number
  /**
   * A lone sync round of at most 64 KiB (one writer waiting for durability, nothing else in
   * flight) is one O_DSYNC write made on the main thread, skipping the thread pool's hop
   * (docs/DESIGN.md, "Inline synced writes"). Backs off to the pool for 256 rounds once 4
   * of the last 16 such writes took over 1 ms. Default true.
   */
  inlineSyncedWrites?: boolean
  /** Largest item appendLarge() accepts. Default 256 MiB. */
  maxBlobBytes?: number
  /** Most records in one appendBatch(). Default 100,000. */
  maxBatchRecords?: number
  failpoints?: Failpoints
  /**
   * Check the CRC of every record at open. By default open checks only the bytes above the
   * durable witness (the unwitnessed tail); older records are checked whenever they are read.
   */
  verifyOnOpen?: boolean
  /**
   * Walk the messages of segments the durable witness covers at open (default true): they
   * yield the record count in metrics() and the blob files still referenced. A layer that
   * keeps its own checkpoint (the page cache) turns it off so open reads only the tail;
   * the walk still happens when blob files exist, since orphans are found by it.
   */
  scanWitnessed?: boolean
  /**
   * Return from open() before the open is accepted: recovery's repairs (zeroing a torn
   * tail, rewriting the unwitnessed tail, replaying a tail journal, removing orphan blobs,
   * upgrading conf) wait for acceptOpen(), and nothing is written until then. For a layer
   * that checks the folder further (the page cache, the tree) and must leave a folder it
   * refuses as found: it reads the log meanwhile (as repaired) and calls closeRefused() to
   * give up. Default false: open() accepts at its end.
   */
  deferAccept?: boolean
  /**
   * Called once the folder is locked, before recovery reads anything: a layer above may
   * start reading its own files then (the page cache its checkpoint), beside the log's
   * recovery, instead of after it. It must not throw; what it starts is its own to await.
   */
  onLocked?: () => void
  /**
   * TEST ONLY — a mutation switch that applies recovery's repairs at the end of open()
   * even with deferAccept, before the layer above has accepted. The refused-open tests
   * turn it on to prove they catch a write before acceptance. Never use it otherwise.
   */
  unsafeRepairBeforeAccept?: boolean
  /**
   * TEST ONLY — a mutation switch that acknowledges writes without a datasync. The crash
   * tests turn it on to prove they can fail. Never use it otherwise.
   */
  unsafeAckBeforeSync?: boolean
  /**
   * TEST ONLY — a mutation switch that writes the zeros of a segment's pre-extension after
   * the round's datasync, in the background, from the log's frontier of that moment, without
   * holding back the writes that follow: the zeros may then land over records written after
   * them. The power-loss test of small durable rounds turns it on to prove it catches that.
   * Never use it otherwise.
   */
  unsafeUnorderedPreExtension?: boolean
}

export interface LogRecord {
  lsn: Lsn
  /** The caller's id field (a page id, a stream id, ...). */
  id: number
  data: Uint8Array
  /** True when the record was stored in its own blob file. */
  isBlob: boolean
}

/**
 * An open reservation from reserve(): fill `body`, then complete() or abort(). `body` is
 * the segment's memory: it must not be used after either (a later segment reuses it).
 */
export interface Reservation {
  readonly lsn: Lsn
  readonly body: Uint8Array
  complete(): Lsn
  abort(): void
}
