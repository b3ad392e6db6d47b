// The arena of byte-string pages (src/pagecache/arena.ts): size classes, reuse without
// new memory, the capacity bound, and poisoning that catches a write after free.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  ARENA_MAX_SLOT_BYTES,
  ARENA_SLAB_BYTES,
  ARENA_SLOT_ID_STRIDE,
  ARENA_SPARE_BYTES,
  PageArena,
  POISON_BYTE,
  slotBytesFor,
} from '../../src/pagecache/arena.js'

test('size classes are four per power of two and waste at most a quarter', () => {
  assert.equal(slotBytesFor(1), 64)
  assert.equal(slotBytesFor(4096), 4096)
  assert.equal(slotBytesFor(4097), 5120)
  assert.equal(slotBytesFor(4110), 5120)
  assert.equal(slotBytesFor(6000), 6144)
  for (let n = 65; n <= ARENA_MAX_SLOT_BYTES; n += 37) {
    const s = slotBytesFor(n)
    assert.ok(s >= n && s < n * 1.25 + 1, `class ${s} for ${n}`)
    assert.equal(slotBytesFor(s), s, `a class size is its own class (${s})`)
  }
})

test('freed slots are reused: churn through the arena takes no new slab', () => {
  const arena = new PageArena(4 * ARENA_SLAB_BYTES, false)
  const held: Uint8Array[] = []
  for (let i = 0; i < 512; i++) held.push(arena.alloc(4096) as Uint8Array)
  const slabs = arena.stats().slabs
  assert.equal(slabs, 2, '256 slots of 4 KiB a slab')
  for (let round = 0; round < 100; round++) {
    const v = held.shift() as Uint8Array
    assert.equal(arena.free(v), true)
    const w = arena.alloc(4096) as Uint8Array
    assert.equal(w.buffer, v.buffer, 'the slot just freed is the one handed out again')
    assert.equal(w.byteOffset, v.byteOffset)
    held.push(w)
  }
  assert.equal(arena.stats().slabs, slabs)
  assert.equal(arena.stats().usedBytes, 512 * 4096)
})

test('slots never overlap, and a request shorter than its class gets its own length', () => {
  const arena = new PageArena(ARENA_SLAB_BYTES, false)
  const views: Uint8Array[] = []
  for (let i = 0; i < 300; i++) {
    const n = 1 + ((i * 977) % 3000)
    const v = arena.alloc(n) as Uint8Array
    assert.equal(v.length, n)
    v.fill(i & 0xff)
    views.push(v)
  }
  for (const [i, v] of views.entries())
    assert.ok(
      v.every((b) => b === (i & 0xff)),
      `slot ${i} kept its bytes`,
    )
})

test('the arena stops at its capacity plus spare bytes and says so; other memory is not its own', () => {
  const arena = new PageArena(2 * ARENA_SLAB_BYTES, false)
  let n = 0
  while (arena.alloc(64 * 1024) !== undefined) n++
  assert.equal(arena.stats().slabBytes, 2 * ARENA_SLAB_BYTES + ARENA_SPARE_BYTES)
  assert.equal(n, (2 * ARENA_SLAB_BYTES + ARENA_SPARE_BYTES) / (64 * 1024))
  assert.equal(arena.stats().misses, 1)
  assert.equal(arena.alloc(ARENA_MAX_SLOT_BYTES + 1), undefined, 'over the largest slot')
  const plain = new Uint8Array(100)
  assert.equal(arena.owns(plain), false)
  assert.equal(arena.free(plain), false)
})

test('poisoning fills a freed slot and catches a write through a stale view', () => {
  const arena = new PageArena(ARENA_SLAB_BYTES, true)
  const v = arena.alloc(4096) as Uint8Array
  v.fill(7)
  arena.free(v)
  assert.ok(
    v.every((b) => b === POISON_BYTE),
    'a stale view reads poison, not a plausible page',
  )
  v[100] = 1 // the bug this mode exists to catch
  assert.throws(() => arena.alloc(4096), /written after it was freed/)
})

test('freeing a slot twice is an invariant violation', () => {
  const arena = new PageArena(ARENA_SLAB_BYTES, false)
  const v = arena.alloc(100) as Uint8Array
  arena.free(v)
  assert.throws(() => arena.free(v), /freed twice/)
})

