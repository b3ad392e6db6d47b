// The write side of the log: IoBufs inside segment lives, reservation → fill → complete,
// sealing and rolling to the next segment, and the write-out of sealed buffers.
//
// Writers reserve a range of the current IoBuf, fill it and complete it in one synchronous
// step, so the header word needs no CAS (docs/DESIGN.md, "One owner"). A sealed buffer is
// written with one positional write that is not awaited; writes complete in any order and
// StabilityIntervals publishes only the contiguous prefix; group-commit.ts makes them stable.

import { assert } from '../util/assert.js'
import { wordsOf } from '../util/crc32.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { SlowGuard } from '../util/slow-guard.js'
import type { BlobRef } from './blob.js'
import {
  BLOB_POINTER_BODY_BYTES,
  encodeSegmentHeader,
  FORMAT_VERSION,
  MAX_MESSAGE_HEADER_BYTES,
  MessageKind,
  messageCrc,
  messageHeaderBytes,
  RED_ZONE_BYTES,
  SEGMENT_HEADER_BYTES,
  stampMessageCrc,
  U64_BODY_BYTES,
  varintBytes,
  writeMessageHeader,
  writeU32,
  writeU64,
  writeVarint,
} from './format.js'
import type { GroupCommit } from './group-commit.js'
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
import type { LogContext } from './log-context.js'
import type { SegmentSlots } from './segment-slots.js'
import { StabilityIntervals } from './stability.js'
import { LsnWaiters } from './waiters.js'

/**
 * Finished segment buffers kept for the next segment lives. A few cover the steady state
 * (one life finishes as the next opens); memory kept when idle: this × segmentBytes.
 */
export const SPARE_SEGMENT_BUFFERS = 4

/**
 * Pre-extension (docs/DESIGN.md, "Small durable rounds"): a sync round that grows the file
 * costs fdatasync a journal commit for the new size and extents; an overwrite does not. So
 * the rest of a segment at the end of the file is written with zeros once, in the round that
 * shows the segment is being filled by small synced rounds: the second round of a life
 * that someone waits on and that is at most 1/PRE_EXTEND_MIN_ROUNDS of the room left.
 * Bulk loads write whole segments (or one final round) and never pay the extra bytes.
 */
const PRE_EXTEND_MIN_ROUNDS = 8
const PRE_EXTEND_AFTER_ROUNDS = 2
/** The zeros start on a page boundary of the file: no page is shared with log bytes. */
const PRE_EXTEND_ALIGN_BYTES = 4096

/**
 * Inline synced writes (docs/DESIGN.md, "Inline synced writes"): a lone round up to this
 * size is written on the main thread. Larger rounds take longer than the pool's hop saves.
 */
export const INLINE_MAX_BYTES = 64 * 1024
/** An inline write slower than this blocked the event loop longer than the pool's hop is worth. */
export const INLINE_SLOW_MS = 1
/**
 * When INLINE_SLOW_TRIP of the last INLINE_SLOW_WINDOW inline writes were slow, the disk is
 * slow, and the next INLINE_BACKOFF_ROUNDS fit lone rounds go to the pool before inline is
 * tried again. Not on one slow write: a single write over 1 ms is common on a shared disk,
 * and backing off on each sent most rounds to the pool (docs/DESIGN.md, "Inline synced
 * writes"). A slow disk thus blocks the event loop for at most INLINE_SLOW_TRIP writes per
 * INLINE_BACKOFF_ROUNDS rounds.
 */
export const INLINE_SLOW_WINDOW = 16
export const INLINE_SLOW_TRIP = 4
export const INLINE_BACKOFF_ROUNDS = 256

/**
 * Memory for a segment life: a plain Uint8Array over an ArrayBuffer of its own. Not a
 * Buffer: Buffer's slice() is a view, so a slice() meant as a copy (of a record served from
 * memory, say) would keep sharing memory that the next life reuses. Not zeroed (that
 * costs a pass over it): writeOut zeroes what the messages leave unfilled.
 */
function newSegmentBuffer(sizeBytes: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(sizeBytes)
  return new Uint8Array(b.buffer, b.byteOffset, sizeBytes)
}

/**
 * Where segment memory the log no longer keeps goes (Log.shareSegmentMemory): the layer
 * above reuses it (the page cache's arena), and may hand buffers back as spares
 * (Log.addSpareSegmentBuffer). Without one, such a buffer is garbage.
 */
