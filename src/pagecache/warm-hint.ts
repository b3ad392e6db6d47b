// The warm-up hint: which pages were resident at the last checkpoint or clean close, most
// recently used first, so an open can page them in ahead of the user (as InnoDB's buffer
// pool dump and load). It is only a hint: a missing, damaged, foreign or stale list costs a
// cold start, never an open or a wrong page (pages are still read from the log through the
// page table and its versions). Layout: docs/FORMAT.md, "Warm-up hint".

import type { Storage } from '../io/index.js'
import { crc32 } from '../util/crc32.js'
import { readFileUpTo } from './checkpoint.js'

export const WARM_HINT_NAME = 'warm-pages'
const TEMP_NAME = `${WARM_HINT_NAME}.tmp`
const MAGIC = [0x42, 0x53, 0x57, 0x41, 0x52, 0x4d, 0x0a, 0x00] // "BSWARM\n\0"
const VERSION = 1
const HEADER_BYTES = 32
/**
 * Most page ids a hint holds (16 MiB of file): far above what any cache holds (a page
 * costs more than 160 B of memory), and it bounds what an open reads for a damaged file.
 */
export const MAX_WARM_HINT_PAGES = 4 * 1024 * 1024

const inverted = (b: Uint8Array, start: number, end: number): number =>
  (crc32(b, start, end) ^ 0xffffffff) >>> 0

/** The hint's bytes for `pids` (most recently used first), at most MAX_WARM_HINT_PAGES of them. */
export function encodeWarmHint(logId: number, pids: ArrayLike<number>): Uint8Array {
  let fit = 0
  for (let i = 0; i < pids.length; i++) if ((pids[i] as number) < 2 ** 32) fit++
  const n = Math.min(fit, MAX_WARM_HINT_PAGES)
  const out = new Uint8Array(HEADER_BYTES + 4 * n + 4)
  const dv = new DataView(out.buffer)
  out.set(MAGIC, 0)
  dv.setUint16(8, VERSION, true)
  dv.setUint32(16, logId % 2 ** 32, true)
  dv.setUint32(20, Math.floor(logId / 2 ** 32), true)
  dv.setUint32(24, n, true)
  for (let i = 0, at = 0; at < n; i++) {
    const pid = pids[i] as number
    if (pid < 2 ** 32) dv.setUint32(HEADER_BYTES + 4 * at++, pid, true)
  }
  const end = HEADER_BYTES + 4 * n
  dv.setUint32(end, inverted(out, 0, end), true)
  return out
}

/** The page ids of a hint, or why it is not usable (never throws: a bad hint is ignored). */
export function decodeWarmHint(bytes: Uint8Array, logId: number): number[] | string {
  if (bytes.length < HEADER_BYTES + 4) return 'too short'
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return 'bad magic'
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (dv.getUint16(8, true) !== VERSION) return 'unknown version'
  if (dv.getUint32(16, true) + dv.getUint32(20, true) * 2 ** 32 !== logId) return 'belongs to another log'
  const n = dv.getUint32(24, true)
  if (n > MAX_WARM_HINT_PAGES || bytes.length !== HEADER_BYTES + 4 * n + 4) return 'bad length'
  const end = HEADER_BYTES + 4 * n
  if (dv.getUint32(end, true) !== inverted(bytes, 0, end)) return 'CRC mismatch'
  const pids = new Array<number>(n)
  for (let i = 0; i < n; i++) pids[i] = dv.getUint32(HEADER_BYTES + 4 * i, true)
  return pids
}

/**
 * Writes the hint as a temp file renamed over the old one, without a datasync: after a
 * crash it may be missing, empty or torn, and decodeWarmHint() then ignores it. A sync per
 * checkpoint would buy nothing a cold start does not already give.
 */
export async function writeWarmHint(storage: Storage, bytes: Uint8Array): Promise<void> {
  if (await storage.exists(TEMP_NAME)) await storage.unlink(TEMP_NAME)
  const f = await storage.openFile(TEMP_NAME, 'create')
  try {
    await f.write(bytes, 0, bytes.length, 0)
  } finally {
    await f.close()
  }
  await storage.rename(TEMP_NAME, WARM_HINT_NAME)
}

/** The hint's page ids; empty when there is none or it fails a check (reason in `why`). */
export async function readWarmHint(
  storage: Storage,
  logId: number,
): Promise<{ pids: number[]; why: string | undefined }> {
  if (!(await storage.exists(WARM_HINT_NAME))) return { pids: [], why: 'missing' }
  const buf = await readFileUpTo(storage, WARM_HINT_NAME, HEADER_BYTES + 4 * MAX_WARM_HINT_PAGES + 4)
  if (buf === undefined) return { pids: [], why: 'bad length' }
  const r = decodeWarmHint(buf, logId)
  return typeof r === 'string' ? { pids: [], why: r } : { pids: r, why: undefined }
}
