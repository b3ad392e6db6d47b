// The page cache's own memory for resident pages that are byte strings (PageCodec.arena):
// slabs allocated once, up to the cache's capacity, and then reused. A page that is
// written or paged in takes a slot; eviction, replacement and free give it back. So a
// page cache under churn makes no garbage for its pages: without it every write and every
// page-in made a 4 KiB ArrayBuffer that died on eviction, and V8 collects those late (a
// scavenge only when the young generation fills) while malloc keeps the freed chunks, so
// RSS grew by that floating garbage (docs/DESIGN.md, "Peak RSS").
//
// Slots come in size classes (four per power of two, as jemalloc's: at most 25 % waste),
// each served from a segregated free list; a slab (64 slots, 64 KiB to 1 MiB) belongs to
// the class that first carved it, for life: when the page sizes shift, slabs of the old
// classes stay with them and the new sizes fall back to plain arrays once the slab bytes
// reach the capacity (correct, only no longer garbage-free).
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

import { assert } from '../util/assert.js'

/** Bytes of the largest slab: one ArrayBuffer, carved into slots of a single size class. */
export const ARENA_SLAB_BYTES = 1024 * 1024
/**
 * Slots per slab, so a class of small slots takes a small slab (at least
 * ARENA_MIN_SLAB_BYTES): pages of many sizes do not each claim a whole megabyte.
 */
export const ARENA_SLOTS_PER_SLAB = 64
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
  private readonly slabs: ArrayBuffer[] = []
  private readonly slabOf = new Map<ArrayBuffer, number>()
  /** The slot size each slab is carved into. */
  private readonly slabSlotBytes: number[] = []
  /** Per slab, the bytes asked for in each slot (a view is that long); -1 while it is free. */
  private readonly slotLengths: Int32Array[] = []
  /** Free slot ids per slot size. */
  private readonly freeSlots = new Map<number, number[]>()
  /** Per slot size, the next uncarved slot id of its newest slab and that slab's end. */
  private readonly carving = new Map<number, { next: number; end: number }>()
  private usedBytes = 0
  private slabBytes = 0
  private misses = 0
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
    this.usedBytes += size
    return id
  }

  /** A new view of slot `id`'s bytes (as many as alloc was asked for); the slot is in use. */
  view(id: number): Uint8Array {
    const i = (id / ARENA_SLOT_ID_STRIDE) | 0
    const k = id - i * ARENA_SLOT_ID_STRIDE
    const n = (this.slotLengths[i] as Int32Array)[k] as number
    assert(n >= 0, `arena slot ${id} is free`)
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
    const size = this.slabSlotBytes[i] as number
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

  stats(): ArenaStats {
    return {
      slabs: this.slabs.length,
      slabBytes: this.slabBytes,
      maxSlabBytes: this.maxSlabBytes,
      usedBytes: this.usedBytes,
      misses: this.misses,
    }
  }

  /** The next slot of this size from its newest slab, or a new slab while any are left. */
  private carve(size: number): number | undefined {
    let c = this.carving.get(size)
    if (c === undefined || c.next >= c.end) {
      const bytes = slabBytesFor(size)
      const i = this.slabs.length
      if (this.slabBytes + bytes > this.maxSlabBytes || (i + 1) * ARENA_SLOT_ID_STRIDE > MAX_SLOT_ID)
        return undefined
      const buf = new ArrayBuffer(bytes)
      this.slabBytes += bytes
      this.slabs.push(buf)
      this.slabOf.set(buf, i)
      this.slabSlotBytes.push(size)
      if (this.isPoisoning) new Uint8Array(buf).fill(POISON_BYTE)
      // A slab holds whole slots only: the tail past the last one stays unused.
      const count = Math.floor(bytes / size)
      assert(count <= ARENA_SLOT_ID_STRIDE, 'a slab has at most ARENA_SLOT_ID_STRIDE slots')
      this.slotLengths.push(new Int32Array(count).fill(-1))
      c = { next: i * ARENA_SLOT_ID_STRIDE, end: i * ARENA_SLOT_ID_STRIDE + count }
      this.carving.set(size, c)
    }
    return c.next++
  }
}
