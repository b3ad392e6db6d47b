// The IO-buffer log: sled's lock-free log buffers (seed-iobuf.rs) in one JS isolate.
//
// This file is the facade: it opens and closes the log, checks every argument (validate.ts)
// and hands the work to the parts, one file each:
//  - segment-writer.ts: IoBufs, reservation → fill → complete, sealing, write-out;
//  - group-commit.ts: one datasync in flight, the stable LSN and its waiters;
//  - segment-slots.ts: which slot of the file holds which segment;
//  - record-reader.ts: read() and iterFrom();
//  - truncation.ts: truncateBefore();
//  - recovery.ts: what on disk is trusted at open;
//  - repairs.ts: the writes that make the disk say so, applied once the open is accepted.
// Durability comes from group commit: one datasync in flight, covering every write that
// completed before it began; only then does the stable LSN move and do waiters resolve.

import { ClosedError, InvalidArgumentError, LimitError, type StorageError, wrapIoError } from '../errors.js'
import { FileStorage, type Storage, type StorageFile, type StorageLock } from '../io/index.js'
import { asLsn, type Lsn } from '../util/brand.js'
import { BLOB_DIR, type BlobRef, blobName, writeBlob } from './blob.js'
import { readCloseWitnessFile, witnessOf, writeCloseWitness } from './close-witness.js'
import { type Conf, writeConf } from './conf.js'
import { Failpoints } from './failpoints.js'
import {
  findOrphanBlobs,
  listBlobFolder,
  readOrCreateConf,
  refuseMissingLog,
  removeOrphanBlobs,
} from './folder.js'
import { DEFAULT_SEGMENT_BYTES, FORMAT_VERSION, MAX_MESSAGE_HEADER_BYTES, MessageKind } from './format.js'
import { GroupCommit } from './group-commit.js'
import { LOG_FILE, type LogContext } from './log-context.js'
import type { LogOptions, LogRecord, Reservation } from './log-types.js'
import { emptyMetrics, type LogMetrics } from './metrics.js'
import {
  iterRecords,
  type ReadSource,
  readBlobRef,
  readRecord,
  readRecordNow,
  readRecordRun,
} from './record-reader.js'
import { type RecoveredLog, recoverLog } from './recovery.js'
import { applyLogRepairs, discardLogRepairs, type LogRepairs } from './repairs.js'
import { SegmentSlots } from './segment-slots.js'
import { type SegmentMemory, SegmentWriter, SPARE_SEGMENT_BUFFERS } from './segment-writer.js'
import { TAIL_JOURNAL } from './tail-journal.js'
import { type TruncationHost, truncateSegments } from './truncation.js'
import { checkId, checkRecord, lsnError, validateOptions } from './validate.js'

export type { BlobRef } from './blob.js'
export { LOG_FILE } from './log-context.js'
export type { LogOptions, LogRecord, Reservation } from './log-types.js'

const DEFAULT_FLUSH_EVERY_MS = 500
const DEFAULT_HIGH_WATER_BYTES = 64 * 1024 * 1024
const DEFAULT_SYNC_EVERY_BYTES = 8 * 1024 * 1024
/** Issued write bytes after which whenWritable() takes one turn of the event loop. */
const YIELD_EVERY_BYTES = 4 * 1024 * 1024
const DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024
const DEFAULT_MAX_BATCH_RECORDS = 100_000

/** What an open decided to write, held until the open is accepted (acceptOpen()). */
interface PendingOpen {
  /** The log file is missing (a crash right after conf was made): it is created. */
  createLog: boolean
  /** The blob folder is missing: it is created. */
  createBlobDir: boolean
  log: LogRepairs
  /** conf rewritten with the current format version (recovery accepted an older log). */
  conf: Conf | undefined
  orphanBlobs: string[]
}

export class Log {
  readonly failpoints: Failpoints
  /** Largest record append() stores inline; larger ones go through appendLarge(). */
  readonly maxInlineBytes: number
  readonly segmentBytes: number
  readonly location: string

  private readonly storage: Storage
  /** The log file (a view of no file until an accepted open creates a missing one). */
  private file: StorageFile
  private readonly lockHandle: StorageLock
  private readonly conf: Conf
  private readonly options: Required<
    Omit<
      LogOptions,
      | 'storage'
      | 'failpoints'
      | 'segmentBytes'
      | 'verifyOnOpen'
      | 'scanWitnessed'
      | 'deferAccept'
      | 'unsafeRepairBeforeAccept'
      | 'onLocked'
    >
  >
  private readonly stats: LogMetrics = emptyMetrics()
  private readonly ctx: LogContext
  private readonly slots: SegmentSlots
  private readonly commit: GroupCommit
  private readonly writer: SegmentWriter
  /** The parts, as the reader and truncation see them. */
  private readonly parts: ReadSource & TruncationHost

  private readonly blobWrites = new Set<Promise<BlobRef>>()
  /** Blob files from stageBlob() that no pointer names yet. */
  private readonly staged = new Map<number, BlobRef>()
  /** Reservations from reserve() not yet completed or aborted. */
  private openReservations = 0
  private isClosing = false
  private isClosed = false
  private nextBlobId: number
  private truncation: Promise<void> = Promise.resolve()
  private flushTimer: NodeJS.Timeout | undefined
  /** Writes the open decided on, until it is accepted; nothing is written meanwhile. */
  private pending: PendingOpen | undefined
  private accepting: Promise<void> | undefined

