// Seeded mutations of a log folder (files as a name → bytes map) for the untrusted-file test
// (reliability-regimen R9, P5, P8). Two families:
//  - damage: bit flips, random bytes, truncation, extension, zeroed or junk ranges,
//    duplicated or swapped segments and ranges, whole files replaced, deleted, emptied,
//    copied from another log, stray files added. A checksum catches these, so a reader
//    must never return wrong data for them without an error;
//  - CRC-fixing: a field of a message, segment header, conf, witness, blob header or tail
//    journal is changed and its CRC recomputed so it passes. Nothing can tell these from
//    honest bytes; they must still never crash, hang or allocate without bound.
// mutateDb() does the same to a database folder, and adds CRC-fixing changes to tree pages
// (hostile page ids in index nodes and the META catalog) and to checkpoints.
// The CRC-fixing encoders are written here from docs/FORMAT.md, not imported from src/log:
// a test that shares the code under test cannot catch that code's mistakes.

import { crc32 } from '../../src/util/crc32.js'
import type { Prng } from '../../src/util/prng.js'
import type { DbImage, Files } from './db-images.js'

export interface Mutated {
  files: Files
  /** What was done, for messages and the per-kind figures. */
  labels: string[]
  /** At least one mutation recomputed a checksum: wrong data cannot be detected. */
  isCrcFixed: boolean
  /**
   * The witness file, or the conf whose log id it must match, was changed or removed: its
   * protection against cuts is gone (a witness of another log is ignored by design).
   */
  touchedWitness: boolean
}

type Mutation = (m: Mutated, rng: Prng, img: DbImage, other: DbImage) => void

const SEGMENT_HEADER_BYTES = 48
const RED_ZONE = 32
const SECTOR = 512
const TWO_32 = 0x1_0000_0000

// ---- little helpers ----

function pickFile(m: Mutated, rng: Prng): string {
  const names = [...m.files.keys()]
  // The log holds most of the structure: weigh it up.
  if (m.files.has('log') && rng.int(2) === 0) return 'log'
  return names[rng.int(names.length)] as string
}

function bytesOf(m: Mutated, name: string): Uint8Array {
  return (m.files.get(name) ?? new Uint8Array(0)).slice()
}

function put(m: Mutated, name: string, bytes: Uint8Array | undefined): void {
  if (bytes === undefined) m.files.delete(name)
  else m.files.set(name, bytes)
  if (name === 'witness' || name === 'conf') m.touchedWitness = true
}

function randomBytes(rng: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = rng.int(256)
  return b
}

function u32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff
  b[at + 1] = (v >>> 8) & 0xff
  b[at + 2] = (v >>> 16) & 0xff
  b[at + 3] = (v >>> 24) & 0xff
}

function getU32(b: Uint8Array, at: number): number {
  return (
    ((b[at] as number) |
      ((b[at + 1] as number) << 8) |
      ((b[at + 2] as number) << 16) |
      ((b[at + 3] as number) << 24)) >>>
    0
  )
}

/** Writes any value below 2^64 as two u32 halves (values ≥ 2^53 are what a reader must refuse). */
function u64(b: Uint8Array, at: number, v: number): void {
  u32(b, at, v % TWO_32)
  u32(b, at + 4, Math.floor(v / TWO_32) % TWO_32)
}

function getU64(b: Uint8Array, at: number): number {
  return getU32(b, at + 4) * TWO_32 + getU32(b, at)
}

/** A hostile number for a u64 field: 0, small, near limits, unsafe, or random. */
function evilU64(rng: Prng, near: number): number {
  switch (rng.int(9)) {
    case 0:
      return 0
    case 1:
      return near + 1
    case 2:
      return Math.max(0, near - 1 - rng.int(2000))
    case 3:
      return near + rng.int(1 << 20)
    case 4:
      return 2 ** 32 + rng.int(1000)
    case 5:
      return 2 ** 40 + rng.int(1 << 20)
    case 6:
      return Number.MAX_SAFE_INTEGER - rng.int(3)
    case 7:
      return 2 ** 63 // unsafe: both halves set
    default:
      return rng.int(0x7fffffff)
  }
}

// ---- the format, from docs/FORMAT.md ----

