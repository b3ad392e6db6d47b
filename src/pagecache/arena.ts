// The page cache's own memory for resident pages that are byte strings (PageCodec.arena):
// slabs allocated once, up to the cache's capacity, and then reused. A page that is
// written or paged in takes a slot; eviction, replacement and free give it back. So a
// page cache under churn makes no garbage for its pages: without it every write and every
// page-in made a 4 KiB ArrayBuffer that died on eviction, and V8 collects those late (a
// scavenge only when the young generation fills) while malloc keeps the freed chunks, so
// RSS grew by that floating garbage (docs/DESIGN.md, "Peak RSS").
//
// Slots come in size classes (four per power of two, as jemalloc's: at most 25 % waste),
// each served from a segregated free list; a slab (256 slots, 64 KiB to 1 MiB) belongs to
// the class that first carved it while any of its slots is in use: when the page sizes
// shift, slabs of the old classes stay with them and the new sizes fall back to plain
// arrays once the slab bytes reach the capacity (correct, only no longer garbage-free).
//
// The log's segment buffers are the same memory (docs/DESIGN.md, "Peak RSS"): the page
// cache charges them to its capacity and evicts pages to make room, but an evicted page
// frees a slot, not memory, so a write burst used to hold the slabs and the log's new
// buffers both. Now an empty whole slab (ARENA_SLAB_BYTES, a segment's size) can leave the
// arena to become a segment buffer (takeEmptySlab), and a buffer the log no longer keeps
// comes back as an uncarved slab (adoptSlab), for any class of whole slabs to carve.
//
// A slot is named by a small integer (slotId), so the page cache keeps resident pages as
// numbers and makes a view only while a page is in use: a view kept per resident slot
// (96 B each) lived as long as its page, so V8 promoted one per page written or paged in,
// and that survival grew the young generation to its maximum (docs/DESIGN.md, "Peak RSS").
//
// What must stay true: a slot is handed to one owner at a time, and nothing reads a slot
// after it is freed (the next owner's bytes would be read as this page's: silent
// corruption). Poisoning (tests) fills a freed slot with POISON_BYTE and checks it is still
// poison when the slot is taken again, so a write through a stale view throws and a read
// through one sees poison instead of a plausible page.

import { InvariantError } from '../errors.js'
import { assert } from '../util/assert.js'

/** Bytes of the largest slab: one ArrayBuffer, carved into slots of a single size class. */
export const ARENA_SLAB_BYTES = 1024 * 1024
/**
 * Slots per slab, so a class of small slots takes a small slab (at least
 * ARENA_MIN_SLAB_BYTES): pages of many sizes do not each claim a whole megabyte. Classes
 * of 4 KiB and more take whole slabs, which can be lent to the log.
 */
export const ARENA_SLOTS_PER_SLAB = 256
export const ARENA_MIN_SLAB_BYTES = 64 * 1024
/** The smallest slot. */
export const ARENA_MIN_SLOT_BYTES = 64
/** The largest slot (a quarter slab); a larger page is a plain array outside the arena. */
export const ARENA_MAX_SLOT_BYTES = ARENA_SLAB_BYTES / 4
/**
 * Slab bytes allowed beyond the capacity: a partly carved slab per size class in use, and
 * the page-ins' read space, which is taken from the arena too.
 */
export const ARENA_SPARE_BYTES = 4 * ARENA_SLAB_BYTES
/**
 * Slot ids per slab: a slab's slots are numbered slab × ARENA_SLOT_ID_STRIDE + index, and no
 * slab holds more slots than its smallest size carved from its smallest slab.
 */
export const ARENA_SLOT_ID_STRIDE = ARENA_MIN_SLAB_BYTES / ARENA_MIN_SLOT_BYTES
/** Slot ids stay small integers (V8 keeps them unboxed in a Map or an array). */
const MAX_SLOT_ID = 2 ** 30
/** What a freed slot holds while poisoning is on. */
export const POISON_BYTE = 0xdb

