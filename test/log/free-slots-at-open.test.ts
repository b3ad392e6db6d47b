// Recovery's check of the free slots (docs/DESIGN.md, "Durable witness and recovery"): a
// free slot whose header is all zeros is read, beside the message scan, and zeroed when
// its body is not; a free slot with any non-zero header byte is zeroed without a read.
// Both must be zero on disk once the open is accepted, or a later life of the slot could
// read the junk as its own messages. Fails if findDirtySlots() reports no dirty slot, or if
// non-blank slots are left alone.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'

const S = 1024

function isZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0)
}

test('free slots with junk behind a zero header, or in the header, are zero after an accepted open', async () => {
  const disk = new SimDisk({ seed: 1, latency: true })
  const opts = { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 }
  let log = await Log.open('db', opts)
  for (let i = 0; i < 40; i++) log.append(new Uint8Array(90).fill(i))
  await log.close()
  const bytes = disk.readFileSync('db/log')
  const slots = Math.ceil(bytes.length / S)
  // Four free slots past the log: junk behind a zero header (in the middle and in the last
  // byte), junk in the header only, and a clean one.
  const grown = new Uint8Array((slots + 4) * S)
  grown.set(bytes)
  grown.fill(0xab, slots * S + 500, slots * S + 510)
  grown[(slots + 2) * S - 1] = 0x01
  grown[(slots + 2) * S + 10] = 0x5a
  disk.writeFileRaw('db/log', grown)

  log = await Log.open('db', opts)
  assert.equal(log.fileSlots, slots + 4, 'the free slots stay in the file')
  const records: number[] = []
  for await (const r of log.iterFrom(0)) records.push(r.data[0] as number)
  assert.deepEqual(
    records,
    Array.from({ length: 40 }, (_, i) => i),
  )
  const after = disk.snapshotDurable().readFileSync('db/log')
  for (let k = 0; k < 4; k++) {
    const slot = after.subarray((slots + k) * S, (slots + k + 1) * S)
    assert.ok(isZero(slot), `free slot ${k} past the log is zero on disk once the open is accepted`)
  }
  await log.close()
})
