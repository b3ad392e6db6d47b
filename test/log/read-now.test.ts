// Log.readNow(): read() on the calling thread (docs/DESIGN.md, "Inline reads"). It must
// return what read() returns for bytes on disk and bytes still in the writer's memory,
// find the same damage, fail with the same IO errors, and say "not now" (undefined)
// where it cannot read synchronously: a blob pointer, a file without readNow.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ClosedError, CorruptionError, InvalidArgumentError, IoError } from '../../src/errors.js'
import { SimDisk, type Storage, type StorageFile } from '../../src/io/index.js'
import { Log, type LogRecord } from '../../src/log/index.js'
import { Prng } from '../../src/util/prng.js'
import { ForwardingStorage, forwardFile } from '../helpers/forwarding-storage.js'

const S = 32 * 1024

const recordOf = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

/** The log file without readNow, as a wrapper over asynchronous views would be. */
class NoReadNow extends ForwardingStorage {
  override async openFile(name: string, mode: Parameters<Storage['openFile']>[1]): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    return forwardFile(f)
  }
}

const same = (a: LogRecord | undefined, b: LogRecord, what: string) => {
  assert.ok(a !== undefined, `${what}: read synchronously`)
  assert.equal(a.lsn, b.lsn, what)
  assert.equal(a.id, b.id, what)
  assert.equal(a.isBlob, false, what)
  assert.deepEqual(a.data, b.data, what)
}

/** Sizes around the read window and the segment's room, seeded. */
function sizesOf(rng: Prng, count: number): number[] {
  return Array.from({ length: count }, () => {
    const k = rng.int(4)
    if (k === 0) return rng.int(40)
    if (k === 1) return 4000 + rng.int(200)
    if (k === 2) return rng.int(7000)
    return 100 + rng.int(200)
  })
}

describe('Log.readNow', () => {
  for (const seed of [1, 2, 3]) {
    test(`returns what read() returns, from disk and from memory, with and without a size hint (seed ${seed})`, async () => {
      const rng = new Prng(seed)
      const disk = new SimDisk({ seed })
      const sizes = sizesOf(rng, 60)
      let log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
      const lsns = sizes.map((n, i) => log.append(recordOf(n, i), i + 1))
      const check = async (from: number, what: string) => {
        for (let i = from; i < lsns.length; i++) {
          const lsn = lsns[i] as number
          const hint = i + 1 < lsns.length ? (lsns[i + 1] as number) - lsn : undefined
          const want = await log.read(lsn)
          assert.deepEqual(want.data, recordOf(sizes[i] as number, i), `seed=${seed} ${what} record ${i}`)
          same(log.readNow(lsn), want, `seed=${seed} ${what} record ${i}`)
          same(log.readNow(lsn, hint), want, `seed=${seed} ${what} record ${i}, hint`)
          const scratch = new Uint8Array(8192)
          same(log.readNow(lsn, hint, scratch), want, `seed=${seed} ${what} record ${i}, scratch`)
        }
      }
      // Nothing flushed yet: the unwritten ones come from the writer's memory.
      await check(0, 'in memory')
      await log.flush()
      await check(0, 'on disk')
      // A few more, unwritten, behind written ones.
      const more = sizesOf(rng, 10)
      for (const n of more) {
        sizes.push(n)
        lsns.push(log.append(recordOf(n, sizes.length - 1), sizes.length))
      }
      await check(0, 'mixed')
      await log.close()
      log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
      await check(0, 'after reopen')
      await log.close()
      assert.throws(() => log.readNow(lsns[0] as number), ClosedError)
    })
  }

  test('damage on disk is a CorruptionError, never wrong data', async () => {
    const disk = new SimDisk({ seed: 7 })
    let log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
    const small = log.append(recordOf(100, 1), 1)
    const large = log.append(recordOf(6000, 2), 2)
    log.append(recordOf(10, 3), 3)
    await log.close()
    // The first segment sits in slot 0: an LSN is its file offset.
    for (const [lsn, at] of [
      [small, small + 40],
      [large, large + 5000],
      [large, large + 2],
    ] as const) {
      const bytes = disk.readFileSync('db/log')
      const good = bytes[at] as number
      bytes[at] = good ^ 0x10
      disk.writeFileRaw('db/log', bytes)
      log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
      assert.throws(
        () => log.readNow(lsn),
        (e) => e instanceof CorruptionError,
        `a flipped byte at ${at} of the record at ${lsn}`,
      )
      await assert.rejects(log.read(lsn), CorruptionError, 'read() agrees')
      await log.close()
      bytes[at] = good
      disk.writeFileRaw('db/log', bytes)
    }
    log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
    assert.deepEqual(log.readNow(large)?.data, recordOf(6000, 2), 'repaired, it reads again')
    assert.throws(
      () => log.readNow(large + 1),
      (e) => e instanceof CorruptionError || e instanceof InvalidArgumentError,
    )
    assert.throws(() => log.readNow(-1), InvalidArgumentError)
    assert.throws(() => log.readNow(small, -1), InvalidArgumentError)
    await log.close()
  })

  test('an IO error is thrown, typed, as read() rejects with it', async () => {
    const disk = new SimDisk({ seed: 8 })
    const log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
    const lsn = log.append(recordOf(300, 1), 1)
    await log.flush()
    disk.setFaults({ failAt: { op: 0, kinds: ['read'] } })
    assert.throws(
      () => log.readNow(lsn, 320),
      (e) => e instanceof IoError && e.syscallCode === 'EIO',
    )
    same(log.readNow(lsn), await log.read(lsn), 'the fault was one read')
    await log.close()
  })

  test('undefined, and nothing read, where it cannot read synchronously: a blob pointer, a file without readNow', async () => {
    const disk = new SimDisk({ seed: 9 })
    let log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
    const blob = await log.appendLarge(recordOf(20_000, 1), 1)
    const inline = log.append(recordOf(50, 2), 2)
    await log.flush()
    assert.equal(log.readNow(blob), undefined, 'a blob pointer')
    assert.equal((await log.read(blob)).isBlob, true)
    same(log.readNow(inline), await log.read(inline), 'an inline record')
    await log.close()
    log = await Log.open('db', { storage: new NoReadNow(disk.storage()), segmentBytes: S, flushEveryMs: 0 })
    const ops = disk.opCount
    assert.equal(log.readNow(inline), undefined, 'a file without readNow')
    assert.equal(disk.opCount, ops, 'no op was issued')
    assert.deepEqual((await log.read(inline)).data, recordOf(50, 2))
    await log.close()
  })
})
