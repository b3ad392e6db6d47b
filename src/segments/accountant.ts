// Segment accounting: how many live bytes and live fragments each segment of the log
// still holds, which state it is in, and which segments cleaning should empty next.
//
// Blob files count too (B-PC5). A blob file goes when the segment holding its newest
// pointer leaves the log, so each segment carries the bytes of the blob files its pointers
// keep: live ones (a page's base names the blob) and dead ones (no page does any more).
// Dropping a segment frees its slot and its dead blob bytes; its live blobs move with their
// pages (relinkBlob()). The space policy weighs the data files as a whole, log slots plus
// blob files, against live log bytes plus live blob bytes: a pointer is 30 bytes of log,
// its dead blob may be megabytes.
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
/**
 * Segments one pass drains at most. A pass's copies must be durable before its originals
 * go, so the file peaks at the space before the pass plus what the pass relocates (up to
 * this many segments' live bytes), and the file keeps its peak: only free slots at its end
 * can be cut. A run of small passes frees as much as one large pass.
 */
export const MAX_PICK = 8

export type SegmentState = 'active' | 'inactive' | 'draining'

export interface SegmentInfo {
  readonly base: number
  state: SegmentState
  liveBytes: number
  liveFragments: number
  /** Bytes of the blob files that live bases in this segment name. */
  liveBlobBytes: number
  /** Bytes of the blob files whose newest pointer is here and that no page names any more. */
  deadBlobBytes: number
}

export interface SpacePolicy {
  /** Clean when the data files (log slots, blob files) exceed this × live data (plus `slackSegments`). */
  cleanAtSpaceRatio: number
  /** Stop cleaning once the data files are back under this × live data (plus the slack). */
  cleanToSpaceRatio: number
  /** Segments the log may always hold whatever the live data (the one being written, one more). */
  slackSegments: number
}

export class SegmentAccountant {
  private readonly segs = new Map<number, SegmentInfo>()
  private live = 0
  private fragments = 0
  private liveBlob = 0
  private deadBlob = 0

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

  /** Bytes of the blob files live pages name. */
  get liveBlobBytes(): number {
    return this.liveBlob
  }

  /** Bytes of blob files no page names, kept until their newest pointer's segment goes. */
  get deadBlobBytes(): number {
    return this.deadBlob
  }

  /** What the data files take by this accounting: whole segments plus every blob file. */
  get spaceBytes(): number {
    return this.segs.size * this.segmentBytes + this.liveBlob + this.deadBlob
  }

