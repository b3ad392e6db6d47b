// The read side of the log: one record by LSN, and stable records in LSN order. Bytes from
// the file are checked (segment header, CRC, segment number) before they are returned;
// data not yet written is served from the writer's memory instead. The caller (the Log
// facade) has checked the instance is open and the LSN is a safe integer.

import { CorruptionError, InvalidArgumentError, wrapIoError } from '../errors.js'
import { readNowUpTo, type Storage } from '../io/index.js'
import { assert } from '../util/assert.js'
import { asLsn } from '../util/brand.js'
import { type BlobRef, readBlob } from './blob.js'
import {
  decodeMessageHeader,
  decodeSegmentHeader,
  MAX_MESSAGE_HEADER_BYTES,
  MessageKind,
  readU32,
  readU64,
  SEGMENT_HEADER_BYTES,
} from './format.js'
import type { GroupCommit } from './group-commit.js'
import type { LogContext } from './log-context.js'
import type { LogRecord } from './log-types.js'
import { lastCorruptReason, newParsedMessage, Parse, type ParsedMessage, parseMessage } from './reader.js'
import type { SegmentSlots } from './segment-slots.js'
import type { SegmentWriter } from './segment-writer.js'

/** The parts of a Log instance reads need. */
export interface ReadSource {
  readonly ctx: LogContext
  readonly storage: Storage
  readonly slots: SegmentSlots
  readonly writer: SegmentWriter
  readonly commit: GroupCommit
  /**
   * Message starts recovery walked, by segment base (RecoveredLog.messageMarks). A segment's
   * bytes below the end of the log never change during its life, so they stay starts.
   */
  readonly messageMarks?: ReadonlyMap<number, readonly number[]>
}

/**
 * Where iterRecords() begins to walk segment `base` for records from `from`: the last start
 * recovery saw at or below `from`, else the first message. Records from `from` on are walked
 * and checked exactly as from the first message; only those before it, which are not
 * returned, are not read again (they are checked when read, like all witnessed bytes).
 */
function walkStart(src: ReadSource, base: number, from: number): number {
  let at = SEGMENT_HEADER_BYTES
  for (const lsn of src.messageMarks?.get(base) ?? []) {
    if (lsn > from) break
    at = lsn - base
  }
  return at
}

/** A read that message checking asks for: `into` filled from log file offset `position`. */
interface ReadStep {
  into: Uint8Array
  position: number
}

/**
 * Runs the steps of a read (a generator yielding the reads it needs, e.g. messageSteps())
 * with asynchronous reads. The same steps run synchronously in runStepsNow(): one copy
 * of the logic that locates and checks a record, whichever way its bytes are read.
 */
async function runSteps<R>(ctx: LogContext, steps: Generator<ReadStep, R, void>): Promise<R> {
  for (let s = steps.next(); ; s = steps.next()) {
    if (s.done === true) return s.value
    await readFully(ctx, s.value.into, s.value.position)
  }
}

/** runSteps() on the calling thread through StorageFile.readNow (which the caller checked is there). */
function runStepsNow<R>(ctx: LogContext, steps: Generator<ReadStep, R, void>): R {
  for (let s = steps.next(); ; s = steps.next()) {
    if (s.done === true) return s.value
    const { into, position } = s.value
    let got: number
    try {
      got = readNowUpTo(ctx.file, into, 0, into.length, position)
    } catch (e) {
      throw wrapIoError(e, 'reading the log', ctx.fileLabel)
    }
    into.fill(0, got)
  }
}

async function readFully(ctx: LogContext, into: Uint8Array, position: number): Promise<void> {
  let got = 0
  try {
    while (got < into.length) {
      const n = await ctx.file.read(into, got, into.length - got, position + got)
      if (n === 0) break
      got += n
    }
  } catch (e) {
    throw wrapIoError(e, 'reading the log', ctx.fileLabel)
  }
  into.fill(0, got)
}

function refAt(image: Uint8Array, bodyAt: number): BlobRef {
  return {
    id: readU64(image, bodyAt),
    sizeBytes: readU64(image, bodyAt + 8),
    crc: readU32(image, bodyAt + 16),
  }
}

function blobOf(src: ReadSource, image: Uint8Array, bodyAt: number): Promise<Uint8Array> {
  return readBlob(src.storage, src.ctx.conf.logId, refAt(image, bodyAt))
}

