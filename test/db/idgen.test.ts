// generateId(): unique and increasing within a session, across restarts and across crashes
// that lose every write not yet durable.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { BACKENDS, dbFixture, eachBackend, fixture } from './fixtures.js'

eachBackend(
  'ids increase across clean restarts and crashes; concurrent callers get distinct ids',
  async (backend) => {
    const f = await dbFixture(
      backend,
      { nodeMaxBytes: 96, nodeMaxEntries: 4, idPersistInterval: 7 },
      { autoStable: false },
    )
    const issued: number[] = []
    for (let round = 0; round < 12; round++) {
      const n = 1 + ((round * 5) % 17)
      const batch = await Promise.all(Array.from({ length: n }, () => f.db.generateId()))
      assert.equal(new Set(batch).size, n, 'concurrent callers get distinct ids')
      issued.push(...batch.sort((a, b) => a - b))
      // Unflushed tree writes must not matter: the id limit is made durable on its own.
      await f.db.insert(`r${round}`, 'x')
      if (round % 3 === 2) await f.restart({ crash: true })
      else if (round % 3 === 1) await f.restart()
    }
    for (let i = 1; i < issued.length; i++)
      assert.ok(issued[i]! > issued[i - 1]!, `id ${issued[i]} after ${issued[i - 1]}`)
    assert.equal(issued[0], 0)
  },
  [...BACKENDS, 'sim'],
)

test('ids persist their limit every interval, not on every call', async () => {
  const f = await fixture({ idPersistInterval: 1000 })
  const before = f.store.counts.replaces
  for (let i = 0; i < 2500; i++) assert.equal(await f.db.generateId(), i)
  assert.equal(f.store.counts.replaces - before, 3, 'three high-water marks for 2,500 ids')
  await f.restart()
  assert.equal(await f.db.generateId(), 3000, 'a restart resumes at the persisted mark')
})