  /** Live data: live log bytes plus live blob bytes. */
  get liveDataBytes(): number {
    return this.live + this.liveBlob
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
      s = { base, state, liveBytes: 0, liveFragments: 0, liveBlobBytes: 0, deadBlobBytes: 0 }
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

  /** Live bytes, fragments and blob bytes of a segment as a checkpoint recorded them (at open). */
  credit(base: number, bytes: number, fragments: number, blobBytes: number): void {
    const s = this.segs.get(base) ?? this.track(base, 'inactive')
    s.liveBytes += bytes
    s.liveFragments += fragments
    s.liveBlobBytes += blobBytes
    this.live += bytes
    this.fragments += fragments
    this.liveBlob += blobBytes
  }

  /** The base at `lsn` names a blob file of `blobBytes`: the segment now keeps it live. */
  blobLinked(lsn: number, blobBytes: number): void {
    const s = this.segs.get(this.baseOf(lsn))
    if (s === undefined) throw new InvariantError(`a blob pointer at LSN ${lsn} lies in a free segment`)
    s.liveBlobBytes += blobBytes
    this.liveBlob += blobBytes
  }

  /**
   * The base at `lsn` no longer names its blob file of `blobBytes`. Its bytes die with this
   * segment (`isDead`) unless a newer pointer names the same file (relinkBlob() moved it):
   * the file then belongs to the newer pointer's segment, which blobLinked() was told of.
   */
  blobUnlinked(lsn: number, blobBytes: number, isDead: boolean): void {
    const s = this.segs.get(this.baseOf(lsn))
    if (s === undefined) throw new InvariantError(`a blob pointer at LSN ${lsn} lies in a free segment`)
    s.liveBlobBytes -= blobBytes
    this.liveBlob -= blobBytes
    if (s.liveBlobBytes < 0) throw new InvariantError(`segment ${s.base} went below zero live blob bytes`)
    if (isDead) {
      s.deadBlobBytes += blobBytes
      this.deadBlob += blobBytes
    }
  }

  /**
   * Sets every segment's dead blob bytes from what the log says each segment's pointers
   * keep (`ownedBySegment`, Log.blobBytesBySegment()): what is not live is dead. Recovery
   * calls it once the page table is rebuilt, since replay cannot tell a relinked pointer from
   * a new blob. A segment whose live blobs exceed what the log says it keeps (blob files
   * missing from a damaged folder) gets no dead bytes.
   */
  settleDeadBlobs(ownedBySegment: ReadonlyMap<number, number>): void {
    this.deadBlob = 0
    for (const s of this.segs.values()) {
      s.deadBlobBytes = Math.max(0, (ownedBySegment.get(s.base) ?? 0) - s.liveBlobBytes)
      this.deadBlob += s.deadBlobBytes
    }
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

  /** Space the policy allows at `ratio` × live data, plus the slack segments and `extraSegments`. */
  private allowedBytes(ratio: number, extraSegments = 0): number {
    return ratio * this.liveDataBytes + (this.policy.slackSegments + extraSegments) * this.segmentBytes
  }

  /** True when the data files take more than the space policy allows for the live data. */
  overBudget(ratio = this.policy.cleanAtSpaceRatio, extraSegments = 0): boolean {
    return this.spaceBytes > this.allowedBytes(ratio, extraSegments)
  }

  /** What dropping a segment gives back: its slot and the dead blob files it keeps. */
  private freedBy(s: SegmentInfo): number {
    return this.segmentBytes + s.deadBlobBytes
  }

  /**
   * True when the space is over budget at `trigger`, draining every Inactive head segment
   * would still leave it above `stop`, and dead blob files whose pointers sit
   * in segments not yet Inactive would make the difference: the current segment must then
   * be sealed (and flushed) before cleaning can reach them. Head-only freeing means that
   * such a pass drains the whole log; since it starts only over the trigger and stops at the
   * stop level, it frees about (cleanAt − cleanTo) × live data or more for the live log
   * bytes it moves (live blobs move by pointer).
   */
  needsSeal(trigger = this.policy.cleanAtSpaceRatio, stop = this.policy.cleanToSpaceRatio): boolean {
    if (!this.overBudget(trigger)) return false
    let space = this.spaceBytes
    let deadBeyond = 0
    let inHead = true
    for (const s of this.segments()) {
      if (inHead && (s.state === 'inactive' || s.state === 'draining')) space -= this.freedBy(s)
      else {
        inHead = false
        deadBeyond += s.deadBlobBytes
      }
    }
    return deadBeyond > 0 && space > this.allowedBytes(stop)
  }

  /**
   * The head segments to drain now: the oldest Inactive ones, as many as bring the space
   * back under `stop` (at least MIN_PICK when there are, at most MAX_PICK), stopping at the
   * first that is not Inactive (cleaning frees from the head only). A segment counts for its
   * slot and its dead blob bytes.
   */
  pickForCleaning(
    trigger = this.policy.cleanAtSpaceRatio,
    stop = this.policy.cleanToSpaceRatio,
  ): SegmentInfo[] {
    if (!this.overBudget(trigger)) return []
    const picked: SegmentInfo[] = []
    let space = this.spaceBytes
    // Relocated bytes stay live at the tip, so they still count; the slot does not.
    const allowed = this.allowedBytes(stop)
    for (const s of this.segments()) {
      if (s.state === 'draining') {
        picked.push(s)
        space -= this.freedBy(s)
        continue
      }
      if (s.state !== 'inactive') break
      // At least MIN_PICK: dropping segments rolls the log to a fresh one (its header
      // carries the new start), so freeing a single segment per pass would gain nothing.
      if (picked.length >= MIN_PICK && (space <= allowed || picked.length >= MAX_PICK)) break
      s.state = 'draining'
      picked.push(s)
      space -= this.freedBy(s)
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

  /**
   * The segment left the log (truncateBefore dropped it, and with it the blob files its
   * pointers kept). Only an empty one may go.
   */
  freed(base: number): void {
    const s = this.segs.get(base)
    if (s === undefined) return
    if (s.liveFragments !== 0 || s.liveBlobBytes !== 0) {
      throw new InvariantError(
        `segment ${base} was freed with ${s.liveFragments} live fragments (${s.liveBlobBytes} blob bytes)`,
      )
    }
    this.deadBlob -= s.deadBlobBytes
    this.segs.delete(base)
  }
}
