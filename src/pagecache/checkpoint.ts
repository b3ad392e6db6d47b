// Checkpoints: the page table (page id → fragments on the log) as of one LSN, so open
// replays only the log written since, not the whole database (digest §9 W5).
//
// A checkpoint is only an optimisation. Open ignores temp files, skips a checkpoint that
// fails any check and falls back to the previous one or to a full scan of the log, so a
// crash while writing one never fails an open (digest §9 W3). Layout: docs/FORMAT.md,
// "Checkpoints".

import type { Storage } from '../io/index.js'
import { readVarint, writeVarint } from '../log/index.js'
import { crc32 } from '../util/crc32.js'

const MAGIC = [0x42, 0x53, 0x43, 0x4b, 0x50, 0x54, 0x0a, 0x00] // "BSCKPT\n\0"
const VERSION = 1
const HEADER_BYTES = 64
const NAME = /^checkpoint-([0-9a-f]{16})$/

/** One page of a checkpoint: fragments as [lsn, bytes, lsn, bytes, ...], base first. */
export interface CheckpointPage {
  pid: number
  frags: number[]
  /** Size of the base's blob file; 0 when the base is inline. */
  blobBytes: number
}

export interface Checkpoint {
  /** Every record below this LSN is reflected; replay starts here. */
  replayFrom: number
  nextPid: number
  pages: CheckpointPage[]
  name: string
}

export function checkpointName(replayFrom: number): string {
  return `checkpoint-${replayFrom.toString(16).padStart(16, '0')}`
}

/** Growable byte buffer for the body (its size is not known up front). */
class Writer {
  buf = new Uint8Array(1 << 16)
  at = 0
  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.at + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.at))
    this.buf = next
  }
  varint(v: number): void {
    this.ensure(9)
    this.at += writeVarint(this.buf, this.at, v)
  }
}

function putU64(buf: Uint8Array, at: number, v: number): void {
  const dv = new DataView(buf.buffer, buf.byteOffset)
  dv.setUint32(at, v % 2 ** 32, true)
  dv.setUint32(at + 4, Math.floor(v / 2 ** 32), true)
}

function getU64(buf: Uint8Array, at: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset)
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 2 ** 32
}

const inverted = (d: Uint8Array, start: number, end: number): number =>
  (crc32(d, start, end) ^ 0xffffffff) >>> 0

/**
 * Encodes pages given as a visitor, so the page table is walked once without building a
 * copy of it. Fragment LSNs are stored as differences from the base (small varints).
 */
export function encodeCheckpoint(
  logId: number,
  replayFrom: number,
  nextPid: number,
  visit: (emit: (pid: number, frags: readonly number[], blobBytes: number) => void) => void,
): Uint8Array {
  const w = new Writer()
  w.at = HEADER_BYTES
  let count = 0
  visit((pid, frags, blobBytes) => {
    count++
    w.varint(pid)
    w.varint(blobBytes)
    w.varint(frags.length / 2)
    const base = frags[0] as number
    for (let i = 0; i < frags.length; i += 2) {
      w.varint(i === 0 ? base : (frags[i] as number) - base)
      w.varint(frags[i + 1] as number)
    }
  })
  w.ensure(4)
  const bodyEnd = w.at
  const out = w.buf
  out.set(MAGIC, 0)
  new DataView(out.buffer).setUint16(8, VERSION, true)
  putU64(out, 16, logId)
  putU64(out, 24, replayFrom)
  putU64(out, 32, count)
  putU64(out, 40, nextPid)
  putU64(out, 48, bodyEnd - HEADER_BYTES)
  new DataView(out.buffer).setUint32(56, inverted(out, 0, 56), true)
  new DataView(out.buffer).setUint32(bodyEnd, inverted(out, HEADER_BYTES, bodyEnd), true)
  return out.subarray(0, bodyEnd + 4)
}

/** Why a checkpoint was not used (for stats and tests); undefined when it decoded. */
export type CheckpointProblem = string