/** Varint per FORMAT.md (SQLite4 style). */
function encodeVarint(v: number): number[] {
  if (v <= 240) return [v]
  if (v <= 2287) return [241 + ((v - 240) >> 8), (v - 240) & 0xff]
  if (v <= 67823) return [249, (v - 2288) >> 8, (v - 2288) & 0xff]
  const out: number[] = []
  let rest = v
  while (rest > 0) {
    out.push(rest % 256)
    rest = Math.floor(rest / 256)
  }
  while (out.length < 3) out.push(0)
  return [247 + out.length, ...out]
}

function decodeVarint(b: Uint8Array, at: number, end: number): { value: number; bytes: number } | undefined {
  if (at >= end) return undefined
  const b0 = b[at] as number
  if (b0 <= 240) return { value: b0, bytes: 1 }
  if (b0 <= 248)
    return at + 2 <= end ? { value: 240 + (b0 - 241) * 256 + (b[at + 1] as number), bytes: 2 } : undefined
  if (b0 === 249)
    return at + 3 <= end
      ? { value: 2288 + (b[at + 1] as number) * 256 + (b[at + 2] as number), bytes: 3 }
      : undefined
  const n = b0 - 247
  if (n > 7 || at + 1 + n > end) return undefined
  let value = 0
  for (let i = n; i >= 1; i--) value = value * 256 + (b[at + i] as number)
  return { value, bytes: n + 1 }
}

interface MessageAt {
  /** Offset in the log file. */
  pos: number
  kind: number
  bodyBytes: number
  segmentNumber: number
  id: number
  headerBytes: number
  /** Offset of the segment slot in the file, and its size. */
  slotPos: number
}

/** Valid-looking messages of every segment slot whose header CRC passes (a walk per FORMAT.md). */
function messagesOf(log: Uint8Array, S: number): MessageAt[] {
  const out: MessageAt[] = []
  for (let slotPos = 0; slotPos + SEGMENT_HEADER_BYTES <= log.length; slotPos += S) {
    const h = log.subarray(slotPos, slotPos + SEGMENT_HEADER_BYTES)
    if (getU32(h, 0) !== (crc32(h, 4, SEGMENT_HEADER_BYTES) ^ 0xffffffff) >>> 0) continue
    const end = Math.min(log.length, slotPos + S)
    let at = slotPos + SEGMENT_HEADER_BYTES
    while (at - slotPos <= S - RED_ZONE - 1 && at + 5 <= end) {
      const kind = log[at + 4] as number
      if (kind < 1 || kind > 6) break
      const len = decodeVarint(log, at + 5, end)
      if (len === undefined) break
      const seg = decodeVarint(log, at + 5 + len.bytes, end)
      if (seg === undefined) break
      const id = decodeVarint(log, at + 5 + len.bytes + seg.bytes, end)
      if (id === undefined) break
      const headerBytes = 5 + len.bytes + seg.bytes + id.bytes
      if (at + headerBytes + len.value > end) break
      out.push({
        pos: at,
        kind,
        bodyBytes: len.value,
        segmentNumber: seg.value,
        id: id.value,
        headerBytes,
        slotPos,
      })
      if (kind === 2) break // Cap
      at += headerBytes + len.value
    }
  }
  return out
}

function segmentBytesOf(m: Mutated, img: DbImage): number {
  const conf = m.files.get('conf') ?? img.files.get('conf')
  const s = conf !== undefined && conf.length >= 16 ? getU32(conf, 12) : 1024
  return s >= 1024 && s <= 8 * 1024 * 1024 && (s & (s - 1)) === 0 ? s : 1024
}

/** Rewrites one message (header fields and/or body) and stamps a CRC that passes. */
function rewriteMessage(
  log: Uint8Array,
  msg: MessageAt,
  S: number,
  f: { kind: number; bodyBytes: number; segmentNumber: number; id: number; body: Uint8Array },
): Uint8Array {
  const header = [
    0,
    0,
    0,
    0,
    f.kind,
    ...encodeVarint(f.bodyBytes),
    ...encodeVarint(f.segmentNumber),
    ...encodeVarint(f.id),
  ]
  const slotEnd = msg.slotPos + S
  // Keep whatever follows the message where it was when the size does not change.
  const total = header.length + f.body.length
  const out = log.length >= msg.pos + total ? log.slice() : new Uint8Array(msg.pos + total)
  if (out.length !== log.length) out.set(log)
  out.set(header, msg.pos)
  out.set(f.body, msg.pos + header.length)
  const crcEnd = Math.min(msg.pos + header.length + f.bodyBytes, slotEnd, out.length)
  u32(out, msg.pos, (crc32(out, msg.pos + 4, crcEnd) ^ 0xffffffff) >>> 0)
  return out
}

