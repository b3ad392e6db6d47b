// The memory of segment lives (segment-writer.ts): a finished life's buffer is reused by a
// later life, so nothing may still use it then. Checked here: no two live segment lives
// share a buffer, a spare buffer belongs to no live life and is spare once, records read
// from the writer's memory are copies that later lives cannot change, and every record
// reads back as appended, over writes that complete out of order (SimDisk latency).
// BOBSLED_SEED=<n> replays one seed.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { type SegmentWriter, SPARE_SEGMENT_BUFFERS } from '../../src/log/segment-writer.js'
import { Prng } from '../../src/util/prng.js'

const S = 1024

function writerOf(log: Log): SegmentWriter {
  return (log as unknown as { writer: SegmentWriter }).writer
}

function recordOf(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7 + 1) & 0xff
  return b
}

/** Every buffer has one owner: a live life, or the spare list (once). */
function ownershipProblem(w: SegmentWriter): string | undefined {
  const owner = new Map<ArrayBufferLike, string>()
  for (const seg of w.liveSegments.values()) {
    if (seg.isRecycled) return `live segment ${seg.baseLsn} is marked recycled`
    const other = owner.get(seg.buf.buffer)
    if (other !== undefined) return `segment ${seg.baseLsn} shares its buffer with ${other}`
    owner.set(seg.buf.buffer, `segment ${seg.baseLsn}`)
  }
  if (w.spareBuffers.length > SPARE_SEGMENT_BUFFERS) return `${w.spareBuffers.length} spare buffers`
  for (const [i, buf] of w.spareBuffers.entries()) {
    const other = owner.get(buf.buffer)
    if (other !== undefined) return `spare buffer ${i} is also owned by ${other}`
    owner.set(buf.buffer, `spare ${i}`)
  }
  return undefined
}

async function runSeed(seed: number): Promise<{ reused: number; fromMemory: number }> {
  const rng = new Prng(seed)
  const disk = new SimDisk({ seed, latency: true })
  const log = await Log.open('log', {
    storage: disk.storage('log'),
    segmentBytes: S,
    flushEveryMs: 0,
    writeHighWaterBytes: 3 * S,
  })
  const w = writerOf(log)
  const appended: Array<{ lsn: number; bytes: Uint8Array }> = []
  const copies: Array<{ got: Uint8Array; bytes: Uint8Array; lsn: number }> = []
  const seen = new Set<ArrayBufferLike>()
  let reused = 0
  let fromMemory = 0
  const flushes: Promise<unknown>[] = []
  for (let step = 0; step < 400; step++) {
    const n = 1 + rng.int(200)
    const bytes = recordOf(n, seed * 1000 + step)
    appended.push({ lsn: log.append(bytes), bytes })
    const cur = w.liveSegments.get(Math.max(...w.liveSegments.keys()))
    if (cur !== undefined) {
      if (seen.has(cur.buf.buffer)) reused++
      seen.add(cur.buf.buffer)
    }
    const roll = rng.int(10)
    if (roll === 0) flushes.push(log.flush())
    else if (roll === 1) await log.whenWritable()
    else if (roll === 2) await new Promise((r) => setImmediate(r))
    if (rng.int(3) === 0) {
      // A recent record: often not written yet, so served from the writer's memory.
      const pick = appended[Math.max(0, appended.length - 1 - rng.int(8))] as (typeof appended)[number]
      if (!w.written.isDone(pick.lsn)) fromMemory++
      const got = (await log.read(pick.lsn)).data
      assert.deepEqual(got, pick.bytes, `seed ${seed}: record at LSN ${pick.lsn}`)
      copies.push({ got, bytes: pick.bytes, lsn: pick.lsn })
    }
    const bad = ownershipProblem(w)
    assert.equal(bad, undefined, `seed ${seed}, step ${step}: ${bad}`)
  }
  await Promise.all(flushes)
  await log.flush()
  // Later lives reused the memory those reads came from; the copies must not have moved.
  for (const c of copies) assert.deepEqual(c.got, c.bytes, `seed ${seed}: copy of LSN ${c.lsn} changed`)
  for (const a of appended)
    assert.deepEqual((await log.read(a.lsn)).data, a.bytes, `seed ${seed}: LSN ${a.lsn}`)
  await log.close()
  return { reused, fromMemory }
}

describe('segment buffers', () => {
  test('no buffer is shared: out-of-order writes, reads from memory and disk, 40 seeds', async () => {
    const env = process.env.BOBSLED_SEED
    const seeds = env === undefined ? Array.from({ length: 40 }, (_, i) => i + 1) : [Number(env)]
    let reused = 0
    let fromMemory = 0
    for (const seed of seeds) {
      const r = await runSeed(seed)
      reused += r.reused
      fromMemory += r.fromMemory
    }
    // The test is only worth something if buffers were reused and memory was read.
    assert.ok(reused > 0, 'no segment buffer was reused')
    assert.ok(fromMemory > 0, 'no record was served from memory')
  })

  test('a record read before its write is a copy: reusing the segment memory does not change it', async () => {
    const disk = new SimDisk({ seed: 5, latency: false })
    const log = await Log.open('log', { storage: disk.storage('log'), segmentBytes: S, flushEveryMs: 0 })
    const w = writerOf(log)
    const first = recordOf(100, 1)
    const lsn = log.append(first)
    assert.equal(w.written.isDone(lsn), false)
    const got = (await log.read(lsn)).data
    const firstBuffer = w.liveSegments.get(0)?.buf.buffer
    assert.notEqual(got.buffer, firstBuffer, 'the record does not share the segment memory')
    // Fill segments until the first one's memory serves a later life.
    let isReused = false
    for (let i = 0; i < 100 && !isReused; i++) {
      log.append(recordOf(200, i + 2))
      await log.flush()
      for (const seg of w.liveSegments.values()) if (seg.buf.buffer === firstBuffer) isReused = true
    }
    assert.ok(isReused, 'the first segment buffer was reused')
    assert.deepEqual(got, first)
    assert.deepEqual((await log.read(lsn)).data, first)
    await log.close()
  })
})
