// truncateBefore(): drops whole stable segments from the front of the log and frees their
// slots for reuse (docs/DESIGN.md, "Segment reuse").

import type { Storage } from '../io/index.js'
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

/**
 * Drops the segments that lie entirely below `lsn` and are stable. Their slots are zeroed
 * (and synced) in ascending order before reuse, and their blob files removed.
 */
export async function truncateSegments(t: TruncationHost, lsn: number): Promise<void> {
  const { ctx, slots, writer } = t
  const S = ctx.segmentBytes
  const stable = t.commit.stableLsn
  const drop = slots
    .bases()
    .filter((base) => base + S - 1 < lsn && base + S - 1 <= stable && base !== writer.cur.seg.baseLsn)
  if (drop.length === 0 || ctx.poisonError !== undefined) return
  // First make the new start durable in a segment header, so that recovery after a crash
  // in the middle of zeroing knows the low segments were dropped, not lost.
  writer.firstLsn = (drop[drop.length - 1] as number) + S
  writer.recordFirstLsn()
  await t.flush()
  const zeros = new Uint8Array(S)
  for (const base of drop) {
    if (ctx.poisonError !== undefined) throw ctx.poisonError
    const slot = slots.slotAt(base) as number
    try {
      ctx.failpoints.hit('segment zero')
      await ctx.file.write(zeros, 0, S, slot * S)
      // A datasync of the log may have failed meanwhile: never sync again in this instance.
      if (ctx.poisonError !== undefined) throw ctx.poisonError
      await ctx.file.datasync()
    } catch (e) {
      ctx.poison(e, 'zeroing a truncated segment')
      throw ctx.poisonError
    }
    slots.release(base)
    const blobs = slots.takeBlobs(base)
    if (blobs.length > 0) {
      for (const id of blobs) await t.storage.unlink(blobName(id)).catch(() => {})
      await t.storage.syncDir(BLOB_DIR)
    }
  }
}