test('an emptied whole slab leaves the arena with its free slots, and its index is reused', () => {
  const arena = new PageArena(4 * ARENA_SLAB_BYTES, true)
  const perSlab = ARENA_SLAB_BYTES / 4096
  const ids: number[] = []
  for (let i = 0; i < 2 * perSlab; i++) ids.push(arena.allocSlot(4096))
  assert.equal(arena.takeEmptySlab(), undefined, 'no slab is empty')
  // Slab 0: one slot is read space (no owner), so it cannot be emptied by evicting pages.
  for (const [i, id] of ids.entries()) if (i !== 3) arena.setOwner(id, 1000 + i)
  assert.equal(arena.lendableSlabOf(ids[3] as number), -1, 'a slot in use without an owner')
  arena.setOwner(ids[3] as number, 3)
  assert.equal(arena.lendableSlabOf(ids[3] as number), 0)
  assert.equal(arena.ownersOf(0).length, perSlab)
  const first = arena.view(ids[0] as number).buffer
  for (let i = 0; i < perSlab; i++) arena.freeSlot(ids[i] as number)
  const before = arena.stats().slabBytes
  const lent = arena.takeEmptySlab() as Uint8Array
  assert.equal(lent.buffer, first, 'the empty slab itself')
  assert.equal(lent.byteLength, ARENA_SLAB_BYTES)
  assert.equal(arena.stats().slabBytes, before - ARENA_SLAB_BYTES, 'no longer the arena’s')
  assert.equal(arena.owns(lent), false)
  lent.fill(1) // the log's now: no slot of the arena may be in it
  for (let i = 0; i < perSlab; i++) {
    const id = arena.allocSlot(4096)
    assert.notEqual(arena.view(id).buffer, first, 'a slot of the lent slab was handed out')
    // Slab 1 is full: these come from a new slab, under slab 0's index again.
    assert.ok(id < ARENA_SLOT_ID_STRIDE, `slot ${id} is in slab 0's ids`)
  }
})

test('buffers come back as uncarved slabs only while whole slabs are in use, within the capacity', () => {
  const arena = new PageArena(64 * ARENA_SLAB_BYTES, false)
  const buffer = (): Uint8Array => new Uint8Array(ARENA_SLAB_BYTES)
  assert.equal(arena.adoptSlab(buffer()), false, 'no class of whole slabs yet: it would sit idle')
  arena.alloc(100)
  assert.equal(arena.adoptSlab(buffer()), false, 'small slots do not carve whole slabs')
  arena.alloc(4096)
  assert.equal(arena.adoptSlab(new Uint8Array(ARENA_SLAB_BYTES / 2)), false, 'not a whole slab')
  assert.equal(arena.adoptSlab(buffer().subarray(1)), false, 'not a whole buffer')
  const back = buffer()
  assert.equal(arena.adoptSlab(back), true)
  // Pooled slabs count against the capacity like carved ones: adopted until it is reached.
  let pooled = 1
  while (arena.adoptSlab(buffer())) pooled++
  const st = arena.stats()
  assert.ok(
    st.slabBytes <= st.maxSlabBytes && st.slabBytes + ARENA_SLAB_BYTES > st.maxSlabBytes,
    'the capacity is full',
  )
  assert.ok(pooled > 4, `${pooled} slabs pooled`)
  assert.equal(st.pooledBytes, pooled * ARENA_SLAB_BYTES)
  // The log asks first: a pooled slab is lent again before any is carved.
  assert.notEqual(arena.takeEmptySlab(), undefined)
  // A class that needs a new whole slab carves a pooled one rather than allocating.
  const slabsBefore = arena.stats().slabBytes
  let v: Uint8Array | undefined
  for (let i = 0; i < ARENA_SLAB_BYTES / 8192; i++) v = arena.alloc(8192)
  assert.equal(arena.stats().slabBytes, slabsBefore, 'no new memory')
  assert.equal(arena.stats().pooledBytes, (pooled - 2) * ARENA_SLAB_BYTES)
  assert.ok(v !== undefined && arena.owns(v))
})
