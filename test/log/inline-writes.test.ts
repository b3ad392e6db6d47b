// Inline synced writes (docs/DESIGN.md, "Inline synced writes"): a lone round of at most
// INLINE_MAX_BYTES is one StorageFile.writeSyncedNow() on the main thread, its completion
// delivered after a setImmediate; the policy sends rounds to the pool while paused (the page
// cache's warm-up) and for INLINE_BACKOFF_ROUNDS rounds once the disk is seen to be slow.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type OpenMode, SimDisk, type StorageFile } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import {
  INLINE_BACKOFF_ROUNDS,
  INLINE_MAX_BYTES,
  INLINE_SLOW_MS,
  INLINE_SLOW_TRIP,
} from '../../src/log/segment-writer.js'
import { ForwardingStorage, forwardFile } from '../helpers/forwarding-storage.js'

const S = 256 * 1024

/** Forwards every call; the log's writeSyncedNow takes over INLINE_SLOW_MS while `isSlow`. */
class SlowInlineStorage extends ForwardingStorage {
  isSlow = false
  slowCalls = 0

  override async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    const now = f.writeSyncedNow?.bind(f)
    assert.ok(now !== undefined)
    return forwardFile(f, {
      writeSyncedNow: (b, o, l, p) => {
        if (this.isSlow && name === 'log') {
          this.slowCalls++
          const until = performance.now() + INLINE_SLOW_MS * 1.5
          while (performance.now() < until) {
            // A disk that holds the thread: what the guard must notice.
          }
        }
        return now(b, o, l, p)
      },
    })
  }
}

async function durableRounds(log: Log, n: number, bytes = 100): Promise<void> {
  for (let i = 0; i < n; i++) await log.makeStable(log.append(new Uint8Array(bytes).fill(i & 0xff)))
}

test('lone rounds go inline on a file that offers it, and not with the option off', async () => {
  for (const inlineSyncedWrites of [true, false]) {
    const disk = new SimDisk({ seed: 1, latency: true })
    const log = await Log.open('db', {
      storage: disk.storage('db'),
      segmentBytes: S,
      flushEveryMs: 0,
      inlineSyncedWrites,
    })
    await durableRounds(log, 30)
    const m = log.metrics()
    const msg = `inline=${inlineSyncedWrites} ${JSON.stringify({ syncs: m.syncs, synced: m.syncedWrites, inline: m.inlineWrites })}`
    // Round 2 pre-extends the segment (a write, zeros, a datasync): never a lone round.
    assert.equal(m.syncedWrites, 29, msg)
    assert.equal(m.inlineWrites, inlineSyncedWrites ? 29 : 0, msg)
    assert.equal(m.inlineFallbacks, 0, msg)
    await log.close()
    const again = await Log.open('db', { storage: disk.crash().storage('db'), flushEveryMs: 0 })
    let n = 0
    for await (const r of again.iterFrom(0)) assert.equal(r.data[0], n++ & 0xff, msg)
    assert.equal(n, 30, `${msg}: every acknowledged round survives a power cut`)
    await again.close()
  }
})

test('a round over INLINE_MAX_BYTES goes to the pool', async () => {
  const disk = new SimDisk({ seed: 2 })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: 1 << 20, flushEveryMs: 0 })
  await durableRounds(log, 3, 100)
  const before = log.metrics()
  await log.makeStable(log.append(new Uint8Array(INLINE_MAX_BYTES + 1)))
  const m = log.metrics()
  assert.equal(m.syncedWrites, before.syncedWrites + 1, 'still one synced write')
  assert.equal(m.inlineWrites, before.inlineWrites, 'but not inline')
  await log.close()
})

