// The bytes of the log file, its segment headers and its messages.
// docs/FORMAT.md is the normative description; keep the two in step.

import { crc32, crc32Words } from '../util/crc32.js'

/**
 * 2: a blob file may be named by several pointer messages (Log.relinkBlob()) and lives until
 * the segment holding the newest of them is truncated. A version-1 build would delete it
 * with the oldest pointer's segment, so it must not open such a log: a version-1 log is
 * upgraded (its conf rewritten) when this build opens it. docs/FORMAT.md, "Versions".
 */
export const FORMAT_VERSION = 2
/** The oldest format this build opens (and upgrades). */
export const OLDEST_FORMAT_VERSION = 1

/** Segment header size; messages of a segment start right after it. */
export const SEGMENT_HEADER_BYTES = 48
/** Largest possible message header: crc(4) + kind(1) + three varints of ≤ 9 bytes. */
export const MAX_MESSAGE_HEADER_BYTES = 32
/**
 * No message may *start* in the last RED_ZONE_BYTES of a segment: headers have variable
 * length, so a reader could not otherwise know whether one fits.
 */
export const RED_ZONE_BYTES = MAX_MESSAGE_HEADER_BYTES

export const MIN_SEGMENT_BYTES = 1024
// The IoBuf header word keeps offsets in 24 bits; a segment must end strictly below 2^24.
export const MAX_SEGMENT_BYTES = 8 * 1024 * 1024
export const DEFAULT_SEGMENT_BYTES = 1024 * 1024

const SEGMENT_MAGIC = 0x47455342 // "BSEG" read as little-endian u32
const CRC_XOR = 0xffffffff

/** The kind byte of a message, always at byte 4 so abort can patch it in place. */
export const enum MessageKind {
  /** Zero bytes and every unknown kind read as Corrupt: unwritten space ends a scan. */
  Corrupt = 0,
  /** An aborted reservation; its body is kept so the CRC still detects tearing. */
  Canceled = 1,
  /** Pads the rest of a segment; readers move to the next segment. */
  Cap = 2,
  Record = 3,
  /** Body: blob id (u64), size (u64), CRC-32 of the blob's content (u32). */
  BlobPointer = 4,
  /** Body: the LSN of the last byte of the atomic batch that follows it (u64). */
  BatchManifest = 5,
  /** Body: the public stable LSN + 1 when this message was reserved (u64): a durable witness. */
  Witness = 6,
}

export function isKnownKind(kind: number): boolean {
  return kind >= MessageKind.Canceled && kind <= MessageKind.Witness
}

export const BLOB_POINTER_BODY_BYTES = 20
export const U64_BODY_BYTES = 8

// ---- u64 as two u32 halves: LSNs stay plain numbers, values ≥ 2^53 read as corrupt. ----

const TWO_32 = 0x1_0000_0000

export function writeU64(buf: Uint8Array, at: number, value: number): void {
  const lo = value >>> 0
  const hi = Math.floor(value / TWO_32)
  buf[at] = lo & 0xff
  buf[at + 1] = (lo >>> 8) & 0xff
  buf[at + 2] = (lo >>> 16) & 0xff
  buf[at + 3] = lo >>> 24
  buf[at + 4] = hi & 0xff
  buf[at + 5] = (hi >>> 8) & 0xff
  buf[at + 6] = (hi >>> 16) & 0xff
  buf[at + 7] = hi >>> 24
}

/** Returns -1 when the value is not a safe integer (a corrupt field). */
export function readU64(buf: Uint8Array, at: number): number {
  const lo = readU32(buf, at)
  const hi = readU32(buf, at + 4)
  if (hi > 0x1fffff) return -1
  return hi * TWO_32 + lo
}

export function writeU32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value & 0xff
  buf[at + 1] = (value >>> 8) & 0xff
  buf[at + 2] = (value >>> 16) & 0xff
  buf[at + 3] = value >>> 24
}

export function readU32(buf: Uint8Array, at: number): number {
  return (
    ((buf[at] as number) |
      ((buf[at + 1] as number) << 8) |
      ((buf[at + 2] as number) << 16) |
      ((buf[at + 3] as number) << 24)) >>>
    0
  )
}