export interface SegmentMemory {
  /** Takes a buffer of exactly segmentBytes that no segment life uses any more. */
  give(buf: Uint8Array): void
}

/** The memory of one segment life, shared by every IoBuf that continues inside it. */
export interface SegmentLife {
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
  /**
   * Set once, when the life's memory went back to the spare buffers: nothing may read or
   * write `buf` through this life afterwards (another life may own it).
   */
  isRecycled: boolean
  /**
   * The slot is allocated in the file to its end (a reused slot, or pre-extended): a write
   * into it overwrites, so its datasync need not journal a new size or new extents.
   */
  isExtended: boolean
  /** Small sync rounds written into this life while it was not extended (see preExtension). */
  smallRounds: number
  /**
   * The zero write extending this slot, while in flight: every later write of this life
   * waits for it, or the zeros could land over bytes written after them. Never rejects.
   */
  extending: Promise<void> | undefined
}

/** One buffer: the region of a segment from `base` on, filled by reservations. */
export interface IoBuf {
  seg: SegmentLife
  /** Offset of this buffer's byte 0 inside the segment. */
  base: number
  header: HeaderWord
}

/** Where the recovered log goes on: a fresh segment, or inside the last recovered one. */
export interface WriterStart {
  /** LSN of the next byte to reserve. */
  startLsn: number
  /**
   * The last recovered segment when `startLsn` lies inside it (resume), else undefined;
   * `isExtended` when the file holds its slot to the end.
   */
  resume: { baseLsn: number; slot: number; isExtended: boolean } | undefined
  witnessLsn: number
  firstLsn: number
}

export class SegmentWriter {
  cur: IoBuf
  /** Last byte reserved so far (-1: nothing). */
  maxReserved: number
  /** Stable LSN last recorded durably-to-be (segment header or Witness message). */
  lastWitness: number
  /** Where the log begins; recorded in every new segment header. */
  firstLsn: number
  /** Written bytes (maybe not synced); its published LSN is what makeDurable waits for. */
  readonly written: StabilityIntervals
  readonly writtenWaiters = new LsnWaiters()
  /** Segments whose memory may still be needed to serve reads of unwritten data. */
  readonly liveSegments = new Map<number, SegmentLife>()
  /** Memory of finished segment lives, owned by none, reused by the next ones (tests read it). */
  readonly spareBuffers: Uint8Array[] = []
  /** Where buffers beyond the spares go (Log.shareSegmentMemory). */
  memory: SegmentMemory | undefined
  /** A segment's worth of zeros for pre-extension, made at first use, never written to. */
  private zeros: Uint8Array | undefined
  writesInFlight = 0
  bytesInFlight = 0
  /** Bytes of writes issued since whenWritable() last let the event loop turn (Log.whenWritable). */
  bytesIssuedSinceYield = 0
  writableWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = []
  private settledWaiters: Array<() => void> = []
  /**
   * Set while the file is being cut to `slot` slots (truncation.ts): a write at or above
   * that slot waits for the cut, or the cut could erase it after it landed.
   */
  private shrinkFence: { slot: number; cut: Promise<void> } | undefined
  private sealScheduled = false
  /** pauseInline() calls not yet undone. */
  private inlinePauses = 0
  /** Which recent inline writes were slow, and the fit lone rounds still to send to the pool. */
  private readonly inlineGuard = new SlowGuard(INLINE_SLOW_WINDOW, INLINE_SLOW_TRIP)
  // Scratch results of reserveMessage(), to keep the append path free of allocations.
  resAt = 0
  resLsn = 0
  resHeaderBytes = 0
  private readonly sealTask = (): void => {
    this.sealScheduled = false
    if (this.ctx.poisonError === undefined && !this.isClosed()) this.seal(false)
  }