export interface ArenaStats {
  slabs: number
  /** Bytes of every slab allocated, and the most there may be. */
  slabBytes: number
  maxSlabBytes: number
  /** Bytes of the slots in use (their class size, not the bytes asked for). */
  usedBytes: number
  /** Allocations the arena could not serve (the caller used a plain array instead). */
  misses: number
  /** Whole slabs lent out (takeEmptySlab) and taken back (adoptSlab) since the start. */
  slabsLent: number
  slabsAdopted: number
  /** Buffers offered back (adoptSlab) and refused: not whole slabs, or no room or use. */
  slabsRefused: number
  /** Bytes of uncarved whole slabs kept for reuse (within maxSlabBytes). */
  pooledBytes: number
}

/** Bytes of a slab of `slotBytes` slots. */
export function slabBytesFor(slotBytes: number): number {
  return Math.min(ARENA_SLAB_BYTES, Math.max(ARENA_MIN_SLAB_BYTES, slotBytes * ARENA_SLOTS_PER_SLAB))
}

/** The size class of an `n`-byte request: 2^k × {1, 1.25, 1.5, 1.75}, at least the minimum. */
export function slotBytesFor(n: number): number {
  if (n <= ARENA_MIN_SLOT_BYTES) return ARENA_MIN_SLOT_BYTES
  // The highest power of two below n. Integer operations only (n ≤ ARENA_MAX_SLOT_BYTES
  // fits 32 bits): a small integer stays unboxed wherever the caller keeps it.
  const pow = 1 << (31 - Math.clz32(n - 1))
  const step = pow >> 2
  return pow + (((n - pow + step - 1) / step) | 0) * step
}

export class PageArena {
  /** Slabs by index; undefined where a slab left the arena (the index is reused). */
  private readonly slabs: Array<ArrayBuffer | undefined> = []
  /** A view of each whole slab, made once: write() copies through it, with no view per slot. */
  private readonly slabViews: Array<Uint8Array | undefined> = []
  private readonly slabOf = new Map<ArrayBuffer, number>()
  /** The slot size each slab is carved into. */
  private readonly slabSlotBytes: number[] = []
  /** Per slab, the bytes asked for in each slot (a view is that long); -1 while it is free. */
  private readonly slotLengths: Int32Array[] = []
  /** Per slab, the owner of each slot in use (a page id), or -1 (read space, not a page). */
  private readonly slotOwners: Int32Array[] = []
  /** Per slab, its slots in use, and those of them with an owner. */
  private readonly slabUsed: number[] = []
  private readonly slabOwned: number[] = []
  /** Indices of slabs that left the arena, for the next slab. */
  private readonly freeIndices: number[] = []
  /** Whole slabs, uncarved, that came back from the log (counted in slabBytes). */
  private readonly pool: ArrayBuffer[] = []
  /** Free slot ids per slot size. */
  private readonly freeSlots = new Map<number, number[]>()
  /** Per slot size, the next uncarved slot id of its newest slab and that slab's end. */
  private readonly carving = new Map<number, { next: number; end: number }>()
  private usedBytes = 0
  private slabBytes = 0
  private misses = 0
  private slabsLent = 0
  private slabsAdopted = 0
  private slabsRefused = 0
  /**
   * A class of whole slabs has carved one: only then can a pooled slab be used, and only
   * then may takeEmptySlab() find one.
   */
  hasWholeSlabs = false
  /** Carved whole slabs with no slot in use (takeEmptySlab looks only when there are). */
  private emptyWholeSlabs = 0
  readonly maxSlabBytes: number

  constructor(
    capacityBytes: number,
    private readonly isPoisoning: boolean,
  ) {
    assert(Number.isSafeInteger(capacityBytes) && capacityBytes >= 0, 'the arena capacity is a byte count')
    this.maxSlabBytes = capacityBytes + ARENA_SPARE_BYTES
  }

  /**
   * A view of `n` bytes in a free slot, or undefined when the arena cannot serve it (too
   * large for a slot, or every slab carved and this class has no free slot). The bytes are
   * not cleared: the caller overwrites all `n`. The view is new: keep the slot's id
   * (slotOf()) rather than the view for as long as the slot is held.
   */
  alloc(n: number): Uint8Array | undefined {
    const id = this.allocSlot(n)
    return id < 0 ? undefined : this.view(id)
  }

