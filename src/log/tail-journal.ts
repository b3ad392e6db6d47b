// The tail journal: a copy of the bytes recovery is about to rewrite in place. Recovery
// rewrites the unwitnessed tail (fsyncgate, docs/DESIGN.md); a power cut in the middle of
// that rewrite could tear bytes that were already durable, so their copy is made durable
// here first, and replayed by the next recovery if it finds the file. docs/FORMAT.md.

import { CorruptionError, wrapIoError } from '../errors.js'
import type { Storage, StorageFile } from '../io/index.js'
import { crc32 } from '../util/crc32.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { readU32, readU64, writeU32, writeU64 } from './format.js'

export const TAIL_JOURNAL = 'tail.journal'
const HEADER_BYTES = 32
const EXTENT_HEADER_BYTES = 12
const MAGIC = 0x4a545342 // "BSTJ" little-endian

export interface Extent {
  /** Byte offset in the log file. */
  position: number
  bytes: Uint8Array
}

export async function writeTailJournal(storage: Storage, logId: number, extents: Extent[]): Promise<void> {
  const bodyBytes = extents.reduce((n, e) => n + EXTENT_HEADER_BYTES + e.bytes.length, 0)
  const b = new Uint8Array(HEADER_BYTES + bodyBytes)
  let p = HEADER_BYTES
  for (const e of extents) {
    writeU64(b, p, e.position)
    writeU32(b, p + 8, e.bytes.length)
    b.set(e.bytes, p + EXTENT_HEADER_BYTES)
    p += EXTENT_HEADER_BYTES + e.bytes.length
  }
  writeU32(b, 0, MAGIC)
  b[4] = 1
  writeU64(b, 8, logId)
  writeU32(b, 16, extents.length)
  writeU64(b, 20, bodyBytes)
  writeU32(b, 28, crc32(b, 4, 28, crc32(b, HEADER_BYTES, b.length)))
  if (await storage.exists(TAIL_JOURNAL)) await storage.unlink(TAIL_JOURNAL)
  const f = await storage.openFile(TAIL_JOURNAL, 'create')
  try {
    await f.write(b, 0, b.length, 0)
    await f.datasync()
  } finally {
    await f.close()
  }
  await storage.syncDir('')
}

/** Journal bytes read at a time while checking its CRC: the journal is never read whole. */
const CHECK_CHUNK_BYTES = 64 * 1024

/** One extent of a journal found at open: `length` bytes for log offset `position`, at `at` in the journal. */
export interface JournalExtent {
  position: number
  length: number
  at: number
}

/**
 * A journal found at open, checked but not yet replayed: recovery reads the log through it
 * (repaired-file.ts) and the replay waits until the open is accepted. `file` is the open
 * journal (undefined when there is nothing to replay); the journal is removed either way.
 */
export interface FoundJournal {
  file: StorageFile | undefined
  extents: JournalExtent[]
}

/**
 * Checks a journal left by a recovery that was cut short, without writing anything. A
 * journal that fails its checks (magic, log id, length, CRC) was never complete, so its
 * rewrite had not begun: it is only to be removed (no extents). A journal that passes them
 * but whose extents are not ones recovery writes (count or lengths that do not add up, an
 * extent empty, longer than a segment or crossing a slot boundary, a position beyond 2^53)
 * is CorruptionError, and the folder is left as it was. An extent wholly past the log's
 * size rounded up to a segment is skipped: the bytes there were never synced (a datasync
 * makes the file size durable with them), and replaying it could grow the file without
 * bound (docs/FORMAT.md, "tail.journal"). Memory use is a chunk and the extent list (12
 * bytes of journal each), whatever the journal says; the extents' bytes stay in the file.
 */
