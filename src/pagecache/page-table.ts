// The page table: page id → the page's fragments on the log (a base and the deltas since),
// kept as columns of typed arrays indexed by page id, with the deltas in a pool of their
// own, chained per page. No JavaScript object exists per page: a million pages are a few
// dozen megabytes of array buffers that the garbage collector never walks, instead of a
// million long-lived objects whose promotion grew V8's young generation to its maximum
// (docs/DESIGN.md, "Peak RSS"). The table knows nothing of page contents, the LRU or the
// log: the page cache decides what a fragment means and keeps accounting in step.
//
// What must stay true: a page exists exactly when its fragment count is non-zero (the base
// counts); its deltas' pool slots belong to it alone and return to the free list when its
// base changes or it goes; its version changes with every write and every removal and is
// never reset, so a page-in that started before either sees a different version when it
// settles (the page cache's only test that what it read is still the page).

import { InvariantError } from '../errors.js'

/** Rows of a fresh table and of a fresh delta pool; both double when full. */
const INITIAL_ROWS = 1024

/** No delta (pool links are slot + 1, so a zeroed column means "none"). */
const NONE = 0

export class PageTable {
  /** Rows allocated: page ids below this have a row (zero: no page). */
  private rows = 0
  /** Fragments of the page (base + deltas); 0: no page. */
  private fragCounts = new Uint32Array(0)
  /** The newest delta's pool slot + 1 (NONE: the page has no delta). */
  private newestDeltas = new Uint32Array(0)
  /** Bumped on every change; wraps (only compared for equality, never for order). */
  private versions = new Uint32Array(0)
  /** Log bytes of the base's record. */
  private baseRecordBytes = new Uint32Array(0)
  private baseLsns = new Float64Array(0)
  /** Size of the base's blob file (0 when the base is inline). */
  private blobByteCounts = new Float64Array(0)
  /** Payload bytes of the base, and of the deltas since (the consolidation trigger). */
  private basePayloads = new Float64Array(0)
  private deltaPayloads = new Float64Array(0)
  /** The LRU's charge for a resident page, and the LRU clock when it last moved young. */
  private mems = new Float64Array(0)
  private stamps = new Float64Array(0)

  /** The delta pool: one slot per delta of any page, chained newest first. */
  private poolSlots = 0
  private poolLsns = new Float64Array(0)
  private poolRecordBytes = new Uint32Array(0)
  /** The next older delta of the same page (slot + 1), or the next free slot (slot + 1). */
  private poolNext = new Uint32Array(0)
  /** Free pool slots, chained through poolNext (slot + 1; NONE: carve a new one). */
  private poolFree = NONE
  /** Slots below this have been handed out at least once. */
  private poolCarved = 0
  private deltasInUse = 0

  has(pid: number): boolean {
    return pid < this.rows && (this.fragCounts[pid] as number) > 0
  }

  /** Base + deltas; 0 when the id holds no page. */
  fragmentCount(pid: number): number {
    return pid < this.rows ? (this.fragCounts[pid] as number) : 0
  }

  version(pid: number): number {
    return pid < this.rows ? (this.versions[pid] as number) : 0
  }

  /** Marks a change a page-in in flight must not miss. */
  bump(pid: number): void {
    this.grow(pid)
    this.versions[pid] = ((this.versions[pid] as number) + 1) >>> 0
  }

  baseLsn(pid: number): number {
    return this.baseLsns[pid] as number
  }

  baseRecordBytesOf(pid: number): number {
    return this.baseRecordBytes[pid] as number
  }

  blobBytes(pid: number): number {
    return this.blobByteCounts[pid] as number
  }

  basePayloadBytes(pid: number): number {
    return this.basePayloads[pid] as number
  }

  deltaPayloadBytes(pid: number): number {
    return this.deltaPayloads[pid] as number
  }

  setDeltaPayloadBytes(pid: number, bytes: number): void {
    if (!this.has(pid)) throw new InvariantError(`page ${pid} is not in the table`)
    this.deltaPayloads[pid] = bytes
  }

  /**
   * Makes the record at `lsn` the page's only fragment (creating the page if needed): its
   * deltas' slots go back to the pool. The caller has taken the old fragments out of the
   * accounting first.
   */
  setBase(pid: number, lsn: number, recordBytes: number, payloadBytes: number, blobBytes: number): void {
    this.grow(pid)
    this.freeDeltas(pid)
    this.fragCounts[pid] = 1
    this.baseLsns[pid] = lsn
    this.baseRecordBytes[pid] = recordBytes
    this.blobByteCounts[pid] = blobBytes
    this.basePayloads[pid] = payloadBytes
    this.deltaPayloads[pid] = 0
  }

  /** Appends a delta after the page's newest fragment (`lsn` is past all of them). */
  addDelta(pid: number, lsn: number, recordBytes: number, payloadBytes: number): void {
    if (!this.has(pid)) throw new InvariantError(`page ${pid} is not in the table`)
    const slot = this.takeSlot()
    this.poolLsns[slot] = lsn
    this.poolRecordBytes[slot] = recordBytes
    this.poolNext[slot] = this.newestDeltas[pid] as number
    this.newestDeltas[pid] = slot + 1
    this.fragCounts[pid] = (this.fragCounts[pid] as number) + 1
    this.deltaPayloads[pid] = (this.deltaPayloads[pid] as number) + payloadBytes
  }

