// Checkpoints: the page table (page id → fragments on the log) as of one LSN, so open
// replays only the log written since, not the whole database (digest §9 W5).
//
// A checkpoint is only an optimisation. Open ignores temp files, skips a checkpoint that
// fails any check and falls back to the previous one or to a full scan of the log, so a
// crash while writing one never fails an open (digest §9 W3). Layout: docs/FORMAT.md,
// "Checkpoints".

import { CorruptionError } from '../errors.js'
import type { Storage } from '../io/index.js'
import { readVarint, writeVarint } from '../log/index.js'
import { crc32 } from '../util/crc32.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'

const MAGIC = [0x42, 0x53, 0x43, 0x4b, 0x50, 0x54, 0x0a, 0x00] // "BSCKPT\n\0"
/**
 * 3 adds each segment's live blob bytes to the summary (B-PC5). Version 2 files are still
 * read: open then finds those bytes by decoding the entries (docs/FORMAT.md, "Checkpoints").
 */
const VERSION = 3
const OLDEST_READABLE_VERSION = 2
/** Figures per segment in the summary, by version. */
const summaryFields = (version: number): number => (version >= 3 ? 4 : 3)
const HEADER_BYTES = 80
const NAME = /^checkpoint-([0-9a-f]{16})$/

/**
 * A checkpoint as read at open: checked (CRCs, sizes, summary) but not decoded. Pages are
 * decoded one at a time when first used (`takePage`), so opening a database of a million
 * pages builds no million objects (digest §9 W5, W10).
 */
export interface Checkpoint {
  name: string
  /** Every record below this LSN is reflected; replay starts here. */
  replayFrom: number
  nextPid: number
  pageCount: number
  /**
   * Per segment at the cut, as [base, live bytes, live fragments, live blob bytes, ...]. A
   * version-2 file has no blob figure: it reads as 0 and `hasSegmentBlobBytes` is false.
   */
  summary: number[]
  hasSegmentBlobBytes: boolean
  /** Bytes of the blob files of the pages at the cut. */
  liveBlobBytes: number
  bytes: Uint8Array
  view: DataView
  bodyAt: number
  bodyEnd: number
}

export function checkpointName(replayFrom: number): string {
  return `checkpoint-${replayFrom.toString(16).padStart(16, '0')}`
}

/** Growable byte buffer (the body's size is not known up front). */
class Writer {
  buf: Uint8Array
  at = 0
  constructor(size: number) {
    this.buf = new Uint8Array(Math.max(size, 1024))
  }
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
  raw(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.at)
    this.at += b.length
  }
}

function putU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % 2 ** 32, true)
  dv.setUint32(at + 4, Math.floor(v / 2 ** 32), true)
}

function getU64(dv: DataView, at: number): number {
  return dv.getUint32(at, true) + dv.getUint32(at + 4, true) * 2 ** 32
}

const inverted = (d: Uint8Array, start: number, end: number): number =>
  (crc32(d, start, end) ^ 0xffffffff) >>> 0

/** What the encoder asks about each page id below nextPid. */
export interface CheckpointSource {
  /** The page's fragments and blob bytes, or undefined when the id holds no page. */
  page(pid: number): { frags: readonly number[]; blobBytes: number } | undefined
  /** The page's encoded bytes in an older checkpoint it was never decoded from, if so. */
  raw(pid: number): Uint8Array | undefined
}

/**
 * Encodes the page table. Layout (docs/FORMAT.md, "Checkpoints"): header, an index of
 * body offsets by page id, the body (one entry per page), the per-segment summary, a CRC.
 */
export function encodeCheckpoint(
  logId: number,
  replayFrom: number,
  nextPid: number,
  source: CheckpointSource,
  summary: readonly number[],
  liveBlobBytes: number,
  version = VERSION,
): Uint8Array {
  // Older versions are written only by tests of the upgrade path.
  const fields = summaryFields(version)
  const indexAt = HEADER_BYTES
  const bodyAt = indexAt + 4 * nextPid
  const w = new Writer(bodyAt + 16 * nextPid + 64)
  w.at = bodyAt
  const index = new Uint32Array(nextPid)
  let count = 0
  for (let pid = 0; pid < nextPid; pid++) {
    const raw = source.raw(pid)
    if (raw !== undefined) {
      index[pid] = w.at - bodyAt + 1
      w.raw(raw)
      count++
      continue
    }
    const p = source.page(pid)
    if (p === undefined) continue
    index[pid] = w.at - bodyAt + 1
    count++
    const frags = p.frags
    w.varint(p.blobBytes)
    w.varint(frags.length / 2)
    const base = frags[0] as number
    for (let i = 0; i < frags.length; i += 2) {
      w.varint(i === 0 ? base : (frags[i] as number) - base)
      w.varint(frags[i + 1] as number)
    }
  }
  const summaryAt = w.at
  w.varint(liveBlobBytes)
  w.varint(summary.length / 4)
  for (let i = 0; i < summary.length; i += 4) {
    for (let k = 0; k < fields; k++) w.varint(summary[i + k] as number)
  }
  w.ensure(4)
  const end = w.at
  const out = w.buf
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength)
  out.set(MAGIC, 0)
  dv.setUint16(8, version, true)
  putU64(dv, 16, logId)
  putU64(dv, 24, replayFrom)
  putU64(dv, 32, count)
  putU64(dv, 40, nextPid)
  putU64(dv, 48, summaryAt - bodyAt)
  putU64(dv, 56, summaryAt)
  dv.setUint32(72, inverted(out, 0, 72), true)
  for (let pid = 0; pid < nextPid; pid++) dv.setUint32(indexAt + 4 * pid, index[pid] as number, true)
  dv.setUint32(end, inverted(out, HEADER_BYTES, end), true)
  return out.subarray(0, end + 4)
}