  /**
   * Opens (creating if needed) the log in a folder. Takes the folder's lock. An existing log
   * is only read until the open is accepted, at the end of open() or, with `deferAccept`,
   * by acceptOpen(): a refused open leaves the folder as found.
   */
  static async open(path: string, options: LogOptions = {}): Promise<Log> {
    // Every option is checked before the first IO: a refused open creates nothing.
    validateOptions(options)
    const storage = options.storage ?? new FileStorage(path)
    const failpoints = options.failpoints ?? new Failpoints()
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    const t0 = performance.now()
    await storage.ensureRoot()
    const lock = await storage.lock()
    let raw: StorageFile | undefined
    let recovered: RecoveredLog | undefined
    let log: Log | undefined
    try {
      options.onLocked?.()
      // What the folder holds, read all at once: each of these costs thread-pool round trips
      // at every open, and none depends on another (a new log ignores what they find).
      const [{ conf: found, isNew }, witnessed, logExists, blobDirExists, blobNames, hasTailJournal] =
        await Promise.all([
          readOrCreateConf(storage, failpoints, segmentBytes),
          readCloseWitnessFile(storage),
          storage.exists(LOG_FILE),
          storage.exists(BLOB_DIR),
          listBlobFolder(storage),
          storage.exists(TAIL_JOURNAL),
        ])
      let conf = found
      const closeWitness = witnessOf(witnessed, conf.logId)
      if (!isNew) await refuseMissingLog(storage, closeWitness, logExists)
      // A new log is made at once: there is no folder to leave as found. An existing one
      // that lacks its log file or blob folder gets them when the open is accepted.
      const hasLog = isNew || logExists
      const hasBlobDir = isNew || blobDirExists
      if (hasLog) raw = await storage.openFile(LOG_FILE, isNew ? 'createOrOpen' : 'readwrite')
      if (isNew) {
        await storage.mkdir(BLOB_DIR)
        await storage.syncDir('')
      }
      recovered = await recoverLog(
        storage,
        raw,
        `${storage.location}/${LOG_FILE}`,
        conf,
        closeWitness,
        options.verifyOnOpen === true,
        options.scanWitnessed !== false,
        isNew ? undefined : { hasTailJournal, blobNames },
      )
      let upgraded: Conf | undefined
      if (conf.formatVersion < FORMAT_VERSION) {
        // Recovery accepted the log: from now on it may hold what an older build misreads
        // (format.ts, FORMAT_VERSION), so such a build must refuse it first.
        conf = { ...conf, formatVersion: FORMAT_VERSION }
        upgraded = conf
      }
      const blobs = findOrphanBlobs(
        isNew ? [] : blobNames,
        recovered.blobs.map((b) => b.id),
      )
      // The lock's own syncs ran beside the reads above (folder-lock.ts, syncLockFile).
      await lock.ready
      log = new Log(path, storage, raw ?? recovered.view, lock, conf, failpoints, options, recovered)
      log.pending = {
        createLog: !hasLog,
        createBlobDir: !hasBlobDir,
        log: recovered.repairs,
        conf: upgraded,
        orphanBlobs: blobs.orphans,
      }
      log.nextBlobId = Math.max(log.nextBlobId, blobs.idEnd)
      log.stats.recoveryMs = performance.now() - t0
      log.stats.recoveredRecords = recovered.records
      log.stats.recoveredBytes = recovered.recordBytes
      if (options.deferAccept !== true || options.unsafeRepairBeforeAccept === true) await log.acceptOpen()
      return log
    } catch (e) {
      if (log !== undefined) await log.closeRefused().catch(() => {})
      else {
        if (recovered !== undefined) await discardLogRepairs(recovered.repairs)
        await raw?.close().catch(() => {})
        await lock.release().catch(() => {})
      }
      throw wrapIoError(e, `opening the log in ${storage.location}`)
    }
  }

  /**
   * Accepts an open made with `deferAccept`: writes what recovery decided (repairs.ts) and
   * makes it durable, then lets writes in. Until then every write throws, and reads see the
   * log as repaired. A power cut before this ends loses nothing: the next open decides the
   * same. Idempotent; a failure poisons the log (reopen to recover).
   */
  acceptOpen(): Promise<void> {
    this.accepting ??= this.applyPending()
    return this.accepting
  }

  private async applyPending(): Promise<void> {
    const p = this.pending
    if (p === undefined) return
    if (this.isClosing || this.isClosed) throw new ClosedError()
    const t0 = performance.now()
    const storage = this.storage
    try {
      if (p.createLog) this.file = await storage.openFile(LOG_FILE, 'createOrOpen')
      if (p.createBlobDir) await storage.mkdir(BLOB_DIR)
      if (p.createLog || p.createBlobDir) await storage.syncDir('')
      const S = this.segmentBytes
      await applyLogRepairs(
        storage,
        this.file,
        p.log,
        this.conf.logId,
        S,
        this.failpoints,
        this.ctx.fileLabel,
      )
      if (p.conf !== undefined) {
        this.failpoints.hit('conf write')
        await writeConf(storage, p.conf)
      }
      await removeOrphanBlobs(storage, p.orphanBlobs)
    } catch (e) {
      this.poison(e, 'repairing the log at open')
      throw this.ctx.poisonError
    }
    this.ctx.file = this.file
    this.pending = undefined
    this.stats.recoveryMs += performance.now() - t0
    this.startFlusher()
  }

