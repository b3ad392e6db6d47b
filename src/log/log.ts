// The IO-buffer log: sled's lock-free log buffers (seed-iobuf.rs) in one JS isolate.
//
// Writers reserve a range of the current IoBuf, fill it and complete it in one synchronous
// step, so the header word needs no CAS (docs/DESIGN.md, "One owner"). A sealed buffer is
// written with one positional write that is not awaited; writes complete in any order and
// StabilityIntervals publishes only the contiguous prefix. Durability comes from group
// commit: one datasync in flight, covering every write that completed before it began; only
// then does the stable LSN move and do waiters resolve.

import {
  ClosedError,
  CorruptionError,
  InvalidArgumentError,
  LimitError,
  NotADatabaseError,
  type StorageError,
  wrapIoError,
} from '../errors.js'
import { FileStorage, type Storage, type StorageFile, type StorageLock } from '../io/index.js'
import { assert } from '../util/assert.js'
import { asLsn, type Lsn } from '../util/brand.js'
import { wordsOf } from '../util/crc32.js'
import { BLOB_DIR, type BlobRef, blobName, parseBlobName, readBlob, writeBlob } from './blob.js'
import { readCloseWitness, WITNESS_NAME, writeCloseWitness } from './close-witness.js'
import { type Conf, readConf, writeConf } from './conf.js'
import { Failpoints } from './failpoints.js'
import {
  BLOB_POINTER_BODY_BYTES,
  DEFAULT_SEGMENT_BYTES,
  decodeSegmentHeader,
  encodeSegmentHeader,
  FORMAT_VERSION,
  MAX_MESSAGE_HEADER_BYTES,
  MessageKind,
  messageCrc,
  messageHeaderBytes,
  RED_ZONE_BYTES,
  readU32,
  readU64,
  SEGMENT_HEADER_BYTES,
  stampMessageCrc,
  U64_BODY_BYTES,
  varintBytes,
  writeMessageHeader,
  writeU32,
  writeU64,
  writeVarint,
} from './format.js'
import {
  bumpOffset,
  decrementWriters,
  EMPTY_HEADER,
  type HeaderWord,
  incrementWriters,
  isMaxed,
  isSealed,
  markMaxed,
  markSealed,
  offsetOf,
  withOffset,
  writersOf,
} from './header-word.js'
import { bump, emptyMetrics, type LogMetrics } from './metrics.js'
import { lastCorruptReason, newParsedMessage, Parse, parseMessage } from './reader.js'
import { recoverLog } from './recovery.js'
import { StabilityIntervals } from './stability.js'
import { TAIL_JOURNAL } from './tail-journal.js'
import { checkId, checkRecord, lsnError, validateOptions } from './validate.js'
import { LsnWaiters } from './waiters.js'

export const LOG_FILE = 'log'

export interface LogOptions {
  /** Storage backend; defaults to real files in the folder given to open(). */
  storage?: Storage
  /** Segment size for a new log (power of two, 1 KiB..8 MiB). An existing log keeps its own. */
  segmentBytes?: number
  /** Background flush period; 0 turns it off. Default 500. */
  flushEveryMs?: number
  /** Bytes of issued but unfinished writes above which whenWritable() makes callers wait. */
  writeHighWaterBytes?: number
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
   * TEST ONLY — a mutation switch that acknowledges writes without a datasync. The crash
   * tests turn it on to prove they can fail. Never use it otherwise.
   */
  unsafeAckBeforeSync?: boolean
}

export interface LogRecord {
  lsn: Lsn
  /** The caller's id field (a page id, a stream id, ...). */
  id: number
  data: Uint8Array
  /** True when the record was stored in its own blob file. */
  isBlob: boolean
}

/** The memory of one segment life, shared by every IoBuf that continues inside it. */
interface SegmentLife {
  buf: Uint8Array
  /** Int32 view of `buf` for the word-wise CRC. */
  words: Int32Array | undefined
  baseLsn: number
  segmentNumber: number
  /** Bytes of the segment number as a varint (every message header repeats it). */
  segmentNumberBytes: number
  slot: number
  /** Issued writes of this segment not yet finished; the buffer is dropped when 0 and left. */
  writesInFlight: number
  /**
   * Sealed buffers of this segment whose write is not issued yet (open writers, e.g. a
   * reservation). Their completed records are served from `buf`, so it must stay live
   * until this is 0 too, even when every issued write has settled.
   */
  unissuedBuffers: number
}

/** One buffer: the region of a segment from `base` on, filled by reservations. */
interface IoBuf {
  seg: SegmentLife
  /** Offset of this buffer's byte 0 inside the segment. */
  base: number
  header: HeaderWord
}

/** An open reservation from reserve(): fill `body`, then complete() or abort(). */
export interface Reservation {
  readonly lsn: Lsn
  readonly body: Uint8Array
  complete(): Lsn
  abort(): void
}

const DEFAULT_FLUSH_EVERY_MS = 500
const MAX_SYNC_DEFERRALS = 4
const DEFAULT_HIGH_WATER_BYTES = 64 * 1024 * 1024
const DEFAULT_MAX_BLOB_BYTES = 256 * 1024 * 1024
const DEFAULT_MAX_BATCH_RECORDS = 100_000
const LOG_OWNED_NAMES = new Set([
  LOG_FILE,
  'conf',
  'conf.tmp',
  WITNESS_NAME,
  `${WITNESS_NAME}.tmp`,
  TAIL_JOURNAL,
  BLOB_DIR,
  'LOCK',
])

export class Log {
  readonly failpoints: Failpoints
  /** Largest record append() stores inline; larger ones go through appendLarge(). */
  readonly maxInlineBytes: number
  readonly segmentBytes: number
  readonly location: string

