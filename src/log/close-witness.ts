// The `witness` file: the stable LSN at the last clean close, written atomically after the
// final flush. Recovery reads it before it scans, so damage anywhere in a cleanly closed
// log — even right before the closing Witness message, or a cut file — is reported as
// corruption instead of being read as a torn tail. It only ever states a durable truth
// (that LSN was synced), so an old one stays valid. docs/FORMAT.md, "witness".

import type { Storage } from '../io/index.js'
import { crc32 } from '../util/crc32.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { readU32, readU64, writeU32, writeU64 } from './format.js'

export const WITNESS_NAME = 'witness'
const WITNESS_TMP = 'witness.tmp'
const WITNESS_BYTES = 32
const MAGIC = 0x54575342 // "BSWT" little-endian

/** The witnessed stable LSN, or -1 when the file is absent, damaged or of another log. */
export async function readCloseWitness(storage: Storage, logId: number): Promise<number> {
  return witnessOf(await readCloseWitnessFile(storage), logId)
}

/**
 * The witness file's log id and stable LSN, undefined when it is absent or damaged (damage
 * here costs only detection power, never data: it counts as absent). Read apart from the
 * conf, whose log id judges it (witnessOf), so that an open can read both at once.
 */
export async function readCloseWitnessFile(
  storage: Storage,
): Promise<{ logId: number; stableLsn: number } | undefined> {
  if (!(await storage.exists(WITNESS_NAME))) return undefined
  const f = await storage.openFile(WITNESS_NAME, 'read')
  try {
    const b = new Uint8Array(WITNESS_BYTES)
    const n = await f.read(b, 0, WITNESS_BYTES, 0)
    if (n !== WITNESS_BYTES || readU32(b, 28) !== crc32(b, 0, 28) || readU32(b, 0) !== MAGIC) return undefined
    const stablePlusOne = readU64(b, 16)
    return stablePlusOne < 0 ? undefined : { logId: readU64(b, 8), stableLsn: stablePlusOne - 1 }
  } finally {
    await f.close()
  }
}

/** The stable LSN a witness file states for the log `logId`, or -1 (none, or another log's). */
export function witnessOf(found: { logId: number; stableLsn: number } | undefined, logId: number): number {
  return found === undefined || found.logId !== logId ? -1 : found.stableLsn
}

export async function writeCloseWitness(storage: Storage, logId: number, stableLsn: number): Promise<void> {
  const b = new Uint8Array(WITNESS_BYTES)
  writeU32(b, 0, MAGIC)
  b[4] = 1
  writeU64(b, 8, logId)
  writeU64(b, 16, stableLsn + 1)
  writeU32(b, 28, crc32(b, 0, 28))
  if (await storage.exists(WITNESS_TMP)) await storage.unlink(WITNESS_TMP)
  const f = await storage.openFile(WITNESS_TMP, 'create')
  try {
    await f.write(b, 0, WITNESS_BYTES, 0)
    await f.datasync()
    if (KILL_ODDS) maybeKill('log.close.witness-file-synced')
  } finally {
    await f.close()
  }
  await storage.rename(WITNESS_TMP, WITNESS_NAME)
  if (KILL_ODDS) maybeKill('log.close.witness-file-renamed')
  await storage.syncDir('')
}