function restampSegmentHeader(b: Uint8Array, at: number): void {
  u32(b, at, (crc32(b, at + 4, at + SEGMENT_HEADER_BYTES) ^ 0xffffffff) >>> 0)
}

// ---- damage (a checksum catches it) ----

const bitFlips: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  if (b.length === 0) return
  const n = 1 + rng.int(rng.int(4) === 0 ? 8 : 1)
  for (let i = 0; i < n; i++) {
    const at = rng.int(b.length)
    b[at] = (b[at] as number) ^ (1 << rng.int(8))
  }
  put(m, name, b)
  m.labels.push(`flip${n}:${name}`)
}

const randomByteWrites: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  if (b.length === 0) return
  const at = rng.int(b.length)
  const n = 1 + rng.int(16)
  for (let i = at; i < Math.min(b.length, at + n); i++) b[i] = rng.int(256)
  put(m, name, b)
  m.labels.push(`bytes:${name}`)
}

const truncate: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  const cut = rng.int(2) === 0 ? rng.int(b.length + 1) : Math.floor(rng.int(b.length + 1) / SECTOR) * SECTOR
  put(m, name, b.slice(0, cut))
  m.labels.push(`truncate:${name}`)
}

const extend: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  const n = 1 + rng.int(rng.int(2) === 0 ? 64 : 3000)
  const out = new Uint8Array(b.length + n)
  out.set(b)
  const how = rng.int(3)
  if (how === 1) out.set(randomBytes(rng, n), b.length)
  else if (how === 2 && b.length > 0) {
    // A copy of some of the file's own bytes: old segments and messages look valid.
    const from = rng.int(b.length)
    out.set(b.subarray(from, from + n), b.length)
  }
  put(m, name, out)
  m.labels.push(`extend${['Zeros', 'Junk', 'Self'][how]}:${name}`)
}

const zeroRange: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  if (b.length === 0) return
  const aligned = rng.int(2) === 0
  const at = aligned ? Math.floor(rng.int(b.length) / SECTOR) * SECTOR : rng.int(b.length)
  b.fill(0, at, at + (aligned ? SECTOR : 1 + rng.int(200)))
  put(m, name, b)
  m.labels.push(`zero:${name}`)
}

const junkRange: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  if (b.length === 0) return
  const at = rng.int(b.length)
  const n = Math.min(b.length - at, 1 + rng.int(SECTOR))
  b.set(randomBytes(rng, n), at)
  put(m, name, b)
  m.labels.push(`junk:${name}`)
}

/** Whole segment slots duplicated over others or swapped (misdirected writes). */
const segments: Mutation = (m, rng, img) => {
  const S = segmentBytesOf(m, img)
  const log = bytesOf(m, 'log')
  const slots = Math.ceil(log.length / S)
  if (slots < 2) return
  const full = new Uint8Array(slots * S)
  full.set(log)
  const a = rng.int(slots)
  let b = rng.int(slots - 1)
  if (b >= a) b++
  const sa = full.slice(a * S, (a + 1) * S)
  const sb = full.slice(b * S, (b + 1) * S)
  const how = rng.int(3)
  if (how === 0) {
    full.set(sb, a * S)
    full.set(sa, b * S)
  } else if (how === 1) {
    full.set(sa, b * S)
  } else {
    // Duplicated at the end of the file, as a new slot.
    const grown = new Uint8Array(full.length + S)
    grown.set(full)
    grown.set(sa, full.length)
    put(m, 'log', grown)
    m.labels.push('segmentAppendCopy:log')
    return
  }
  put(m, 'log', full)
  m.labels.push(`${how === 0 ? 'segmentSwap' : 'segmentDup'}:log`)
}

/** Random ranges of a file duplicated or swapped (splices). */
const splice: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  if (b.length < 4) return
  const n = 1 + rng.int(Math.min(600, b.length >> 1))
  const a = rng.int(b.length - n + 1)
  const c = rng.int(b.length - n + 1)
  const ra = b.slice(a, a + n)
  if (rng.int(2) === 0) {
    b.set(b.slice(c, c + n), a)
    b.set(ra, c)
    m.labels.push(`spliceSwap:${name}`)
  } else {
    b.set(ra, c)
    m.labels.push(`spliceDup:${name}`)
  }
  put(m, name, b)
}

