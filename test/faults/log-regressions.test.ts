// Regressions found by the fault-injection tests, each pinned by the smallest trigger.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { baseSeed, turns } from '../helpers/log-faults.js'

const SEED = baseSeed(1)

test('read() of a completed record in a buffer held unwritten by an open reservation', async () => {
  // The first buffer of segment 0 is written while a reservation keeps the next buffer of
  // the same segment open and the log moves on to segment 1. When that write settled, the
  // segment's memory used to be dropped although the held buffer was not written yet, and
  // read() of a completed record in it went to the file: CorruptionError on good data.
  for (let seed = SEED; seed < SEED + 20; seed++) {
    const disk = new SimDisk({ seed, latency: 2 })
    const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: 1024, flushEveryMs: 0 })
    log.append(new Uint8Array(100).fill(1))
    const flushed = log.flush()
    await Promise.resolve()
    await Promise.resolve()
    const held = log.reserve(10)
    const lsn = log.append(new Uint8Array(50).fill(2))
    for (let i = 0; i < 6; i++) log.append(new Uint8Array(200).fill(3))
    await turns(10)
    const r = await log
      .read(lsn)
      .catch((e: Error) => assert.fail(`seed=${seed}: read(${lsn}) failed: ${e.message}`))
    assert.equal(Buffer.compare(r.data, new Uint8Array(50).fill(2)), 0, `seed=${seed}`)
    held.complete()
    await flushed
    await log.flush()
    assert.equal(
      Buffer.compare((await log.read(lsn)).data, new Uint8Array(50).fill(2)),
      0,
      `seed=${seed}: after the write`,
    )
    await log.close()
  }
})
