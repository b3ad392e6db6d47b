// The fast read path (docs/DESIGN.md, "Tree: read path"): get() looks up the caller's own key
// bytes and hands back values carved from a shared slab; range() hands out one leaf's chunk
// at a time from a hand-written iterator. These tests pin what those shortcuts must keep.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ClosedError } from '../../src/index.js'
import { collect, dbFixture, dec, eachBackend, enc, fixture, TINY } from './fixtures.js'

const key = (i: number): string => `k${String(i).padStart(4, '0')}`

test('a get that waits for a page-in looks up the key as it was at the call', async () => {
  const f = await fixture(TINY)
  for (let i = 0; i < 200; i++) await f.db.insert(key(i), `v${i}`)
  f.evict()
  const k = enc(key(17))
  const pending = f.db.get(k)
  // The caller reuses its array at once; the page-ins still run after this line.
  k.set(enc(key(18)))
  assert.equal(dec(await pending), 'v17')
  // And with every page resident the lookup is synchronous: the array is read before get returns.
  const k2 = enc(key(40))
  const resident = f.db.get(k2)
  k2.set(enc(key(41)))
  assert.equal(dec(await resident), 'v40')
})

eachBackend('values from get are the caller own copies, none overlapping another', async (backend) => {
  const { db } = await dbFixture(backend)
  for (let i = 0; i < 300; i++) await db.insert(key(i), `value ${i} `.repeat((i % 7) + 1))
  const got: Uint8Array[] = []
  for (let i = 0; i < 300; i++) got.push((await db.get(key(i))) as Uint8Array)
  for (let i = 0; i < 300; i++) assert.equal(dec(got[i]), `value ${i} `.repeat((i % 7) + 1))
  // Scribbling over each copy in turn must leave every other copy and the tree alone.
  for (const v of got) v.fill(0x21)
  for (let i = 0; i < 300; i++) {
    assert.equal(dec(got[i]), '!'.repeat((got[i] as Uint8Array).length))
    assert.equal(await db.getString(key(i)), `value ${i} `.repeat((i % 7) + 1))
  }
  // A copy is aligned for a wider view of its bytes.
  for (const v of got) assert.equal(v.byteOffset % 8, 0)
})

eachBackend('range entries are copies: changing a yielded key or value changes nothing', async (backend) => {
  const { db } = await dbFixture(backend)
  for (let i = 0; i < 100; i++) await db.insert(key(i), `v${i}`)
  const entries = await collect(db.range())
  for (const [k, v] of entries) {
    k.fill(0)
    v.fill(0)
  }
  const again = await collect(db.range())
  assert.deepEqual(
    again.map(([k, v]) => [dec(k), dec(v)]),
    Array.from({ length: 100 }, (_, i) => [key(i), `v${i}`]),
  )
})

eachBackend('range: next() calls made without awaiting resolve in order, across leaves', async (backend) => {
  const { db } = await dbFixture(backend, TINY, { residentMax: 6 })
  for (let i = 0; i < 120; i++) await db.insert(key(i), `v${i}`)
  for (const reverse of [false, true]) {
    const it = db.range({ reverse, limit: 50 }).keys()[Symbol.asyncIterator]()
    const results = await Promise.all(Array.from({ length: 60 }, () => it.next()))
    const want = Array.from({ length: 50 }, (_, i) => key(reverse ? 119 - i : i))
    assert.deepEqual(
      results.slice(0, 50).map((r) => dec(r.value as Uint8Array)),
      want,
    )
    for (const r of results.slice(50)) assert.deepEqual(r, { value: undefined, done: true })
  }
  // return() ends the iteration, whatever is buffered or in flight.
  const it = db.range().values()[Symbol.asyncIterator]()
  assert.equal(dec((await it.next()).value as Uint8Array), 'v0')
  const inFlight = it.next()
  assert.deepEqual(await it.return?.(), { value: undefined, done: true })
  await inFlight
  assert.deepEqual(await it.next(), { value: undefined, done: true })
})

test('range: a chunk read that fails rejects that next() once, then the iteration is done', async () => {
  const f = await fixture(TINY)
  for (let i = 0; i < 100; i++) await f.db.insert(key(i), `v${i}`)
  const it = f.db.range()[Symbol.asyncIterator]()
  assert.equal(dec((await it.next()).value?.[0]), key(0))
  await f.db.close()
  let rejected = 0
  let seen = 1
  for (let n = 0; n < 100; n++) {
    try {
      const r = await it.next()
      if (r.done) break
      seen++
    } catch (e) {
      assert.ok(e instanceof ClosedError, `a closed database rejects with ClosedError, got ${e}`)
      rejected++
    }
  }
  assert.equal(rejected, 1, 'one rejection, then done')
  assert.ok(seen < 100, 'entries of the leaf read before the close may still come, no more')
})
