// The writes recovery decided on (recovery.ts, step 5), applied only once the open is
// accepted: by Log.open itself for a log opened alone, or by the layer above when it has
// checked the folder too (acceptOpen(), deferAccept). A refused open never applies them, so
// the folder is left as found (regimen R8). Applying is idempotent, and the order below is
// the order recovery used when it wrote at once, so a power cut anywhere in it leaves a
// state the next recovery handles: it decides again from the bytes and plans the rest.

import type { Storage, StorageFile } from '../io/index.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import type { Failpoints } from './failpoints.js'
import {
  applyTailJournal,
  type Extent,
  type FoundJournal,
  TAIL_JOURNAL,
  writeTailJournal,
} from './tail-journal.js'

export interface LogRepairs {
  /** A tail journal found at open: replayed, then removed (first, as it predates this open). */
  journal: FoundJournal | undefined
  /** The rest of the end segment, when not all zero (a torn tail or junk past the end). */
  endZero: { position: number; length: number } | undefined
  /** The unwitnessed tail, written again through a new tail journal (fsyncgate). */
  tail: Extent[]
  /** Slots outside the log that hold non-zero bytes. */
  zeroSlots: number[]
  /** A partial slot too short for a header is cut off (torn file growth). */
  truncateTo: number | undefined
  /** The log file's size when recovery read it: zeroing a slot never writes past it. */
  fileBytes: number
}

/**
 * Bytes of slot `slot` to zero: the whole slot, or as far as the file goes. Past its end a
 * file reads as zeros already, and a hostile conf claiming huge segments must not make a
 * repair grow the folder by a segment of its size.
 */
export function zeroSlotBytes(slot: number, segmentBytes: number, fileBytes: number): number {
  return Math.max(0, Math.min(segmentBytes, fileBytes - slot * segmentBytes))
}

/** True when applying `r` writes nothing. */
export function isNoRepair(r: LogRepairs): boolean {
  return (
    r.journal === undefined &&
    r.endZero === undefined &&
    r.tail.length === 0 &&
    r.zeroSlots.length === 0 &&
    r.truncateTo === undefined
  )
}

/** Writes the repairs to the log file `file` and makes them durable. */
export async function applyLogRepairs(
  storage: Storage,
  file: StorageFile,
  r: LogRepairs,
  logId: number,
  segmentBytes: number,
  failpoints: Failpoints,
  fileLabel: string,
): Promise<void> {
  const S = segmentBytes
  if (r.journal !== undefined) {
    const journal = r.journal
    r.journal = undefined
    await applyTailJournal(storage, file, journal, S, fileLabel)
  }
  let wrote = false
  if (r.endZero !== undefined) {
    failpoints.hit('recovery zero')
    if (KILL_ODDS) maybeKill('log.recovery.zero-tail')
    await file.write(new Uint8Array(r.endZero.length), 0, r.endZero.length, r.endZero.position)
    wrote = true
  }
  if (r.tail.length > 0) {
    failpoints.hit('recovery zero')
    await writeTailJournal(storage, logId, r.tail)
    if (KILL_ODDS) maybeKill('log.recovery.tail-journaled')
    for (const e of r.tail) await file.write(e.bytes, 0, e.bytes.length, e.position)
    wrote = true
  }
  const zeros = r.zeroSlots.length > 0 ? new Uint8Array(S) : undefined
  for (const slot of r.zeroSlots) {
    failpoints.hit('recovery zero')
    if (KILL_ODDS) maybeKill('log.recovery.zero-slot')
    const length = zeroSlotBytes(slot, S, r.fileBytes)
    if (length > 0) await file.write(zeros as Uint8Array, 0, length, slot * S)
    wrote = true
  }
  if (r.truncateTo !== undefined) {
    await file.truncate(r.truncateTo)
    wrote = true
  }
  if (KILL_ODDS && wrote) maybeKill('log.recovery.before-sync')
  if (wrote) await file.datasync()
  if (KILL_ODDS && wrote) maybeKill('log.recovery.synced')
  if (r.tail.length > 0) {
    await storage.unlink(TAIL_JOURNAL)
    await storage.syncDir('')
  }
}

/** Lets go of what the repairs hold open (the tail journal) without applying them. */
export async function discardLogRepairs(r: LogRepairs): Promise<void> {
  const f = r.journal?.file
  r.journal = undefined
  await f?.close().catch(() => {})
}