/** Stable records with LSN ≥ `from`, in LSN order. Damage in stable data throws CorruptionError. */
export async function* iterRecords(src: ReadSource, from: number): AsyncGenerator<LogRecord> {
  const ctx = src.ctx
  const S = ctx.segmentBytes
  const bound = src.commit.stableLsn
  const msg = newParsedMessage()
  const bases = src.slots.bases().filter((base) => base + S > from && base <= bound)
  for (const base of bases) {
    const slot = src.slots.slotAt(base)
    if (slot === undefined) continue // truncated meanwhile
    const limit = Math.min(S, bound - base + 1)
    // The image holds the segment from its start, or from a later message recovery walked
    // to (`origin`; the header is then read beside it).
    const walkFrom = walkStart(src, base, from)
    const origin = walkFrom > SEGMENT_HEADER_BYTES && walkFrom < limit ? walkFrom : 0
    const image = new Uint8Array(limit - origin)
    let header = image
    if (origin === 0) await readFully(ctx, image, slot * S)
    else {
      header = new Uint8Array(SEGMENT_HEADER_BYTES)
      await Promise.all([readFully(ctx, header, slot * S), readFully(ctx, image, slot * S + origin)])
    }
    if (src.slots.slotAt(base) !== slot) continue
    const h = decodeSegmentHeader(header, 0)
    if (!h.ok || h.header.baseLsn !== base) {
      throw new CorruptionError(`segment header of LSN ${base} is damaged`, {
        file: ctx.fileLabel,
        offset: slot * S,
        lsn: base,
      })
    }
    let at = Math.max(origin, SEGMENT_HEADER_BYTES)
    while (at < limit) {
      const r = parseMessage(image, at, limit, S, base / S, msg, true, origin)
      if (r === Parse.EndOfSegment) break
      if (r === Parse.Corrupt) {
        throw new CorruptionError(`stable log data damaged at LSN ${base + at}: ${lastCorruptReason}`, {
          file: ctx.fileLabel,
          offset: slot * S + at,
          lsn: base + at,
        })
      }
      const lsn = base + at
      const bodyAt = at + msg.headerBytes - origin
      if (lsn >= from) {
        if (msg.kind === MessageKind.Record) {
          yield {
            lsn: asLsn(lsn),
            id: msg.id,
            data: image.subarray(bodyAt, bodyAt + msg.bodyBytes),
            isBlob: false,
          }
        } else if (msg.kind === MessageKind.BlobPointer) {
          const data = await blobOf(src, image, bodyAt)
          yield { lsn: asLsn(lsn), id: msg.id, data, isBlob: true }
        }
      }
      at += msg.totalBytes
    }
  }
}

/**
 * Bytes read at a record's position by `read()` before its header is known: enough for the
 * header and a small body (a page fragment) in one read. A longer body costs a second read
 * of exactly the rest; a whole segment is never read for one record.
 */
export const READ_WINDOW_BYTES = 4096

/**
 * Reads the record that starts at `lsn`. Data not yet written is served from memory;
 * bytes on disk are checked (CRC, segment number) before they are returned.
 * `messageBytes` (optional) sizes the first read; see messageBytesSteps().
 */
export async function readRecord(
  src: ReadSource,
  lsn: number,
  messageBytes?: number,
  scratch?: Uint8Array,
): Promise<LogRecord> {
  const m = await runSteps(src.ctx, messageSteps(src, lsn, messageBytes, scratch))
  if (m.msg.kind === MessageKind.Record) return inlineRecord(lsn, m, scratch)
  const data = await blobOf(src, m.image, m.bodyAt)
  return { lsn: asLsn(lsn), id: m.msg.id, data, isBlob: true }
}

/**
 * readRecord() on the calling thread (StorageFile.readNow): the same record, checked the
 * same way, or the same error thrown. Undefined when it cannot be done synchronously (the
 * file has no readNow, or the record is a blob pointer) and nothing was returned: the
 * caller uses readRecord().
 */
export function readRecordNow(
  src: ReadSource,
  lsn: number,
  messageBytes?: number,
  scratch?: Uint8Array,
): LogRecord | undefined {
  if (src.ctx.file.readNow === undefined) return undefined
  const m = runStepsNow(src.ctx, messageSteps(src, lsn, messageBytes, scratch))
  return m.msg.kind === MessageKind.Record ? inlineRecord(lsn, m, scratch) : undefined
}

/** The record of a checked Record message. */
function inlineRecord(lsn: number, m: MessageAt, scratch: Uint8Array | undefined): LogRecord {
  const { image, origin, bodyAt, msg } = m
  const data = image.subarray(bodyAt, bodyAt + msg.bodyBytes)
  // The caller lent this memory for the read and keeps it: no copy.
  if (scratch !== undefined && image.buffer === scratch.buffer) {
    return { lsn: asLsn(lsn), id: msg.id, data, isBlob: false }
  }
  // Copied out of the writer's memory (the next segment life reuses it once this one is
  // written), and out of a read window much larger than the record (a caller may keep
  // the record for long: the page cache does). A real copy even if `image` is a Buffer,
  // whose slice() is a view.
  const isOwnBuffer = origin !== 0 && data.length * 2 >= image.length
  const own = isOwnBuffer ? data : Uint8Array.prototype.slice.call(data)
  return { lsn: asLsn(lsn), id: msg.id, data: own, isBlob: false }
}