  private constructor(
    path: string,
    storage: Storage,
    file: StorageFile,
    lock: StorageLock,
    conf: Conf,
    failpoints: Failpoints,
    options: LogOptions,
    recovered: RecoveredLog,
  ) {
    this.location = storage.location ?? path
    this.storage = storage
    this.file = file
    this.lockHandle = lock
    this.conf = conf
    this.failpoints = failpoints
    this.segmentBytes = conf.segmentBytes
    this.maxInlineBytes = Math.floor(conf.segmentBytes / 4) - MAX_MESSAGE_HEADER_BYTES
    this.options = {
      flushEveryMs: options.flushEveryMs ?? DEFAULT_FLUSH_EVERY_MS,
      syncEveryBytes: options.syncEveryBytes ?? DEFAULT_SYNC_EVERY_BYTES,
      writeHighWaterBytes: options.writeHighWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
      maxBlobBytes: options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES,
      maxBatchRecords: options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS,
      // Only a literal true turns a mutation switch on.
      unsafeAckBeforeSync: options.unsafeAckBeforeSync === true,
      unsafeUnorderedPreExtension: options.unsafeUnorderedPreExtension === true,
      inlineSyncedWrites: options.inlineSyncedWrites ?? true,
    }
    this.ctx = {
      // Reads go through the view of the repaired log until the repairs are written.
      file: recovered.view,
      conf,
      segmentBytes: conf.segmentBytes,
      failpoints,
      stats: this.stats,
      fileLabel: `${this.location}/${LOG_FILE}`,
      poisonError: undefined,
      // Looked up on each call, so a test may wrap this instance's poison().
      poison: (cause, what) => this.poison(cause, what),
    }
    const S = conf.segmentBytes
    const last = recovered.segments[recovered.segments.length - 1]
    const resumes = recovered.continuesLastSegment && last !== undefined
    // Without room in the last segment the log goes on at the next segment boundary; the
    // bytes skipped are zeros on disk and hold no message.
    const startLsn = resumes ? recovered.nextLsn : Math.ceil(recovered.nextLsn / S) * S
    this.slots = new SegmentSlots(recovered.segments, recovered.freeSlots, recovered.slotCount)
    for (const b of recovered.blobs) this.slots.noteBlob(Math.floor(b.lsn / S) * S, b)
    this.nextBlobId = Math.max(0, ...recovered.blobs.map((b) => b.id + 1))
    this.commit = new GroupCommit(
      this.ctx,
      startLsn - 1,
      this.options.unsafeAckBeforeSync,
      () => this.writer.writesInFlight,
      this.options.syncEveryBytes,
    )
    this.writer = new SegmentWriter(
      this.ctx,
      this.commit,
      this.slots,
      this.options.writeHighWaterBytes,
      this.options.unsafeUnorderedPreExtension,
      this.options.inlineSyncedWrites,
      () => this.isClosed,
      {
        startLsn,
        resume:
          resumes && last !== undefined
            ? {
                ...last,
                isExtended:
                  (last.slot + 1) * S <= (recovered.repairs.truncateTo ?? recovered.repairs.fileBytes),
              }
            : undefined,
        witnessLsn: recovered.witnessLsn,
        firstLsn: recovered.firstLsn,
      },
    )
    this.parts = {
      ctx: this.ctx,
      storage,
      slots: this.slots,
      writer: this.writer,
      commit: this.commit,
      flush: () => this.flush(),
      messageMarks: recovered.messageMarks,
    }
  }

  // ---- appending ----

  /**
   * Appends one record and returns its LSN at once; the record is durable once
   * makeStable(lsn) or flush() resolves. Records over maxInlineBytes need appendLarge().
   */
  append(data: Uint8Array, id = 0): Lsn {
    if (this.ctx.poisonError !== undefined || this.isClosing || this.isClosed || this.pending !== undefined)
      this.checkWritable()
    const len = checkRecord(data, this.maxInlineBytes)
    if (id !== 0) checkId(id)
    return asLsn(this.writer.appendRecord(data, len, id))
  }

  /**
   * Appends one record made of `head` then `body`, as append() of their concatenation
   * would, without the caller building that copy (the page cache's kind byte and page id
   * before a page). Both are copied into the log before this returns.
   */
  appendWithHead(head: Uint8Array, body: Uint8Array, id = 0): Lsn {
    if (this.ctx.poisonError !== undefined || this.isClosing || this.isClosed || this.pending !== undefined)
      this.checkWritable()
    const headLen = checkRecord(head, this.maxInlineBytes)
    const bodyLen = checkRecord(body, this.maxInlineBytes)
    const len = headLen + bodyLen
    if (len > this.maxInlineBytes) throw new LimitError('record size', this.maxInlineBytes, len)
    if (id !== 0) checkId(id)
    return asLsn(this.writer.appendRecord(body, len, id, head))
  }