const replaceFile: Mutation = (m, rng) => {
  const name = pickFile(m, rng)
  const b = bytesOf(m, name)
  const how = rng.int(3)
  if (how === 0) put(m, name, randomBytes(rng, rng.int(2 * b.length + 64)))
  else if (how === 1) put(m, name, undefined)
  else put(m, name, new Uint8Array(0))
  m.labels.push(`${['random', 'delete', 'empty'][how]}:${name}`)
}

/** A file taken from another log (another log id): a mixed-up folder. */
const foreignFile: Mutation = (m, rng, _img, other) => {
  const names = [...other.files.keys()]
  const name = names[rng.int(names.length)] as string
  put(m, name, (other.files.get(name) as Uint8Array).slice())
  m.labels.push(`foreign:${name}`)
}

/** Files a crash or another program could leave: temp files, a stray blob, a journal. */
const strayFile: Mutation = (m, rng) => {
  const names = [
    'conf.tmp',
    'witness.tmp',
    'tail.journal',
    `blobs/${rng.int(0x7fffffff).toString(16).padStart(16, '0')}`,
    'blobs/not-a-blob',
  ]
  const name = names[rng.int(names.length)] as string
  put(m, name, randomBytes(rng, rng.int(3000)))
  m.labels.push(`stray:${name}`)
}

const DAMAGE: ReadonlyArray<[Mutation, number]> = [
  [bitFlips, 6],
  [randomByteWrites, 3],
  [truncate, 3],
  [extend, 2],
  [zeroRange, 3],
  [junkRange, 3],
  [segments, 3],
  [splice, 2],
  [replaceFile, 2],
  [foreignFile, 1],
  [strayFile, 1],
]

// ---- CRC-fixing (passes every checksum) ----

/** A message field changed: kind, body length, segment number, id, body, blob pointer, manifest, witness. */
const fixedMessage: Mutation = (m, rng, img) => {
  const S = segmentBytesOf(m, img)
  const log = bytesOf(m, 'log')
  const msgs = messagesOf(log, S)
  if (msgs.length === 0) return
  const msg = msgs[rng.int(msgs.length)] as MessageAt
  const body = log.slice(msg.pos + msg.headerBytes, msg.pos + msg.headerBytes + msg.bodyBytes)
  const f = { kind: msg.kind, bodyBytes: msg.bodyBytes, segmentNumber: msg.segmentNumber, id: msg.id, body }
  let what: string
  switch (rng.int(8)) {
    case 0:
      f.kind = rng.int(3) === 0 ? rng.int(256) : 1 + rng.int(6)
      what = 'kind'
      break
    case 1: {
      // The length alone: the CRC covers the bytes the new length claims (as far as the slot goes).
      f.bodyBytes =
        rng.int(2) === 0 ? Math.max(0, msg.bodyBytes + rng.int(64) - 32) : evilU64(rng, S) % 2 ** 53
      f.body = new Uint8Array(0)
      const rest = log.slice(msg.pos + msg.headerBytes, msg.pos + msg.headerBytes + Math.min(f.bodyBytes, S))
      f.body = rest
      what = 'bodyLength'
      break
    }
    case 2:
      f.segmentNumber =
        rng.int(2) === 0 ? msg.segmentNumber + 1 + rng.int(3) : evilU64(rng, msg.segmentNumber) % 2 ** 53
      what = 'segmentNumber'
      break
    case 3:
      f.id = evilU64(rng, msg.id) % 2 ** 53
      what = 'id'
      break
    case 4:
      if (body.length > 0) {
        const at = rng.int(body.length)
        body[at] = (body[at] as number) ^ (1 << rng.int(8))
      }
      what = 'body'
      break
    default: {
      // Structured bodies: blob pointer (id, size, crc), manifest peg, witness LSN.
      if (msg.kind === 4 && body.length === 20) {
        const k = rng.int(3)
        if (k === 0) u64(body, 0, evilU64(rng, getU64(body, 0)))
        else if (k === 1) u64(body, 8, evilU64(rng, getU64(body, 8)))
        else u32(body, 16, rng.int(0x7fffffff))
        what = `blobPointer${['Id', 'Size', 'Crc'][k]}`
      } else if ((msg.kind === 5 || msg.kind === 6) && body.length === 8) {
        u64(body, 0, evilU64(rng, getU64(body, 0)))
        what = msg.kind === 5 ? 'manifestPeg' : 'witnessLsn'
      } else {
        // Make it one: a record turned into a pointer, manifest or witness with hostile fields.
        const kind = 4 + rng.int(3)
        f.kind = kind
        f.body = new Uint8Array(kind === 4 ? 20 : 8)
        u64(f.body, 0, evilU64(rng, msg.pos))
        if (kind === 4) {
          u64(f.body, 8, evilU64(rng, 4096))
          u32(f.body, 16, rng.int(0x7fffffff))
        }
        f.bodyBytes = f.body.length
        what = `becomes${['Pointer', 'Manifest', 'Witness'][kind - 4]}`
      }
    }
  }
  put(m, 'log', rewriteMessage(log, msg, S, f))
  m.isCrcFixed = true
  m.labels.push(`crcMessage.${what}`)
}

