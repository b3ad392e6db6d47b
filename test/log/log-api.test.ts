// The log's public behaviour over real files and the simulated disk: round trips through
// a real reopen, batches, blobs, reservations, truncation, group commit, validation.

import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import {
  ClosedError,
  DatabaseLockedError,
  InvalidArgumentError,
  isBobsledError,
  LimitError,
} from '../../src/errors.js'
import { SimDisk } from '../../src/io/index.js'
import { Log, type LogRecord } from '../../src/log/index.js'

const dirs: string[] = []
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bobsled-log-'))
  dirs.push(d)
  return join(d, 'db')
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)

async function all(log: Log, from = 0): Promise<LogRecord[]> {
  const out: LogRecord[] = []
  for await (const r of log.iterFrom(from)) out.push(r)
  return out
}

describe('append, flush, reopen', () => {
  test('records come back after a real reopen with their ids, in LSN order', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
    const lsns: number[] = []
    for (let i = 0; i < 500; i++) lsns.push(log.append(enc(`record ${i}`), i))
    for (let i = 1; i < lsns.length; i++) assert.ok((lsns[i] as number) > (lsns[i - 1] as number))
    const stable = await log.flush()
    assert.ok(stable >= (lsns[499] as number))
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0 })
    const got = await all(log)
    assert.equal(got.length, 500)
    got.forEach((r, i) => {
      assert.equal(dec(r.data), `record ${i}`)
      assert.equal(r.id, i)
      assert.equal(r.lsn, lsns[i])
    })
    assert.equal(log.metrics().recoveredRecords, 500)
    // Iteration from the middle starts at that record.
    const tail = await all(log, lsns[250])
    assert.equal(tail.length, 250)
    assert.equal(dec((tail[0] as LogRecord).data), 'record 250')
    await log.close()
  })

  test('the segment size of an existing log wins over the option', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 2048, flushEveryMs: 0 })
    log.append(enc('x'))
    await log.close()
    log = await Log.open(dir, { segmentBytes: 1 << 20, flushEveryMs: 0 })
    assert.equal(log.segmentBytes, 2048)
    assert.equal((await all(log)).length, 1)
    await log.close()
  })

  test('records spanning many segments survive, with Cap padding between segments', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 1024, flushEveryMs: 0 })
    const sizes = Array.from({ length: 300 }, (_, i) => (i * 37) % 200)
    for (const [i, n] of sizes.entries()) log.append(new Uint8Array(n).fill(i & 0xff), i)
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0 })
    const got = await all(log)
    assert.deepEqual(
      got.map((r) => r.data.length),
      sizes,
    )
    for (const [i, r] of got.entries()) assert.ok(r.data.every((b) => b === (i & 0xff)))
    await log.close()
  })

  test('a log reopened after a crash-free close continues where it stopped', async () => {
    const dir = tempDir()
    for (let round = 0; round < 5; round++) {
      const log = await Log.open(dir, { segmentBytes: 1024, flushEveryMs: 0 })
      assert.equal((await all(log)).length, round * 30)
      for (let i = 0; i < 30; i++) log.append(enc(`r${round}-${i}`))
      await log.close()
    }
  })
})

describe('bulk', () => {
  test('bulk appends over several segments read back from memory, disk and a verified reopen', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { flushEveryMs: 0 })
    const lsns: number[] = []
    for (let i = 0; i < 30_000; i++) lsns.push(log.append(new Uint8Array(100).fill(i & 0xff), i))
    // Not yet written: served from memory.
    const early = await log.read(lsns[29_999] as number)
    assert.equal(early.id, 29_999)
    await log.flush()
    for (const i of [0, 12_345, 29_999]) {
      const r = await log.read(lsns[i] as number)
      assert.equal(r.id, i)
      assert.ok(r.data.every((b) => b === (i & 0xff)))
    }
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0, verifyOnOpen: true })
    let n = 0
    for await (const r of log.iterFrom(0)) {
      assert.equal(r.id, n)
      n++
    }
    assert.equal(n, 30_000)
    await log.close()
  })
})

