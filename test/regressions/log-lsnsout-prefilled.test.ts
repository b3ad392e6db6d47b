// R10's model (test/reliability/api-fuzz.test.ts) took an lsnsOut array to come in empty;
// an edge value passes [1, 2, 3], and appendBatch() pushes the batch's LSNs after what the
// array holds, so the model saw 8 entries for 5 records (found by `npm run soak`, R10 at
// its nightly size: fast-check seed 168882210, run 5,615 of 20,000). The model now reads the
// LSNs after the array's earlier length. This pins the contract it relies on: lsnsOut keeps
// its elements and gets one LSN per record (per item) pushed, in order, the last one the
// call's return value.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'

test('appendBatch() and appendMixedBatch() push their LSNs after what lsnsOut holds', async () => {
  const disk = new SimDisk({ seed: 1, latency: false })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: 4096, flushEveryMs: 0 })
  try {
    const rec = (n: number): Uint8Array => new Uint8Array(n).fill(n)
    const out = [1, 2, 3]
    const last = log.appendBatch([rec(7), rec(6), rec(9), rec(3), rec(5)], 0, out)
    assert.equal(out.length, 8)
    assert.deepEqual(out.slice(0, 3), [1, 2, 3])
    assert.equal(out[7], last)
    for (let i = 4; i < 8; i++) assert.ok((out[i] as number) > (out[i - 1] as number), 'LSNs increase')
    const one = [42]
    const lsn = log.appendBatch([rec(4)], 0, one)
    assert.deepEqual(one, [42, lsn])
    const mixed = [9]
    const m = log.appendMixedBatch([rec(2), rec(8)], 0, mixed)
    assert.equal(mixed.length, 3)
    assert.equal(mixed[2], m)
    await log.flush()
  } finally {
    await log.close()
  }
})
