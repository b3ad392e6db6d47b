// Small durable rounds (docs/DESIGN.md, "Small durable rounds"): a lone round is one synced
// (O_DSYNC) write instead of a write and a datasync, and a segment at the end of the file
// that small synced rounds fill is pre-extended with zeros once, inside the datasync of the
// round that extends it. Checked on the simulated disk's IO trace, which is the ground
// truth for what was written and synced in which order.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { IoError } from '../../src/errors.js'
import { SimDisk, type TraceRecord } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { RecordingStorage } from '../helpers/io-recorder.js'

const S = 32 * 1024

async function openTraced(seed: number): Promise<{ disk: SimDisk; rec: RecordingStorage; log: Log }> {
  const disk = new SimDisk({ seed, trace: true })
  const rec = new RecordingStorage(disk, disk.storage('db'))
  const log = await Log.open('db', { storage: rec, segmentBytes: S, flushEveryMs: 0 })
  return { disk, rec, log }
}

const logOps = (trace: readonly TraceRecord[], kind: TraceRecord['kind']): TraceRecord[] =>
  trace.filter((r) => r.path === 'db/log' && r.kind === kind && r.ok)

async function records(log: Log): Promise<string[]> {
  const out: string[] = []
  for await (const r of log.iterFrom(0)) out.push(Buffer.from(r.data).toString())
  return out
}

test('one durable writer: each round is one synced write, and the segment is pre-extended once', async () => {
  for (const seed of [1, 2, 3]) {
    const { disk, rec, log } = await openTraced(seed)
    const written: string[] = []
    for (let i = 0; i < 40; i++) {
      const r = `record ${i} `.padEnd(100, '.')
      written.push(r)
      await log.makeStable(log.append(Buffer.from(r)))
    }
    const m = log.metrics()
    const msg = `seed=${seed} ${JSON.stringify({ syncs: m.syncs, syncedWrites: m.syncedWrites })}`
    // Round 1 is lone; round 2 pre-extends (write + zeros + datasync); rounds 3..40 are lone.
    assert.equal(m.syncs, 40, msg)
    assert.equal(m.syncedWrites, 39, msg)
    const trace = disk.trace
    const syncs = logOps(trace, 'datasync')
    assert.equal(syncs.length, 1, `${msg}: one datasync, for the extending round`)
    const zeros = logOps(trace, 'write').filter((w) =>
      (rec.writeBytes.get(w.op) as Uint8Array).every((b) => b === 0),
    )
    assert.equal(zeros.length, 1, `${msg}: one zero write`)
    const z = zeros[0] as TraceRecord
    assert.equal((z.position as number) % 4096, 0, `${msg}: the zeros start on a page boundary`)
    assert.equal((z.position as number) + (z.length as number), S, `${msg}: ... and run to the slot's end`)
    assert.ok(z.end < (syncs[0] as TraceRecord).start, `${msg}: the round's datasync covers the zeros`)
    assert.equal(m.preExtendedBytes, z.length, msg)
    // Every record written after the zeros landed went to where they were, and later.
    for (const w of logOps(trace, 'write')) {
      if (w === z || (w.position as number) + (w.length as number) <= (z.position as number)) continue
      assert.ok(w.start > z.end, `${msg}: a write into the zeros was issued before they landed`)
    }
    const synced = logOps(trace, 'write').filter((w) => w.synced === true)
    assert.equal(synced.length, 39, msg)
    await log.close()
    assert.equal(disk.readFileSync('db/log').length, S, `${msg}: the file ends at the slot's end`)
    const again = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
    assert.deepEqual(await records(again), written, msg)
    await again.close()
  }
})

