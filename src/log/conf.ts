// The `conf` file: identity and fixed parameters of a log folder. Written once, atomically
// (temp file, datasync, rename, directory sync), read at every open; rewritten the same way
// only to upgrade an older format version. docs/FORMAT.md, "conf".

import { CorruptionError, NotADatabaseError, VersionError } from '../errors.js'
import type { Storage } from '../io/index.js'
import { crc32 } from '../util/crc32.js'
import {
  FORMAT_VERSION,
  MAX_SEGMENT_BYTES,
  MIN_SEGMENT_BYTES,
  OLDEST_FORMAT_VERSION,
  readU32,
  readU64,
  writeU32,
  writeU64,
} from './format.js'

export const CONF_NAME = 'conf'
const CONF_TMP = 'conf.tmp'
const CONF_BYTES = 64
const MAGIC = new TextEncoder().encode('BOBSLED\n')

export interface Conf {
  formatVersion: number
  segmentBytes: number
  /** Random per log; every segment header carries it, so a foreign segment is detected. */
  logId: number
  createdAtMs: number
}

export function encodeConf(c: Conf): Uint8Array {
  const b = new Uint8Array(CONF_BYTES)
  b.set(MAGIC, 0)
  b[8] = c.formatVersion & 0xff
  b[9] = c.formatVersion >>> 8
  writeU32(b, 12, c.segmentBytes)
  writeU64(b, 16, c.logId)
  writeU64(b, 24, c.createdAtMs)
  writeU32(b, 60, crc32(b, 0, 60))
  return b
}

export function decodeConf(b: Uint8Array, file: string): Conf {
  if (b.length < MAGIC.length || !MAGIC.every((x, i) => b[i] === x)) {
    throw new NotADatabaseError(`${file} is not a bobsled conf file`, { file })
  }
  if (b.length !== CONF_BYTES)
    throw new CorruptionError(`${file} has ${b.length} bytes, expected ${CONF_BYTES}`, { file })
  if (readU32(b, 60) !== crc32(b, 0, 60))
    throw new CorruptionError(`${file} failed its CRC`, { file, offset: 60 })
  const formatVersion = (b[8] as number) | ((b[9] as number) << 8)
  if (formatVersion < OLDEST_FORMAT_VERSION || formatVersion > FORMAT_VERSION) {
    throw new VersionError(
      `${file} has format version ${formatVersion}; this build reads versions ${OLDEST_FORMAT_VERSION}–${FORMAT_VERSION}`,
    )
  }
  const segmentBytes = readU32(b, 12)
  const logId = readU64(b, 16)
  const createdAtMs = readU64(b, 24)
  const powerOfTwo = (segmentBytes & (segmentBytes - 1)) === 0
  if (!powerOfTwo || segmentBytes < MIN_SEGMENT_BYTES || segmentBytes > MAX_SEGMENT_BYTES || logId < 0) {
    throw new CorruptionError(`${file} holds impossible parameters (segment size ${segmentBytes})`, { file })
  }
  return { formatVersion, segmentBytes, logId, createdAtMs: Math.max(0, createdAtMs) }
}

export async function readConf(storage: Storage): Promise<Conf | undefined> {
  if (!(await storage.exists(CONF_NAME))) return undefined
  const f = await storage.openFile(CONF_NAME, 'read')
  try {
    const size = await f.size()
    // Never allocate by an untrusted length: a conf is tiny.
    const b = new Uint8Array(Math.min(size, CONF_BYTES + 1))
    const n = await f.read(b, 0, b.length, 0)
    return decodeConf(b.subarray(0, n), `${storage.location}/${CONF_NAME}`)
  } finally {
    await f.close()
  }
}

export async function writeConf(storage: Storage, c: Conf): Promise<void> {
  if (await storage.exists(CONF_TMP)) await storage.unlink(CONF_TMP)
  const f = await storage.openFile(CONF_TMP, 'create')
  try {
    const b = encodeConf(c)
    await f.write(b, 0, b.length, 0)
    await f.datasync()
  } finally {
    await f.close()
  }
  await storage.rename(CONF_TMP, CONF_NAME)
  await storage.syncDir('')
}