  /**
   * Appends records that recover all together or not at all, without blocking other writers.
   * Returns the LSN of the last record; `lsnsOut`, when given, has every record's LSN pushed
   * onto it, after what it already holds.
   */
  appendBatch(records: readonly Uint8Array[], id = 0, lsnsOut?: number[]): Lsn {
    this.checkWritable()
    if (!Array.isArray(records)) throw new InvalidArgumentError('appendBatch() takes an array of Uint8Array')
    if (records.length === 0) throw new InvalidArgumentError('appendBatch() needs at least one record')
    if (records.length > this.options.maxBatchRecords) {
      throw new LimitError('batch record count', this.options.maxBatchRecords, records.length)
    }
    // Checked on a private copy of the list, so what is written is exactly what was checked.
    const rs = Array.from(records)
    const lens = rs.map((r) => checkRecord(r, this.maxInlineBytes))
    checkId(id)
    checkLsnsOut(lsnsOut, 'appendBatch()')
    if (rs.length === 1) {
      const lsn = this.append(rs[0] as Uint8Array, id)
      lsnsOut?.push(lsn)
      return lsn
    }
    return asLsn(this.writer.appendBatch(rs, lens, id, lsnsOut))
  }

  /**
   * Appends a record of any size up to maxBlobBytes. Large records are written to their own
   * file and synced before the pointer is logged, so the pointer never outlives its data.
   */
  async appendLarge(data: Uint8Array, id = 0): Promise<Lsn> {
    this.checkWritable()
    const len = checkRecord(data, this.options.maxBlobBytes)
    checkId(id)
    if (len <= this.maxInlineBytes) return this.append(data, id)
    const ref = await this.writeBlobFile(data, len)
    this.checkWritable()
    const lsn = this.writer.appendBlobPointer(ref, id)
    this.stats.blobsWritten++
    return asLsn(lsn)
  }

  /**
   * The first half of appendLarge(): writes `data` (over maxInlineBytes) to a new blob file
   * and makes it durable, but logs no pointer. The caller then logs one with relinkBlob()
   * in a synchronous step of its choosing, or drops the file with dropStagedBlob(); a file
   * left staged is an orphan, removed at the next open.
   */
  async stageBlob(data: Uint8Array): Promise<BlobRef> {
    this.checkWritable()
    const len = checkRecord(data, this.options.maxBlobBytes)
    if (len <= this.maxInlineBytes) {
      throw new InvalidArgumentError(
        `a blob holds more than ${this.maxInlineBytes} bytes; append() takes ${len}`,
      )
    }
    const ref = await this.writeBlobFile(data, len)
    this.staged.set(ref.id, ref)
    this.stats.blobsWritten++
    return ref
  }

  /** Removes a staged blob that no pointer names (best effort: an orphan goes at open). */
  async dropStagedBlob(ref: BlobRef): Promise<void> {
    const { id } = readRef(ref, 'dropStagedBlob()')
    if (!this.staged.delete(id)) {
      throw new InvalidArgumentError('dropStagedBlob() takes a blob staged and not yet linked')
    }
    if (this.isClosed) return
    await this.storage.unlink(blobName(id)).catch(() => {})
  }

  private async writeBlobFile(data: Uint8Array, len: number): Promise<BlobRef> {
    // The caller may change its buffer while the blob is written: write a private copy, or
    // the bytes on disk could differ from the CRC taken of them.
    const copy = new Uint8Array(len)
    copy.set(data)
    const blobId = this.nextBlobId++
    const writing = writeBlob(this.storage, this.conf.logId, blobId, copy, this.failpoints)
    // close() waits for blob files being written, so none is written after the unlock.
    this.blobWrites.add(writing)
    try {
      return await writing
    } catch (e) {
      this.poison(e, 'writing a blob')
      throw this.ctx.poisonError
    } finally {
      this.blobWrites.delete(writing)
    }
  }

  /**
   * Logs another pointer to the blob file an existing pointer names (`ref`, from
   * blobRefAt()), or the first pointer to a blob from stageBlob(), without rewriting the
   * blob: moving a large record forward costs a pointer, not its bytes. The file was durable before its first pointer was logged, and
   * it stays until the segment holding its newest pointer is truncated, so the caller may
   * drop the old pointer's segment once the new one is stable. `records`, when given,
   * follow the pointer in one atomic batch (`lsnsOut` receives their LSNs). Returns the
   * pointer's LSN. A blob no pointer in the log names any more is InvalidArgumentError.
   */
  relinkBlob(ref: BlobRef, id = 0, records: readonly Uint8Array[] = [], lsnsOut?: number[]): Lsn {
    this.checkWritable()
    const r = readRef(ref, 'relinkBlob()')
    const staged = this.staged.get(r.id)
    const known =
      staged !== undefined ? staged.sizeBytes === r.sizeBytes && staged.crc === r.crc : this.slots.hasBlob(r)
    if (!known) {
      throw new InvalidArgumentError(
        `blob ${r.id} (${r.sizeBytes} bytes, CRC ${r.crc}) is neither staged nor named by a pointer in the log`,
      )
    }
    checkId(id)
    if (!Array.isArray(records)) throw new InvalidArgumentError('relinkBlob() takes an array of Uint8Array')
    if (records.length + 1 > this.options.maxBatchRecords) {
      throw new LimitError('batch record count', this.options.maxBatchRecords, records.length + 1)
    }
    const rs = Array.from(records)
    const lens = rs.map((x) => checkRecord(x, this.maxInlineBytes))
    checkLsnsOut(lsnsOut, 'relinkBlob()')
    const wasStaged = this.staged.delete(r.id)
    const lsn =
      rs.length === 0
        ? this.writer.appendBlobPointer(r, id)
        : this.writer.appendPointerBatch(r, rs, lens, id, lsnsOut ?? [])
    if (!wasStaged) this.stats.blobsRelinked++
    return asLsn(lsn)
  }