// ---- varints (SQLite4 style, as sled): small values take one byte. ----

export function varintBytes(value: number): number {
  if (value <= 240) return 1
  if (value <= 2287) return 2
  if (value <= 67823) return 3
  if (value < 0x100_0000) return 4
  if (value < 0x1_0000_0000) return 5
  if (value < 0x100_0000_0000) return 6
  if (value < 0x1_0000_0000_0000) return 7
  return 8
}

/** Writes `value` (a safe non-negative integer) at `at`; returns the bytes written. */
export function writeVarint(buf: Uint8Array, at: number, value: number): number {
  if (value <= 240) {
    buf[at] = value
    return 1
  }
  if (value <= 2287) {
    const v = value - 240
    buf[at] = 241 + (v >>> 8)
    buf[at + 1] = v & 0xff
    return 2
  }
  if (value <= 67823) {
    const v = value - 2288
    buf[at] = 249
    buf[at + 1] = v >>> 8
    buf[at + 2] = v & 0xff
    return 3
  }
  const n = varintBytes(value) - 1
  buf[at] = 247 + n
  let rest = value
  for (let i = 1; i <= n; i++) {
    buf[at + i] = rest % 256
    rest = Math.floor(rest / 256)
  }
  return n + 1
}

/**
 * Decodes a varint at `at` without reading past `end`. Returns the value and sets
 * `out.bytes`; returns -1 when the bytes run out or the value would not be a safe integer.
 */
export function readVarint(buf: Uint8Array, at: number, end: number, out: { bytes: number }): number {
  if (at >= end) return -1
  const b0 = buf[at] as number
  if (b0 <= 240) {
    out.bytes = 1
    return b0
  }
  if (b0 <= 248) {
    if (at + 2 > end) return -1
    out.bytes = 2
    return 240 + (b0 - 241) * 256 + (buf[at + 1] as number)
  }
  if (b0 === 249) {
    if (at + 3 > end) return -1
    out.bytes = 3
    return 2288 + (buf[at + 1] as number) * 256 + (buf[at + 2] as number)
  }
  // 250..254 carry 3..7 little-endian bytes; 255 (8 bytes) cannot be a safe integer.
  const n = b0 - 247
  if (n > 7 || at + 1 + n > end) return -1
  let value = 0
  for (let i = n; i >= 1; i--) value = value * 256 + (buf[at + i] as number)
  if (value > Number.MAX_SAFE_INTEGER) return -1
  out.bytes = n + 1
  return value
}

// ---- message header ----

export function messageHeaderBytes(bodyBytes: number, segmentNumber: number, id: number): number {
  return 5 + varintBytes(bodyBytes) + varintBytes(segmentNumber) + varintBytes(id)
}

/** Writes the header with a zero CRC (the CRC is stamped when the reservation completes). */
export function writeMessageHeader(
  buf: Uint8Array,
  at: number,
  kind: MessageKind,
  bodyBytes: number,
  segmentNumber: number,
  id: number,
): number {
  buf[at] = 0
  buf[at + 1] = 0
  buf[at + 2] = 0
  buf[at + 3] = 0
  buf[at + 4] = kind
  let p = at + 5
  p += writeVarint(buf, p, bodyBytes)
  p += writeVarint(buf, p, segmentNumber)
  p += writeVarint(buf, p, id)
  return p - at
}

/** CRC of a message: bytes 4..end (kind, header varints, body), inverted. */
export function messageCrc(buf: Uint8Array, at: number, totalBytes: number, words?: Int32Array): number {
  return (crc32Words(buf, words, at + 4, at + totalBytes) ^ CRC_XOR) >>> 0
}

/** `words`: wordsOf(buf) when buf starts its ArrayBuffer (faster CRC), else undefined. */
export function stampMessageCrc(buf: Uint8Array, at: number, totalBytes: number, words?: Int32Array): void {
  writeU32(buf, at, messageCrc(buf, at, totalBytes, words))
}