export async function readTailJournal(
  storage: Storage,
  logBytes: number,
  logId: number,
  segmentBytes: number,
): Promise<FoundJournal | undefined> {
  if (!(await storage.exists(TAIL_JOURNAL))) return undefined
  const S = segmentBytes
  const label = `${storage.location}/${TAIL_JOURNAL}`
  const f = await storage.openFile(TAIL_JOURNAL, 'read')
  const kept: JournalExtent[] = []
  try {
    const size = await f.size()
    const header = new Uint8Array(HEADER_BYTES)
    const n = await readAll(f, header, 0)
    const bodyBytes = n === HEADER_BYTES ? readU64(header, 20) : -1
    const isValid =
      readU32(header, 0) === MAGIC &&
      readU64(header, 8) === logId &&
      bodyBytes === size - HEADER_BYTES &&
      readU32(header, 28) === crc32(header, 4, 28, await bodyCrc(f, size))
    if (isValid) {
      const count = readU32(header, 16)
      const logEnd = Math.ceil(logBytes / S) * S
      const extentHeader = new Uint8Array(EXTENT_HEADER_BYTES)
      let p = HEADER_BYTES
      for (let i = 0; i < count; i++) {
        const bad = (why: string): CorruptionError =>
          new CorruptionError(`tail journal extent ${i} of ${count} ${why}`, { file: label, offset: p })
        if (p + EXTENT_HEADER_BYTES > size) throw bad('lies past the end of the journal')
        await readAll(f, extentHeader, p)
        const position = readU64(extentHeader, 0)
        const length = readU32(extentHeader, 8)
        if (length === 0 || length > S) throw bad(`has a length of ${length} bytes`)
        if (p + EXTENT_HEADER_BYTES + length > size) throw bad('lies past the end of the journal')
        if (position < 0 || Math.floor(position / S) !== Math.floor((position + length - 1) / S))
          throw bad(`at log offset ${position} is not inside one segment slot`)
        if (position + length <= logEnd) kept.push({ position, length, at: p + EXTENT_HEADER_BYTES })
        p += EXTENT_HEADER_BYTES + length
      }
      if (p !== size) {
        throw new CorruptionError(`tail journal holds ${size - p} bytes after its ${count} extents`, {
          file: label,
          offset: p,
        })
      }
    }
  } catch (e) {
    await f.close().catch(() => {})
    throw e
  }
  if (kept.length > 0) return { file: f, extents: kept }
  await f.close()
  return { file: undefined, extents: [] }
}

/**
 * Replays a checked journal: its extents are written back in place and synced, then the
 * journal is removed (and the folder synced). Idempotent: a power cut anywhere in here
 * leaves the journal, or its extents durable in the log. Closes `found.file`. Returns the
 * number of extents replayed.
 */
export async function applyTailJournal(
  storage: Storage,
  log: StorageFile,
  found: FoundJournal,
  segmentBytes: number,
  logLabel: string,
): Promise<number> {
  const f = found.file
  if (f !== undefined) {
    try {
      const longest = found.extents.reduce((n, e) => Math.max(n, e.length), 0)
      const bytes = new Uint8Array(Math.min(segmentBytes, longest))
      for (const e of found.extents) {
        await readAll(f, bytes.subarray(0, e.length), e.at)
        try {
          await log.write(bytes, 0, e.length, e.position)
        } catch (err) {
          throw wrapIoError(err, 'replaying the tail journal', logLabel)
        }
      }
      if (found.extents.length > 0) await log.datasync()
      if (KILL_ODDS && found.extents.length > 0) maybeKill('log.open.tail-journal-replayed')
    } finally {
      await f.close()
    }
  }
  await storage.unlink(TAIL_JOURNAL)
  await storage.syncDir('')
  return found.extents.length
}

/** readTailJournal() then applyTailJournal(): for a recovery that writes at once. */
export async function replayTailJournal(
  storage: Storage,
  log: StorageFile,
  logId: number,
  segmentBytes: number,
  logLabel: string,
): Promise<number> {
  const found = await readTailJournal(storage, await log.size(), logId, segmentBytes)
  return found === undefined ? 0 : applyTailJournal(storage, log, found, segmentBytes, logLabel)
}

/** CRC-32 of the journal's body, read a chunk at a time. */
async function bodyCrc(f: StorageFile, size: number): Promise<number> {
  const chunk = new Uint8Array(Math.min(CHECK_CHUNK_BYTES, Math.max(0, size - HEADER_BYTES)))
  let crc = 0
  for (let p = HEADER_BYTES; p < size; p += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, size - p))
    if ((await readAll(f, part, p)) !== part.length) return -1
    crc = crc32(part, 0, part.length, crc)
  }
  return crc
}

async function readAll(f: StorageFile, into: Uint8Array, position: number): Promise<number> {
  let got = 0
  while (got < into.length) {
    const n = await f.read(into, got, into.length - got, position + got)
    if (n === 0) break
    got += n
  }
  return got
}
