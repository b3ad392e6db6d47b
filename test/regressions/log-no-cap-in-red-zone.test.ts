// A Cap was written at the first byte of the red zone (found by S5 after a crash,
// test/reliability/no-stale-bytes.test.ts, in a full `npm test` run): when a segment's last
// message ended exactly 32 bytes before its end, the maxed seal wrote a Cap with an empty
// body there. No reader ever parses the red zone (a message may not start in it), so the
// Cap's six non-zero bytes were bytes outside every valid record, which S5 forbids. The
// writer now writes a Cap only where a message may start; the red zone stays zeros.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { messageHeaderBytes, RED_ZONE_BYTES } from '../../src/log/format.js'
import { Log } from '../../src/log/index.js'

const S = 1024

test('a segment whose last message ends where the red zone begins keeps the red zone zero', async () => {
  const disk = new SimDisk({ seed: 3, latency: false })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  const segmentNumber = Math.floor((log.maxReservedLsn + 1) / S)
  const room = (): number => S - RED_ZONE_BYTES - ((log.maxReservedLsn + 1) % S)
  // Records stay under a quarter segment (larger ones are blobs): fill up with small ones.
  const lsns: number[] = []
  while (room() > 200) lsns.push(log.append(new Uint8Array(120).fill(lsns.length)))
  let body = room()
  while (body > 0 && messageHeaderBytes(body, segmentNumber, 0) + body !== room()) body--
  assert.ok(body > 0, `a body that ends where the red zone begins (${room()} bytes of room)`)
  const first = log.append(new Uint8Array(body).fill(0xa5))
  lsns.push(first)
  assert.equal((log.maxReservedLsn + 1) % S, S - RED_ZONE_BYTES, 'the record ends where the red zone begins')
  await log.flush()
  const second = log.append(new Uint8Array(40).fill(0x5a))
  await log.close()

  const file = disk.readFileSync('db/log')
  const slot = Math.floor(first / S) * S
  const redZone = file.subarray(slot + S - RED_ZONE_BYTES, slot + S)
  assert.equal(redZone.length, RED_ZONE_BYTES)
  assert.deepEqual([...redZone], new Array(RED_ZONE_BYTES).fill(0), 'the red zone holds zeros only')

  const reopened = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  const got: number[] = []
  for await (const r of reopened.iterFrom(0)) got.push(r.lsn)
  assert.deepEqual(got, [...lsns, second])
  await reopened.close()
})