  /**
   * appendBatch() whose items may also be blob refs: each is logged as a pointer at its
   * place in the batch, so several large records (staged with stageBlob(), or named by a
   * pointer already in the log) commit atomically with small ones. Returns the last item's
   * LSN; `lsnsOut` receives every item's. Everything is checked before anything is logged.
   */
  appendMixedBatch(items: ReadonlyArray<Uint8Array | BlobRef>, id = 0, lsnsOut?: number[]): Lsn {
    this.checkWritable()
    if (!Array.isArray(items) || items.length === 0)
      throw new InvalidArgumentError('appendMixedBatch() takes a non-empty array')
    if (items.length > this.options.maxBatchRecords) {
      throw new LimitError('batch record count', this.options.maxBatchRecords, items.length)
    }
    checkId(id)
    const rs: Array<Uint8Array | BlobRef> = []
    const lens: number[] = []
    const stagedIds = new Set<number>()
    let relinked = 0
    for (const item of items) {
      if (item instanceof Uint8Array) {
        lens.push(checkRecord(item, this.maxInlineBytes))
        rs.push(item)
        continue
      }
      const r = readRef(item, 'appendMixedBatch()')
      const staged = this.staged.get(r.id)
      const known =
        staged !== undefined
          ? staged.sizeBytes === r.sizeBytes && staged.crc === r.crc && !stagedIds.has(r.id)
          : this.slots.hasBlob(r)
      if (!known) {
        throw new InvalidArgumentError(
          `blob ${r.id} (${r.sizeBytes} bytes, CRC ${r.crc}) is neither staged nor named by a pointer in the log`,
        )
      }
      if (staged !== undefined) stagedIds.add(r.id)
      else relinked++
      lens.push(0)
      rs.push(r)
    }
    for (const b of stagedIds) this.staged.delete(b)
    this.stats.blobsRelinked += relinked
    return asLsn(this.writer.appendMixedBatch(rs, lens, id, lsnsOut))
  }

  /**
   * Bytes of the blob files each segment of the log would take with it when truncated: the
   * blobs whose newest pointer lies in it (a relinked blob belongs to its newest pointer's
   * segment only). By segment base; a segment owning none is absent. Complete once the log
   * is open: recovery walks every segment whenever a blob file exists.
   */
  blobBytesBySegment(): Map<number, number> {
    return this.slots.blobBytesBySegment()
  }

  /**
   * Ends the segment being written: the next record starts a new segment, so once a flush
   * has made it stable, every segment up to this one lies wholly below the tip and may be
   * truncated. A no-op when the current segment holds no message yet. Cleaning uses it to
   * free blob files whose newest pointer is in the current segment.
   */
  sealSegment(): void {
    this.checkWritable()
    this.writer.sealSegment()
  }

  /** The blob that the pointer at `lsn` names (read without reading the blob itself). */
  async blobRefAt(lsn: number): Promise<BlobRef> {
    this.checkOpen()
    const bad = lsnError(lsn, 'blobRefAt()')
    if (bad !== undefined) throw bad
    return readBlobRef(this.parts, lsn)
  }

  /**
   * Reserves room for a record of `bodyBytes` to be filled in place (zeroed until then).
   * The buffer holding it is not written until the reservation completes or aborts; an
   * aborted reservation stays on disk as a Canceled message.
   */
  reserve(bodyBytes: number, id = 0): Reservation {
    this.checkWritable()
    if (!Number.isSafeInteger(bodyBytes) || bodyBytes < 0) {
      throw new InvalidArgumentError('reserve() takes a non-negative integer size')
    }
    if (bodyBytes > this.maxInlineBytes) throw new LimitError('record size', this.maxInlineBytes, bodyBytes)
    checkId(id)
    const w = this.writer
    const b = w.reserveMessage(MessageKind.Record, bodyBytes, id)
    const at = w.resAt
    const total = w.resHeaderBytes + bodyBytes
    const bodyStart = at + w.resHeaderBytes
    b.seg.buf.fill(0, bodyStart, at + total)
    const lsn = asLsn(b.seg.baseLsn + at)
    let done = false
    this.openReservations++
    const finish = (valid: boolean): void => {
      if (done) throw new InvalidArgumentError('this reservation was already completed or aborted')
      done = true
      this.openReservations--
      w.completeMessage(b, at, total, valid)
      if (valid) this.stats.recordsAppended++
    }
    return {
      lsn,
      body: b.seg.buf.subarray(bodyStart, at + total),
      complete: () => {
        finish(true)
        return lsn
      },
      abort: () => finish(false),
    }
  }

  // ---- durability ----

  /** Resolves when every byte up to `lsn` is written and synced (contiguously). */
  makeStable(lsn: number): Promise<void> {
    if (this.ctx.poisonError !== undefined) return Promise.reject(this.ctx.poisonError)
    const bad = lsnError(lsn, 'makeStable()')
    if (bad !== undefined) return Promise.reject(bad)
    if (lsn <= this.commit.stableLsn) return Promise.resolve()
    if (this.isClosed) return Promise.reject(new ClosedError())
    if (lsn > this.writer.maxReserved) return Promise.reject(this.unreserved(lsn))
    const p = this.commit.wait(lsn)
    this.writer.ensureWriteIssued(lsn)
    this.commit.kick()
    return p
  }