describe('reads', () => {
  test('read() serves data not yet written from memory, and from disk afterwards', async () => {
    const dir = tempDir()
    const log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
    const lsn = log.append(enc('in memory'), 7)
    const early = await log.read(lsn)
    assert.equal(dec(early.data), 'in memory')
    assert.equal(early.id, 7)
    await log.flush()
    assert.equal(dec((await log.read(lsn)).data), 'in memory')
    await assert.rejects(log.read(lsn + 1), (e) => isBobsledError(e))
    await log.close()
  })

  test('iteration only returns stable records', async () => {
    const dir = tempDir()
    const log = await Log.open(dir, { flushEveryMs: 0 })
    log.append(enc('a'))
    await log.flush()
    log.append(enc('b'))
    assert.deepEqual(
      (await all(log)).map((r) => dec(r.data)),
      ['a'],
    )
    await log.flush()
    assert.deepEqual(
      (await all(log)).map((r) => dec(r.data)),
      ['a', 'b'],
    )
    await log.close()
  })
})

describe('batches, blobs, reservations', () => {
  test('a batch comes back whole and in order', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 1024, flushEveryMs: 0 })
    log.append(enc('before'))
    // Large enough to roll over several segments inside one batch.
    const batch = Array.from({ length: 40 }, (_, i) => enc(`batch ${i} ${'.'.repeat(50)}`))
    const last = log.appendBatch(batch, 3)
    log.append(enc('after'))
    await log.makeStable(last)
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0 })
    const got = (await all(log)).map((r) => dec(r.data))
    assert.equal(got.length, 42)
    assert.equal(got[0], 'before')
    assert.equal(got[41], 'after')
    for (let i = 0; i < 40; i++) assert.ok(got[i + 1]?.startsWith(`batch ${i} `))
    assert.equal(log.metrics().recoveredRecords, 42)
    await log.close()
  })

  test('large records go to synced blob files and come back; orphans are removed at open', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
    const big = new Uint8Array(50_000).map((_, i) => (i * 13) & 0xff)
    const lsn = await log.appendLarge(big, 9)
    const small = await log.appendLarge(enc('small'), 1)
    await log.flush()
    assert.equal(readdirSync(join(dir, 'blobs')).length, 1)
    const r = await log.read(lsn)
    assert.ok(r.isBlob)
    assert.deepEqual(r.data, big)
    assert.equal(dec((await log.read(small)).data), 'small')
    await log.close()
    // A blob whose pointer never became durable (crash between the two) is an orphan.
    writeFileSync(join(dir, 'blobs', '00000000000000ff'), 'orphan')
    log = await Log.open(dir, { flushEveryMs: 0 })
    assert.equal(existsSync(join(dir, 'blobs', '00000000000000ff')), false)
    const got = await all(log)
    assert.equal(got.length, 2)
    assert.deepEqual((got[0] as LogRecord).data, big)
    await log.close()
  })

  test('reserve(): filled in place; aborted reservations are skipped; double completion throws', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { flushEveryMs: 0 })
    const a = log.reserve(5, 1)
    const b = log.reserve(3, 2)
    a.body.set(enc('hello'))
    b.body.set(enc('bye'))
    // Completing out of order is fine; the buffer is written when the last writer leaves.
    b.abort()
    a.complete()
    assert.throws(() => a.complete(), InvalidArgumentError)
    // close() refuses while a reservation is open instead of waiting for it forever.
    const open = log.reserve(1)
    await assert.rejects(log.close(), InvalidArgumentError)
    open.abort()
    await log.flush()
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0 })
    assert.deepEqual(
      (await all(log)).map((r) => dec(r.data)),
      ['hello'],
    )
    await log.close()
  })
})

describe('truncation', () => {
  test('truncateBefore drops old segments, survives reopen, and reuses their slots', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 1024, flushEveryMs: 0 })
    const lsns: number[] = []
    for (let i = 0; i < 200; i++) lsns.push(log.append(new Uint8Array(60).fill(i)))
    await log.flush()
    const cut = lsns[150] as number
    await log.truncateBefore(cut)
    const left = await all(log)
    assert.ok(left.length < 200 && left.length >= 50, `kept ${left.length}`)
    assert.ok((left[0] as LogRecord).lsn <= cut, 'nothing at or after the cut is dropped')
    const sizeAfterTruncate = statSync(join(dir, 'log')).size
    // New segments take the freed slots instead of growing the file.
    for (let i = 0; i < 100; i++) log.append(new Uint8Array(60).fill(7))
    await log.flush()
    assert.ok(
      statSync(join(dir, 'log')).size <= Math.ceil(sizeAfterTruncate / 1024) * 1024,
      'the file did not grow',
    )
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0 })
    const again = await all(log)
    assert.equal(again.length, left.length + 100)
    assert.equal((again[0] as LogRecord).lsn, (left[0] as LogRecord).lsn)
    await log.close()
  })
})