/** A segment header field changed, CRC recomputed. */
const fixedSegmentHeader: Mutation = (m, rng, img) => {
  const S = segmentBytesOf(m, img)
  const log = bytesOf(m, 'log')
  const slots: number[] = []
  for (let p = 0; p + SEGMENT_HEADER_BYTES <= log.length; p += S) {
    if (getU32(log, p) === (crc32(log, p + 4, p + SEGMENT_HEADER_BYTES) ^ 0xffffffff) >>> 0) slots.push(p)
  }
  if (slots.length === 0) return
  const at = slots[rng.int(slots.length)] as number
  const fields = [
    'version',
    'segmentSize',
    'baseLsn',
    'maxStable',
    'logId',
    'firstLsn',
    'reserved',
    'baseAndFirst',
  ] as const
  const field = fields[rng.int(fields.length)] as (typeof fields)[number]
  switch (field) {
    case 'version':
      log[at + 8] = rng.int(4)
      log[at + 9] = rng.int(4) === 0 ? rng.int(256) : 0
      break
    case 'segmentSize':
      u32(log, at + 12, rng.int(2) === 0 ? 2 ** (10 + rng.int(14)) : rng.int(0x7fffffff))
      break
    case 'baseLsn':
      u64(log, at + 16, rng.int(2) === 0 ? rng.int(64) * S : evilU64(rng, getU64(log, at + 16)))
      break
    case 'maxStable':
      u64(log, at + 24, evilU64(rng, getU64(log, at + 24)))
      break
    case 'logId':
      u64(log, at + 32, evilU64(rng, getU64(log, at + 32)))
      break
    case 'firstLsn':
      u64(log, at + 40, Math.min(getU64(log, at + 16), evilU64(rng, getU64(log, at + 40))))
      break
    case 'reserved':
      log[at + 10] = 1 + rng.int(255)
      break
    case 'baseAndFirst': {
      // A plausible far-away segment: the log would start there.
      const base = (rng.int(1 << 20) + 64) * S
      u64(log, at + 16, base)
      u64(log, at + 40, base)
      break
    }
  }
  restampSegmentHeader(log, at)
  put(m, 'log', log)
  m.isCrcFixed = true
  m.labels.push(`crcSegmentHeader.${field}`)
}

const fixedConf: Mutation = (m, rng) => {
  const conf = bytesOf(m, 'conf')
  if (conf.length !== 64) return
  const field = rng.int(5)
  if (field === 0) u32(conf, 12, rng.int(2) === 0 ? 2 ** (10 + rng.int(14)) : rng.int(0x7fffffff))
  else if (field === 1) u64(conf, 16, evilU64(rng, getU64(conf, 16)))
  else if (field === 2) u64(conf, 24, evilU64(rng, 0))
  else if (field === 3) conf[8 + rng.int(2)] = rng.int(256)
  else conf[32 + rng.int(28)] = 1 + rng.int(255)
  u32(conf, 60, crc32(conf, 0, 60))
  put(m, 'conf', conf)
  m.isCrcFixed = true
  m.labels.push(`crcConf.${['segmentSize', 'logId', 'createdAt', 'version', 'reserved'][field]}`)
}

const fixedWitness: Mutation = (m, rng, img) => {
  const w = m.files.get('witness')?.slice() ?? new Uint8Array(32)
  if (!m.files.has('witness')) {
    // A witness where none was: the crashed shape gains a claim about its stable LSN.
    u32(w, 0, 0x54575342)
    w[4] = 1
    u64(w, 8, img.logId)
  }
  const field = rng.int(3)
  if (field === 0) u64(w, 16, evilU64(rng, getU64(w, 16)))
  else if (field === 1) u64(w, 8, evilU64(rng, getU64(w, 8)))
  else w[4] = rng.int(256)
  u32(w, 28, crc32(w, 0, 28))
  put(m, 'witness', w)
  m.isCrcFixed = true
  m.labels.push(`crcWitness.${['stableLsn', 'logId', 'version'][field]}`)
}

