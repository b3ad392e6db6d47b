// Where each segment of the log lives in the file: base LSN → slot, the bases in LSN order,
// the free slots and the size of the file in slots. A slot is a `segmentBytes` region of
// the `log` file; a segment life is one use of a slot (docs/DESIGN.md, "Segment reuse").
// Also which blob files each segment's pointers name, so truncation can remove them: a blob
// file may be named by several pointers (relinkBlob() moves a pointer without copying the
// blob) and goes with the segment holding the newest of them.

import { assert } from '../util/assert.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import type { BlobRef } from './blob.js'

export class SegmentSlots {
  private readonly slotOf = new Map<number, number>()
  /** Base LSNs of the segments of the log, ascending; the last one is being written. */
  private readonly order: number[] = []
  /** Slots inside the file holding no segment of the log (zero on disk), ascending. */
  private readonly free: number[]
  /** Slots the file spans, free ones included. */
  private count: number
  private readonly blobsBySegment = new Map<number, number[]>()
  /**
   * Blob id → the newest segment with a pointer to it (pointers go in LSN order), and the
   * size and CRC the pointers carry.
   */
  private readonly blobOwner = new Map<number, { segment: number; sizeBytes: number; crc: number }>()

  constructor(
    segments: ReadonlyArray<{ baseLsn: number; slot: number }>,
    freeSlots: number[],
    slotCount: number,
  ) {
    this.free = [...freeSlots].sort((a, b) => a - b)
    this.count = slotCount
    for (const s of segments) {
      this.slotOf.set(s.baseLsn, s.slot)
      this.order.push(s.baseLsn)
    }
  }

  get slotCount(): number {
    return this.count
  }

  bases(): readonly number[] {
    return this.order.slice()
  }

  slotAt(baseLsn: number): number | undefined {
    return this.slotOf.get(baseLsn)
  }

  /** Takes the lowest free slot (or a new one at the end of the file) for a new segment life. */
  allocate(baseLsn: number): number {
    assert(!this.slotOf.has(baseLsn), 'a segment life is opened once')
    const isReuse = this.free.length > 0
    const slot = isReuse ? (this.free.shift() as number) : this.count++
    if (KILL_ODDS && isReuse) maybeKill('log.slot.reused')
    this.slotOf.set(baseLsn, slot)
    this.order.push(baseLsn)
    return slot
  }

  /** The segment at `baseLsn` leaves the log; its slot (zeroed by the caller) becomes free. */
  release(baseLsn: number): number {
    const slot = this.slotOf.get(baseLsn)
    assert(slot !== undefined, 'only a segment of the log is released')
    this.order.splice(this.order.indexOf(baseLsn), 1)
    this.slotOf.delete(baseLsn)
    let i = this.free.length
    while (i > 0 && (this.free[i - 1] as number) > slot) i--
    this.free.splice(i, 0, slot)
    return slot
  }

  /**
   * How many slots the file needs: one past the highest slot in use. Free slots above it
   * may be cut off the end of the file.
   */
  usedSlotCount(): number {
    let n = this.count
    let k = this.free.length - 1
    while (n > 0 && k >= 0 && this.free[k] === n - 1) {
      n--
      k--
    }
    return n
  }

  /** The file was cut to `slotCount` slots: forget the free slots beyond it. */
  shrinkTo(slotCount: number): void {
    assert(slotCount >= this.usedSlotCount() && slotCount <= this.count, 'only free slots are cut off')
    while (this.free.length > 0 && (this.free[this.free.length - 1] as number) >= slotCount) this.free.pop()
    this.count = slotCount
  }

  noteBlob(segmentBase: number, ref: BlobRef): void {
    const { id, sizeBytes, crc } = ref
    const owner = this.blobOwner.get(id)
    if (owner === undefined || owner.segment < segmentBase)
      this.blobOwner.set(id, { segment: segmentBase, sizeBytes, crc })
    let list = this.blobsBySegment.get(segmentBase)
    if (list === undefined) {
      list = []
      this.blobsBySegment.set(segmentBase, list)
    }
    list.push(id)
  }

  /** True while a pointer in a segment of the log names this blob, with this size and CRC. */
  hasBlob(ref: BlobRef): boolean {
    const owner = this.blobOwner.get(ref.id)
    return owner !== undefined && owner.sizeBytes === ref.sizeBytes && owner.crc === ref.crc
  }

  /**
   * Bytes of the blob files each segment would take with it if it were truncated now (the
   * blobs whose newest pointer it holds), by segment base. Segments owning none are absent.
   */
  blobBytesBySegment(): Map<number, number> {
    const out = new Map<number, number>()
    for (const { segment, sizeBytes } of this.blobOwner.values()) {
      out.set(segment, (out.get(segment) ?? 0) + sizeBytes)
    }
    return out
  }

  /**
   * Forgets the pointers in the segment at `segmentBase` and returns the blob ids no
   * pointer in a later segment names: their files may go with the segment.
   */
  takeBlobs(segmentBase: number): number[] {
    const named = this.blobsBySegment.get(segmentBase) ?? []
    this.blobsBySegment.delete(segmentBase)
    const blobs: number[] = []
    for (const id of named) {
      if (this.blobOwner.get(id)?.segment !== segmentBase) continue
      this.blobOwner.delete(id)
      blobs.push(id)
    }
    return blobs
  }
}