  private readonly storage: Storage
  private readonly file: StorageFile
  private readonly lockHandle: StorageLock
  private readonly conf: Conf
  private readonly options: Required<
    Omit<LogOptions, 'storage' | 'failpoints' | 'segmentBytes' | 'verifyOnOpen'>
  >
  private readonly stats: LogMetrics = emptyMetrics()

  private cur: IoBuf
  /** Last byte reserved so far (-1: nothing). */
  private maxReserved: number
  private readonly written: StabilityIntervals
  private readonly synced: StabilityIntervals
  /** Written ranges not yet covered by a datasync, as [lo, hi] pairs. */
  private unsynced: number[] = []
  private syncInFlight = false
  private readonly blobWrites = new Set<Promise<BlobRef>>()
  /** Reservations from reserve() not yet completed or aborted. */
  private openReservations = 0
  /** Syncs put off in a row because writes were still finishing (see kickSync). */
  private syncDeferrals = 0
  /** Set for two event-loop turns after a sync released several writers (see kickSync). */
  private syncHold = false
  private writesInFlight = 0
  private bytesInFlight = 0
  private sealScheduled = false
  private poisonError: StorageError | undefined
  private isClosing = false
  private isClosed = false
  private readonly stableWaiters = new LsnWaiters()
  private readonly writtenWaiters = new LsnWaiters()
  private writableWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = []
  private settledWaiters: Array<() => void> = []
  /** Stable LSN last recorded durably-to-be (segment header or Witness message). */
  private lastWitness: number
  /** Segments of the log: base LSN → slot, and the base LSNs in order. */
  private readonly slotOf = new Map<number, number>()
  private readonly order: number[] = []
  private readonly freeSlots: number[]
  private slotCount: number
  /** Segments whose memory may still be needed to serve reads of unwritten data. */
  private readonly liveSegments = new Map<number, SegmentLife>()
  private readonly blobsBySegment = new Map<number, number[]>()
  private nextBlobId: number
  /** Where the log begins; recorded in every new segment header. */
  private firstLsn_: number
  private truncation: Promise<void> = Promise.resolve()
  private flushTimer: NodeJS.Timeout | undefined
  // Scratch results of reserveMessage(), to keep the append path free of allocations.
  private resAt = 0
  private resLsn = 0
  private resHeaderBytes = 0
  private readonly sealTask = (): void => {
    this.sealScheduled = false
    if (this.poisonError === undefined && !this.isClosed) this.seal(false)
  }

  /** Opens (creating if needed) the log in a folder. Takes the folder's lock. */
  static async open(path: string, options: LogOptions = {}): Promise<Log> {
    // Every option is checked before the first IO: a refused open creates nothing.
    validateOptions(options)
    const storage = options.storage ?? new FileStorage(path)
    const failpoints = options.failpoints ?? new Failpoints()
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    const t0 = performance.now()
    await storage.ensureRoot()
    const lock = await storage.lock()
    let file: StorageFile | undefined
    try {
      let conf = await readConf(storage)
      if (conf === undefined) {
        await refuseForeignFolder(storage)
        if ((await storage.exists(LOG_FILE)) && (await sizeOf(storage, LOG_FILE)) > 0) {
          throw new CorruptionError(`${storage.location} has a log file but no conf file`, {
            file: `${storage.location}/${LOG_FILE}`,
          })
        }
        conf = {
          formatVersion: FORMAT_VERSION,
          segmentBytes,
          logId: randomLogId(),
          createdAtMs: Date.now(),
        }
        failpoints.hit('conf write')
        await writeConf(storage, conf)
      }
      file = await storage.openFile(LOG_FILE, 'createOrOpen')
      await storage.mkdir(BLOB_DIR)
      await storage.syncDir('')
      const closeWitness = await readCloseWitness(storage, conf.logId)
      const recovered = await recoverLog(
        storage,
        file,
        `${storage.location}/${LOG_FILE}`,
        conf,
        failpoints,
        closeWitness,
        options.verifyOnOpen === true,
      )
      const log = new Log(path, storage, file, lock, conf, failpoints, options, recovered)
      await log.collectOrphanBlobs(recovered.blobs.map((b) => b.id))
      log.stats.recoveryMs = performance.now() - t0
      log.stats.recoveredRecords = recovered.records
      log.stats.recoveredBytes = recovered.recordBytes
      log.startFlusher()
      return log
    } catch (e) {
      await file?.close().catch(() => {})
      await lock.release().catch(() => {})
      throw wrapIoError(e, `opening the log in ${storage.location}`)
    }
  }