  /** Resolves when every byte up to `lsn` is written to the file, maybe not yet synced. */
  makeDurable(lsn: number): Promise<void> {
    if (this.ctx.poisonError !== undefined) return Promise.reject(this.ctx.poisonError)
    const bad = lsnError(lsn, 'makeDurable()')
    if (bad !== undefined) return Promise.reject(bad)
    const w = this.writer
    if (lsn <= w.written.publishedLsn) return Promise.resolve()
    if (this.isClosed) return Promise.reject(new ClosedError())
    if (lsn > w.maxReserved) return Promise.reject(this.unreserved(lsn))
    const p = w.writtenWaiters.wait(lsn)
    w.ensureWriteIssued(lsn)
    return p
  }

  private unreserved(lsn: number): InvalidArgumentError {
    return new InvalidArgumentError(`LSN ${lsn} has not been reserved (last is ${this.writer.maxReserved})`)
  }

  /** Everything reserved before this call is durable when it resolves; returns that LSN. */
  async flush(): Promise<Lsn> {
    if (this.isClosed) throw new ClosedError()
    const target = this.writer.maxReserved
    await this.makeStable(target)
    return asLsn(target)
  }

  /**
   * Resolves when issued-but-unfinished writes fall below the high-water mark. Once
   * YIELD_EVERY_BYTES of writes were issued since it last did, it resolves on the next turn
   * of the event loop instead of at once: a producer that only awaits this never lets the
   * loop run otherwise, so its finished writes would neither be counted (in-flight bytes
   * would only grow until the high water stalls it), nor recycle their segment memory, nor
   * start the background sync of syncEveryBytes. Small writers never meet the threshold: a
   * turn per call would let a caller that spins on settled promises (reads of resident
   * pages) starve them.
   */
  whenWritable(): Promise<void> {
    if (this.ctx.poisonError !== undefined) return Promise.reject(this.ctx.poisonError)
    if (this.isClosing || this.isClosed) return Promise.reject(new ClosedError())
    const w = this.writer
    if (w.bytesInFlight < this.options.writeHighWaterBytes) {
      if (w.bytesIssuedSinceYield < YIELD_EVERY_BYTES) return Promise.resolve()
      w.bytesIssuedSinceYield = 0
      return new Promise((resolve) => setImmediate(resolve))
    }
    w.bytesIssuedSinceYield = 0
    const t0 = performance.now()
    this.stats.stalls++
    return new Promise<void>((resolve, reject) => {
      w.writableWaiters.push({
        resolve: () => {
          this.stats.stallMsTotal += performance.now() - t0
          resolve()
        },
        reject,
      })
    })
  }

  /**
   * Sends lone sync rounds to the thread pool until the returned function is called (once;
   * later calls do nothing): for a phase whose main-thread work must not wait behind the
   * disk, like the page cache's warm-up after open (docs/DESIGN.md, "Inline synced writes").
   */
  pauseInlineSyncedWrites(): () => void {
    return this.writer.pauseInline()
  }

  /** Highest LSN below which everything is durable (-1: nothing yet). */
  get stableLsn(): Lsn {
    return asLsn(this.commit.stableLsn)
  }

  /** True while someone waits for bytes to become stable (makeStable(), flush()). */
  get isStabilityAwaited(): boolean {
    return this.commit.stableWaiters.size > 0
  }

  /** Largest record appendLarge() and stageBlob() take. */
  get maxBlobBytes(): number {
    return this.options.maxBlobBytes
  }

  /** Last byte reserved so far. */
  get maxReservedLsn(): Lsn {
    return asLsn(this.writer.maxReserved)
  }

  /**
   * Bytes of segment memory the log holds now: every segment life that writes or reads of
   * unwritten data still need (up to writeHighWaterBytes of writes in flight, plus the
   * segment being filled) and the spare buffers kept for the next lives. The page cache
   * charges them to its capacity (docs/DESIGN.md, "Peak RSS").
   */
  get segmentBufferBytes(): number {
    const w = this.writer
    return (w.liveSegments.size + w.spareBuffers.length) * this.segmentBytes
  }

  /** Spare segment buffers the log would take now (addSpareSegmentBuffer). */
  get spareSegmentBuffersWanted(): number {
    return SPARE_SEGMENT_BUFFERS - this.writer.spareBuffers.length
  }

  /**
   * Gives the log a segment buffer (segmentBytes, whole, no longer used by the caller) for
   * its next segment lives, so it does not allocate one; false when its spares are full.
   * It is zeroed before a life uses it.
   */
  addSpareSegmentBuffer(buf: Uint8Array): boolean {
    return this.writer.addSpare(buf)
  }

  /**
   * Where segment buffers go that the log no longer keeps (beyond its spares), instead of
   * becoming garbage: the page cache takes them back into its arena (docs/DESIGN.md, "Peak
   * RSS").
   */
  shareSegmentMemory(memory: SegmentMemory): void {
    this.writer.memory = memory
  }

  /** The random id of this log: files that name another id belong to another database. */
  get logId(): number {
    return this.conf.logId
  }