test('bulk appends and wide rounds are not pre-extended; a resumed extended segment is not again', async () => {
  const { disk, log } = await openTraced(7)
  // A bulk load: whole segments, then one flush.
  for (let i = 0; i < 3000; i++) log.append(Buffer.from(`bulk ${i} `.padEnd(100, '-')))
  await log.flush()
  // Wide rounds: many concurrent writers, each round far more than 1/8 of the room left.
  await Promise.all(
    Array.from({ length: 64 }, async (_, k) => {
      for (let i = 0; i < 3; i++)
        await log.makeStable(log.append(Buffer.from(`w${k}.${i} `.padEnd(400, '+'))))
    }),
  )
  assert.equal(log.metrics().preExtendedBytes, 0)
  // Small rounds extend the segment being written once.
  for (let i = 0; i < 10; i++) await log.makeStable(log.append(Buffer.from(`small ${i}`)))
  const extended = log.metrics().preExtendedBytes
  assert.ok(extended > 0)
  await log.close()
  const size = disk.readFileSync('db/log').length
  assert.equal(size % S, 0, 'the file ends at a slot boundary')
  const again = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  for (let i = 0; i < 10; i++) await again.makeStable(again.append(Buffer.from(`after ${i}`)))
  assert.equal(again.metrics().preExtendedBytes, 0, 'the file already holds the resumed slot to its end')
  await again.close()
})

test('a failed synced write poisons the log like a failed datasync, and loses nothing acknowledged', async () => {
  // Odd cases write lone rounds on the main thread (docs/DESIGN.md, "Inline synced writes").
  for (let c = 0; c < 8; c++) {
    const failAt = c >> 1
    const inlineSyncedWrites = c % 2 === 1
    const disk = new SimDisk({ seed: 11 + failAt, trace: true })
    const log = await Log.open('db', {
      storage: disk.storage('db'),
      segmentBytes: S,
      flushEveryMs: 0,
      inlineSyncedWrites,
    })
    const acked: string[] = []
    for (let i = 0; i < 5; i++) {
      const r = `before ${i}`
      await log.makeStable(log.append(Buffer.from(r)))
      acked.push(r)
    }
    const before = disk.trace.length
    disk.setFaults({ failAt: { op: failAt, kinds: ['write'] } })
    let failed: unknown
    for (let i = 0; i < 8 && failed === undefined; i++) {
      const r = `after ${i}`
      try {
        await log.makeStable(log.append(Buffer.from(r)))
        acked.push(r)
      } catch (e) {
        failed = e
      }
    }
    const msg = `failAt=${failAt} inline=${inlineSyncedWrites}`
    assert.equal(log.metrics().inlineWrites > 0, inlineSyncedWrites, msg)
    assert.ok(failed instanceof IoError, `${msg}: the round rejects with IoError, got ${String(failed)}`)
    assert.ok(log.failure instanceof IoError, `${msg}: the log is poisoned`)
    await assert.rejects(log.flush(), IoError)
    assert.throws(() => log.append(Buffer.from('x')), IoError)
    const failedOp = disk.trace.slice(before).find((r) => !r.ok) as TraceRecord
    assert.equal(failedOp.synced, true, `${msg}: the failed op was a synced write`)
    const later = disk.trace.filter(
      (r) => r.start > failedOp.end && r.path === 'db/log' && (r.kind === 'datasync' || r.kind === 'write'),
    )
    assert.deepEqual(later, [], `${msg}: nothing written or synced after the failure (no retry)`)
    disk.setFaults({ failAt: undefined })
    await log.close()
    const again = await Log.open('db', {
      storage: disk.crash().storage('db'),
      segmentBytes: S,
      flushEveryMs: 0,
    })
    const got = await records(again)
    assert.deepEqual(
      got.slice(0, acked.length),
      acked,
      `${msg}: every acknowledged record survives a power cut`,
    )
    await again.close()
  }
})

test("a lone round still evaluates the 'datasync' failpoint and poisons on it", async () => {
  const disk = new SimDisk({ seed: 5 })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  await log.makeStable(log.append(Buffer.from('one')))
  log.failpoints.set('datasync')
  await assert.rejects(log.makeStable(log.append(Buffer.from('two'))), (e) => e instanceof Error)
  assert.ok(log.failure !== undefined)
  assert.equal(log.metrics().syncedWrites, 1)
  await log.close()
})
