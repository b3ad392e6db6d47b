// Tracks which LSN ranges are done (written, or written and synced) when they finish out of
// order, and publishes only the contiguous prefix. Atomic batches register their range
// first: the published point never lands inside a batch that is not wholly done.
//
// Unlike sled (digest §9 W8), a pending batch caps the published point at the byte before
// the batch; everything contiguous below it is still published.

import { InvariantError } from '../errors.js'
import { assert } from '../util/assert.js'

export class StabilityIntervals {
  /** Internal contiguous prefix: every byte ≤ it is done. */
  private contiguous: number
  /** Done but not contiguous ranges [lo, hi], ascending, disjoint, not adjacent, lo > contiguous + 1. */
  private readonly ranges: number[] = []
  /** Registered atomic batches [lo, hi], ascending and disjoint. */
  private readonly batches: number[] = []
  private published: number

  constructor(stableLsn: number) {
    this.contiguous = stableLsn
    this.published = stableLsn
  }

  /** The highest LSN that may be reported: contiguous and not inside an incomplete batch. */
  get publishedLsn(): number {
    return this.published
  }

  get contiguousLsn(): number {
    return this.contiguous
  }

  get pendingRangeCount(): number {
    return this.ranges.length / 2
  }

  /** True when byte `lsn` is done, contiguous or not. */
  isDone(lsn: number): boolean {
    if (lsn <= this.contiguous) return true
    const r = this.ranges
    for (let i = 0; i < r.length; i += 2) {
      if (lsn < (r[i] as number)) return false
      if (lsn <= (r[i + 1] as number)) return true
    }
    return false
  }

  /** Registers an atomic batch covering [lo, hi]; it must lie wholly above the done prefix. */
  markBatch(lo: number, hi: number): void {
    if (!(lo <= hi)) throw new InvariantError(`batch [${lo}, ${hi}] is empty`)
    if (!(lo > this.contiguous))
      throw new InvariantError(`batch starts at ${lo}, inside the done prefix ${this.contiguous}`)
    const b = this.batches
    assert(b.length === 0 || (b[b.length - 1] as number) < lo, 'batches must be registered in LSN order')
    b.push(lo, hi)
  }

  /** Records [lo, hi] as done; returns the (monotone) published LSN. */
  markDone(lo: number, hi: number): number {
    if (!(lo <= hi)) throw new InvariantError(`range [${lo}, ${hi}] is empty`)
    if (!(lo > this.contiguous))
      throw new InvariantError(`range [${lo}, ${hi}] overlaps the done prefix ${this.contiguous}`)
    if (lo === this.contiguous + 1) {
      const r = this.ranges
      if (!(r.length === 0 || (r[0] as number) > hi))
        throw new InvariantError(`range [${lo}, ${hi}] overlaps a done range`)
      this.contiguous = hi
      this.absorbRanges()
    } else {
      this.insertRange(lo, hi)
    }
    this.publish()
    return this.published
  }

  private insertRange(lo: number, hi: number): void {
    const r = this.ranges
    // Binary search for the first range starting above lo.
    let a = 0
    let b = r.length / 2
    while (a < b) {
      const m = (a + b) >>> 1
      if ((r[m * 2] as number) < lo) a = m + 1
      else b = m
    }
    const i = a * 2
    if (i > 0 && !((r[i - 1] as number) < lo))
      throw new InvariantError(`range [${lo}, ${hi}] overlaps a done range`)
    if (i < r.length && !((r[i] as number) > hi))
      throw new InvariantError(`range [${lo}, ${hi}] overlaps a done range`)
    const joinsLeft = i > 0 && (r[i - 1] as number) + 1 === lo
    const joinsRight = i < r.length && (r[i] as number) === hi + 1
    if (joinsLeft && joinsRight) {
      r[i - 1] = r[i + 1] as number
      r.splice(i, 2)
    } else if (joinsLeft) {
      r[i - 1] = hi
    } else if (joinsRight) {
      r[i] = lo
    } else {
      r.splice(i, 0, lo, hi)
    }
  }

  private absorbRanges(): void {
    const r = this.ranges
    let n = 0
    while (n < r.length && (r[n] as number) === this.contiguous + 1) {
      this.contiguous = r[n + 1] as number
      n += 2
    }
    if (n > 0) r.splice(0, n)
  }

  private publish(): void {
    const b = this.batches
    let done = 0
    while (done < b.length && (b[done + 1] as number) <= this.contiguous) done += 2
    if (done > 0) b.splice(0, done)
    let candidate = this.contiguous
    if (b.length > 0 && (b[0] as number) <= this.contiguous) candidate = (b[0] as number) - 1
    if (candidate > this.published) this.published = candidate
  }
}