  /** Where the log begins: records below it were dropped by truncateBefore(). */
  get firstLsn(): Lsn {
    return asLsn(this.writer.firstLsn)
  }

  /** Base LSNs of the segments the log holds now, ascending (the last one is being written). */
  segmentBases(): readonly number[] {
    return this.slots.bases()
  }

  /** Slots the log file spans (free ones included): its size is this × segmentBytes. */
  get fileSlots(): number {
    return this.slots.slotCount
  }

  /**
   * Where byte `lsn` lives in the log file (a byte offset), or undefined when its segment
   * is not part of the log (truncated, or not opened yet). For tools and protocol monitors.
   */
  positionOf(lsn: number): number | undefined {
    const S = this.segmentBytes
    const base = Math.floor(lsn / S) * S
    const slot = this.slots.slotAt(base)
    return slot === undefined ? undefined : slot * S + (lsn - base)
  }

  /** The error that poisoned this instance, if any. */
  get failure(): StorageError | undefined {
    return this.ctx.poisonError
  }

  metrics(): LogMetrics {
    return structuredClone(this.stats)
  }

  // ---- reading ----

  /** Stable records with LSN ≥ `from`, in LSN order. Damage in stable data throws CorruptionError. */
  async *iterFrom(from = 0): AsyncGenerator<LogRecord> {
    this.checkOpen()
    const bad = lsnError(from, 'iterFrom()')
    if (bad !== undefined) throw bad
    yield* iterRecords(this.parts, from)
  }

  /**
   * Reads the record that starts at `lsn`. Data not yet written is served from memory;
   * bytes on disk are checked (CRC, segment number) before they are returned.
   * `messageBytes`, when the caller knows it (header included, as it took on the log),
   * sizes the read: one read into one array of exactly the message instead of a window
   * and then the rest. It is only a hint: a wrong one costs a read, never a wrong record.
   * `scratch`, memory the caller lends for the read: when the record is read from disk
   * into it (the window fits), the record's data is a view into `scratch`, valid as long as
   * the caller leaves it alone, and no array is made; otherwise data is an array of its own.
   */
  async read(lsn: number, messageBytes?: number, scratch?: Uint8Array): Promise<LogRecord> {
    this.checkRead('read()', lsn, messageBytes, scratch)
    return readRecord(this.parts, lsn, messageBytes, scratch)
  }

  /**
   * read() on the calling thread (StorageFile.readNow): the same record, checked the same
   * way, or the same error thrown; undefined when it cannot be read synchronously (a blob
   * pointer, a file without readNow), and the caller uses read(). Bytes not yet written
   * come from memory, as with read(). The event loop waits for the disk if the OS cache
   * misses (docs/DESIGN.md, "Inline reads").
   */
  readNow(lsn: number, messageBytes?: number, scratch?: Uint8Array): LogRecord | undefined {
    this.checkRead('readNow()', lsn, messageBytes, scratch)
    return readRecordNow(this.parts, lsn, messageBytes, scratch)
  }

  private checkRead(what: string, lsn: number, messageBytes?: number, scratch?: Uint8Array): void {
    this.checkOpen()
    const bad = lsnError(lsn, what)
    if (bad !== undefined) throw bad
    if (messageBytes !== undefined && (!Number.isSafeInteger(messageBytes) || messageBytes < 0)) {
      throw new InvalidArgumentError(`${what} takes a byte count as its size hint, got ${messageBytes}`)
    }
    if (scratch !== undefined && !(scratch instanceof Uint8Array)) {
      throw new InvalidArgumentError(`${what} takes a Uint8Array as its scratch space`)
    }
  }

  /**
   * Reads several records of one segment, ascending, with one read of their span (gaps
   * included, at most MAX_RUN_READ_BYTES): `messageBytes[i]` is the i-th record's size on
   * the log, header included. Each record is checked as read() checks it; their data are
   * views into one array of the span (`scratch`, lent by the caller, when it is long
   * enough). See record-reader.ts, readRecordRun().
   */
  async readRun(
    lsns: readonly number[],
    messageBytes: readonly number[],
    scratch?: Uint8Array,
  ): Promise<LogRecord[]> {
    this.checkOpen()
    if (
      !Array.isArray(lsns) ||
      !Array.isArray(messageBytes) ||
      lsns.length === 0 ||
      lsns.length !== messageBytes.length
    ) {
      throw new InvalidArgumentError('readRun() takes LSNs and as many sizes, at least one')
    }
    for (const lsn of lsns) {
      const bad = lsnError(lsn, 'readRun()')
      if (bad !== undefined) throw bad
    }
    if (scratch !== undefined && !(scratch instanceof Uint8Array)) {
      throw new InvalidArgumentError('readRun() takes a Uint8Array as its scratch space')
    }
    return readRecordRun(this.parts, lsns, messageBytes, scratch)
  }

  /**
   * Drops whole segments that lie entirely below `lsn` and are stable; see truncation.ts.
   * Truncations run one at a time, in call order.
   */
  truncateBefore(lsn: number): Promise<void> {
    this.checkWritable()
    if (!Number.isSafeInteger(lsn) || lsn < 0) throw new InvalidArgumentError('truncateBefore() takes an LSN')
    const run = (): Promise<void> => truncateSegments(this.parts, lsn)
    this.truncation = this.truncation.then(run, run)
    return this.truncation
  }