/** A blob's header (size, id, log id) or its content changed; the pointer's CRC fixed too. */
const fixedBlob: Mutation = (m, rng, img) => {
  const blobs = [...m.files.keys()].filter((n) => /^blobs\/[0-9a-f]{16}$/.test(n))
  if (blobs.length === 0) return
  const name = blobs[rng.int(blobs.length)] as string
  const b = bytesOf(m, name)
  if (b.length < 32) return
  const how = rng.int(4)
  if (how === 0) u64(b, 24, evilU64(rng, getU64(b, 24)))
  else if (how === 1) u64(b, 16, evilU64(rng, getU64(b, 16)))
  else if (how === 2) u64(b, 8, evilU64(rng, getU64(b, 8)))
  if (how < 3) {
    u32(b, 0, crc32(b, 4, 32))
    put(m, name, b)
  } else {
    // Content changed, and the pointer that names it carries the new content CRC.
    if (b.length > 32) {
      const at = 32 + rng.int(b.length - 32)
      b[at] = (b[at] as number) ^ (1 << rng.int(8))
    }
    put(m, name, b)
    const S = segmentBytesOf(m, img)
    const log = bytesOf(m, 'log')
    const id = Number.parseInt(name.slice(6), 16)
    const ptr = messagesOf(log, S).find(
      (x) => x.kind === 4 && x.bodyBytes === 20 && getU64(log, x.pos + x.headerBytes) === id,
    )
    if (ptr !== undefined) {
      const body = log.slice(ptr.pos + ptr.headerBytes, ptr.pos + ptr.headerBytes + 20)
      u32(body, 16, crc32(b, 32, b.length))
      put(m, 'log', rewriteMessage(log, ptr, S, { ...ptr, body }))
    }
  }
  m.isCrcFixed = true
  m.labels.push(`crcBlob.${['size', 'id', 'logId', 'content'][how]}`)
}

/** A valid tail journal (docs/FORMAT.md "tail.journal") whose extents point anywhere. */
const fixedTailJournal: Mutation = (m, rng, img) => {
  const log = m.files.get('log') ?? new Uint8Array(0)
  const count = 1 + rng.int(3)
  const extents: Array<{ position: number; bytes: Uint8Array }> = []
  for (let i = 0; i < count; i++) {
    const len = rng.int(600)
    let position: number
    const where = rng.int(4)
    if (where === 0) position = rng.int(log.length + 1)
    else if (where === 1) position = log.length + rng.int(4096)
    else position = evilU64(rng, log.length) % 2 ** 53
    const bytes =
      rng.int(2) === 0 || log.length === 0
        ? randomBytes(rng, len)
        : log.slice(rng.int(log.length), rng.int(log.length) + len)
    extents.push({ position, bytes })
  }
  const bodyBytes = extents.reduce((n, e) => n + 12 + e.bytes.length, 0)
  const b = new Uint8Array(32 + bodyBytes)
  let p = 32
  for (const e of extents) {
    u64(b, p, e.position)
    u32(b, p + 8, e.bytes.length)
    b.set(e.bytes, p + 12)
    p += 12 + e.bytes.length
  }
  u32(b, 0, 0x4a545342)
  b[4] = 1
  u64(b, 8, img.logId)
  u32(b, 16, rng.int(8) === 0 ? rng.int(0x7fffffff) : count)
  u64(b, 20, bodyBytes)
  u32(b, 28, crc32(b, 4, 28, crc32(b, 32, b.length)))
  put(m, 'tail.journal', b)
  m.isCrcFixed = true
  m.labels.push(
    `crcTailJournal.${extents.every((e) => e.position + e.bytes.length <= log.length) ? 'inside' : 'outside'}`,
  )
}

const CRC_FIXING: ReadonlyArray<[Mutation, number]> = [
  [fixedMessage, 5],
  [fixedSegmentHeader, 4],
  [fixedConf, 1],
  [fixedWitness, 1],
  [fixedBlob, 1],
  [fixedTailJournal, 1],
]

// ---- CRC-fixing mutations of a database folder (page records and checkpoints) ----

/** A LEB128 varint (the tree pages' encoding, docs/DESIGN.md "Tree: node format"). */
function readLeb(b: Uint8Array, at: number, end: number): { value: number; bytes: number } | undefined {
  let value = 0
  let scale = 1
  for (let i = 0; i < 8 && at + i < end; i++) {
    const x = b[at + i] as number
    value += (x & 0x7f) * scale
    if ((x & 0x80) === 0) return { value, bytes: i + 1 }
    scale *= 128
  }
  return undefined
}