describe('durability and group commit', () => {
  test('makeStable resolves only once the LSN is stable; 64 concurrent writers share syncs', async () => {
    const dir = tempDir()
    const log = await Log.open(dir, { flushEveryMs: 0 })
    const writers = Array.from({ length: 64 }, async (_, w) => {
      for (let i = 0; i < 20; i++) {
        const lsn = log.append(enc(`w${w} ${i}`))
        await log.makeStable(lsn)
        assert.ok(log.stableLsn >= lsn)
      }
    })
    await Promise.all(writers)
    const m = log.metrics()
    assert.ok(m.syncs < (64 * 20) / 4, `group commit: ${m.syncs} syncs for 1280 durable appends`)
    await log.close()
  })

  test('out-of-order completions on the simulated disk keep the stable LSN a monotone prefix', async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const disk = new SimDisk({ seed, latency: 5 })
      const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: 1024, flushEveryMs: 0 })
      let last = log.stableLsn as number
      const waits: Promise<void>[] = []
      for (let i = 0; i < 300; i++) {
        const lsn = log.append(new Uint8Array(i % 90))
        if (i % 7 === 0) {
          waits.push(
            log.makeStable(lsn).then(() => {
              assert.ok(log.stableLsn >= lsn, `seed=${seed}`)
              assert.ok(log.stableLsn >= last, `seed=${seed}: stable LSN went back`)
              last = log.stableLsn
            }),
          )
        }
        if (i % 50 === 0) await new Promise((r) => setImmediate(r))
      }
      await Promise.all(waits)
      await log.close()
    }
  })

  test('the background flusher makes appends durable without a flush call', async () => {
    const dir = tempDir()
    const log = await Log.open(dir, { flushEveryMs: 10 })
    const lsn = log.append(enc('eventually'))
    const t0 = Date.now()
    while (log.stableLsn < lsn && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5))
    assert.ok(log.stableLsn >= lsn)
    await log.close()
  })

  test('syncEveryBytes syncs written bytes in the background; 0 leaves them to waiters', async () => {
    const S = 4096
    const run = async (syncEveryBytes: number): Promise<{ stable: number; syncs: number; last: number }> => {
      const disk = new SimDisk({ seed: 3 })
      const log = await Log.open('db', {
        storage: disk.storage('db'),
        segmentBytes: S,
        flushEveryMs: 0,
        syncEveryBytes,
      })
      let last = -1
      // 40 segments of appends, nobody waiting for stability: only the byte trigger syncs.
      for (let i = 0; i < 40 * 40; i++) {
        last = log.append(new Uint8Array(90).fill(i & 255))
        if (i % 40 === 39) await log.whenWritable()
      }
      await log.makeDurable(last as never)
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
      const out = { stable: log.stableLsn as number, syncs: log.metrics().syncs, last }
      // The stable LSN the log published must survive a power cut: only synced bytes count.
      const stable = out.stable
      const reopened = await Log.open('db', {
        storage: disk.crash({ seed: 5 }).storage('db'),
        flushEveryMs: 0,
      })
      const recs = await all(reopened)
      const lastLsn = recs.length === 0 ? -1 : (recs[recs.length - 1]?.lsn as number)
      assert.ok(lastLsn >= stable - 100, `recovered up to ${lastLsn}, stable was ${stable}`)
      await reopened.close()
      return out
    }
    const on = await run(8 * S)
    assert.ok(on.syncs >= 2, `${on.syncs} background syncs over 40 segments with syncEveryBytes = 8 segments`)
    assert.ok(
      on.stable >= on.last - 8 * S - S,
      `stable ${on.stable} lags the last append ${on.last} by > 9 segments`,
    )
    const off = await run(0)
    assert.equal(off.syncs, 0, 'with syncEveryBytes 0 nobody waited, so nothing synced')
    assert.ok(off.stable < 0, `stable ${off.stable} moved without a sync`)
  })
})