/**
 * Most bytes one readRecordRun() reads at once: a run longer than this is split by the
 * caller (the page cache's warm-up), so one read never holds the thread pool for long.
 */
export const MAX_RUN_READ_BYTES = 1024 * 1024

/**
 * Reads the records starting at `lsns` (ascending, all in one segment, the i-th taking
 * `messageBytes[i]` on the log, header included) with one read of the span from the first
 * to the end of the last, gaps included: for many fragments that lie close together, one
 * read instead of one each. Every message is checked as readRecord() checks it (CRC,
 * segment number, kind); a message that runs past the span (a size too small) is a
 * CorruptionError. Records not yet written to the file are read
 * one by one through readRecord() (from the writer's memory). The records' data are views
 * into one array of the span: `scratch` when the caller lends memory long enough (the
 * views are then valid until it reuses it), else a new array a kept view keeps alive.
 */
export async function readRecordRun(
  src: ReadSource,
  lsns: readonly number[],
  messageBytes: readonly number[],
  scratch?: Uint8Array,
): Promise<LogRecord[]> {
  const { ctx, writer } = src
  const S = ctx.segmentBytes
  const n = lsns.length
  assert(n > 0 && messageBytes.length === n, 'a run names at least one record and a size for each')
  const first = lsns[0] as number
  const base = Math.floor(first / S) * S
  let end = first
  for (let i = 0; i < n; i++) {
    const lsn = lsns[i] as number
    const size = messageBytes[i] as number
    if (lsn < end || lsn - base < SEGMENT_HEADER_BYTES || lsn > writer.maxReserved) {
      throw new InvalidArgumentError(`a run's LSNs must ascend within one segment (LSN ${lsn})`)
    }
    end = lsn + size
    if (!Number.isSafeInteger(size) || size <= 0 || end > base + S) {
      throw new InvalidArgumentError(`a run's record at LSN ${lsn} cannot take ${size} bytes`)
    }
    // Bytes not yet in the file are in the writer's memory: read each as read() would.
    if (!writer.written.isDone(lsn)) {
      return Promise.all(lsns.map((l, j) => readRecord(src, l, messageBytes[j])))
    }
  }
  if (end - first > MAX_RUN_READ_BYTES) {
    throw new InvalidArgumentError(`a run may span at most ${MAX_RUN_READ_BYTES} bytes, got ${end - first}`)
  }
  const slot = slotOf(src, base, first)
  const origin = first - base
  const image =
    scratch !== undefined && scratch.length >= end - first
      ? scratch.subarray(0, end - first)
      : new Uint8Array(end - first)
  await readFully(ctx, image, slot * S + origin)
  // A truncation may have zeroed and reused the slot meanwhile: its bytes would then be
  // another segment's (the segment number in each message would catch most of it).
  if (src.slots.slotAt(base) !== slot)
    throw new InvalidArgumentError(`LSN ${first} lies in a truncated segment`)
  const out: LogRecord[] = []
  const msg = newParsedMessage()
  for (let i = 0; i < n; i++) {
    const lsn = lsns[i] as number
    const at = lsn - base
    const r = parseMessage(image, at, end - base, S, base / S, msg, true, origin)
    const isRecord = msg.kind === MessageKind.Record || msg.kind === MessageKind.BlobPointer
    if (r !== Parse.Ok || !isRecord) {
      const why = r === Parse.Corrupt ? lastCorruptReason : 'not a record'
      throw new CorruptionError(`no valid record at LSN ${lsn}: ${why}`, {
        file: ctx.fileLabel,
        offset: slot * S + at,
        lsn,
      })
    }
    const bodyAt = at - origin + msg.headerBytes
    if (msg.kind === MessageKind.Record) {
      out.push({
        lsn: asLsn(lsn),
        id: msg.id,
        data: image.subarray(bodyAt, bodyAt + msg.bodyBytes),
        isBlob: false,
      })
    } else {
      out.push({ lsn: asLsn(lsn), id: msg.id, data: await blobOf(src, image, bodyAt), isBlob: true })
    }
  }
  return out
}

/**
 * The blob a pointer message at `lsn` names, without reading the blob. A Record there is
 * not a pointer: InvalidArgumentError.
 */
export async function readBlobRef(src: ReadSource, lsn: number): Promise<BlobRef> {
  const { image, bodyAt, msg } = await runSteps(src.ctx, messageSteps(src, lsn))
  if (msg.kind !== MessageKind.BlobPointer) {
    throw new InvalidArgumentError(`the record at LSN ${lsn} is not a blob pointer`)
  }
  return refAt(image, bodyAt)
}

