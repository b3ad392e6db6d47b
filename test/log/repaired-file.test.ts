// RepairedFile: the log as recovery plans to leave it, read before a byte of the plan is
// written. Its readNow() must read exactly what read() reads (the base, replayed journal
// extents laid over it, zeroed ranges, the planned size) and exist only when both files
// underneath can read on the calling thread.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { SimDisk, type StorageFile } from '../../src/io/index.js'
import { RepairedFile } from '../../src/log/repaired-file.js'
import { Prng } from '../../src/util/prng.js'
import { forwardFile } from '../helpers/forwarding-storage.js'

const bytesOf = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13 + 1) & 0xff
  return b
}

async function filled(disk: SimDisk, name: string, bytes: Uint8Array): Promise<StorageFile> {
  const storage = disk.storage()
  await storage.ensureRoot()
  const f = await storage.openFile(name, 'create')
  await f.write(bytes, 0, bytes.length, 0)
  return f
}

describe('RepairedFile', () => {
  for (const seed of [1, 2, 3, 4]) {
    test(`readNow() reads what read() reads, patches and size included (seed ${seed})`, async () => {
      const rng = new Prng(seed)
      const disk = new SimDisk({ seed })
      const baseBytes = 20_000 + rng.int(5000)
      const base = await filled(disk, 'log', bytesOf(baseBytes, seed))
      const journal = await filled(disk, 'journal', bytesOf(8000, seed + 100))
      const view = new RepairedFile(base, baseBytes, journal)
      // Extents that overlap each other, the base's end and zeroed ranges, in plan order.
      for (let i = 0; i < 6; i++) {
        const length = 1 + rng.int(1500)
        view.fromJournal(rng.int(baseBytes + 2000), length, rng.int(8000 - length))
        view.zero(rng.int(baseBytes), 1 + rng.int(800))
      }
      view.cut(baseBytes + 1000 - rng.int(3000))
      const readNow = view.readNow
      assert.ok(readNow !== undefined, 'both files read synchronously: so does the view')
      const size = await view.size()
      for (let i = 0; i < 200; i++) {
        const position = rng.int(size + 500)
        const length = rng.int(4000)
        const a = new Uint8Array(length + 8).fill(0xee)
        const b = new Uint8Array(length + 8).fill(0xee)
        const n = await view.read(a, 4, length, position)
        const m: number = readNow(b, 4, length, position)
        assert.equal(m, n, `bytes read at ${position}+${length} (seed ${seed})`)
        assert.deepEqual(b, a, `bytes at ${position}+${length} (seed ${seed})`)
      }
    })
  }

  test('the patches change what is read: a journal extent and a zeroed range show through readNow()', async () => {
    const disk = new SimDisk({ seed: 9 })
    const base = await filled(disk, 'log', new Uint8Array(4096).fill(1))
    const journal = await filled(disk, 'journal', new Uint8Array(4096).fill(2))
    const view = new RepairedFile(base, 4096, journal)
    view.fromJournal(100, 50, 0)
    view.zero(120, 10)
    view.fromJournal(4096, 100, 200)
    const out = new Uint8Array(200)
    const readNow = view.readNow
    assert.ok(readNow !== undefined)
    assert.equal(readNow(out, 0, 200, 4000), 196)
    assert.deepEqual(out.subarray(0, 96), new Uint8Array(96).fill(1), 'the base')
    assert.deepEqual(
      out.subarray(96, 196),
      new Uint8Array(100).fill(2),
      'an extent past the base, from the journal',
    )
    const mid = new Uint8Array(60)
    assert.equal(readNow(mid, 0, 60, 95), 60)
    assert.deepEqual([...mid.subarray(0, 5)], [1, 1, 1, 1, 1])
    assert.deepEqual([...mid.subarray(5, 25)], new Array(20).fill(2), 'the extent')
    assert.deepEqual(
      [...mid.subarray(25, 35)],
      new Array(10).fill(0),
      'zeroed over the extent: the later patch wins',
    )
    assert.deepEqual([...mid.subarray(35, 55)], new Array(20).fill(2))
    assert.deepEqual([...mid.subarray(55, 60)], [1, 1, 1, 1, 1])
  })

  test('no readNow when the log file or the journal cannot read synchronously', async () => {
    const disk = new SimDisk({ seed: 5 })
    const base = await filled(disk, 'log', bytesOf(100, 1))
    const journal = await filled(disk, 'journal', bytesOf(100, 2))
    assert.equal(new RepairedFile(forwardFile(base), 100, journal).readNow, undefined)
    assert.equal(new RepairedFile(base, 100, forwardFile(journal)).readNow, undefined)
    assert.ok(new RepairedFile(base, 100, undefined).readNow !== undefined, 'no journal: the base decides')
    assert.ok(
      new RepairedFile(undefined, 0, undefined).readNow !== undefined,
      'no log file yet: reads as empty',
    )
  })
})
