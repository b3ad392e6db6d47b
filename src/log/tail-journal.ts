// The tail journal: a copy of the bytes recovery is about to rewrite in place. Recovery
// rewrites the unwitnessed tail (fsyncgate, docs/DESIGN.md); a power cut in the middle of
// that rewrite could tear bytes that were already durable, so their copy is made durable
// here first, and replayed by the next recovery if it finds the file. docs/FORMAT.md.

import type { Storage, StorageFile } from '../io/index.js'
import { crc32 } from '../util/crc32.js'
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

/**
 * Replays a journal left by a recovery that was cut short: its extents are written back in
 * place and synced. A journal that fails its checks was never complete, so its rewrite had
 * not begun: it is simply removed. Returns the number of extents replayed.
 */
export async function replayTailJournal(storage: Storage, log: StorageFile, logId: number): Promise<number> {
  if (!(await storage.exists(TAIL_JOURNAL))) return 0
  let replayed = 0
  const f = await storage.openFile(TAIL_JOURNAL, 'read')
  try {
    const size = await f.size()
    const header = new Uint8Array(HEADER_BYTES)
    const n = await f.read(header, 0, HEADER_BYTES, 0)
    const bodyBytes = n === HEADER_BYTES ? readU64(header, 20) : -1
    // Never allocate by an untrusted length: the body must be exactly the rest of the file.
    if (readU32(header, 0) === MAGIC && readU64(header, 8) === logId && bodyBytes === size - HEADER_BYTES) {
      const b = new Uint8Array(size)
      b.set(header)
      await f.read(b, HEADER_BYTES, bodyBytes, HEADER_BYTES)
      if (readU32(b, 28) === crc32(b, 4, 28, crc32(b, HEADER_BYTES, b.length))) {
        const count = readU32(b, 16)
        let p = HEADER_BYTES
        for (let i = 0; i < count && p + EXTENT_HEADER_BYTES <= b.length; i++) {
          const position = readU64(b, p)
          const length = readU32(b, p + 8)
          if (position < 0 || p + EXTENT_HEADER_BYTES + length > b.length) break
          await log.write(b, p + EXTENT_HEADER_BYTES, length, position)
          p += EXTENT_HEADER_BYTES + length
          replayed++
        }
        if (replayed > 0) await log.datasync()
      }
    }
  } finally {
    await f.close()
  }
  await storage.unlink(TAIL_JOURNAL)
  await storage.syncDir('')
  return replayed
}
