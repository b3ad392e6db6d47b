// The warm-up after open through the public API (docs/DESIGN.md, "Warm-up after open"): a
// database's leaves come back into the cache after a clean close and reopen with no read by
// the user, a write made while they come back wins over what the warm-up read, and
// `warmCache: false` turns it off. Real files, real reopen.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InvalidArgumentError, open } from '../../src/index.js'
import { tempDir } from '../helpers/temp-dir.js'

const key = (i: number): string => `key:${String(i).padStart(6, '0')}`
const value = (i: number, round: number): string => `value ${i} of round ${round} `.repeat(3)
const RECORDS = 3000
/** Small nodes: many leaves, each a base and a few deltas after the batches below. */
const NODES = { nodeMaxBytes: 2048, flushEveryMs: 0 }

interface StoreStats {
  pages: number
  residentPages: number
  warmUp: { hint: string; isDone: boolean; pagesWarmed: number }
  logSync: { syncs: number; syncedWrites: number; inlineWrites: number; inlineFallbacks: number }
}

async function storeStats(db: { stats(): Promise<object> }): Promise<StoreStats> {
  return ((await db.stats()) as { store: StoreStats }).store
}

test('after a clean close and reopen the leaves come back without a read, and writes made meanwhile win', async () => {
  const dir = (await tempDir('db-warm-up')).path
  let db = await open(dir, NODES)
  for (let round = 0; round < 3; round++) {
    for (let b = 0; b < RECORDS; b += 100) {
      await db.applyBatch((t) => {
        for (let i = b; i < b + 100; i++)
          if ((i + round) % (round + 1) === 0) t.insert(key(i), value(i, round))
      })
    }
  }
  const want = new Map<string, string>()
  for (let i = 0; i < RECORDS; i++) {
    const v = await db.get(key(i))
    want.set(key(i), new TextDecoder().decode(v))
  }
  await db.close()

  db = await open(dir, NODES)
  // Writes while the warm-up runs, to a few leaves: at once, and along with its reads.
  for (let i = 0; i < RECORDS; i += 397) await db.insert(key(i), value(i, 7))
  for (let i = 0; i < RECORDS; i += 397) want.set(key(i), value(i, 7))
  for (let i = 5; i < RECORDS; i += 293) want.set(key(i), value(i, 8))
  const writes = (async () => {
    for (let i = 5; i < RECORDS; i += 293) await db.insert(key(i), value(i, 8))
  })()
  let s = await storeStats(db)
  while (!s.warmUp.isDone) {
    await new Promise((resolve) => setTimeout(resolve, 2))
    s = await storeStats(db)
  }
  await writes
  s = await storeStats(db)
  assert.equal(s.warmUp.hint, 'used')
  assert.ok(s.warmUp.pagesWarmed > 20, `${s.warmUp.pagesWarmed} pages warmed`)
  assert.equal(s.residentPages, s.pages, 'every page is resident, none read by the user')
  for (let i = 0; i < RECORDS; i++) {
    assert.equal(new TextDecoder().decode(await db.get(key(i))), want.get(key(i)), key(i))
  }
  await db.close()

  db = await open(dir, { ...NODES, warmCache: false })
  await new Promise((resolve) => setTimeout(resolve, 50))
  s = await storeStats(db)
  assert.equal(s.warmUp.hint, 'off')
  assert.ok(
    s.residentPages < s.pages / 2,
    `${s.residentPages} of ${s.pages} pages resident with warmCache: false`,
  )
  await db.close()
  await assert.rejects(open(dir, { warmCache: 'yes' as never }), InvalidArgumentError)
})

test('durable writes are not written inline while the warm-up runs, and are once it ends', async () => {
  const dir = (await tempDir('db-warm-up-inline')).path
  let db = await open(dir, NODES)
  for (let b = 0; b < RECORDS; b += 100) {
    await db.applyBatch((t) => {
      for (let i = b; i < b + 100; i++) t.insert(key(i), value(i, 0))
    })
  }
  await db.close()
  let during = 0
  let i = 0
  // A loaded machine's disk can hold the first insert until the warm-up is over: try again.
  for (let attempt = 0; during === 0 && attempt < 5; attempt++) {
    db = await open(dir, { ...NODES, durability: 'sync' })
    for (;;) {
      const before = await storeStats(db)
      await db.insert(key(i % RECORDS), value(i, 1))
      i++
      const after = await storeStats(db)
      if (after.warmUp.isDone) break
      // The warm-up ran through this whole insert (a lone durable round): not inline, and not
      // a fallback of the slow-disk guard either (a pause comes before it).
      during++
      assert.deepEqual(
        [after.logSync.inlineWrites, after.logSync.inlineFallbacks],
        [before.logSync.inlineWrites, before.logSync.inlineFallbacks],
        `insert ${i} went inline during the warm-up`,
      )
      assert.ok(
        after.logSync.syncedWrites + after.logSync.syncs > before.logSync.syncedWrites + before.logSync.syncs,
      )
    }
    if (during === 0) await db.close()
  }
  assert.ok(during > 0, 'the scenario: durable inserts while the warm-up ran')
  const s0 = await storeStats(db)
  for (let k = 0; k < 20; k++) await db.insert(key(k), value(k, 2))
  const s1 = await storeStats(db)
  // Each went inline, or was sent to the pool by the slow-disk guard (a loaded machine's disk
  // trips it): either way the pause is over.
  const fit = (x: StoreStats): number => x.logSync.inlineWrites + x.logSync.inlineFallbacks
  assert.ok(fit(s1) - fit(s0) >= 18, `inline again after the warm-up: ${JSON.stringify(s1.logSync)}`)
  await db.close()
  db = await open(dir, { ...NODES, warmCache: false })
  for (let k = 0; k < 20; k++)
    assert.equal(new TextDecoder().decode(await db.get(key(k))), value(k, 2), key(k))
  await db.close()
})