  /** alloc() without the view: the id of a free slot now holding `n` bytes, or -1. */
  allocSlot(n: number): number {
    if (n > ARENA_MAX_SLOT_BYTES) return -1
    const size = slotBytesFor(n)
    const id = this.freeSlots.get(size)?.pop() ?? this.carve(size)
    if (id === undefined) {
      this.misses++
      return -1
    }
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const k = id - i * ARENA_SLOT_ID_STRIDE
    if (this.isPoisoning) {
      const slot = new Uint8Array(this.slabs[i] as ArrayBuffer, k * size, size)
      for (let j = 0; j < size; j++) {
        if (slot[j] !== POISON_BYTE)
          assert(false, `arena slot ${id} was written after it was freed (byte ${j} is ${slot[j]})`)
      }
    }
    ;(this.slotLengths[i] as Int32Array)[k] = n
    ;(this.slotOwners[i] as Int32Array)[k] = -1
    if (this.slabUsed[i] === 0 && size * ARENA_SLOTS_PER_SLAB >= ARENA_SLAB_BYTES) this.emptyWholeSlabs--
    this.slabUsed[i] = (this.slabUsed[i] as number) + 1
    this.usedBytes += size
    return id
  }

  /**
   * Copies `bytes` into slot `id` (allocSlot(bytes.length) returned it) through the slab's
   * own view: a write that keeps its page in the arena makes no object (docs/DESIGN.md,
   * "Peak RSS").
   */
  write(id: number, bytes: Uint8Array): void {
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const k = id - i * ARENA_SLOT_ID_STRIDE
    const n = (this.slotLengths[i] as Int32Array)[k] as number
    if (n !== bytes.length) throw new InvariantError(`arena slot ${id} holds ${n} bytes, not ${bytes.length}`)
    ;(this.slabViews[i] as Uint8Array).set(bytes, k * (this.slabSlotBytes[i] as number))
  }

  /** A new view of slot `id`'s bytes (as many as alloc was asked for); the slot is in use. */
  view(id: number): Uint8Array {
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const k = id - i * ARENA_SLOT_ID_STRIDE
    const n = (this.slotLengths[i] as Int32Array)[k] as number
    if (n < 0) throw new InvariantError(`arena slot ${id} is free`)
    return new Uint8Array(this.slabs[i] as ArrayBuffer, k * (this.slabSlotBytes[i] as number), n)
  }

  /** The id of the slot behind `view` (a view of one of its slots), or -1 for other memory. */
  slotOf(view: Uint8Array): number {
    const i = this.slabOf.get(view.buffer as ArrayBuffer)
    if (i === undefined) return -1
    const size = this.slabSlotBytes[i] as number
    assert(view.byteOffset % size === 0 && view.byteLength <= size, 'an arena view is one whole slot')
    return i * ARENA_SLOT_ID_STRIDE + view.byteOffset / size
  }

  /**
   * Records the page that holds slot `id` (a page id, ≥ 0): a slab whose every slot in use
   * has an owner can be emptied by evicting them (ownersOf). Read space has none.
   */
  setOwner(id: number, owner: number): void {
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const k = id - i * ARENA_SLOT_ID_STRIDE
    const owners = this.slotOwners[i] as Int32Array
    assert(((this.slotLengths[i] as Int32Array)[k] as number) >= 0 && owner >= 0, 'an owner of a slot in use')
    if ((owners[k] as number) < 0) this.slabOwned[i] = (this.slabOwned[i] as number) + 1
    owners[k] = owner
  }

  /**
   * Gives back the slot behind `view` (a view alloc() or view() returned). Returns false,
   * and does nothing, for memory that is not the arena's (a plain array made when alloc()
   * failed).
   */
  free(view: Uint8Array): boolean {
    const id = this.slotOf(view)
    if (id < 0) return false
    this.freeSlot(id)
    return true
  }