/** Why a checkpoint was not used (for stats and tests). */
export type CheckpointProblem = string

/** Checks a checkpoint's framing and reads its summary; pages stay encoded. */
export function openCheckpoint(
  bytes: Uint8Array,
  logId: number,
  name: string,
): Checkpoint | CheckpointProblem {
  if (bytes.length < HEADER_BYTES + 4) return 'too short'
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return 'bad magic'
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (view.getUint32(72, true) !== inverted(bytes, 0, 72)) return 'header CRC mismatch'
  const version = view.getUint16(8, true)
  if (version < OLDEST_READABLE_VERSION || version > VERSION) return 'unknown version'
  if (getU64(view, 16) !== logId) return 'belongs to another log'
  const replayFrom = getU64(view, 24)
  const pageCount = getU64(view, 32)
  const nextPid = getU64(view, 40)
  const bodyBytes = getU64(view, 48)
  const summaryAt = getU64(view, 56)
  const bodyAt = HEADER_BYTES + 4 * nextPid
  const end = bytes.length - 4
  if (
    !Number.isSafeInteger(replayFrom) ||
    bodyAt > end ||
    bodyAt + bodyBytes !== summaryAt ||
    summaryAt > end
  ) {
    return 'bad lengths'
  }
  if (view.getUint32(end, true) !== inverted(bytes, HEADER_BYTES, end)) return 'body CRC mismatch'
  if (pageCount > nextPid) return 'page count too large'
  const summary: number[] = []
  const out = { bytes: 0 }
  let at = summaryAt
  const next = (): number => {
    const v = readVarint(bytes, at, end, out)
    if (v < 0) throw new RangeError('truncated varint')
    at += out.bytes
    return v
  }
  const fields = summaryFields(version)
  let liveBlobBytes: number
  try {
    liveBlobBytes = next()
    const n = next()
    if (n > (end - at) / fields) return 'bad summary'
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < fields; k++) summary.push(next())
      if (fields === 3) summary.push(0)
    }
  } catch {
    return 'truncated summary'
  }
  if (at !== end) return 'trailing bytes'
  let segmentBlobBytes = 0
  for (let i = 3; i < summary.length; i += 4) segmentBlobBytes += summary[i] as number
  // Every live blob's pointer lies in a segment of the log at the cut.
  if (fields === 4 && segmentBlobBytes !== liveBlobBytes) return 'bad summary'
  return {
    name,
    replayFrom,
    nextPid,
    pageCount,
    summary,
    hasSegmentBlobBytes: fields === 4,
    liveBlobBytes,
    bytes,
    view,
    bodyAt,
    bodyEnd: summaryAt,
  }
}

/** Where page `pid`'s entry starts in the body, or -1 when the checkpoint has none for it. */
function entryAt(ck: Checkpoint, pid: number): number {
  if (pid >= ck.nextPid) return -1
  const v = ck.view.getUint32(HEADER_BYTES + 4 * pid, true)
  return v === 0 ? -1 : ck.bodyAt + v - 1
}

export function hasPage(ck: Checkpoint, pid: number): boolean {
  return entryAt(ck, pid) >= 0
}

/** The ids below `ck.nextPid` that hasPage() denies, ascending (a native scan of the index). */
export function* unlistedIds(ck: Checkpoint): Generator<number> {
  const at = ck.bytes.byteOffset + HEADER_BYTES
  if (at % 4 !== 0) {
    for (let pid = 0; pid < ck.nextPid; pid++) if (!hasPage(ck, pid)) yield pid
    return
  }
  // Zero or not reads the same in either byte order.
  const index = new Uint32Array(ck.bytes.buffer, at, ck.nextPid)
  for (let pid = index.indexOf(0); pid !== -1; pid = index.indexOf(0, pid + 1)) yield pid
}

/** Forgets page `pid` in the checkpoint (it was decoded, rewritten or freed since). */
export function dropPage(ck: Checkpoint, pid: number): void {
  if (pid < ck.nextPid) ck.view.setUint32(HEADER_BYTES + 4 * pid, 0, true)
}

/**
 * Decodes page `pid`'s entry. The CRC passed at open, so a malformed entry here means the
 * writer had a bug: it is reported as corruption, never guessed around.
 */
