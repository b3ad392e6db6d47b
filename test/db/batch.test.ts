// applyBatch is atomic across trees: over a store whose writeBatch fails half-way, and
// across a crash, either every write of the batch is there or none.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FailpointError } from '../../src/index.js'
import { BACKENDS, dbFixture, eachBackend, fixture } from './fixtures.js'

eachBackend('a batch across trees applies every write at once', async (backend) => {
  const f = await dbFixture(backend)
  const t = await f.db.openTree('t')
  await f.db.applyBatch((b) => {
    for (let i = 0; i < 50; i++) b.insert(`k${i}`, `${i}`).insert(`k${i}`, `t${i}`, t)
    b.remove('k3').remove('k4', t)
  })
  assert.equal(await f.db.len(), 49)
  assert.equal(await t.len(), 49)
  assert.equal(await t.getString('k5'), 't5')
  await f.verify()
})

test('a writeBatch that fails half-way leaves no trace, in memory or after a restart', async () => {
  for (const failAt of [0, 1, 3, 7]) {
    const f = await fixture(undefined, { autoStable: true })
    const t = await f.db.openTree('t')
    for (let i = 0; i < 30; i++) await f.db.insert(`k${i}`, `${i}`)
    const sum = await f.db.checksum()
    const lsn = f.db.lastLsn
    f.store.failBatchAtWrite = failAt
    await assert.rejects(
      f.db.applyBatch((b) => {
        for (let i = 0; i < 40; i++) b.insert(`n${i}`, 'x'.repeat(i), t).remove(`k${i}`)
      }),
      FailpointError,
    )
    assert.equal(f.store.failBatchAtWrite, undefined, 'the failpoint fired')
    assert.equal(await f.db.checksum(), sum, `fail at ${failAt}: contents unchanged`)
    assert.equal(f.db.lastLsn, lsn)
    assert.equal(await t.len(), 0)
    await f.restart()
    assert.equal(await f.db.checksum(), sum, `fail at ${failAt}: unchanged after restart`)
    await f.verify()
    // The database still works after the failure.
    await f.db.applyBatch((b) => b.insert('after', 'ok'))
    assert.equal(await f.db.getString('after'), 'ok')
  }
})

eachBackend(
  'a crash keeps a batch whole or drops it whole',
  async (backend) => {
    const f = await dbFixture(backend, undefined, { autoStable: false })
    const t = await f.db.openTree('t')
    await f.db.flush()
    await f.db.applyBatch((b) => {
      for (let i = 0; i < 40; i++) b.insert(`a${i}`, 'v').insert(`b${i}`, 'w', t)
    })
    await f.db.flush()
    const durableSum = await f.db.checksum()
    await f.db.applyBatch((b) => {
      for (let i = 0; i < 40; i++) b.remove(`a${i}`).insert(`c${i}`, 'z', t)
    })
    const afterSum = await f.db.checksum()
    const db = await f.restart({ crash: true })
    const sum = await db.checksum()
    if (backend === 'memory') assert.equal(sum, durableSum, 'the unflushed batch is gone entirely')
    else assert.ok(sum === durableSum || sum === afterSum, 'the unflushed batch is there whole or not at all')
    await f.verify()
  },
  [...BACKENDS, 'sim'],
)

eachBackend('a throw inside build() writes nothing', async (backend) => {
  const f = await dbFixture(backend)
  await f.db.insert('a', '1')
  const sum = await f.db.checksum()
  const writes = f.writes()
  await assert.rejects(
    f.db.applyBatch((b) => {
      b.insert('x', '1')
      throw new Error('changed my mind')
    }),
    /changed my mind/,
  )
  assert.equal(await f.db.checksum(), sum)
  assert.equal(f.writes(), writes, 'nothing reached the store')
})