describe('appendWithHead', () => {
  test('stores exactly the record append() of head + body would, on both append paths', async () => {
    const dir = tempDir()
    let log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
    const want: Array<{ lsn: number; bytes: Uint8Array; id: number }> = []
    for (let i = 0; i < 300; i++) {
      // Sizes that keep crossing buffer and segment ends (the slow path seals and rolls).
      const head = enc(`h${i}:`)
      const body = new Uint8Array((i * 37) % 900).fill(i & 0xff)
      const bytes = new Uint8Array(head.length + body.length)
      bytes.set(head)
      bytes.set(body, head.length)
      want.push({ lsn: log.appendWithHead(head, body, i), bytes, id: i })
      if (i % 50 === 49) await log.flush()
    }
    const empty = log.appendWithHead(new Uint8Array(0), new Uint8Array(0))
    await log.close()
    log = await Log.open(dir, { flushEveryMs: 0 })
    const got = await all(log)
    assert.equal(got.length, want.length + 1)
    want.forEach((w, i) => {
      const r = got[i] as LogRecord
      assert.equal(r.lsn, w.lsn)
      assert.equal(r.id, w.id)
      assert.deepEqual(r.data, w.bytes)
    })
    assert.equal((got[want.length] as LogRecord).lsn, empty)
    assert.equal((got[want.length] as LogRecord).data.length, 0)
    await log.close()
  })
})

describe('misuse and limits', () => {
  test('wrong types and over-limit input are typed errors and change nothing', async () => {
    const dir = tempDir()
    const log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
    log.append(enc('keep'))
    const before = log.maxReservedLsn
    const bad: Array<() => unknown> = [
      () => log.append('string' as unknown as Uint8Array),
      () => log.append(null as unknown as Uint8Array),
      () => log.append(enc('x'), -1),
      () => log.append(enc('x'), 1.5),
      () => log.append(enc('x'), Number.MAX_SAFE_INTEGER + 2),
      () => log.append(new Uint8Array(log.maxInlineBytes + 1)),
      () => log.appendBatch([]),
      () => log.appendBatch([enc('ok'), 'no' as unknown as Uint8Array]),
      () => log.appendBatch('no' as unknown as Uint8Array[]),
      () => log.reserve(-1),
      () => log.reserve(log.maxInlineBytes + 1),
      () => log.appendWithHead('no' as unknown as Uint8Array, enc('x')),
      () => log.appendWithHead(enc('x'), null as unknown as Uint8Array),
      () => log.appendWithHead(enc('xy'), new Uint8Array(log.maxInlineBytes - 1)),
      () => log.appendWithHead(enc('x'), enc('y'), -1),
    ]
    for (const f of bad) {
      assert.throws(
        f,
        (e) => (e instanceof InvalidArgumentError || e instanceof LimitError) && isBobsledError(e),
      )
    }
    await assert.rejects(log.appendLarge(new Uint8Array(10), -3), InvalidArgumentError)
    await assert.rejects(log.makeStable(before + 1000), InvalidArgumentError)
    assert.equal(log.maxReservedLsn, before)
    await log.close()
    await assert.rejects(
      Log.open(tempDir(), { segmentBytes: 3000 }),
      (e) => e instanceof InvalidArgumentError,
    )
  })

  test('a closed log refuses work with ClosedError', async () => {
    const log = await Log.open(tempDir(), { flushEveryMs: 0 })
    await log.close()
    assert.throws(() => log.append(enc('late')), ClosedError)
    await assert.rejects(log.flush(), ClosedError)
  })

  test('a second opener of the same folder gets DatabaseLockedError; after close it opens', async () => {
    const dir = tempDir()
    const log = await Log.open(dir, { flushEveryMs: 0 })
    await assert.rejects(Log.open(dir, { flushEveryMs: 0 }), DatabaseLockedError)
    await log.close()
    const again = await Log.open(dir, { flushEveryMs: 0 })
    await again.close()
  })
})
