// Items too large for a segment live in their own files under blobs/. A blob is written,
// datasynced and its directory entry synced BEFORE its pointer message is reserved, so a
// durable pointer never names a missing file (sled digest §9 W2/W4). Orphans (a blob whose
// pointer never became durable) are removed at recovery. docs/FORMAT.md, "Blob files".

import { CorruptionError, wrapIoError } from '../errors.js'
import type { Storage } from '../io/index.js'
import { crc32 } from '../util/crc32.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import type { Failpoints } from './failpoints.js'
import { readU32, readU64, writeU32, writeU64 } from './format.js'

export const BLOB_DIR = 'blobs'
const HEADER_BYTES = 32
const MAGIC = 0x4c425342 // "BSBL" little-endian

export function blobName(id: number): string {
  return `${BLOB_DIR}/${id.toString(16).padStart(16, '0')}`
}

/** Parses a file name under blobs/; undefined for anything that is not a blob name. */
export function parseBlobName(name: string): number | undefined {
  if (!/^[0-9a-f]{16}$/.test(name)) return undefined
  const id = Number.parseInt(name, 16)
  return Number.isSafeInteger(id) ? id : undefined
}

export interface BlobRef {
  id: number
  sizeBytes: number
  crc: number
}

export async function writeBlob(
  storage: Storage,
  logId: number,
  id: number,
  data: Uint8Array,
  failpoints: Failpoints,
): Promise<BlobRef> {
  const crc = crc32(data, 0, data.length)
  const header = new Uint8Array(HEADER_BYTES)
  writeU32(header, 4, MAGIC)
  writeU64(header, 8, logId)
  writeU64(header, 16, id)
  writeU64(header, 24, data.length)
  writeU32(header, 0, crc32(header, 4, HEADER_BYTES))
  const name = blobName(id)
  const f = await storage.openFile(name, 'create')
  try {
    failpoints.hit('blob write')
    await f.write(header, 0, HEADER_BYTES, 0)
    await f.write(data, 0, data.length, HEADER_BYTES)
    if (KILL_ODDS) maybeKill('log.blob.written')
    failpoints.hit('blob sync')
    await f.datasync()
    if (KILL_ODDS) maybeKill('log.blob.synced')
  } finally {
    await f.close()
  }
  await storage.syncDir(BLOB_DIR)
  if (KILL_ODDS) maybeKill('log.blob.dir-synced')
  return { id, sizeBytes: data.length, crc }
}

export async function readBlob(storage: Storage, logId: number, ref: BlobRef): Promise<Uint8Array> {
  const name = blobName(ref.id)
  const where = `${storage.location}/${name}`
  let f: Awaited<ReturnType<Storage['openFile']>>
  try {
    f = await storage.openFile(name, 'read')
  } catch (e) {
    const err = wrapIoError(e, 'opening a blob', where)
    if ((err as { syscallCode?: string }).syscallCode === 'ENOENT') {
      throw new CorruptionError(`blob ${name} named by a durable pointer is missing`, {
        file: where,
        cause: e,
      })
    }
    throw err
  }
  try {
    const size = await f.size()
    if (size !== HEADER_BYTES + ref.sizeBytes) {
      throw new CorruptionError(`blob ${name} has ${size} bytes, expected ${HEADER_BYTES + ref.sizeBytes}`, {
        file: where,
      })
    }
    const header = new Uint8Array(HEADER_BYTES)
    await f.read(header, 0, HEADER_BYTES, 0)
    const ok =
      readU32(header, 0) === crc32(header, 4, HEADER_BYTES) &&
      readU32(header, 4) === MAGIC &&
      readU64(header, 8) === logId &&
      readU64(header, 16) === ref.id &&
      readU64(header, 24) === ref.sizeBytes
    if (!ok) throw new CorruptionError(`blob ${name} has a bad header`, { file: where, offset: 0 })
    const data = new Uint8Array(ref.sizeBytes)
    const n = await f.read(data, 0, ref.sizeBytes, HEADER_BYTES)
    if (n !== ref.sizeBytes || crc32(data, 0, data.length) !== ref.crc) {
      throw new CorruptionError(`blob ${name} failed its CRC`, { file: where, offset: HEADER_BYTES })
    }
    return data
  } finally {
    await f.close()
  }
}