export function readPage(
  ck: Checkpoint,
  pid: number,
): { frags: number[]; blobBytes: number; end: number } | undefined {
  let at = entryAt(ck, pid)
  if (at < 0) return undefined
  const out = { bytes: 0 }
  const bytes = ck.bytes
  const next = (): number => {
    const v = readVarint(bytes, at, ck.bodyEnd, out)
    if (v < 0) throw new CorruptionError(`checkpoint ${ck.name}: entry of page ${pid} is truncated`)
    at += out.bytes
    return v
  }
  const blobBytes = next()
  const n = next()
  if (n < 1 || n > (ck.bodyEnd - at) / 2)
    throw new CorruptionError(`checkpoint ${ck.name}: bad entry of page ${pid}`)
  const frags = new Array<number>(n * 2)
  let base = 0
  for (let k = 0; k < n; k++) {
    const v = next()
    const lsn = k === 0 ? v : base + v
    if (k === 0) base = v
    else if (lsn <= (frags[(k - 1) * 2] as number)) {
      throw new CorruptionError(`checkpoint ${ck.name}: fragments of page ${pid} out of order`)
    }
    if (lsn >= ck.replayFrom)
      throw new CorruptionError(`checkpoint ${ck.name}: page ${pid} lies past the cut`)
    frags[k * 2] = lsn
    frags[k * 2 + 1] = next()
  }
  return { frags, blobBytes, end: at }
}

/**
 * The LSN of page `pid`'s base (its first fragment) without decoding the entry, or -1 when
 * the checkpoint has none for it: cleaning asks this of every page not decoded yet, and
 * decoding them all would undo the lazy open. Checked as readPage() checks it.
 */
export function pageBaseLsn(ck: Checkpoint, pid: number): number {
  let at = entryAt(ck, pid)
  if (at < 0) return -1
  const out = { bytes: 0 }
  let v = 0
  for (let k = 0; k < 3; k++) {
    v = readVarint(ck.bytes, at, ck.bodyEnd, out)
    if (v < 0) throw new CorruptionError(`checkpoint ${ck.name}: entry of page ${pid} is truncated`)
    at += out.bytes
  }
  if (v >= ck.replayFrom) throw new CorruptionError(`checkpoint ${ck.name}: page ${pid} lies past the cut`)
  return v
}

/** The encoded entry of page `pid`, for copying into the next checkpoint unchanged. */
export function rawPage(ck: Checkpoint, pid: number): Uint8Array | undefined {
  const at = entryAt(ck, pid)
  if (at < 0) return undefined
  const p = readPage(ck, pid) as { end: number }
  return ck.bytes.subarray(at, p.end)
}

/** Checkpoint names in the folder, newest first; temp files are not checkpoints. */
export async function listCheckpoints(storage: Storage): Promise<string[]> {
  return checkpointNames(await storage.list(''))
}

/** The checkpoint files among a folder's names, newest first. */
function checkpointNames(names: readonly string[]): string[] {
  return names
    .filter((n) => NAME.test(n))
    .sort()
    .reverse()
}

export function isCheckpointTemp(name: string): boolean {
  return name.startsWith('checkpoint-') && name.endsWith('.tmp')
}

/** What an open finds of the checkpoints in the folder, from one listing. */
export interface FoundCheckpoints {
  /** Temp files a crash left (removed once the open is accepted). */
  temps: string[]
  /** Checkpoint files, newest first. */
  names: string[]
  /** The bytes of names[0], being read (a failed read is that file's problem, not the open's). */
  newest: Promise<Uint8Array> | undefined
}

/** Lists the folder once and starts reading the newest checkpoint. */
export async function findCheckpoints(storage: Storage): Promise<FoundCheckpoints> {
  const all = await storage.list('')
  const names = checkpointNames(all)
  const newest = names[0] === undefined ? undefined : readWholeFile(storage, names[0])
  newest?.catch(() => {})
  return { temps: all.filter(isCheckpointTemp), names, newest }
}

export async function readWholeFile(storage: Storage, name: string): Promise<Uint8Array> {
  return (await readFileUpTo(storage, name, Number.POSITIVE_INFINITY)) as Uint8Array
}

/**
 * The bytes of file `name`, or undefined when it is longer than `maxBytes` (a planted file
 * must not make us allocate its size). A file that shrinks while read gives what was read.
 */
export async function readFileUpTo(
  storage: Storage,
  name: string,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  const f = await storage.openFile(name, 'read')
  try {
    const size = await f.size()
    if (size > maxBytes) return undefined
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
    if (KILL_ODDS) maybeKill('pagecache.checkpoint.temp-written')
    await f.datasync()
    if (KILL_ODDS) maybeKill('pagecache.checkpoint.temp-synced')
  } finally {
    await f.close()
  }
  await storage.rename(tmp, name)
  if (KILL_ODDS) maybeKill('pagecache.checkpoint.renamed')
  await storage.syncDir('')
  if (KILL_ODDS) maybeKill('pagecache.checkpoint.dir-synced')
}
