// truncateBefore(): drops whole stable segments from the front of the log, frees their
// slots for reuse and gives free slots at the end of the file back to the file system
// (docs/DESIGN.md, "Segment reuse and truncation").
//
// The order is what keeps a crash anywhere in it harmless:
//  1. the new firstLsn is made durable in a segment header (and a Witness) by a flush;
//     from then on recovery treats every segment below it as a remnant and zeroes it;
//  2. every dropped slot is zeroed, then ONE datasync covers all of them;
//  3. the slots become free (a new segment may take one only after step 2: the protocol
//     monitor's I5), and their blob files are removed;
//  4. when the highest slots of the file are free, the file is cut to the last used slot
//     and datasynced (also when nothing is dropped: a power cut can lose an earlier cut). Writes of a new segment above the cut wait for it (fenceWritesFrom),
//     so the cut never erases them; the cut slots are already zero on disk, so a crash
//     that keeps or loses the new size leaves the same log.

import type { Storage } from '../io/index.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { BLOB_DIR, blobName } from './blob.js'
import type { GroupCommit } from './group-commit.js'
import type { LogContext } from './log-context.js'
import type { SegmentSlots } from './segment-slots.js'
import type { SegmentWriter } from './segment-writer.js'

/** The parts of a Log instance truncation needs. */
export interface TruncationHost {
  readonly ctx: LogContext
  readonly storage: Storage
  readonly slots: SegmentSlots
  readonly writer: SegmentWriter
  readonly commit: GroupCommit
  /** Log.flush(): everything reserved so far is stable when it resolves. */
  flush(): Promise<unknown>
}

/** Drops the segments that lie entirely below `lsn` and are stable. Runs one at a time. */
export async function truncateSegments(t: TruncationHost, lsn: number): Promise<void> {
  const { ctx, slots, writer } = t
  const S = ctx.segmentBytes
  const stable = t.commit.stableLsn
  const drop = slots
    .bases()
    .filter((base) => base + S - 1 < lsn && base + S - 1 <= stable && base !== writer.cur.seg.baseLsn)
  if (ctx.poisonError !== undefined) return
  // Nothing to drop, but the file may still end in free slots (a power cut lost the cut
  // of an earlier truncation; recovery zeroed them): give them back now (step 4 alone).
  if (drop.length === 0) {
    await shrinkFile(t)
    if (ctx.poisonError !== undefined) throw ctx.poisonError
    return
  }
  // 1. The new start, durable in a segment header before any slot is touched.
  writer.firstLsn = (drop[drop.length - 1] as number) + S
  writer.recordFirstLsn()
  await t.flush()
  if (KILL_ODDS) maybeKill('log.truncate.first-lsn-stable')
  // 2. Zero every dropped slot, then one datasync for all of them.
  const zeros = new Uint8Array(S)
  try {
    for (const base of drop) {
      if (ctx.poisonError !== undefined) throw ctx.poisonError
      ctx.failpoints.hit('segment zero')
      await ctx.file.write(zeros, 0, S, (slots.slotAt(base) as number) * S)
    }
    // A datasync of the log may have failed meanwhile: never sync again in this instance.
    if (ctx.poisonError !== undefined) throw ctx.poisonError
    if (KILL_ODDS) maybeKill('log.truncate.zeroed')
    await ctx.file.datasync()
    if (KILL_ODDS) maybeKill('log.truncate.zero-synced')
  } catch (e) {
    ctx.poison(e, 'zeroing truncated segments')
    throw ctx.poisonError
  }
  // 3. Free the slots; synchronously with step 4's bookkeeping, so no segment opened in
  // between can take a slot about to be cut.
  const blobs: number[] = []
  for (const base of drop) {
    slots.release(base)
    blobs.push(...slots.takeBlobs(base))
  }
  const cut = shrinkFile(t)
  if (blobs.length > 0) {
    for (const id of blobs) await t.storage.unlink(blobName(id)).catch(() => {})
    if (KILL_ODDS) maybeKill('log.truncate.blobs-unlinked')
    await t.storage.syncDir(BLOB_DIR)
  }
  await cut
  if (ctx.poisonError !== undefined) throw ctx.poisonError
}

/**
 * 4. Cuts free slots off the end of the file. The bookkeeping changes at once; the writes
 * of any segment that takes a slot at or above the cut wait until the cut has settled.
 * Resolves (never rejects) when done; a failure poisons the instance.
 */
function shrinkFile(t: TruncationHost): Promise<void> {
  const { ctx, slots, writer } = t
  const used = slots.usedSlotCount()
  if (used === slots.slotCount) return Promise.resolve()
  slots.shrinkTo(used)
  const cut = (async (): Promise<void> => {
    try {
      if (ctx.poisonError !== undefined) return
      ctx.failpoints.hit('segment shrink')
      if (KILL_ODDS) maybeKill('log.shrink.before')
      await ctx.file.truncate(used * ctx.segmentBytes)
      if (KILL_ODDS) maybeKill('log.shrink.cut')
      if (ctx.poisonError !== undefined) return
      await ctx.file.datasync()
    } catch (e) {
      ctx.poison(e, 'shrinking the log file')
    }
  })()
  writer.fenceWritesFrom(used, cut)
  return cut
}