  // ---- lifecycle ----

  /**
   * Releases the folder without writing anything: no flush, no closing Witness, no
   * witness file. For an open that a layer above refused right after recovery (damaged
   * pages): a refused database must be left as it was found. Nothing appended since open
   * may still be pending; such records are dropped, as a crash would drop them.
   */
  async closeRefused(): Promise<void> {
    if (this.isClosed || this.isClosing) return
    await this.beginClose()
    await this.release()
  }

  /**
   * Flushes, writes a closing witness, waits for every write, closes the file and unlocks.
   * An open never accepted writes nothing here either (as closeRefused()).
   */
  async close(): Promise<void> {
    if (this.isClosed || this.isClosing) return
    if (this.pending !== undefined && this.accepting === undefined) return this.closeRefused()
    if (this.openReservations > 0) {
      // Their buffers cannot be written until they complete: the final flush would wait forever.
      throw new InvalidArgumentError(
        `complete or abort the ${this.openReservations} open reservation(s) before close()`,
      )
    }
    await this.beginClose()
    const ctx = this.ctx
    try {
      if (ctx.poisonError === undefined) {
        await this.truncation.catch(() => {})
        await this.flush()
        // A closing Witness message, and the witness file that recovery reads before it
        // scans, let recovery tell damage from a torn tail for every byte of the log.
        if (ctx.poisonError === undefined && this.commit.stableLsn > this.writer.lastWitness) {
          this.writer.appendWitness()
          await this.flush()
        }
        if (ctx.poisonError === undefined) {
          try {
            await writeCloseWitness(this.storage, this.conf.logId, this.commit.stableLsn)
          } catch (e) {
            this.poison(e, 'writing the close witness')
            throw ctx.poisonError
          }
        }
      }
    } finally {
      await this.release()
    }
  }

  /** The start of close() and closeRefused(): no new work, blob writes settled. */
  private async beginClose(): Promise<void> {
    this.isClosing = true
    // An acceptance in flight finishes first: its writes are the log's own.
    await this.accepting?.catch(() => {})
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer)
    await Promise.allSettled([...this.blobWrites])
  }

  /** The end of close() and closeRefused(): writes settled, waiters told, file and lock let go. */
  private async release(): Promise<void> {
    if (this.pending !== undefined) await discardLogRepairs(this.pending.log)
    await this.writer.allWritesSettled()
    this.isClosed = true
    this.commit.stableWaiters.rejectAll(new ClosedError())
    this.writer.rejectWaiters(new ClosedError(), false)
    await this.file.close().catch(() => {})
    await this.lockHandle.release()
  }

  /**
   * Sticky failure: after a failed write or datasync nothing more is written or synced in
   * this instance, and every waiter, present and future, gets the typed error. Never retry
   * a sync (fsyncgate): reopen to recover from what is on disk.
   */
  private poison(cause: unknown, what: string): void {
    if (this.ctx.poisonError !== undefined) return
    const e = wrapIoError(cause, what, `${this.location}/${LOG_FILE}`)
    this.ctx.poisonError = e
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer)
    this.commit.stableWaiters.rejectAll(e)
    this.writer.rejectWaiters(e, true)
  }

  private startFlusher(): void {
    const every = this.options.flushEveryMs
    if (every <= 0) return
    this.flushTimer = setInterval(() => {
      if (this.ctx.poisonError !== undefined || this.isClosing) return
      if (this.writer.maxReserved > this.commit.stableLsn) {
        // Errors poison the instance and reach callers through their own calls.
        this.flush().catch(() => {})
      }
    }, every)
    this.flushTimer.unref()
  }

  private checkWritable(): void {
    if (this.ctx.poisonError !== undefined) throw this.ctx.poisonError
    if (this.isClosing || this.isClosed) throw new ClosedError()
    if (this.pending !== undefined) {
      throw new InvalidArgumentError('the log is written only once its open is accepted (acceptOpen())')
    }
  }

  private checkOpen(): void {
    if (this.isClosed) throw new ClosedError()
  }
}

/** lsnsOut is pushed to after the records are framed: a wrong type must be refused before. */
function checkLsnsOut(lsnsOut: unknown, what: string): void {
  if (lsnsOut !== undefined && !Array.isArray(lsnsOut)) {
    throw new InvalidArgumentError(`${what} takes an array (or nothing) for lsnsOut`)
  }
}

/** A private copy of a caller's blob ref, read once (a getter cannot change it later). */

function readRef(ref: unknown, what: string): BlobRef {
  let id: unknown
  let sizeBytes: unknown
  let crc: unknown
  try {
    ;({ id, sizeBytes, crc } = ref as BlobRef)
  } catch {
    throw new InvalidArgumentError(`${what} takes a blob ref { id, sizeBytes, crc }`)
  }
  if (
    !Number.isSafeInteger(id) ||
    (id as number) < 0 ||
    !Number.isSafeInteger(sizeBytes) ||
    (sizeBytes as number) < 0 ||
    !Number.isInteger(crc) ||
    (crc as number) < 0 ||
    (crc as number) > 0xffffffff
  ) {
    throw new InvalidArgumentError(`${what} takes a blob ref { id, sizeBytes, crc }`)
  }
  return { id: id as number, sizeBytes: sizeBytes as number, crc: crc as number }
}