function writeLeb(b: Uint8Array, at: number, v: number, bytes: number): void {
  for (let i = 0; i < bytes; i++) {
    b[at + i] = (v % 128) | (i < bytes - 1 ? 0x80 : 0)
    v = Math.floor(v / 128)
  }
}

const lebBytes = (v: number): number => (v < 128 ? 1 : 1 + lebBytes(Math.floor(v / 128)))

/** The page-id fields of an index node or META page body (offset, bytes), after its tag. */
function pidFieldsOf(page: Uint8Array): Array<{ at: number; bytes: number; value: number }> | undefined {
  const out: Array<{ at: number; bytes: number; value: number }> = []
  const tag = page[0]
  let at = 1
  const leb = (): { value: number; bytes: number } | undefined => {
    const v = readLeb(page, at, page.length)
    if (v !== undefined) at += v.bytes
    return v
  }
  const pid = (): boolean => {
    const start = at
    const v = leb()
    if (v === undefined) return false
    out.push({ at: start, bytes: v.bytes, value: v.value })
    return true
  }
  const skipBytes = (): boolean => {
    const n = leb()
    if (n === undefined || at + n.value > page.length) return false
    at += n.value
    return true
  }
  if (tag === 0x02) {
    const n = leb()
    if (n === undefined || n.value < 1 || !pid()) return undefined
    for (let i = 1; i < n.value; i++) if (!skipBytes() || !pid()) return undefined
  } else if (tag === 0x03) {
    if (!pid()) return undefined
    const n = leb()
    if (n === undefined) return undefined
    for (let i = 0; i < n.value; i++) if (!skipBytes() || !pid()) return undefined
  } else {
    return undefined
  }
  return out
}

/**
 * A tree page (an index node or the META catalog) in a page record gets a hostile page id,
 * its message's CRC recomputed: itself or page 0/1 (a cycle, or a child that is no tree
 * node), a sibling (a shared child), an id past every page, or a huge id (the record grows,
 * and the messages after it no longer parse).
 */
const fixedTreePage: Mutation = (m, rng, img) => {
  const S = segmentBytesOf(m, img)
  const log = bytesOf(m, 'log')
  const candidates: Array<{
    msg: MessageAt
    pidAt: number
    pid: number
    fields: NonNullable<ReturnType<typeof pidFieldsOf>>
  }> = []
  for (const msg of messagesOf(log, S)) {
    if (msg.kind !== 3 || msg.bodyBytes < 3) continue // a Record
    const body = log.subarray(msg.pos + msg.headerBytes, msg.pos + msg.headerBytes + msg.bodyBytes)
    if (body[0] !== 1) continue // Replace: a whole page follows the page id
    const pid = decodeVarint(body, 1, body.length)
    if (pid === undefined) continue
    const fields = pidFieldsOf(body.subarray(1 + pid.bytes))
    if (fields !== undefined && fields.length > 0)
      candidates.push({ msg, pidAt: 1 + pid.bytes, pid: pid.value, fields })
  }
  if (candidates.length === 0) return
  const c = candidates[rng.int(candidates.length)] as (typeof candidates)[number]
  const body = log.slice(c.msg.pos + c.msg.headerBytes, c.msg.pos + c.msg.headerBytes + c.msg.bodyBytes)
  const f = c.fields[rng.int(c.fields.length)] as (typeof c.fields)[number]
  const sibling = c.fields[rng.int(c.fields.length)] as (typeof c.fields)[number]
  const kinds = ['self', 'meta', 'counter', 'sibling', 'pastEnd', 'huge'] as const
  const kind = kinds[rng.int(kinds.length)] as (typeof kinds)[number]
  const value = {
    self: c.pid,
    meta: 0,
    counter: 1,
    sibling: sibling.value,
    pastEnd: 128 ** f.bytes - 1,
    huge: 2 ** 40 + rng.int(1000),
  }[kind]
  let out: Uint8Array
  if (lebBytes(value) === f.bytes) {
    writeLeb(body, c.pidAt + f.at, value, f.bytes)
    out = body
  } else {
    // Another length: the page grows or shrinks, so does its record.
    const page = body.subarray(c.pidAt)
    const n = lebBytes(value)
    out = new Uint8Array(body.length - f.bytes + n)
    out.set(body.subarray(0, c.pidAt + f.at))
    writeLeb(out, c.pidAt + f.at, value, n)
    out.set(page.subarray(f.at + f.bytes), c.pidAt + f.at + n)
  }
  put(
    m,
    'log',
    rewriteMessage(log, c.msg, S, {
      kind: 3,
      bodyBytes: out.length,
      segmentNumber: c.msg.segmentNumber,
      id: c.msg.id,
      body: out,
    }),
  )
  m.isCrcFixed = true
  m.labels.push(`crcTreePage.${kind}`)
}