test('the completion of an inline write waits for a setImmediate, never a bare microtask', async () => {
  const disk = new SimDisk({ seed: 3, latency: false })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  await durableRounds(log, 3)
  const inline0 = log.metrics().inlineWrites
  let isStable = false
  const p = log.makeStable(log.append(Buffer.from('x'))).then(() => {
    isStable = true
  })
  // Drain the microtask queue many times over: the seal and the write run, the ack must not.
  for (let i = 0; i < 50; i++) await Promise.resolve()
  assert.equal(log.metrics().inlineWrites, inline0 + 1, 'the round was written inline')
  assert.equal(isStable, false, 'acknowledged before the event loop turned')
  await p
  // An awaited durable loop lets timers and immediates run: starved, none would in 5000 rounds.
  let immediates = 0
  let timers = 0
  const tick = setInterval(() => timers++, 0)
  const imm = (): void => {
    immediates++
    if (immediates < 1000) setImmediate(imm)
  }
  setImmediate(imm)
  let rounds = 0
  while (timers < 3 && rounds < 5000) {
    await log.makeStable(log.append(Buffer.from(`r${rounds}`)))
    rounds++
  }
  clearInterval(tick)
  assert.ok(timers >= 3, `a timer ran ${timers} times in ${rounds} durable rounds`)
  assert.ok(immediates >= rounds / 2, `${immediates} immediates in ${rounds} rounds`)
  assert.ok(log.metrics().inlineWrites >= inline0 + rounds, 'the loop wrote inline')
  await log.close()
})

test('a slow disk sends the next INLINE_BACKOFF_ROUNDS lone rounds to the pool, then inline resumes', async () => {
  const disk = new SimDisk({ seed: 4, latency: false })
  const storage = new SlowInlineStorage(disk.storage('db'))
  const log = await Log.open('db', { storage, segmentBytes: S, flushEveryMs: 0 })
  await durableRounds(log, 5)
  const m0 = log.metrics()
  // Slow writes until the guard trips: at the INLINE_SLOW_TRIP-th (a write the machine
  // happened to slow down too could trip it sooner; nothing here depends on the exact one).
  storage.isSlow = true
  while (log.metrics().inlineFallbacks === 0 && storage.slowCalls < 2 * INLINE_SLOW_TRIP)
    await durableRounds(log, 1)
  storage.isSlow = false
  const m1 = log.metrics()
  const msg = JSON.stringify(m1)
  assert.ok(storage.slowCalls <= INLINE_SLOW_TRIP, `tripped after ${storage.slowCalls} slow writes: ${msg}`)
  assert.ok(m1.inlineSlowWrites - m0.inlineSlowWrites >= storage.slowCalls, msg)
  assert.equal(m1.inlineFallbacks, 1, `the round after the trip went to the pool: ${msg}`)
  // The rest of the backoff goes to the pool too: synced writes, none inline.
  await durableRounds(log, INLINE_BACKOFF_ROUNDS - 1)
  const m2 = log.metrics()
  assert.equal(m2.inlineWrites, m1.inlineWrites, 'no inline write while backing off')
  assert.equal(m2.inlineFallbacks, INLINE_BACKOFF_ROUNDS)
  assert.equal(
    m2.syncedWrites - m1.syncedWrites,
    INLINE_BACKOFF_ROUNDS - 1,
    'still one synced write per round',
  )
  // Then inline is tried again.
  await durableRounds(log, 10)
  const m3 = log.metrics()
  assert.equal(m3.inlineWrites - m2.inlineWrites, 10, 'inline resumed')
  assert.equal(m3.inlineFallbacks, INLINE_BACKOFF_ROUNDS)
  // One slow write alone (a hiccup) does not trip it.
  storage.isSlow = true
  await durableRounds(log, 1)
  storage.isSlow = false
  await durableRounds(log, 10)
  const m4 = log.metrics()
  assert.equal(m4.inlineWrites - m3.inlineWrites, 11, JSON.stringify(m4))
  assert.equal(m4.inlineFallbacks, INLINE_BACKOFF_ROUNDS)
  await log.close()
})

test('pauseInlineSyncedWrites() sends lone rounds to the pool until resumed', async () => {
  const disk = new SimDisk({ seed: 5 })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  await durableRounds(log, 3)
  const a = log.pauseInlineSyncedWrites()
  const b = log.pauseInlineSyncedWrites()
  const m0 = log.metrics()
  await durableRounds(log, 5)
  a()
  a() // a second call does nothing: b still holds
  await durableRounds(log, 5)
  const m1 = log.metrics()
  assert.equal(m1.inlineWrites, m0.inlineWrites, 'paused')
  assert.equal(m1.syncedWrites - m0.syncedWrites, 10)
  assert.equal(m1.inlineFallbacks, 0, 'a pause is policy, not a fallback')
  b()
  await durableRounds(log, 5)
  assert.equal(log.metrics().inlineWrites - m1.inlineWrites, 5, 'resumed')
  await log.close()
})