export function decodeCheckpoint(
  bytes: Uint8Array,
  logId: number,
  name: string,
): Checkpoint | CheckpointProblem {
  if (bytes.length < HEADER_BYTES + 4) return 'too short'
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return 'bad magic'
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (dv.getUint32(56, true) !== inverted(bytes, 0, 56)) return 'header CRC mismatch'
  if (dv.getUint16(8, true) !== VERSION) return 'unknown version'
  if (getU64(bytes, 16) !== logId) return 'belongs to another log'
  const replayFrom = getU64(bytes, 24)
  const count = getU64(bytes, 32)
  const nextPid = getU64(bytes, 40)
  const bodyBytes = getU64(bytes, 48)
  const bodyEnd = HEADER_BYTES + bodyBytes
  if (bodyEnd + 4 !== bytes.length) return 'length mismatch'
  if (dv.getUint32(bodyEnd, true) !== inverted(bytes, HEADER_BYTES, bodyEnd)) return 'body CRC mismatch'
  if (!Number.isSafeInteger(replayFrom) || !Number.isSafeInteger(nextPid)) return 'bad header values'
  // Each page takes at least 5 bytes, so a count beyond that cannot be honest.
  if (count > bodyBytes / 5) return 'page count too large'
  const pages: CheckpointPage[] = []
  const out = { bytes: 0 }
  let at = HEADER_BYTES
  const next = (): number => {
    const v = readVarint(bytes, at, bodyEnd, out)
    if (v < 0) throw new RangeError('truncated varint')
    at += out.bytes
    return v
  }
  try {
    let lastPid = -1
    for (let i = 0; i < count; i++) {
      const pid = next()
      const blobBytes = next()
      const n = next()
      if (pid <= lastPid || pid >= nextPid || n < 1 || n > (bodyEnd - at) / 2) return 'bad page entry'
      lastPid = pid
      const frags = new Array<number>(n * 2)
      let base = 0
      for (let k = 0; k < n; k++) {
        const v = next()
        const lsn = k === 0 ? v : base + v
        if (k === 0) base = v
        else if (lsn <= (frags[(k - 1) * 2] as number)) return 'fragments out of order'
        if (lsn >= replayFrom) return 'fragment at or above the replay point'
        frags[k * 2] = lsn
        frags[k * 2 + 1] = next()
      }
      pages.push({ pid, frags, blobBytes })
    }
  } catch {
    return 'truncated body'
  }
  if (at !== bodyEnd) return 'trailing bytes'
  return { replayFrom, nextPid, pages, name }
}

/** Checkpoint names in the folder, newest first; temp files are not checkpoints. */
export async function listCheckpoints(storage: Storage): Promise<string[]> {
  const names = (await storage.list('')).filter((n) => NAME.test(n))
  return names.sort().reverse()
}

export function isCheckpointTemp(name: string): boolean {
  return name.startsWith('checkpoint-') && name.endsWith('.tmp')
}

export async function readWholeFile(storage: Storage, name: string): Promise<Uint8Array> {
  const f = await storage.openFile(name, 'read')
  try {
    const size = await f.size()
    const buf = new Uint8Array(size)
    let got = 0
    while (got < size) {
      const n = await f.read(buf, got, size - got, got)
      if (n === 0) break
      got += n
    }
    return got === size ? buf : buf.subarray(0, got)
  } finally {
    await f.close()
  }
}

/** Writes temp, datasyncs, renames, syncs the folder: a checkpoint appears whole or not at all. */
export async function writeCheckpointFile(storage: Storage, name: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${name}.tmp`
  if (await storage.exists(tmp)) await storage.unlink(tmp)
  const f = await storage.openFile(tmp, 'create')
  try {
    await f.write(bytes, 0, bytes.length, 0)
    await f.datasync()
  } finally {
    await f.close()
  }
  await storage.rename(tmp, name)
  await storage.syncDir('')
}