  /**
   * Loads a page decoded from a checkpoint: `frags` as [lsn, bytes, ...], base first. Its
   * payload sizes are not in the checkpoint and read as 0 (they only time consolidation).
   */
  load(pid: number, frags: readonly number[], blobBytes: number): void {
    if (!(frags.length >= 2 && frags.length % 2 === 0))
      throw new InvariantError(`page ${pid}: a base and whole deltas`)
    this.setBase(pid, frags[0] as number, frags[1] as number, 0, blobBytes)
    for (let i = 2; i < frags.length; i += 2)
      this.addDelta(pid, frags[i] as number, frags[i + 1] as number, 0)
  }

  /** Removes the page; its version moves on, so a page-in in flight sees it gone. */
  remove(pid: number): void {
    if (!this.has(pid)) return
    this.freeDeltas(pid)
    this.fragCounts[pid] = 0
    this.mems[pid] = 0
    this.bump(pid)
  }

  /** The newest delta of the page, as a cursor for deltaLsn() and olderDelta(); 0: none. */
  newestDelta(pid: number): number {
    return pid < this.rows ? (this.newestDeltas[pid] as number) : NONE
  }

  /** The delta logged before the one at `cursor` (0: `cursor` was the oldest). */
  olderDelta(cursor: number): number {
    return this.poolNext[cursor - 1] as number
  }

  deltaLsn(cursor: number): number {
    return this.poolLsns[cursor - 1] as number
  }

  deltaRecordBytes(cursor: number): number {
    return this.poolRecordBytes[cursor - 1] as number
  }

  /** The page's fragments as [lsn, bytes, ...] in log order (base first), in a new array. */
  fragments(pid: number): number[] {
    const out: number[] = []
    this.fragmentsInto(pid, out)
    return out
  }

  /** As fragments(), into `out` (its length set to fit): no array per call. */
  fragmentsInto(pid: number, out: number[]): void {
    const n = this.fragmentCount(pid)
    out.length = 2 * n
    if (n === 0) return
    out[0] = this.baseLsns[pid] as number
    out[1] = this.baseRecordBytes[pid] as number
    // The chain runs newest first: fill from the end.
    let at = 2 * n - 2
    for (let d = this.newestDeltas[pid] as number; d !== NONE; d = this.poolNext[d - 1] as number) {
      if (at < 2) throw new InvariantError(`page ${pid}: more deltas chained than counted`)
      out[at] = this.poolLsns[d - 1] as number
      out[at + 1] = this.poolRecordBytes[d - 1] as number
      at -= 2
    }
    if (at !== 0) throw new InvariantError(`page ${pid}: fewer deltas chained than counted`)
  }

  mem(pid: number): number {
    return this.mems[pid] as number
  }

  setMem(pid: number, bytes: number): void {
    this.grow(pid)
    this.mems[pid] = bytes
  }

  stamp(pid: number): number {
    return this.stamps[pid] as number
  }

  setStamp(pid: number, clock: number): void {
    this.grow(pid)
    this.stamps[pid] = clock
  }

  /** Bytes of the table's columns and pool (allocated, used or not): its whole memory. */
  get bytes(): number {
    const perRow = 4 * 4 + 8 * 6
    const perSlot = 8 + 4 + 4
    return this.rows * perRow + this.poolSlots * perSlot
  }

  get deltas(): number {
    return this.deltasInUse
  }

  private freeDeltas(pid: number): void {
    let d = this.newestDeltas[pid] as number
    while (d !== NONE) {
      const older = this.poolNext[d - 1] as number
      this.poolNext[d - 1] = this.poolFree
      this.poolFree = d
      this.deltasInUse--
      d = older
    }
    this.newestDeltas[pid] = NONE
  }

  private takeSlot(): number {
    this.deltasInUse++
    if (this.poolFree !== NONE) {
      const slot = this.poolFree - 1
      this.poolFree = this.poolNext[slot] as number
      return slot
    }
    if (this.poolCarved === this.poolSlots) this.growPool()
    return this.poolCarved++
  }

  /** Whether page id `pid` already has a row (whatever the row holds). */
  hasRow(pid: number): boolean {
    return pid < this.rows
  }

  /** Makes sure page id `pid` has a row (rows double, so growing costs O(1) a page). */
  grow(pid: number): void {
    if (pid < this.rows) return
    if (!(Number.isSafeInteger(pid) && pid >= 0)) throw new InvariantError(`page id ${pid}`)
    const rows = Math.max(INITIAL_ROWS, 2 * this.rows, pid + 1)
    this.fragCounts = widen(this.fragCounts, new Uint32Array(rows))
    this.newestDeltas = widen(this.newestDeltas, new Uint32Array(rows))
    this.versions = widen(this.versions, new Uint32Array(rows))
    this.baseRecordBytes = widen(this.baseRecordBytes, new Uint32Array(rows))
    this.baseLsns = widen(this.baseLsns, new Float64Array(rows))
    this.blobByteCounts = widen(this.blobByteCounts, new Float64Array(rows))
    this.basePayloads = widen(this.basePayloads, new Float64Array(rows))
    this.deltaPayloads = widen(this.deltaPayloads, new Float64Array(rows))
    this.mems = widen(this.mems, new Float64Array(rows))
    this.stamps = widen(this.stamps, new Float64Array(rows))
    this.rows = rows
  }

  private growPool(): void {
    const slots = Math.max(INITIAL_ROWS, 2 * this.poolSlots)
    this.poolLsns = widen(this.poolLsns, new Float64Array(slots))
    this.poolRecordBytes = widen(this.poolRecordBytes, new Uint32Array(slots))
    this.poolNext = widen(this.poolNext, new Uint32Array(slots))
    this.poolSlots = slots
  }
}

/** `to`, holding `from`'s values at its start (a column grown to more rows). */
export function widen<A extends Uint32Array | Int32Array | Float64Array>(from: A, to: A): A {
  to.set(from as never)
  return to
}
