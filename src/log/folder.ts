// The log's folder at open: its conf (read, or written for a new log) and the blob files
// left without a durable pointer. A new log is created only in an empty folder.

import { CorruptionError, NotADatabaseError } from '../errors.js'
import type { Storage } from '../io/index.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { BLOB_DIR, parseBlobName } from './blob.js'
import { WITNESS_NAME } from './close-witness.js'
import { type Conf, readConf, writeConf } from './conf.js'
import type { Failpoints } from './failpoints.js'
import { FORMAT_VERSION } from './format.js'
import { LOG_FILE } from './log-context.js'
import { TAIL_JOURNAL } from './tail-journal.js'

const LOG_OWNED_NAMES = new Set([
  LOG_FILE,
  'conf',
  'conf.tmp',
  WITNESS_NAME,
  `${WITNESS_NAME}.tmp`,
  TAIL_JOURNAL,
  BLOB_DIR,
  'LOCK',
])

/**
 * The folder's conf; a new log gets one (segmentBytes, a random log id) written durably.
 * `isNew`: this call wrote it.
 */
export async function readOrCreateConf(
  storage: Storage,
  failpoints: Failpoints,
  segmentBytes: number,
): Promise<{ conf: Conf; isNew: boolean }> {
  const existing = await readConf(storage)
  if (existing !== undefined) return { conf: existing, isNew: false }
  await refuseForeignFolder(storage)
  if ((await storage.exists(LOG_FILE)) && (await sizeOf(storage, LOG_FILE)) > 0) {
    throw new CorruptionError(`${storage.location} has a log file but no conf file`, {
      file: `${storage.location}/${LOG_FILE}`,
    })
  }
  const conf: Conf = {
    formatVersion: FORMAT_VERSION,
    segmentBytes,
    logId: randomLogId(),
    createdAtMs: Date.now(),
  }
  failpoints.hit('conf write')
  await writeConf(storage, conf)
  return { conf, isNew: true }
}

/**
 * An existing log whose `log` file is missing. The first open creates the file right after
 * `conf` (and syncs the folder before any append), so a crash there may leave `conf` alone:
 * the log is then empty and the file is created. But a close witness of a non-empty log,
 * or a blob file (only written once the log file's entry was durable), proves the file
 * existed: it was lost, and that is CorruptionError, decided before anything is created so
 * the refused folder is left as it was (docs/RELIABILITY.md, R8).
 */
export async function refuseMissingLog(
  storage: Storage,
  closeWitness: number,
  logExists?: boolean,
): Promise<void> {
  if (logExists ?? (await storage.exists(LOG_FILE))) return
  const hasBlobs =
    (await storage.exists(BLOB_DIR)) &&
    (await storage.list(BLOB_DIR)).some((name) => parseBlobName(name) !== undefined)
  if (closeWitness >= 0 || hasBlobs) {
    throw new CorruptionError(
      `${storage.location} has a conf file but its log file is missing (${hasBlobs ? 'blob files exist' : `stable LSN ${closeWitness} at the last close`})`,
      { file: `${storage.location}/${LOG_FILE}` },
    )
  }
}

/** The names in the blob folder; none when it is missing. */
export async function listBlobFolder(storage: Storage): Promise<string[]> {
  if (!(await storage.exists(BLOB_DIR))) return []
  return storage.list(BLOB_DIR)
}

/**
 * Blob files no durable pointer names (a crash between blob and pointer), to be removed
 * once the open is accepted, and one past the highest blob id seen, so a new blob never
 * reuses a name. `names`: the blob folder's entries (listBlobFolder()).
 */
export function findOrphanBlobs(
  names: readonly string[],
  referenced: number[],
): { orphans: string[]; idEnd: number } {
  const keep = new Set(referenced)
  let idEnd = 0
  const orphans: string[] = []
  for (const name of names) {
    const id = parseBlobName(name)
    if (id !== undefined) idEnd = Math.max(idEnd, id + 1)
    if (id === undefined || !keep.has(id)) orphans.push(`${BLOB_DIR}/${name}`)
  }
  return { orphans, idEnd }
}

/** Removes what findOrphanBlobs() found, durably. */
export async function removeOrphanBlobs(storage: Storage, orphans: readonly string[]): Promise<void> {
  for (const name of orphans) {
    await storage.unlink(name)
    if (KILL_ODDS) maybeKill('log.open.orphan-blob-unlinked')
  }
  if (orphans.length > 0) await storage.syncDir(BLOB_DIR)
}

function randomLogId(): number {
  const b = new Uint32Array(2)
  crypto.getRandomValues(b)
  return ((b[0] as number) & 0x1fffff) * 0x1_0000_0000 + (b[1] as number)
}

async function sizeOf(storage: Storage, name: string): Promise<number> {
  const f = await storage.openFile(name, 'read')
  try {
    return await f.size()
  } finally {
    await f.close()
  }
}

/** A new log is only created in an empty folder (or one holding only our own files). */
async function refuseForeignFolder(storage: Storage): Promise<void> {
  const foreign = (await storage.list('')).filter((n) => !LOG_OWNED_NAMES.has(n))
  if (foreign.length > 0) {
    throw new NotADatabaseError(
      `${storage.location} is not empty and holds no bobsled database (found ${foreign.slice(0, 3).join(', ')})`,
    )
  }
}