  /** Gives back slot `id`: nothing may read or write it through an older view. */
  freeSlot(id: number): void {
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const k = id - i * ARENA_SLOT_ID_STRIDE
    const lengths = this.slotLengths[i] as Int32Array
    assert((lengths[k] as number) >= 0, 'an arena slot was freed twice')
    lengths[k] = -1
    const owners = this.slotOwners[i] as Int32Array
    if ((owners[k] as number) >= 0) this.slabOwned[i] = (this.slabOwned[i] as number) - 1
    owners[k] = -1
    this.slabUsed[i] = (this.slabUsed[i] as number) - 1
    const size = this.slabSlotBytes[i] as number
    if (this.slabUsed[i] === 0 && size * ARENA_SLOTS_PER_SLAB >= ARENA_SLAB_BYTES) this.emptyWholeSlabs++
    if (this.isPoisoning) new Uint8Array(this.slabs[i] as ArrayBuffer, k * size, size).fill(POISON_BYTE)
    let list = this.freeSlots.get(size)
    if (list === undefined) {
      list = []
      this.freeSlots.set(size, list)
    }
    list.push(id)
    this.usedBytes -= size
  }

  /** Whether `view` lies in the arena's memory. */
  owns(view: Uint8Array): boolean {
    return this.slabOf.has(view.buffer as ArrayBuffer)
  }

  /** The slab of slot `id`, if it is a whole slab whose slots in use all have an owner. */
  lendableSlabOf(id: number): number {
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const buf = this.slabs[i]
    if (buf === undefined || buf.byteLength !== ARENA_SLAB_BYTES) return -1
    return this.slabUsed[i] === this.slabOwned[i] ? i : -1
  }

  /** The owners of slab `i`'s slots in use (the pages to evict to empty it). */
  ownersOf(i: number): number[] {
    const lengths = this.slotLengths[i] as Int32Array
    const owners = this.slotOwners[i] as Int32Array
    const out: number[] = []
    for (let k = 0; k < lengths.length; k++) if ((lengths[k] as number) >= 0) out.push(owners[k] as number)
    return out
  }

  /**
   * An empty whole slab (ARENA_SLAB_BYTES) taken out of the arena, or undefined if none is
   * empty: the memory is the caller's from now on, and slabBytes no longer counts it.
   */
  takeEmptySlab(): Uint8Array | undefined {
    let buf = this.pool.pop()
    if (buf === undefined) {
      if (this.emptyWholeSlabs === 0) return undefined
      const i = this.slabs.findIndex(
        (b, j) => b !== undefined && b.byteLength === ARENA_SLAB_BYTES && this.slabUsed[j] === 0,
      )
      if (i < 0) return undefined
      buf = this.slabs[i] as ArrayBuffer
      this.retire(i)
      this.emptyWholeSlabs--
    }
    this.slabBytes -= ARENA_SLAB_BYTES
    this.slabsLent++
    return new Uint8Array(buf)
  }

  /**
   * Takes `buf` (a whole ArrayBuffer of ARENA_SLAB_BYTES, which its last owner no longer
   * uses) as an uncarved slab, if the arena has room for it (maxSlabBytes, pooled slabs
   * included) and carves whole slabs (pages of 4 KiB and more) at all. False: it stays the
   * caller's. The pool has no limit of its own: a buffer refused here is garbage until a
   * full GC while the pages, whose budget grew by it, carve a new slab beside it (when a
   * write burst ends the log lets go of up to 15 at once: "Peak RSS" in docs/DESIGN.md).
   * Pooled slabs count in slabBytes, so the arena never holds more than maxSlabBytes.
   */
  adoptSlab(buf: Uint8Array): boolean {
    if (!this.canAdopt(buf)) {
      this.slabsRefused++
      return false
    }
    // canAdopt() checked that it is a whole ArrayBuffer.
    const whole = buf.buffer as ArrayBuffer
    assert(!this.slabOf.has(whole), 'a slab is adopted while the arena holds it')
    this.pool.push(whole)
    this.slabBytes += ARENA_SLAB_BYTES
    this.slabsAdopted++
    return true
  }