  constructor(
    private readonly ctx: LogContext,
    private readonly commit: GroupCommit,
    private readonly slots: SegmentSlots,
    private readonly writeHighWaterBytes: number,
    /** Mutation switch (LogOptions.unsafeUnorderedPreExtension). */
    private readonly unsafeUnorderedPreExtension: boolean,
    /** LogOptions.inlineSyncedWrites. */
    private readonly inlineSyncedWrites: boolean,
    private readonly isClosed: () => boolean,
    start: WriterStart,
  ) {
    const { startLsn } = start
    this.written = new StabilityIntervals(startLsn - 1)
    this.maxReserved = startLsn - 1
    this.lastWitness = start.witnessLsn
    this.firstLsn = start.firstLsn
    if (start.resume !== undefined) {
      // Resume inside the last segment: its header stays; new bytes go after the end.
      const seg = this.newLife(start.resume.baseLsn, start.resume.slot)
      seg.isExtended = start.resume.isExtended
      this.liveSegments.set(seg.baseLsn, seg)
      this.cur = { seg, base: startLsn - seg.baseLsn, header: EMPTY_HEADER }
    } else {
      this.cur = this.openSegment(startLsn)
    }
  }

  /**
   * Appends one checked record of `len` bytes: `head` (when given) then `data`, so a caller
   * with a short prefix need not copy its payload into one array first. The caller
   * validated both and `id`. Fast path: a synchronous append never leaves a writer open,
   * so it only moves the offset of the current buffer (the writer count is untouched).
   */
  appendRecord(data: Uint8Array, len: number, id: number, head?: Uint8Array): number {
    const b = this.cur
    const seg = b.seg
    const off = offsetOf(b.header)
    const start = b.base + off
    const headerBytes = 5 + varintBytes(len) + seg.segmentNumberBytes + varintBytes(id)
    const total = headerBytes + len
    const S = this.ctx.segmentBytes
    if (
      S - start <= RED_ZONE_BYTES ||
      start + total > S ||
      (off === 0 && this.commit.synced.publishedLsn > this.lastWitness)
    ) {
      return this.appendSlow(data, len, id, head)
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
    if (head !== undefined) {
      buf.set(head, p)
      p += head.length
    }
    buf.set(data, p)
    const crc = messageCrc(buf, start, total, seg.words)
    buf[start] = crc
    buf[start + 1] = crc >>> 8
    buf[start + 2] = crc >>> 16
    buf[start + 3] = crc >>> 24
    const lsn = seg.baseLsn + start
    this.maxReserved = lsn + total - 1
    this.ctx.stats.bytesReserved += total
    this.ctx.stats.recordsAppended++
    return lsn
  }

  /**
   * Appends checked records that recover all together or not at all; returns the LSN of
   * the last. The manifest stays reserved (an open writer) while the records are reserved,
   * so no part of the batch can be written before the manifest knows where the batch ends.
   */
  appendBatch(
    records: readonly Uint8Array[],
    lens: readonly number[],
    id: number,
    lsnsOut?: number[],
  ): number {
    return this.batch(records, lens, id, lsnsOut)
  }

  /** Logs the pointer to a blob file already written and synced; returns its LSN. */
  appendBlobPointer(ref: BlobRef, id: number): number {
    const b = this.reserveMessage(MessageKind.BlobPointer, BLOB_POINTER_BODY_BYTES, id)
    const at = this.resAt
    const body = at + this.resHeaderBytes
    writeU64(b.seg.buf, body, ref.id)
    writeU64(b.seg.buf, body + 8, ref.sizeBytes)
    writeU32(b.seg.buf, body + 16, ref.crc)
    this.completeMessage(b, at, this.resHeaderBytes + BLOB_POINTER_BODY_BYTES, true)
    this.slots.noteBlob(b.seg.baseLsn, ref)
    this.ctx.stats.recordsAppended++
    if (KILL_ODDS) maybeKill('log.blob.pointer-appended')
    return b.seg.baseLsn + at
  }

  /**
   * A blob pointer followed by checked records, recovered all together or not at all (a
   * batch, as appendBatch()). Returns the pointer's LSN; `lsnsOut` receives the records'.
   */
  appendPointerBatch(
    ref: BlobRef,
    records: readonly Uint8Array[],
    lens: readonly number[],
    id: number,
    lsnsOut: number[],
  ): number {
    const items: Array<Uint8Array | BlobRef> = [ref, ...records]
    const all: number[] = []
    this.batch(items, [0, ...lens], id, all)
    for (let i = 1; i < all.length; i++) lsnsOut.push(all[i] as number)
    return all[0] as number
  }

  /**
   * Checked records and pointers to blob files already written and synced, in the given
   * order, recovered all together or not at all. Returns the last item's LSN; `lsnsOut`
   * receives every item's.
   */
  appendMixedBatch(
    items: ReadonlyArray<Uint8Array | BlobRef>,
    lens: readonly number[],
    id: number,
    lsnsOut?: number[],
  ): number {
    return this.batch(items, lens, id, lsnsOut)
  }

  /**
   * The batch framing of every batch: the manifest first, then the items (a record, or a
   * pointer to a blob file when the item is a BlobRef). Returns the last item's LSN (the
   * manifest's for no items).
   */
  private batch(
    items: ReadonlyArray<Uint8Array | BlobRef>,
    lens: readonly number[],
    id: number,
    lsnsOut: number[] | undefined,
  ): number {
    const m = this.reserveMessage(MessageKind.BatchManifest, U64_BODY_BYTES, 0)
    const mAt = this.resAt
    const mLsn = m.seg.baseLsn + mAt
    const mTotal = this.resHeaderBytes + U64_BODY_BYTES
    let lastLsn = mLsn
    let records = 0
    for (let i = 0; i < items.length; i++) {
      const item = items[i] as Uint8Array | BlobRef
      if (!(item instanceof Uint8Array)) {
        lastLsn = this.appendBlobPointer(item, id)
        lsnsOut?.push(lastLsn)
        continue
      }
      const n = lens[i] as number
      const b = this.reserveMessage(MessageKind.Record, n, id)
      const at = this.resAt
      b.seg.buf.set(item, at + this.resHeaderBytes)
      this.completeMessage(b, at, this.resHeaderBytes + n, true)
      lastLsn = b.seg.baseLsn + at
      lsnsOut?.push(lastLsn)
      records++
    }
    const peg = this.maxReserved
    writeU64(m.seg.buf, mAt + mTotal - U64_BODY_BYTES, peg)
    this.commit.synced.markBatch(mLsn, peg)
    this.completeMessage(m, mAt, mTotal, true)
    this.ctx.stats.recordsAppended += records
    this.ctx.stats.batches++
    return lastLsn
  }

  /** appendRecord() when the buffer must be sealed or a witness written first. */
  private appendSlow(data: Uint8Array, len: number, id: number, head: Uint8Array | undefined): number {
    const b = this.reserveMessage(MessageKind.Record, len, id)
    const at = this.resAt
    const total = this.resHeaderBytes + len
    const body = at + this.resHeaderBytes
    if (head === undefined) b.seg.buf.set(data, body)
    else {
      b.seg.buf.set(head, body)
      b.seg.buf.set(data, body + head.length)
    }
    this.completeMessage(b, at, total, true)
    this.ctx.stats.recordsAppended++
    return b.seg.baseLsn + at
  }

  /**
   * Claims room for a message in the current buffer, sealing it as maxed when the message
   * would overflow the segment or start in the red zone. Leaves the position in resAt /
   * resLsn / resHeaderBytes and returns the buffer with one more open writer.
   */
  reserveMessage(kind: MessageKind, bodyBytes: number, id: number): IoBuf {
    const S = this.ctx.segmentBytes
    for (;;) {
      const b = this.cur
      assert(!isSealed(b.header), 'the current buffer is never sealed')
      const off = offsetOf(b.header)
      const start = b.base + off
      if (off === 0 && kind !== MessageKind.Witness && this.commit.synced.publishedLsn > this.lastWitness) {
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
      this.ctx.stats.bytesReserved += total
      return b
    }
  }

  completeMessage(b: IoBuf, at: number, totalBytes: number, valid: boolean): void {
    if (!valid) b.seg.buf[at + 4] = MessageKind.Canceled
    stampMessageCrc(b.seg.buf, at, totalBytes, b.seg.words)
    b.header = decrementWriters(b.header)
    if (isSealed(b.header) && writersOf(b.header) === 0) this.writeOut(b)
  }

  appendWitness(): void {
    const stable = this.commit.synced.publishedLsn
    const b = this.reserveMessage(MessageKind.Witness, U64_BODY_BYTES, 0)
    const at = this.resAt
    writeU64(b.seg.buf, at + this.resHeaderBytes, stable + 1)
    this.completeMessage(b, at, this.resHeaderBytes + U64_BODY_BYTES, true)
    this.lastWitness = stable
    if (KILL_ODDS) maybeKill('log.witness.appended')
  }

  /**
   * Makes the current firstLsn part of the log's durable state-to-be: rewrites the header
   * of the current segment when nothing is in it yet, else rolls to a new segment whose
   * header carries it. Either way a Witness follows; the caller flushes.
   */
  recordFirstLsn(): void {
    const b = this.cur
    if (b.base === 0 && offsetOf(b.header) === SEGMENT_HEADER_BYTES) this.encodeHeader(b.seg)
    else this.seal(true)
    this.appendWitness()
  }

  /** Rolls to a new segment unless the current one holds nothing but its header. */
  sealSegment(): void {
    const b = this.cur
    if (b.base === 0 && offsetOf(b.header) === SEGMENT_HEADER_BYTES) return
    this.seal(true)
  }

  private newLife(baseLsn: number, slot: number): SegmentLife {
    const S = this.ctx.segmentBytes
    const spare = this.spareBuffers.pop()
    if (spare !== undefined) {
      for (const live of this.liveSegments.values()) {
        assert(live.buf !== spare, 'a spare segment buffer belongs to no live segment')
      }
      // Zeroed like a fresh one: no byte of an older life may reach the disk or a reader.
      spare.fill(0)
    }
    const buf = spare ?? newSegmentBuffer(S)
    return {
      buf,
      words: wordsOf(buf),
      baseLsn,
      segmentNumber: baseLsn / S,
      segmentNumberBytes: varintBytes(baseLsn / S),
      slot,
      writesInFlight: 0,
      unissuedBuffers: 0,
      isRecycled: false,
      // Every slot but the file's last lies wholly inside the file (truncation zeroed and
      // synced a reused one); the file may end inside its last.
      isExtended: slot < this.slots.slotCount - 1,
      smallRounds: 0,
      extending: undefined,
    }
  }

  /** Starts a new segment life at `baseLsn` in a free slot (or a new one at the end). */
  private openSegment(baseLsn: number): IoBuf {
    const seg = this.newLife(baseLsn, this.slots.allocate(baseLsn))
    this.encodeHeader(seg)
    this.liveSegments.set(baseLsn, seg)
    this.ctx.stats.segmentsOpened++
    if (KILL_ODDS) maybeKill('log.segment.opened')
    return { seg, base: 0, header: withOffset(EMPTY_HEADER, SEGMENT_HEADER_BYTES) }
  }

  /** Writes the segment header into the segment's memory; it goes to disk with the first write. */
  private encodeHeader(seg: SegmentLife): void {
    const stable = this.commit.synced.publishedLsn
    encodeSegmentHeader(seg.buf, 0, {
      baseLsn: seg.baseLsn,
      maxStableLsn: stable,
      firstLsn: this.firstLsn,
      segmentBytes: this.ctx.segmentBytes,
      logId: this.ctx.conf.logId,
      formatVersion: FORMAT_VERSION,
    })
    this.lastWitness = Math.max(this.lastWitness, stable)
  }

  /**
   * Seals the current buffer and installs the next one: in the same segment right after it,
   * or (maxed) at the start of the next segment. Whoever sees the sealed buffer with no
   * open writer issues its write: here, or the last writer in completeMessage().
   */
  seal(maxed: boolean): void {
    const b = this.cur
    let h = b.header
    const off = offsetOf(h)
    const emptyOffset = b.base === 0 ? SEGMENT_HEADER_BYTES : 0
    if (!maxed && off === emptyOffset) return
    const S = this.ctx.segmentBytes
    const end = b.base + off
    const isMaxedSeal = maxed || S - end <= RED_ZONE_BYTES
    h = markSealed(h)
    if (isMaxedSeal) h = markMaxed(h)
    b.header = h
    b.seg.unissuedBuffers++
    if (KILL_ODDS) maybeKill('log.buffer.sealed')
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
    const ctx = this.ctx
    const S = ctx.segmentBytes
    const h = b.header
    assert(isSealed(h) && writersOf(h) === 0, 'only a sealed buffer without writers is written')
    assert(!b.seg.isRecycled, 'the memory of a recycled segment life is never written')
    b.seg.unissuedBuffers--
    const off = offsetOf(h)
    let length = off
    if (isMaxed(h)) {
      const p = b.base + off
      const unused = S - p
      // Zero the tail: no stale heap memory may reach the disk.
      b.seg.buf.fill(0, p, S)
      // A Cap only where a message may start: in the red zone no reader parses it, so it
      // would be non-zero bytes outside every record (test/regressions/log-no-cap-in-red-zone).
      if (unused > RED_ZONE_BYTES) {
        const body = unused - MAX_MESSAGE_HEADER_BYTES
        const hb = writeMessageHeader(b.seg.buf, p, MessageKind.Cap, body, b.seg.segmentNumber, 0)
        stampMessageCrc(b.seg.buf, p, hb + body)
      }
      length = S - b.base
    }
    if (length === 0) return
    const seg = b.seg
    const lo = seg.baseLsn + b.base
    const hi = lo + length - 1
    if (ctx.poisonError !== undefined) return
    try {
      ctx.failpoints.hit('buffer write')
    } catch (e) {
      ctx.poison(e, 'writing the log')
      return
    }
    const position = seg.slot * S + b.base
    const zeroAt = this.preExtension(b, length, hi)
    // One trip to the disk for a lone round: nothing else written-but-unsynced or in flight,
    // every byte below this write stable, so an O_DSYNC write of it is the whole sync round.
    const isLoneRound =
      zeroAt < 0 &&
      this.writesInFlight === 0 &&
      this.written.publishedLsn === lo - 1 &&
      this.commit.canSyncAlone(hi)
    let t0 = 0
    if (isLoneRound) {
      try {
        t0 = this.commit.beginSyncedWrite()
      } catch (e) {
        this.commit.syncFailed(e)
        return
      }
    }
    this.writesInFlight++
    this.bytesIssuedSinceYield += length
    this.bytesInFlight += length
    seg.writesInFlight++
    ctx.stats.writes++
    ctx.stats.bytesWritten += length
    // Writes wait for a cut of the file below them (truncation.ts) and for the zeros of a
    // pre-extension of their slot still in flight.
    const fence = this.shrinkFence
    const cut = fence !== undefined && seg.slot >= fence.slot ? fence.cut : undefined
    const gate =
      cut === undefined
        ? seg.extending
        : seg.extending === undefined
          ? cut
          : Promise.all([cut, seg.extending])
    if (
      isLoneRound &&
      gate === undefined &&
      !this.commit.unsafeAckBeforeSync &&
      this.writeInline(seg, b.base, length, position, lo, hi, t0)
    ) {
      if (KILL_ODDS) maybeKill('log.write.issued')
      return
    }
    const issue = (
      buf: Uint8Array,
      offset: number,
      n: number,
      at: number,
      synced: boolean,
    ): Promise<void> => {
      const write = (): Promise<void> =>
        synced && !this.commit.unsafeAckBeforeSync
          ? ctx.file.writeSynced(buf, offset, n, at)
          : ctx.file.write(buf, offset, n, at)
      if (gate === undefined) return write()
      return gate.then(() => {
        // A failed cut or write poisoned the instance: nothing more is written.
        if (ctx.poisonError !== undefined) throw ctx.poisonError
        return write()
      })
    }
    let writing = issue(seg.buf, b.base, length, position, isLoneRound)
    if (zeroAt >= 0 && this.unsafeUnorderedPreExtension) {
      // The mutation: zeros written in the background once the round is stable, from the
      // log's frontier of that moment, with nothing holding back the writes that follow.
      this.commit.wait(hi).then(
        () => {
          const from = this.cur.base
          if (ctx.poisonError !== undefined || this.cur.seg !== seg || from >= S) return
          ctx.file
            .write(new Uint8Array(S - from), 0, S - from, seg.slot * S + from)
            .catch((e) => ctx.poison(e, 'writing the log'))
        },
        () => {},
      )
    } else if (zeroAt >= 0) {
      const zeroBytes = S - zeroAt
      this.zeros ??= new Uint8Array(S)
      const zeroing = issue(this.zeros, 0, zeroBytes, seg.slot * S + zeroAt, false)
      ctx.stats.preExtendedBytes += zeroBytes
      const extending = zeroing.then(
        () => {},
        () => {},
      )
      seg.extending = extending
      extending.then(() => {
        if (seg.extending === extending) seg.extending = undefined
      })
      // Completes with the zeros: the datasync of this round covers them too.
      writing = Promise.all([writing, zeroing]).then(() => {})
    }
    writing.then(
      () =>
        isLoneRound ? this.onSyncedWritten(seg, lo, hi, length, t0) : this.onWritten(seg, lo, hi, length),
      (e) => {
        this.writeSettled(seg, length)
        if (isLoneRound) this.commit.syncFailed(e)
        else ctx.poison(e, 'writing the log')
      },
    )
    if (KILL_ODDS) maybeKill('log.write.issued')
  }

  /**
   * Writes a lone round on the main thread when the policy and the file allow it; false
   * (nothing written) sends it down the pool's path. The completion comes after a
   * setImmediate, exactly as the pool's would, and never sooner: a caller awaiting durable
   * writes in a loop would otherwise never leave the microtask queue, and timers, I/O
   * callbacks and the page cache's background work would starve.
   */
  private writeInline(
    seg: SegmentLife,
    base: number,
    length: number,
    position: number,
    lo: number,
    hi: number,
    t0: number,
  ): boolean {
    const ctx = this.ctx
    const file = ctx.file
    if (
      !this.inlineSyncedWrites ||
      this.inlinePauses > 0 ||
      length > INLINE_MAX_BYTES ||
      file.writeSyncedNow === undefined
    )
      return false
    if (this.inlineGuard.isBackingOff()) {
      ctx.stats.inlineFallbacks++
      return false
    }
    let error: unknown
    const started = performance.now()
    try {
      if (!file.writeSyncedNow(seg.buf, base, length, position)) {
        ctx.stats.inlineFallbacks++
        return false
      }
    } catch (e) {
      error = e
    }
    ctx.stats.inlineWrites++
    const isSlow = performance.now() - started > INLINE_SLOW_MS
    if (isSlow) ctx.stats.inlineSlowWrites++
    this.inlineGuard.note(isSlow, INLINE_BACKOFF_ROUNDS)
    setImmediate(() => {
      if (error === undefined) {
        this.onSyncedWritten(seg, lo, hi, length, t0)
        return
      }
      this.writeSettled(seg, length)
      this.commit.syncFailed(error)
    })
    return true
  }

  /** Lone rounds go to the pool until the returned function is called (Log.pauseInlineSyncedWrites). */
  pauseInline(): () => void {
    this.inlinePauses++
    let isResumed = false
    return () => {
      if (isResumed) return
      isResumed = true
      this.inlinePauses--
    }
  }

  /**
   * Where the zeros of a pre-extension start in the segment of buffer `b` (a write of
   * `length` bytes ending at LSN `hi`), or -1 for none: see PRE_EXTEND_MIN_ROUNDS. The
   * zeros cover the slot from the first page boundary at or after the current buffer's
   * start: every byte below it is sealed (its write issued or waiting on this one's), every
   * byte from it on is written after the zeros (seg.extending).
   */
  private preExtension(b: IoBuf, length: number, hi: number): number {
    const seg = b.seg
    if (seg.isExtended || isMaxed(b.header) || this.cur.seg !== seg || !this.commit.isAwaited(hi)) return -1
    const S = this.ctx.segmentBytes
    const slotStart = seg.slot * S
    const from =
      Math.ceil((slotStart + this.cur.base) / PRE_EXTEND_ALIGN_BYTES) * PRE_EXTEND_ALIGN_BYTES - slotStart
    if (S - from < length * PRE_EXTEND_MIN_ROUNDS) return -1
    if (++seg.smallRounds < PRE_EXTEND_AFTER_ROUNDS) return -1
    seg.isExtended = true
    return from
  }

  private writeSettled(seg: SegmentLife, length: number): void {
    this.writesInFlight--
    this.bytesInFlight -= length
    seg.writesInFlight--
    if (seg.writesInFlight === 0 && seg.unissuedBuffers === 0 && seg !== this.cur.seg) {
      this.liveSegments.delete(seg.baseLsn)
      this.recycle(seg)
    }
    if (this.bytesInFlight < this.writeHighWaterBytes && this.writableWaiters.length > 0) {
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

  /**
   * Gives the memory of a finished life to the next ones: its writes have settled, no
   * buffer of it waits to be issued and it is not the current segment, so nothing writes
   * it again, and reads of its bytes go to the file (record-reader.ts serves from memory
   * only what is not written yet, and copies it out synchronously). At most once per
   * life: a buffer pushed twice would be handed to two lives.
   */
  private recycle(seg: SegmentLife): void {
    if (seg.isRecycled) return
    seg.isRecycled = true
    if (this.ctx.poisonError !== undefined) return
    if (seg.buf.byteOffset !== 0 || seg.buf.length !== this.ctx.segmentBytes) return
    assert(!this.spareBuffers.includes(seg.buf), 'a segment buffer is spare at most once')
    if (this.spareBuffers.length < SPARE_SEGMENT_BUFFERS) this.spareBuffers.push(seg.buf)
    else this.memory?.give(seg.buf)
  }

  /**
   * Takes `buf` (segmentBytes, owned by no one else from now on) as a spare for the next
   * segment lives; false, and it stays the caller's, when the spares are full.
   */
  addSpare(buf: Uint8Array): boolean {
    if (this.spareBuffers.length >= SPARE_SEGMENT_BUFFERS || this.ctx.poisonError !== undefined) return false
    assert(buf.byteOffset === 0 && buf.length === this.ctx.segmentBytes, 'a spare is a whole segment buffer')
    assert(!this.spareBuffers.includes(buf), 'a segment buffer is spare at most once')
    for (const live of this.liveSegments.values())
      assert(live.buf !== buf, 'a spare belongs to no live segment')
    this.spareBuffers.push(buf)
    return true
  }

  /** The O_DSYNC write of a lone round completed: its bytes are written and durable. */
  private onSyncedWritten(seg: SegmentLife, lo: number, hi: number, length: number, t0: number): void {
    this.writeSettled(seg, length)
    if (this.ctx.poisonError !== undefined) {
      this.commit.syncFailed(this.ctx.poisonError)
      return
    }
    try {
      this.ctx.failpoints.hit('buffer write post')
    } catch (e) {
      this.commit.syncFailed(e, 'writing the log')
      return
    }
    if (KILL_ODDS) maybeKill('log.write.done.unpublished')
    this.writtenWaiters.releaseUpTo(this.written.markDone(lo, hi))
    this.commit.syncedWriteDone(lo, hi, t0)
  }

  private onWritten(seg: SegmentLife, lo: number, hi: number, length: number): void {
    this.writeSettled(seg, length)
    if (this.ctx.poisonError !== undefined) return
    try {
      this.ctx.failpoints.hit('buffer write post')
    } catch (e) {
      this.ctx.poison(e, 'writing the log')
      return
    }
    if (KILL_ODDS) maybeKill('log.write.done.unpublished')
    this.writtenWaiters.releaseUpTo(this.written.markDone(lo, hi))
    this.commit.noteWritten(lo, hi)
    if (KILL_ODDS) maybeKill('log.write.done.published')
  }

  /** Makes sure the buffer holding `lsn` gets sealed (and so written) soon. */
  ensureWriteIssued(lsn: number): void {
    const b = this.cur
    if (lsn < b.seg.baseLsn + b.base) return // already sealed: written when its writers leave
    if (this.sealScheduled) return
    this.sealScheduled = true
    // Idle: seal now (after this tick's other appends). Busy: wait one turn of the event
    // loop so that every writer woken by the last sync joins this write.
    if (this.writesInFlight === 0 && !this.commit.syncInFlight && !this.commit.syncHold)
      queueMicrotask(this.sealTask)
    else setImmediate(this.sealTask)
  }

  /**
   * Holds back writes at or above `slot` until `cut` settles (it must never reject). Set
   * synchronously with the bookkeeping of the cut, before any new segment can take a slot.
   */
  fenceWritesFrom(slot: number, cut: Promise<void>): void {
    const fence = { slot, cut }
    this.shrinkFence = fence
    cut.then(() => {
      if (this.shrinkFence === fence) this.shrinkFence = undefined
    })
  }

  /** Rejects the waiters of written bytes and of write room (poisoning, close). */
  rejectWaiters(e: Error, includeWritable: boolean): void {
    this.writtenWaiters.rejectAll(e)
    if (!includeWritable) return
    const ws = this.writableWaiters
    this.writableWaiters = []
    for (const w of ws) w.reject(e)
  }

  /** Resolves when no write and no datasync is in flight. */
  allWritesSettled(): Promise<void> {
    const idle = (): boolean => this.writesInFlight === 0 && !this.commit.syncInFlight
    if (idle()) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (idle()) resolve()
        else setImmediate(check)
      }
      if (this.writesInFlight > 0) this.settledWaiters.push(check)
      else setImmediate(check)
    })
  }
}