/** A checked message: `image` holds its segment from in-segment offset `origin` on. */
interface MessageAt {
  image: Uint8Array
  origin: number
  bodyAt: number
  msg: ParsedMessage
}

/**
 * The checked message (Record or BlobPointer) at `lsn`; its body starts at `bodyAt` of
 * `image`. Its file reads are yielded (runSteps(), runStepsNow()).
 */
function* messageSteps(
  src: ReadSource,
  lsn: number,
  messageBytes?: number,
  scratch?: Uint8Array,
): Generator<ReadStep, MessageAt, void> {
  const { ctx, writer } = src
  const S = ctx.segmentBytes
  const base = Math.floor(lsn / S) * S
  const at = lsn - base
  if (lsn < 0 || lsn > writer.maxReserved || at < SEGMENT_HEADER_BYTES) {
    throw new InvalidArgumentError(`no record starts at LSN ${lsn}`)
  }
  const live = writer.liveSegments.get(base)
  // `image` holds the segment's bytes from in-segment offset `origin` on.
  let image: Uint8Array
  let origin: number
  let slot: number
  if (live !== undefined && !writer.written.isDone(lsn)) {
    assert(!live.isRecycled, 'a live segment keeps its memory')
    image = live.buf
    origin = 0
    slot = live.slot
  } else {
    // A poisoned instance drops the memory of a segment once its writes settle, failed
    // ones included: bytes never written are not on disk, and reading the file there would
    // report an IO failure as corruption. Report the poisoning error instead.
    if (ctx.poisonError !== undefined && !writer.written.isDone(lsn)) throw ctx.poisonError
    slot = slotOf(src, base, lsn)
    image = yield* messageBytesSteps(src, slot, base, at, messageBytes, scratch)
    origin = at
  }
  const msg = newParsedMessage()
  const r = parseMessage(image, at, S, S, base / S, msg, true, origin)
  if (r !== Parse.Ok || (msg.kind !== MessageKind.Record && msg.kind !== MessageKind.BlobPointer)) {
    throw new CorruptionError(
      `no valid record at LSN ${lsn}: ${r === Parse.Corrupt ? lastCorruptReason : 'not a record'}`,
      {
        file: ctx.fileLabel,
        offset: slot * S + at,
        lsn,
      },
    )
  }
  return { image, origin, bodyAt: at - origin + msg.headerBytes, msg }
}

function slotOf(src: ReadSource, base: number, lsn: number): number {
  const slot = src.slots.slotAt(base)
  if (slot === undefined) throw new InvalidArgumentError(`LSN ${lsn} lies in a truncated segment`)
  return slot
}

/**
 * Reads the bytes of the message at in-segment offset `at` of the segment `base` in `slot`:
 * a window first (`messageBytes` long when the caller knows the message's size, else
 * READ_WINDOW_BYTES; into `scratch` when it is long enough), then the rest of the body
 * when the header (not yet trusted: parseMessage checks it) names a longer message that
 * still fits the segment. The result starts at `at`.
 * After each read the slot must still hold the segment: a truncation may have zeroed and
 * reused it meanwhile, and its bytes would then be another segment's.
 */
function* messageBytesSteps(
  src: ReadSource,
  slot: number,
  base: number,
  at: number,
  messageBytes: number | undefined,
  scratch: Uint8Array | undefined,
): Generator<ReadStep, Uint8Array, void> {
  const ctx = src.ctx
  const S = ctx.segmentBytes
  const lsn = base + at
  const room = S - at
  // Never less than a whole header: a hint too small then costs one more read, not a failure.
  const window =
    messageBytes === undefined ? READ_WINDOW_BYTES : Math.max(messageBytes, MAX_MESSAGE_HEADER_BYTES)
  const firstBytes = Math.min(window, room)
  const first =
    scratch !== undefined && scratch.length >= firstBytes
      ? scratch.subarray(0, firstBytes)
      : new Uint8Array(firstBytes)
  yield { into: first, position: slot * S + at }
  if (src.slots.slotAt(base) !== slot)
    throw new InvalidArgumentError(`LSN ${lsn} lies in a truncated segment`)
  const h = newParsedMessage()
  if (!decodeMessageHeader(first, 0, first.length, h)) return first
  const total = h.headerBytes + h.bodyBytes
  if (total <= first.length || total > room) return first
  const whole = new Uint8Array(total)
  whole.set(first)
  yield { into: whole.subarray(first.length), position: slot * S + at + first.length }
  if (src.slots.slotAt(base) !== slot)
    throw new InvalidArgumentError(`LSN ${lsn} lies in a truncated segment`)
  return whole
}