/**
 * A checkpoint field changed, both its CRCs recomputed (docs/FORMAT.md, "Checkpoints"):
 * the cut, page count, next page id, body length or summary offset; an index entry; a
 * byte of the body (fragment lists: counts, LSNs) or of the summary.
 */
const fixedCheckpoint: Mutation = (m, rng) => {
  const names = [...m.files.keys()].filter((n) => n.startsWith('checkpoint-'))
  if (names.length === 0) return
  const name = names[rng.int(names.length)] as string
  const b = bytesOf(m, name)
  if (b.length < 84) return
  const fields = ['cut', 'pageCount', 'nextPid', 'bodyBytes', 'summaryAt', 'index', 'body'] as const
  const field = fields[rng.int(fields.length)] as (typeof fields)[number]
  const at = { cut: 24, pageCount: 32, nextPid: 40, bodyBytes: 48, summaryAt: 56 } as Record<string, number>
  if (field === 'index') {
    const nextPid = Math.min(getU64(b, 40), Math.floor((b.length - 84) / 4))
    if (nextPid > 0)
      u32(b, 80 + 4 * rng.int(nextPid), rng.int(2) === 0 ? rng.int(b.length) : evilU64(rng, 0) % TWO_32)
  } else if (field === 'body') {
    const i = 80 + rng.int(b.length - 84)
    b[i] = rng.int(2) === 0 ? rng.int(256) : (b[i] as number) ^ (1 << rng.int(8))
  } else {
    const k = at[field] as number
    u64(b, k, evilU64(rng, getU64(b, k)))
  }
  u32(b, 72, (crc32(b, 0, 72) ^ 0xffffffff) >>> 0)
  u32(b, b.length - 4, (crc32(b, 80, b.length - 4) ^ 0xffffffff) >>> 0)
  put(m, name, b)
  m.isCrcFixed = true
  m.labels.push(`crcCheckpoint.${field}`)
}

const CRC_FIXING_DB: ReadonlyArray<[Mutation, number]> = [
  [fixedTreePage, 4],
  [fixedCheckpoint, 4],
  [fixedMessage, 2],
  [fixedSegmentHeader, 1],
]

/**
 * mutate() for a database folder: the same damage, and in half the cases a CRC-fixing
 * change to a tree page, a checkpoint, a message or a segment header.
 */
export function mutateDb(img: DbImage, other: DbImage, rng: Prng): Mutated {
  const m: Mutated = { files: new Map(img.files), labels: [], isCrcFixed: false, touchedWitness: false }
  const n = rng.int(4) === 0 ? 2 : 1
  for (let i = 0; i < n; i++) {
    const f = rng.int(2) === 0 ? weighted(rng, CRC_FIXING_DB) : weighted(rng, DAMAGE)
    f(m, rng, img, other)
  }
  if (m.labels.length === 0) bitFlips(m, rng, img, other)
  return m
}

function weighted(rng: Prng, table: ReadonlyArray<[Mutation, number]>): Mutation {
  const total = table.reduce((n, [, w]) => n + w, 0)
  let r = rng.int(total)
  for (const [f, w] of table) {
    if (r < w) return f
    r -= w
  }
  return (table[0] as [Mutation, number])[0]
}

/**
 * Applies 1–3 mutations to a copy of `img` (one in most cases). About a third of the cases
 * get a CRC-fixing mutation. Deterministic in `rng`.
 */
export function mutate(img: DbImage, other: DbImage, rng: Prng): Mutated {
  const m: Mutated = { files: new Map(img.files), labels: [], isCrcFixed: false, touchedWitness: false }
  const n = rng.int(4) === 0 ? 2 + rng.int(2) : 1
  for (let i = 0; i < n; i++) {
    const f = rng.int(3) === 0 ? weighted(rng, CRC_FIXING) : weighted(rng, DAMAGE)
    f(m, rng, img, other)
  }
  if (m.labels.length === 0) bitFlips(m, rng, img, other)
  return m
}
