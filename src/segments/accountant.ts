// Segment accounting: how many live bytes and live fragments each segment of the log
// still holds, which state it is in, and which segments cleaning should empty next.
//
// States (sled's, digest §4.2), keyed by the segment's base LSN:
//   Active   — being written, or not yet stable: fragments may still be added to it
//   Inactive — fully written and stable: only removals from here on
//   Draining — chosen for cleaning: its live pages are being relocated to the log's tip
//   Free     — dropped from the log (truncateBefore); its slot is the log's to reuse
//
// Unlike sled, bobsled frees segments only from the head of the log (the oldest first).
// The log then stays one contiguous LSN range from its durable first LSN, so recovery
// can keep treating any gap below the witness as corruption, where sled skips gaps
// silently (digest §5.2). Cleaning pays for that by relocating the head's live pages
// whatever their share; the trigger keeps the log within `cleanAtSpaceRatio` × live
// data, which bounds space directly (sled's 50% threshold only bounds it indirectly,
// digest §9 W9). docs/DESIGN.md, "Segment cleaning", has the arithmetic.

import { InvariantError } from '../errors.js'

/** Segments one cleaning pass frees at least, when the head has that many Inactive ones. */
const MIN_PICK = 3

export type SegmentState = 'active' | 'inactive' | 'draining'

export interface SegmentInfo {
  readonly base: number
  state: SegmentState
  liveBytes: number
  liveFragments: number
}

export interface SpacePolicy {
  /** Clean when the log spans more than this × live bytes (plus `slackSegments`). */
  cleanAtSpaceRatio: number
  /** Stop cleaning once the log is back under this × live bytes (plus the slack). */
  cleanToSpaceRatio: number
  /** Segments the log may always hold whatever the live data (the one being written, one more). */
  slackSegments: number
}

export class SegmentAccountant {
  private readonly segs = new Map<number, SegmentInfo>()
  private live = 0
  private fragments = 0

  constructor(
    readonly segmentBytes: number,
    private readonly policy: SpacePolicy,
  ) {}

  baseOf(lsn: number): number {
    return Math.floor(lsn / this.segmentBytes) * this.segmentBytes
  }

  /** Bytes of live fragments in the whole log. */
  get liveBytes(): number {
    return this.live
  }

  get liveFragments(): number {
    return this.fragments
  }

  /** Segments the log holds (every state but Free). */
  get segmentCount(): number {
    return this.segs.size
  }

  get(base: number): SegmentInfo | undefined {
    return this.segs.get(base)
  }

  /** Segments in base order (oldest first). */
  segments(): SegmentInfo[] {
    return [...this.segs.values()].sort((a, b) => a.base - b.base)
  }

  /** The log holds a segment (at open, or when it starts a new one). */
  track(base: number, state: SegmentState): SegmentInfo {
    let s = this.segs.get(base)
    if (s === undefined) {
      s = { base, state, liveBytes: 0, liveFragments: 0 }
      this.segs.set(base, s)
    }
    return s
  }

  /**
   * A fragment of `bytes` was written at `lsn`. Recorded in the same synchronous step that
   * reserves the record, so accounting never lags behind the log.
   */
  added(lsn: number, bytes: number, recovering = false): void {
    const base = this.baseOf(lsn)
    const s = this.segs.get(base) ?? this.track(base, 'active')
    if (!recovering && s.state !== 'active') {
      throw new InvariantError(`a fragment at LSN ${lsn} landed in a ${s.state} segment`)
    }
    s.liveBytes += bytes
    s.liveFragments++
    this.live += bytes
    this.fragments++
  }

  /** Live bytes and fragments of a segment as a checkpoint recorded them (at open). */
  credit(base: number, bytes: number, fragments: number): void {
    const s = this.segs.get(base) ?? this.track(base, 'inactive')
    s.liveBytes += bytes
    s.liveFragments += fragments
    this.live += bytes
    this.fragments += fragments
  }

  /** A fragment at `lsn` was replaced or freed: its bytes are dead. */
  removed(lsn: number, bytes: number): void {
    const s = this.segs.get(this.baseOf(lsn))
    if (s === undefined) throw new InvariantError(`a fragment at LSN ${lsn} lies in a free segment`)
    s.liveBytes -= bytes
    s.liveFragments--
    this.live -= bytes
    this.fragments--
    if (s.liveBytes < 0 || s.liveFragments < 0) {
      throw new InvariantError(`segment ${s.base} went below zero live bytes`)
    }
  }

  /**
   * Every byte up to `stableLsn` is durable: segments wholly below it, other than the one
   * being written, take no more fragments and become Inactive.
   */
  stabilize(stableLsn: number, currentBase: number): void {
    for (const s of this.segs.values()) {
      if (s.state === 'active' && s.base !== currentBase && s.base + this.segmentBytes - 1 <= stableLsn) {
        s.state = 'inactive'
      }
    }
  }

  /** True when the log holds more segments than the space policy allows for the live data. */
  overBudget(ratio = this.policy.cleanAtSpaceRatio, extraSegments = 0): boolean {
    const allowed = ratio * this.live + (this.policy.slackSegments + extraSegments) * this.segmentBytes
    return this.segs.size * this.segmentBytes > allowed
  }

  /**
   * The head segments to drain now: the oldest Inactive ones, as many as bring the log
   * back under `cleanToSpaceRatio` (at least one), stopping at the first that is not
   * Inactive (cleaning frees from the head only).
   */
  pickForCleaning(trigger = this.policy.cleanAtSpaceRatio): SegmentInfo[] {
    if (!this.overBudget(trigger)) return []
    const picked: SegmentInfo[] = []
    let segments = this.segs.size
    const live = this.live
    for (const s of this.segments()) {
      if (s.state === 'draining') {
        picked.push(s)
        continue
      }
      if (s.state !== 'inactive') break
      // Relocated bytes stay live at the tip, so they still count; the slot does not.
      const allowed = this.policy.cleanToSpaceRatio * live + this.policy.slackSegments * this.segmentBytes
      // At least MIN_PICK: dropping segments rolls the log to a fresh one (its header
      // carries the new start), so freeing a single segment per pass would gain nothing.
      if (picked.length >= MIN_PICK && segments * this.segmentBytes <= allowed) break
      s.state = 'draining'
      picked.push(s)
      segments--
    }
    return picked
  }

  /** The oldest Inactive segments (at least the head), to drain whatever the budget says. */
  pickHead(): SegmentInfo[] {
    const picked: SegmentInfo[] = []
    for (const s of this.segments()) {
      if (s.state !== 'inactive' && s.state !== 'draining') break
      s.state = 'draining'
      picked.push(s)
      if (picked.length >= MIN_PICK) break
    }
    return picked
  }

  /** The segment left the log (truncateBefore dropped it). Only an empty one may go. */
  freed(base: number): void {
    const s = this.segs.get(base)
    if (s === undefined) return
    if (s.liveFragments !== 0) {
      throw new InvariantError(`segment ${base} was freed with ${s.liveFragments} live fragments`)
    }
    this.segs.delete(base)
  }
}