  private canAdopt(buf: Uint8Array): boolean {
    if (buf.byteOffset !== 0 || buf.byteLength !== ARENA_SLAB_BYTES) return false
    if (buf.buffer.byteLength !== ARENA_SLAB_BYTES || !(buf.buffer instanceof ArrayBuffer)) return false
    if (!this.hasWholeSlabs) return false
    return this.slabBytes + ARENA_SLAB_BYTES <= this.maxSlabBytes
  }

  /** Bytes of every slab the arena holds, pooled ones included. */
  get slabBytesNow(): number {
    return this.slabBytes
  }

  /** Bytes of the uncarved slabs kept for reuse (within maxSlabBytes). */
  get pooledBytes(): number {
    return this.pool.length * ARENA_SLAB_BYTES
  }

  stats(): ArenaStats {
    let slabs = this.pool.length
    for (const b of this.slabs) if (b !== undefined) slabs++
    return {
      slabs,
      slabBytes: this.slabBytes,
      maxSlabBytes: this.maxSlabBytes,
      usedBytes: this.usedBytes,
      misses: this.misses,
      slabsLent: this.slabsLent,
      slabsAdopted: this.slabsAdopted,
      slabsRefused: this.slabsRefused,
      pooledBytes: this.pooledBytes,
    }
  }

  /** Removes empty slab `i`: its free slots leave their list, and its index is free. */
  private retire(i: number): void {
    const size = this.slabSlotBytes[i] as number
    const lo = i * ARENA_SLOT_ID_STRIDE
    const hi = lo + ARENA_SLOT_ID_STRIDE
    const list = this.freeSlots.get(size)
    if (list !== undefined) {
      let w = 0
      for (let r = 0; r < list.length; r++) {
        const id = list[r] as number
        if (id < lo || id >= hi) list[w++] = id
      }
      list.length = w
    }
    const c = this.carving.get(size)
    if (c !== undefined && c.next >= lo && c.next < hi) this.carving.delete(size)
    this.slabOf.delete(this.slabs[i] as ArrayBuffer)
    this.slabs[i] = undefined
    this.slabViews[i] = undefined
    this.freeIndices.push(i)
  }

  /** The next slot of this size from its newest slab, or a new slab while any are left. */
  private carve(size: number): number | undefined {
    let c = this.carving.get(size)
    if (c === undefined || c.next >= c.end) {
      const bytes = slabBytesFor(size)
      if (bytes === ARENA_SLAB_BYTES) this.hasWholeSlabs = true
      let buf = bytes === ARENA_SLAB_BYTES ? this.pool.pop() : undefined
      const i = this.freeIndices.pop() ?? this.slabs.length
      if (buf === undefined) {
        if (this.slabBytes + bytes > this.maxSlabBytes || (i + 1) * ARENA_SLOT_ID_STRIDE > MAX_SLOT_ID) {
          if (i < this.slabs.length) this.freeIndices.push(i)
          return undefined
        }
        buf = new ArrayBuffer(bytes)
        this.slabBytes += bytes
      }
      this.slabs[i] = buf
      this.slabViews[i] = new Uint8Array(buf)
      this.slabOf.set(buf, i)
      this.slabSlotBytes[i] = size
      if (this.isPoisoning) new Uint8Array(buf).fill(POISON_BYTE)
      // A slab holds whole slots only: the tail past the last one stays unused.
      const count = Math.floor(bytes / size)
      assert(count <= ARENA_SLOT_ID_STRIDE, 'a slab has at most ARENA_SLOT_ID_STRIDE slots')
      this.slotLengths[i] = new Int32Array(count).fill(-1)
      this.slotOwners[i] = new Int32Array(count).fill(-1)
      this.slabUsed[i] = 0
      this.slabOwned[i] = 0
      if (bytes === ARENA_SLAB_BYTES) this.emptyWholeSlabs++
      c = { next: i * ARENA_SLOT_ID_STRIDE, end: i * ARENA_SLOT_ID_STRIDE + count }
      this.carving.set(size, c)
    }
    return c.next++
  }
}