export interface DecodedHeader {
  kind: number
  bodyBytes: number
  segmentNumber: number
  id: number
  headerBytes: number
}

const scratch = { bytes: 0 }

/**
 * Decodes the header at `at`, reading no byte at or past `end`. Returns false if the bytes
 * cannot be a header (truncated varint, unsafe value). Kind and CRC are checked by the caller.
 */
export function decodeMessageHeader(buf: Uint8Array, at: number, end: number, out: DecodedHeader): boolean {
  if (at + 5 > end) return false
  out.kind = buf[at + 4] as number
  let p = at + 5
  const len = readVarint(buf, p, end, scratch)
  if (len < 0) return false
  p += scratch.bytes
  const seg = readVarint(buf, p, end, scratch)
  if (seg < 0) return false
  p += scratch.bytes
  const id = readVarint(buf, p, end, scratch)
  if (id < 0) return false
  p += scratch.bytes
  out.bodyBytes = len
  out.segmentNumber = seg
  out.id = id
  out.headerBytes = p - at
  return true
}

// ---- segment header ----

export interface SegmentHeader {
  /** LSN of the segment's byte 0; a multiple of the segment size. */
  baseLsn: number
  /** Public stable LSN when the segment was opened (-1: none): the durable witness. */
  maxStableLsn: number
  /** LSN where the log started when this segment was opened (raised by truncateBefore). */
  firstLsn: number
  segmentBytes: number
  logId: number
  formatVersion: number
}

export function encodeSegmentHeader(buf: Uint8Array, at: number, h: SegmentHeader): void {
  buf.fill(0, at, at + SEGMENT_HEADER_BYTES)
  writeU32(buf, at + 4, SEGMENT_MAGIC)
  buf[at + 8] = h.formatVersion & 0xff
  buf[at + 9] = h.formatVersion >>> 8
  writeU32(buf, at + 12, h.segmentBytes)
  writeU64(buf, at + 16, h.baseLsn)
  writeU64(buf, at + 24, h.maxStableLsn + 1)
  writeU64(buf, at + 32, h.logId)
  writeU64(buf, at + 40, h.firstLsn)
  writeU32(buf, at, (crc32(buf, at + 4, at + SEGMENT_HEADER_BYTES) ^ CRC_XOR) >>> 0)
}

export type SegmentHeaderCheck =
  | { ok: true; header: SegmentHeader }
  | { ok: false; reason: 'crc' | 'magic' | 'field' }

/**
 * Decodes and validates a segment header. A zero-filled slot fails the CRC (the CRC is
 * stored inverted), so unwritten space can never pass for a segment.
 */
export function decodeSegmentHeader(buf: Uint8Array, at: number): SegmentHeaderCheck {
  const stored = readU32(buf, at)
  const actual = (crc32(buf, at + 4, at + SEGMENT_HEADER_BYTES) ^ CRC_XOR) >>> 0
  if (stored !== actual) return { ok: false, reason: 'crc' }
  if (readU32(buf, at + 4) !== SEGMENT_MAGIC) return { ok: false, reason: 'magic' }
  const formatVersion = (buf[at + 8] as number) | ((buf[at + 9] as number) << 8)
  const segmentBytes = readU32(buf, at + 12)
  const baseLsn = readU64(buf, at + 16)
  const stablePlusOne = readU64(buf, at + 24)
  const logId = readU64(buf, at + 32)
  const firstLsn = readU64(buf, at + 40)
  // The log's first LSN never passes the stable LSN of the segment's opening: truncateBefore
  // drops stable segments only (docs/FORMAT.md, "Segment header").
  if (
    baseLsn < 0 ||
    stablePlusOne < 0 ||
    logId < 0 ||
    firstLsn < 0 ||
    firstLsn > baseLsn ||
    firstLsn > stablePlusOne
  ) {
    return { ok: false, reason: 'field' }
  }
  return {
    ok: true,
    header: { baseLsn, maxStableLsn: stablePlusOne - 1, firstLsn, segmentBytes, logId, formatVersion },
  }
}
