// Writes issued without awaiting must commit in call order (found by R3 (Db),
// test/sim/db-power-loss.test.ts BOBSLED_SEED=1, after Log.whenWritable() began to take an
// event-loop turn when a write had been issued since its last call). The tree's writer
// awaited the store's backpressure before queueing for its mutex, so a call whose wait took
// that turn was overtaken by the next call, whose wait did not: insert(k, 1); insert(k, 2)
// ended with 1. A writer now queues for the mutex first, then waits for backpressure.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { open } from '../../src/index.js'
import { tempDir } from '../helpers/temp-dir.js'

const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b)

test('insert(k, 1); insert(k, 2) without awaiting ends with 2, also when backpressure takes a turn', async () => {
  const dir = await tempDir('write-order')
  const db = await open(dir.path, { flushEveryMs: 0 })
  const big = new Uint8Array(200_000).fill(7)
  try {
    for (let round = 0; round < 5; round++) {
      // Over 4 MiB of log writes issued since the last backpressure turn: the next check
      // takes a turn of the event loop (Log.whenWritable).
      for (let i = 0; i < 24; i++) await db.insert(`other ${i}`, big)
      await db.flush()
      const writes = [1, 2, 3].map((v) => db.insert('k', `${round}:${v}`))
      await Promise.all(writes)
      assert.equal(dec(await db.get('k')), `${round}:3`, `round ${round}: a later write was overtaken`)
    }
  } finally {
    await db.close()
    await dir.remove()
  }
})