  private constructor(
    path: string,
    storage: Storage,
    file: StorageFile,
    lock: StorageLock,
    conf: Conf,
    failpoints: Failpoints,
    options: LogOptions,
    recovered: Awaited<ReturnType<typeof recoverLog>>,
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
      writeHighWaterBytes: options.writeHighWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
      maxBlobBytes: options.maxBlobBytes ?? DEFAULT_MAX_BLOB_BYTES,
      maxBatchRecords: options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS,
      unsafeAckBeforeSync: options.unsafeAckBeforeSync ?? false,
    }
    const S = conf.segmentBytes
    const last = recovered.segments[recovered.segments.length - 1]
    const resumes = recovered.continuesLastSegment && last !== undefined
    // Without room in the last segment the log goes on at the next segment boundary; the
    // bytes skipped are zeros on disk and hold no message.
    const startLsn = resumes ? recovered.nextLsn : Math.ceil(recovered.nextLsn / S) * S
    this.written = new StabilityIntervals(startLsn - 1)
    this.synced = new StabilityIntervals(startLsn - 1)
    this.maxReserved = startLsn - 1
    this.lastWitness = recovered.witnessLsn
    this.firstLsn_ = recovered.firstLsn
    this.freeSlots = [...recovered.freeSlots]
    this.slotCount = recovered.slotCount
    for (const s of recovered.segments) {
      this.slotOf.set(s.baseLsn, s.slot)
      this.order.push(s.baseLsn)
    }
    for (const b of recovered.blobs) this.noteBlob(Math.floor(b.lsn / S) * S, b.id)
    this.nextBlobId = Math.max(0, ...recovered.blobs.map((b) => b.id + 1))
    if (resumes && last !== undefined) {
      // Resume inside the last segment: its header stays; new bytes go after the end.
      const buf = Buffer.allocUnsafeSlow(S)
      const seg: SegmentLife = {
        buf,
        words: wordsOf(buf),
        baseLsn: last.baseLsn,
        segmentNumber: last.baseLsn / S,
        segmentNumberBytes: varintBytes(last.baseLsn / S),
        slot: last.slot,
        writesInFlight: 0,
        unissuedBuffers: 0,
      }
      this.liveSegments.set(seg.baseLsn, seg)
      this.cur = { seg, base: startLsn - last.baseLsn, header: EMPTY_HEADER }
    } else {
      this.cur = this.openSegment(startLsn)
    }
  }

  // ---- appending ----

  /**
   * Appends one record and returns its LSN at once; the record is durable once
   * makeStable(lsn) or flush() resolves. Records over maxInlineBytes need appendLarge().
   */
  append(data: Uint8Array, id = 0): Lsn {
    if (this.poisonError !== undefined || this.isClosing || this.isClosed) this.checkWritable()
    const len = checkRecord(data, this.maxInlineBytes)
    if (id !== 0) checkId(id)
    // Fast path: a synchronous append never leaves a writer open, so it only moves the
    // offset of the current buffer (the header word's writer count is untouched).
    const b = this.cur
    const seg = b.seg
    const off = offsetOf(b.header)
    const start = b.base + off
    const headerBytes = 5 + varintBytes(len) + seg.segmentNumberBytes + varintBytes(id)
    const total = headerBytes + len
    const S = this.segmentBytes
    if (
      S - start <= RED_ZONE_BYTES ||
      start + total > S ||
      (off === 0 && this.synced.publishedLsn > this.lastWitness)
    ) {
      return this.appendSlow(data, len, id)
    }
    // start + total ≤ S < 2^24 was checked above: the offset cannot overflow its field.
    b.header += total
    const buf = seg.buf
    // The header of docs/FORMAT.md, written inline: one-byte varints are the common case.
    buf[start + 4] = MessageKind.Record
    let p = start + 5
    if (len <= 240) buf[p++] = len
    else p += writeVarint(buf, p, len)
    if (seg.segmentNumber <= 240) buf[p++] = seg.segmentNumber
    else p += writeVarint(buf, p, seg.segmentNumber)
    if (id <= 240) buf[p++] = id
    else p += writeVarint(buf, p, id)
    buf.set(data, p)
    const crc = messageCrc(buf, start, total, seg.words)
    buf[start] = crc
    buf[start + 1] = crc >>> 8
    buf[start + 2] = crc >>> 16
    buf[start + 3] = crc >>> 24
    const lsn = seg.baseLsn + start
    this.maxReserved = lsn + total - 1
    this.stats.bytesReserved += total
    this.stats.recordsAppended++
    return lsn as Lsn
  }

  /** append() when the buffer must be sealed or a witness written first. */
  private appendSlow(data: Uint8Array, len: number, id: number): Lsn {
    const b = this.reserveMessage(MessageKind.Record, len, id)
    const at = this.resAt
    const total = this.resHeaderBytes + len
    b.seg.buf.set(data, at + this.resHeaderBytes)
    this.completeMessage(b, at, total, true)
    this.stats.recordsAppended++
    return asLsn(this.resLsnOf(b, at))
  }

  /**
   * Appends records that recover all together or not at all, without blocking other writers.
   * Returns the LSN of the last record.
   */
  appendBatch(records: readonly Uint8Array[], id = 0): Lsn {
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
    if (rs.length === 1) return this.append(rs[0] as Uint8Array, id)
    // The manifest stays reserved (an open writer) while the records are reserved, so no
    // part of the batch can be written before the manifest knows where the batch ends.
    const m = this.reserveMessage(MessageKind.BatchManifest, U64_BODY_BYTES, 0)
    const mAt = this.resAt
    const mLsn = this.resLsnOf(m, mAt)
    const mTotal = this.resHeaderBytes + U64_BODY_BYTES
    let lastLsn = mLsn
    for (let i = 0; i < rs.length; i++) {
      const n = lens[i] as number
      const b = this.reserveMessage(MessageKind.Record, n, id)
      const at = this.resAt
      b.seg.buf.set(rs[i] as Uint8Array, at + this.resHeaderBytes)
      this.completeMessage(b, at, this.resHeaderBytes + n, true)
      lastLsn = this.resLsnOf(b, at)
    }
    const peg = this.maxReserved
    writeU64(m.seg.buf, mAt + mTotal - U64_BODY_BYTES, peg)
    this.synced.markBatch(mLsn, peg)
    this.completeMessage(m, mAt, mTotal, true)
    this.stats.recordsAppended += rs.length
    this.stats.batches++
    return asLsn(lastLsn)
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
    // The caller may change its buffer while the blob is written: write a private copy, or
    // the bytes on disk could differ from the CRC taken of them.
    const copy = new Uint8Array(len)
    copy.set(data)
    const blobId = this.nextBlobId++
    let ref: BlobRef
    const writing = writeBlob(this.storage, this.conf.logId, blobId, copy, this.failpoints)
    // close() waits for blob files being written, so none is written after the unlock.
    this.blobWrites.add(writing)
    try {
      ref = await writing
    } catch (e) {
      this.poison(e, 'writing a blob')
      throw this.poisonError
    } finally {
      this.blobWrites.delete(writing)
    }
    this.checkWritable()
    const b = this.reserveMessage(MessageKind.BlobPointer, BLOB_POINTER_BODY_BYTES, id)
    const at = this.resAt
    const body = at + this.resHeaderBytes
    writeU64(b.seg.buf, body, ref.id)
    writeU64(b.seg.buf, body + 8, ref.sizeBytes)
    writeU32(b.seg.buf, body + 16, ref.crc)
    this.completeMessage(b, at, this.resHeaderBytes + BLOB_POINTER_BODY_BYTES, true)
    this.noteBlob(b.seg.baseLsn, blobId)
    this.stats.recordsAppended++
    this.stats.blobsWritten++
    return asLsn(this.resLsnOf(b, at))
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
    const b = this.reserveMessage(MessageKind.Record, bodyBytes, id)
    const at = this.resAt
    const total = this.resHeaderBytes + bodyBytes
    const bodyStart = at + this.resHeaderBytes
    b.seg.buf.fill(0, bodyStart, at + total)
    const lsn = asLsn(this.resLsnOf(b, at))
    let done = false
    this.openReservations++
    const finish = (valid: boolean): void => {
      if (done) throw new InvalidArgumentError('this reservation was already completed or aborted')
      done = true
      this.openReservations--
      this.completeMessage(b, at, total, valid)
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
    if (this.poisonError !== undefined) return Promise.reject(this.poisonError)
    const bad = lsnError(lsn, 'makeStable()')
    if (bad !== undefined) return Promise.reject(bad)
    if (lsn <= this.synced.publishedLsn) return Promise.resolve()
    if (this.isClosed) return Promise.reject(new ClosedError())
    if (lsn > this.maxReserved) {
      return Promise.reject(
        new InvalidArgumentError(`LSN ${lsn} has not been reserved (last is ${this.maxReserved})`),
      )
    }
    const p = this.stableWaiters.wait(lsn)
    this.ensureWriteIssued(lsn)
    this.kickSync()
    return p
  }

  /** Resolves when every byte up to `lsn` is written to the file, maybe not yet synced. */
  makeDurable(lsn: number): Promise<void> {
    if (this.poisonError !== undefined) return Promise.reject(this.poisonError)
    const bad = lsnError(lsn, 'makeDurable()')
    if (bad !== undefined) return Promise.reject(bad)
    if (lsn <= this.written.publishedLsn) return Promise.resolve()
    if (this.isClosed) return Promise.reject(new ClosedError())
    if (lsn > this.maxReserved) {
      return Promise.reject(
        new InvalidArgumentError(`LSN ${lsn} has not been reserved (last is ${this.maxReserved})`),
      )
    }
    const p = this.writtenWaiters.wait(lsn)
    this.ensureWriteIssued(lsn)
    return p
  }

  /** Everything reserved before this call is durable when it resolves; returns that LSN. */
  async flush(): Promise<Lsn> {
    if (this.isClosed) throw new ClosedError()
    const target = this.maxReserved
    await this.makeStable(target)
    return asLsn(target)
  }

  /** Resolves when issued-but-unfinished writes fall below the high-water mark. */
  whenWritable(): Promise<void> {
    if (this.poisonError !== undefined) return Promise.reject(this.poisonError)
    if (this.isClosing || this.isClosed) return Promise.reject(new ClosedError())
    if (this.bytesInFlight < this.options.writeHighWaterBytes) return Promise.resolve()
    const t0 = performance.now()
    this.stats.stalls++
    return new Promise<void>((resolve, reject) => {
      this.writableWaiters.push({
        resolve: () => {
          this.stats.stallMsTotal += performance.now() - t0
          resolve()
        },
        reject,
      })
    })
  }

  /** Highest LSN below which everything is durable (-1: nothing yet). */
  get stableLsn(): Lsn {
    return asLsn(this.synced.publishedLsn)
  }

  /** Last byte reserved so far. */
  get maxReservedLsn(): Lsn {
    return asLsn(this.maxReserved)
  }

  /** Where the log begins: records below it were dropped by truncateBefore(). */
  get firstLsn(): Lsn {
    return asLsn(this.firstLsn_)
  }

  /** Base LSNs of the segments the log holds now, ascending (the last one is being written). */
  segmentBases(): readonly number[] {
    return this.order.slice()
  }

  /** Slots the log file spans (free ones included): its size is this × segmentBytes. */
  get fileSlots(): number {
    return this.slotCount
  }

  /**
   * Where byte `lsn` lives in the log file (a byte offset), or undefined when its segment
   * is not part of the log (truncated, or not opened yet). For tools and protocol monitors.
   */
  positionOf(lsn: number): number | undefined {
    const S = this.segmentBytes
    const base = Math.floor(lsn / S) * S
    const slot = this.slotOf.get(base)
    return slot === undefined ? undefined : slot * S + (lsn - base)
  }

  /** The error that poisoned this instance, if any. */
  get failure(): StorageError | undefined {
    return this.poisonError
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
    const S = this.segmentBytes
    const bound = this.synced.publishedLsn
    const msg = newParsedMessage()
    const bases = this.order.filter((base) => base + S > from && base <= bound)
    for (const base of bases) {
      const slot = this.slotOf.get(base)
      if (slot === undefined) continue // truncated meanwhile
      const limit = Math.min(S, bound - base + 1)
      const image = new Uint8Array(limit)
      await this.readFully(image, slot * S)
      if (this.slotOf.get(base) !== slot) continue
      const h = decodeSegmentHeader(image, 0)
      if (!h.ok || h.header.baseLsn !== base) {
        throw new CorruptionError(`segment header of LSN ${base} is damaged`, {
          file: `${this.location}/${LOG_FILE}`,
          offset: slot * S,
          lsn: base,
        })
      }
      let at = SEGMENT_HEADER_BYTES
      while (at < limit) {
        const r = parseMessage(image, at, limit, S, base / S, msg)
        if (r === Parse.EndOfSegment) break
        if (r === Parse.Corrupt) {
          throw new CorruptionError(`stable log data damaged at LSN ${base + at}: ${lastCorruptReason}`, {
            file: `${this.location}/${LOG_FILE}`,
            offset: slot * S + at,
            lsn: base + at,
          })
        }
        const lsn = base + at
        const bodyAt = at + msg.headerBytes
        if (lsn >= from) {
          if (msg.kind === MessageKind.Record) {
            yield {
              lsn: asLsn(lsn),
              id: msg.id,
              data: image.subarray(bodyAt, bodyAt + msg.bodyBytes),
              isBlob: false,
            }
          } else if (msg.kind === MessageKind.BlobPointer) {
            const data = await readBlob(this.storage, this.conf.logId, {
              id: readU64(image, bodyAt),
              sizeBytes: readU64(image, bodyAt + 8),
              crc: readU32(image, bodyAt + 16),
            })
            yield { lsn: asLsn(lsn), id: msg.id, data, isBlob: true }
          }
        }
        at += msg.totalBytes
      }
    }
  }

  /**
   * Reads the record that starts at `lsn`. Data not yet written is served from memory;
   * bytes on disk are checked (CRC, segment number) before they are returned.
   */
  async read(lsn: number): Promise<LogRecord> {
    this.checkOpen()
    const bad = lsnError(lsn, 'read()')
    if (bad !== undefined) throw bad
    const S = this.segmentBytes
    const base = Math.floor(lsn / S) * S
    const at = lsn - base
    if (lsn < 0 || lsn > this.maxReserved || at < SEGMENT_HEADER_BYTES) {
      throw new InvalidArgumentError(`no record starts at LSN ${lsn}`)
    }
    const live = this.liveSegments.get(base)
    let image: Uint8Array
    let slot: number
    if (live !== undefined && !this.written.isDone(lsn)) {
      image = live.buf
      slot = live.slot
    } else {
      // A poisoned instance drops the memory of a segment once its writes settle, failed
      // ones included: bytes never written are not on disk, and reading the file there would
      // report an IO failure as corruption. Report the poisoning error instead.
      if (this.poisonError !== undefined && !this.written.isDone(lsn)) throw this.poisonError
      const s = this.slotOf.get(base)
      if (s === undefined) throw new InvalidArgumentError(`LSN ${lsn} lies in a truncated segment`)
      slot = s
      image = new Uint8Array(S)
      await this.readFully(image, slot * S)
      if (this.slotOf.get(base) !== slot)
        throw new InvalidArgumentError(`LSN ${lsn} lies in a truncated segment`)
    }
    const msg = newParsedMessage()
    const r = parseMessage(image, at, S, S, base / S, msg)
    if (r !== Parse.Ok || (msg.kind !== MessageKind.Record && msg.kind !== MessageKind.BlobPointer)) {
      throw new CorruptionError(
        `no valid record at LSN ${lsn}: ${r === Parse.Corrupt ? lastCorruptReason : 'not a record'}`,
        {
          file: `${this.location}/${LOG_FILE}`,
          offset: slot * S + at,
          lsn,
        },
      )
    }
    const bodyAt = at + msg.headerBytes
    if (msg.kind === MessageKind.Record) {
      return { lsn: asLsn(lsn), id: msg.id, data: image.slice(bodyAt, bodyAt + msg.bodyBytes), isBlob: false }
    }
    const data = await readBlob(this.storage, this.conf.logId, {
      id: readU64(image, bodyAt),
      sizeBytes: readU64(image, bodyAt + 8),
      crc: readU32(image, bodyAt + 16),
    })
    return { lsn: asLsn(lsn), id: msg.id, data, isBlob: true }
  }

  /**
   * Drops whole segments that lie entirely below `lsn` and are stable. Their slots are zeroed
   * (and synced) in ascending order before reuse, and their blob files removed.
   */
  truncateBefore(lsn: number): Promise<void> {
    this.checkWritable()
    if (!Number.isSafeInteger(lsn) || lsn < 0) throw new InvalidArgumentError('truncateBefore() takes an LSN')
    const run = async (): Promise<void> => {
      const S = this.segmentBytes
      const stable = this.synced.publishedLsn
      const drop = this.order.filter(
        (base) => base + S - 1 < lsn && base + S - 1 <= stable && base !== this.cur.seg.baseLsn,
      )
      if (drop.length === 0 || this.poisonError !== undefined) return
      // First make the new start durable in a segment header, so that recovery after a crash
      // in the middle of zeroing knows the low segments were dropped, not lost.
      this.firstLsn_ = (drop[drop.length - 1] as number) + S
      const b = this.cur
      if (b.base === 0 && offsetOf(b.header) === SEGMENT_HEADER_BYTES) this.encodeHeader(b.seg)
      else this.seal(true)
      this.appendWitness()
      await this.flush()
      const zeros = new Uint8Array(S)
      for (const base of drop) {
        if (this.poisonError !== undefined) throw this.poisonError
        const slot = this.slotOf.get(base) as number
        try {
          this.failpoints.hit('segment zero')
          await this.file.write(zeros, 0, S, slot * S)
          // A datasync of the log may have failed meanwhile: never sync again in this instance.
          if (this.poisonError !== undefined) throw this.poisonError
          await this.file.datasync()
        } catch (e) {
          this.poison(e, 'zeroing a truncated segment')
          throw this.poisonError
        }
        this.order.splice(this.order.indexOf(base), 1)
        this.slotOf.delete(base)
        insertSorted(this.freeSlots, slot)
        const blobs = this.blobsBySegment.get(base)
        this.blobsBySegment.delete(base)
        if (blobs !== undefined) {
          for (const id of blobs) await this.storage.unlink(blobName(id)).catch(() => {})
          await this.storage.syncDir(BLOB_DIR)
        }
      }
    }
    this.truncation = this.truncation.then(run, run)
    return this.truncation
  }

  // ---- lifecycle ----

  /** Flushes, writes a closing witness, waits for every write, closes the file and unlocks. */
  async close(): Promise<void> {
    if (this.isClosed || this.isClosing) return
    if (this.openReservations > 0) {
      // Their buffers cannot be written until they complete: the final flush would wait forever.
      throw new InvalidArgumentError(
        `complete or abort the ${this.openReservations} open reservation(s) before close()`,
      )
    }
    this.isClosing = true
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer)
    await Promise.allSettled([...this.blobWrites])
    try {
      if (this.poisonError === undefined) {
        await this.truncation.catch(() => {})
        await this.flush()
        // A closing Witness message, and the witness file that recovery reads before it
        // scans, let recovery tell damage from a torn tail for every byte of the log.
        if (this.poisonError === undefined && this.synced.publishedLsn > this.lastWitness) {
          this.appendWitness()
          await this.flush()
        }
        if (this.poisonError === undefined) {
          try {
            await writeCloseWitness(this.storage, this.conf.logId, this.synced.publishedLsn)
          } catch (e) {
            this.poison(e, 'writing the close witness')
            throw this.poisonError
          }
        }
      }
    } finally {
      await this.allWritesSettled()
      this.isClosed = true
      this.stableWaiters.rejectAll(new ClosedError())
      this.writtenWaiters.rejectAll(new ClosedError())
      await this.file.close().catch(() => {})
      await this.lockHandle.release()
    }
  }

  // ---- internals: reservation, sealing, write-out ----

  private resLsnOf(b: IoBuf, at: number): number {
    return b.seg.baseLsn + at
  }

  /**
   * Claims room for a message in the current buffer, sealing it as maxed when the message
   * would overflow the segment or start in the red zone. Leaves the position in resAt /
   * resLsn / resHeaderBytes and returns the buffer with one more open writer.
   */
  private reserveMessage(kind: MessageKind, bodyBytes: number, id: number): IoBuf {
    const S = this.segmentBytes
    for (;;) {
      const b = this.cur
      assert(!isSealed(b.header), 'the current buffer is never sealed')
      const off = offsetOf(b.header)
      const start = b.base + off
      if (off === 0 && kind !== MessageKind.Witness && this.synced.publishedLsn > this.lastWitness) {
        // First message of a continuation buffer: record how far the log was durable.
        this.appendWitness()
        continue
      }
      const headerBytes = messageHeaderBytes(bodyBytes, b.seg.segmentNumber, id)
      const total = headerBytes + bodyBytes
      if (S - start <= RED_ZONE_BYTES || start + total > S) {
        assert(
          start > SEGMENT_HEADER_BYTES || total <= S - SEGMENT_HEADER_BYTES - RED_ZONE_BYTES,
          'an inline message always fits an empty segment',
        )
        this.seal(true)
        continue
      }
      b.header = incrementWriters(bumpOffset(b.header, total))
      writeMessageHeader(b.seg.buf, start, kind, bodyBytes, b.seg.segmentNumber, id)
      this.resAt = start
      this.resLsn = b.seg.baseLsn + start
      this.resHeaderBytes = headerBytes
      this.maxReserved = this.resLsn + total - 1
      this.stats.bytesReserved += total
      return b
    }
  }

  private completeMessage(b: IoBuf, at: number, totalBytes: number, valid: boolean): void {
    if (!valid) b.seg.buf[at + 4] = MessageKind.Canceled
    stampMessageCrc(b.seg.buf, at, totalBytes, b.seg.words)
    b.header = decrementWriters(b.header)
    if (isSealed(b.header) && writersOf(b.header) === 0) this.writeOut(b)
  }

  private appendWitness(): void {
    const stable = this.synced.publishedLsn
    const b = this.reserveMessage(MessageKind.Witness, U64_BODY_BYTES, 0)
    const at = this.resAt
    writeU64(b.seg.buf, at + this.resHeaderBytes, stable + 1)
    this.completeMessage(b, at, this.resHeaderBytes + U64_BODY_BYTES, true)
    this.lastWitness = stable
  }

  /** Starts a new segment life at `baseLsn` in a free slot (or a new one at the end). */
  private openSegment(baseLsn: number): IoBuf {
    const S = this.segmentBytes
    const slot = this.freeSlots.length > 0 ? (this.freeSlots.shift() as number) : this.slotCount++
    const buf = Buffer.allocUnsafeSlow(S)
    const seg: SegmentLife = {
      buf,
      words: wordsOf(buf),
      baseLsn,
      segmentNumber: baseLsn / S,
      segmentNumberBytes: varintBytes(baseLsn / S),
      slot,
      writesInFlight: 0,
      unissuedBuffers: 0,
    }
    this.encodeHeader(seg)
    this.slotOf.set(baseLsn, slot)
    this.order.push(baseLsn)
    this.liveSegments.set(baseLsn, seg)
    this.stats.segmentsOpened++
    return { seg, base: 0, header: withOffset(EMPTY_HEADER, SEGMENT_HEADER_BYTES) }
  }

  /** Writes the segment header into the segment's memory; it goes to disk with the first write. */
  private encodeHeader(seg: SegmentLife): void {
    const stable = this.synced.publishedLsn
    encodeSegmentHeader(seg.buf, 0, {
      baseLsn: seg.baseLsn,
      maxStableLsn: stable,
      firstLsn: this.firstLsn_,
      segmentBytes: this.segmentBytes,
      logId: this.conf.logId,
      formatVersion: FORMAT_VERSION,
    })
    this.lastWitness = Math.max(this.lastWitness, stable)
  }

  /**
   * Seals the current buffer and installs the next one: in the same segment right after it,
   * or (maxed) at the start of the next segment. Whoever sees the sealed buffer with no
   * open writer issues its write: here, or the last writer in completeMessage().
   */
  private seal(maxed: boolean): void {
    const b = this.cur
    let h = b.header
    const off = offsetOf(h)
    const emptyOffset = b.base === 0 ? SEGMENT_HEADER_BYTES : 0
    if (!maxed && off === emptyOffset) return
    const S = this.segmentBytes
    const end = b.base + off
    const isMaxedSeal = maxed || S - end <= RED_ZONE_BYTES
    h = markSealed(h)
    if (isMaxedSeal) h = markMaxed(h)
    b.header = h
    b.seg.unissuedBuffers++
    if (isMaxedSeal) {
      this.cur = this.openSegment(b.seg.baseLsn + S)
      // The padding after `end` is reserved log space: nothing may be placed there.
      this.maxReserved = Math.max(this.maxReserved, b.seg.baseLsn + S - 1)
    } else {
      this.cur = { seg: b.seg, base: end, header: EMPTY_HEADER }
    }
    if (writersOf(h) === 0) this.writeOut(b)
  }

  /** Issues the positional write of a sealed buffer without waiting for it. */
  private writeOut(b: IoBuf): void {
    const S = this.segmentBytes
    const h = b.header
    assert(isSealed(h) && writersOf(h) === 0, 'only a sealed buffer without writers is written')
    b.seg.unissuedBuffers--
    const off = offsetOf(h)
    let length = off
    if (isMaxed(h)) {
      const p = b.base + off
      const unused = S - p
      // Zero the tail: no stale heap memory may reach the disk.
      b.seg.buf.fill(0, p, S)
      if (unused >= MAX_MESSAGE_HEADER_BYTES) {
        const body = unused - MAX_MESSAGE_HEADER_BYTES
        const hb = writeMessageHeader(b.seg.buf, p, MessageKind.Cap, body, b.seg.segmentNumber, 0)
        stampMessageCrc(b.seg.buf, p, hb + body)
      }
      length = S - b.base
    }
    if (length === 0) return
    const lo = b.seg.baseLsn + b.base
    const hi = lo + length - 1
    if (this.poisonError !== undefined) return
    try {
      this.failpoints.hit('buffer write')
    } catch (e) {
      this.poison(e, 'writing the log')
      return
    }
    this.writesInFlight++
    this.bytesInFlight += length
    b.seg.writesInFlight++
    this.stats.writes++
    this.stats.bytesWritten += length
    const seg = b.seg
    this.file.write(seg.buf, b.base, length, seg.slot * S + b.base).then(
      () => this.onWritten(seg, lo, hi, length),
      (e) => {
        this.writeSettled(seg, length)
        this.poison(e, 'writing the log')
      },
    )
  }

  private writeSettled(seg: SegmentLife, length: number): void {
    this.writesInFlight--
    this.bytesInFlight -= length
    seg.writesInFlight--
    if (seg.writesInFlight === 0 && seg.unissuedBuffers === 0 && seg !== this.cur.seg) {
      this.liveSegments.delete(seg.baseLsn)
    }
    if (this.bytesInFlight < this.options.writeHighWaterBytes && this.writableWaiters.length > 0) {
      const ws = this.writableWaiters
      this.writableWaiters = []
      for (const w of ws) w.resolve()
    }
    if (this.writesInFlight === 0 && this.settledWaiters.length > 0) {
      const ws = this.settledWaiters
      this.settledWaiters = []
      for (const w of ws) w()
    }
  }

  private onWritten(seg: SegmentLife, lo: number, hi: number, length: number): void {
    this.writeSettled(seg, length)
    if (this.poisonError !== undefined) return
    try {
      this.failpoints.hit('buffer write post')
    } catch (e) {
      this.poison(e, 'writing the log')
      return
    }
    this.writtenWaiters.releaseUpTo(this.written.markDone(lo, hi))
    this.unsynced.push(lo, hi)
    this.kickSync()
  }

  /** Makes sure the buffer holding `lsn` gets sealed (and so written) soon. */
  private ensureWriteIssued(lsn: number): void {
    const b = this.cur
    if (lsn < b.seg.baseLsn + b.base) return // already sealed: written when its writers leave
    if (this.sealScheduled) return
    this.sealScheduled = true
    // Idle: seal now (after this tick's other appends). Busy: wait one turn of the event
    // loop so that every writer woken by the last sync joins this write.
    if (this.writesInFlight === 0 && !this.syncInFlight && !this.syncHold) queueMicrotask(this.sealTask)
    else setImmediate(this.sealTask)
  }

  /** Group commit: one datasync in flight, started only when someone waits for stability. */
  private kickSync(): void {
    if (this.poisonError !== undefined || this.syncInFlight || this.syncHold || this.unsynced.length === 0)
      return
    if (this.stableWaiters.size === 0) return
    // A sync covers only writes already finished. While others are about to finish (a
    // group split over two segments, say) wait for them, a few times at most, rather than
    // spend a whole sync on part of the group: each finishing write calls kickSync again.
    if (this.writesInFlight > 0 && this.syncDeferrals < MAX_SYNC_DEFERRALS) {
      this.syncDeferrals++
      return
    }
    this.syncDeferrals = 0
    const ranges = this.unsynced
    this.unsynced = []
    this.syncInFlight = true
    const t0 = performance.now()
    let sync: Promise<void>
    try {
      this.failpoints.hit('datasync')
      sync = this.options.unsafeAckBeforeSync ? Promise.resolve() : this.file.datasync()
    } catch (e) {
      sync = Promise.reject(e)
    }
    sync.then(
      () => {
        this.syncInFlight = false
        if (this.poisonError !== undefined) return
        const ms = performance.now() - t0
        this.stats.syncs++
        this.stats.syncMsTotal += ms
        this.stats.syncMsMax = Math.max(this.stats.syncMsMax, ms)
        let bytes = 0
        let stable = this.synced.publishedLsn
        for (let i = 0; i < ranges.length; i += 2) {
          const lo = ranges[i] as number
          const hi = ranges[i + 1] as number
          bytes += hi - lo + 1
          stable = this.synced.markDone(lo, hi)
        }
        bump(this.stats.bytesPerSync, bytes)
        const released = this.stableWaiters.releaseUpTo(stable)
        bump(this.stats.waitersPerSync, released)
        if (released > 1) {
          // Several writers just woke and will append again within a few promise hops.
          // Hold the next seal and sync for two turns of the event loop so they all join
          // one write and one sync, instead of splitting into two half-size groups that
          // then alternate forever.
          this.syncHold = true
          setImmediate(() =>
            setImmediate(() => {
              this.syncHold = false
              this.kickSync()
            }),
          )
        } else {
          this.kickSync()
        }
      },
      (e) => {
        this.syncInFlight = false
        this.poison(e, 'syncing the log')
      },
    )
  }

  /**
   * Sticky failure: after a failed write or datasync nothing more is written or synced in
   * this instance, and every waiter, present and future, gets the typed error. Never retry
   * a sync (fsyncgate): reopen to recover from what is on disk.
   */
  private poison(cause: unknown, what: string): void {
    if (this.poisonError !== undefined) return
    this.poisonError = wrapIoError(cause, what, `${this.location}/${LOG_FILE}`)
    if (this.flushTimer !== undefined) clearInterval(this.flushTimer)
    this.stableWaiters.rejectAll(this.poisonError)
    this.writtenWaiters.rejectAll(this.poisonError)
    const ws = this.writableWaiters
    this.writableWaiters = []
    for (const w of ws) w.reject(this.poisonError)
  }

  private allWritesSettled(): Promise<void> {
    if (this.writesInFlight === 0 && !this.syncInFlight) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (this.writesInFlight === 0 && !this.syncInFlight) resolve()
        else setImmediate(check)
      }
      if (this.writesInFlight > 0) this.settledWaiters.push(check)
      else setImmediate(check)
    })
  }

  private startFlusher(): void {
    const every = this.options.flushEveryMs
    if (every <= 0) return
    this.flushTimer = setInterval(() => {
      if (this.poisonError !== undefined || this.isClosing) return
      if (this.maxReserved > this.synced.publishedLsn) {
        // Errors poison the instance and reach callers through their own calls.
        this.flush().catch(() => {})
      }
    }, every)
    this.flushTimer.unref()
  }

  private checkWritable(): void {
    if (this.poisonError !== undefined) throw this.poisonError
    if (this.isClosing || this.isClosed) throw new ClosedError()
  }

  private checkOpen(): void {
    if (this.isClosed) throw new ClosedError()
  }

  private async readFully(into: Uint8Array, position: number): Promise<void> {
    let got = 0
    try {
      while (got < into.length) {
        const n = await this.file.read(into, got, into.length - got, position + got)
        if (n === 0) break
        got += n
      }
    } catch (e) {
      throw wrapIoError(e, 'reading the log', `${this.location}/${LOG_FILE}`)
    }
    into.fill(0, got)
  }

  private noteBlob(segmentBase: number, id: number): void {
    let list = this.blobsBySegment.get(segmentBase)
    if (list === undefined) {
      list = []
      this.blobsBySegment.set(segmentBase, list)
    }
    list.push(id)
  }

  /** Removes blob files no durable pointer names (a crash between blob and pointer). */
  private async collectOrphanBlobs(referenced: number[]): Promise<void> {
    const keep = new Set(referenced)
    let removed = 0
    for (const name of await this.storage.list(BLOB_DIR)) {
      const id = parseBlobName(name)
      if (id !== undefined) this.nextBlobId = Math.max(this.nextBlobId, id + 1)
      if (id === undefined || !keep.has(id)) {
        await this.storage.unlink(`${BLOB_DIR}/${name}`)
        removed++
      }
    }
    if (removed > 0) await this.storage.syncDir(BLOB_DIR)
  }
}

function insertSorted(a: number[], v: number): void {
  let i = a.length
  while (i > 0 && (a[i - 1] as number) > v) i--
  a.splice(i, 0, v)
}

function randomLogId(): number {
  const b = new Uint32Array(2)
  crypto.getRandomValues(b)
  return ((b[0] as number) & 0x1fffff) * 0x1_0000_0000 + (b[1] as number)
}

async function sizeOf(storage: Storage, name: string): Promise<number> {
  const f = await storage.openFile(name, 'read')
  try {
    return await f.size()
  } finally {
    await f.close()
  }
}

/** A new log is only created in an empty folder (or one holding only our own files). */
async function refuseForeignFolder(storage: Storage): Promise<void> {
  const foreign = (await storage.list('')).filter((n) => !LOG_OWNED_NAMES.has(n))
  if (foreign.length > 0) {
    throw new NotADatabaseError(
      `${storage.location} is not empty and holds no bobsled database (found ${foreign.slice(0, 3).join(', ')})`,
    )
  }
}
