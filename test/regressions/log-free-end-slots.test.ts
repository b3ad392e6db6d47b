// Free slots at the end of the log file were kept for good (found by R14,
// test/reliability/space-leaks.test.ts, BOBSLED_SEED=1: after 20 power cuts and cleanNow()
// the file had 5 slots for 2 segments). A power cut can lose the cut of the file's end
// that a truncation made (the slots were zeroed and synced, the new size was not);
// recovery then sees zero slots past the last segment, and only a later truncation that
// dropped a segment cut the file again. truncateBefore() now cuts free end slots even when
// it drops nothing, and cleanNow() asks for it.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { listCodec } from '../helpers/list-codec.js'

const S = 1024
const EXTRA_SLOTS = 3

/** The log file as a power cut that lost its last cut leaves it: zero slots past its end. */
function growLogFile(disk: SimDisk): number {
  const bytes = disk.readFileSync('db/log')
  const slots = Math.ceil(bytes.length / S)
  const grown = new Uint8Array((slots + EXTRA_SLOTS) * S)
  grown.set(bytes)
  disk.writeFileRaw('db/log', grown)
  return slots
}

test('truncateBefore() that drops nothing still cuts free slots at the end of the file', async () => {
  const disk = new SimDisk({ seed: 1, latency: false })
  const opts = { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 }
  let log = await Log.open('db', opts)
  for (let i = 0; i < 40; i++) log.append(new Uint8Array(90).fill(i))
  await log.close()
  const slots = growLogFile(disk)
  log = await Log.open('db', opts)
  assert.equal(log.fileSlots, slots + EXTRA_SLOTS, 'recovery keeps the zero slots as free slots')
  await log.truncateBefore(log.firstLsn)
  assert.equal(log.fileSlots, slots)
  const records = []
  for await (const r of log.iterFrom(0)) records.push(r.data[0])
  assert.deepEqual(
    records,
    Array.from({ length: 40 }, (_, i) => i),
  )
  await log.close()
  assert.ok(disk.readFileSync('db/log').length <= slots * S)
})

test('cleanNow() cuts free slots at the end of the log file', async () => {
  const disk = new SimDisk({ seed: 2, latency: false })
  const opts = { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 }
  let pc = await PageCache.open('db', listCodec, opts)
  const pid = pc.allocate()
  for (let i = 0; i < 30; i++) pc.replace(pid, { items: [`v${i}`.padEnd(60, '.')] })
  await pc.flush()
  await pc.cleanNow()
  await pc.close()
  const slots = growLogFile(disk)
  pc = await PageCache.open('db', listCodec, opts)
  assert.equal(pc.stats().fileSlots, slots + EXTRA_SLOTS)
  // Within its space budget: no segment to clean, only the file's end to cut.
  await pc.cleanNow()
  assert.equal(pc.stats().segmentsCleaned, 0)
  assert.ok(pc.stats().fileSlots <= slots, `file slots ${pc.stats().fileSlots}, was ${slots}`)
  assert.deepEqual((await pc.get(pid))?.items, ['v29'.padEnd(60, '.')])
  await pc.close()
})
