import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DatabaseLockedError,
  DiskFullError,
  InvalidArgumentError,
  IoError,
  NotADatabaseError,
} from '../../src/errors.js'
import { type OpKind, SimDisk, type Storage, type StorageFile } from '../../src/io/index.js'
import { Prng } from '../../src/util/prng.js'

const fill = (len: number, byte: number) => new Uint8Array(len).fill(byte)
const pattern = (len: number, seed: number) =>
  Uint8Array.from({ length: len }, (_, i) => ((i * 7 + seed) % 251) + 1)

async function readAll(f: StorageFile): Promise<Uint8Array> {
  const size = await f.size()
  const buf = new Uint8Array(size)
  assert.equal(await f.read(buf, 0, size, 0), size)
  return buf
}

async function freshDb(seed: number, extra: Partial<ConstructorParameters<typeof SimDisk>[0]> = {}) {
  const disk = new SimDisk({ seed, ...extra })
  const s = disk.storage()
  await s.ensureRoot()
  return { disk, s }
}

/** A durable file 'log' holding `base`, then `unsynced` writes issued and completed. */
async function logWithPending(seed: number, base: Uint8Array, unsynced: Array<[Uint8Array, number]>) {
  const { disk, s } = await freshDb(seed)
  const f = await s.openFile('log', 'create')
  await f.write(base, 0, base.length, 0)
  await f.datasync()
  await s.syncDir('')
  for (const [b, pos] of unsynced) await f.write(b, 0, b.length, pos)
  return { disk, s, f }
}

describe('SimDisk: crash keeps only what the model allows', () => {
  test('datasynced writes always survive; unsynced ones survive whole, torn or not at all', async () => {
    const A = fill(1000, 0xa1)
    const B = fill(1500, 0xb2)
    const C = fill(100, 0xc3)
    let sawBWhole = 0
    let sawBGone = 0
    let sawSizeWithoutContent = 0
    for (let seed = 0; seed < 150; seed++) {
      const { disk } = await logWithPending(seed, A, [
        [B, 1000],
        [C, 200],
      ])
      const after = disk.crash()
      const img = after.readFileSync('db/log')
      const msg = `seed=${seed}`
      assert.ok(img.length >= 1000 && img.length <= 2500, `${msg} size ${img.length}`)
      for (let i = 0; i < 1000; i++) {
        const inC = i >= 200 && i < 300
        const ok = img[i] === 0xa1 || (inC && (img[i] === 0xc3 || img[i] === 0))
        assert.ok(ok, `${msg} byte ${i} = ${img[i]}`)
      }
      for (let i = 1000; i < img.length; i++) assert.ok(img[i] === 0xb2 || img[i] === 0, `${msg} byte ${i}`)
      const tail = img.subarray(1000)
      if (tail.length === 1500 && tail.every((b) => b === 0xb2)) sawBWhole++
      if (img.length === 1000) sawBGone++
      if (tail.length === 1500 && tail.every((b) => b === 0)) sawSizeWithoutContent++
    }
    assert.ok(sawBWhole > 0, 'some crash kept the unsynced write')
    assert.ok(sawBGone > 0, 'some crash lost it')
    assert.ok(sawSizeWithoutContent > 0, 'some crash kept the size but not the content')
  })

  test('after datasync and syncDir nothing is pending and every crash keeps everything', async () => {
    for (let seed = 0; seed < 40; seed++) {
      const { disk, s, f } = await logWithPending(seed, fill(10, 1), [[pattern(3000, seed), 700]])
      await f.truncate(2000)
      await f.datasync()
      await s.mkdir('blobs')
      const b = await s.openFile('blobs/1', 'create')
      await b.write(pattern(50, 9), 0, 50, 0)
      await b.datasync()
      await s.syncDir('blobs')
      await s.syncDir('')
      assert.deepEqual(disk.pendingCount(), { data: 0, dir: 0 })
      const expected = disk.readFileSync('db/log')
      const after = disk.crash()
      assert.deepEqual(after.readFileSync('db/log'), expected, `seed=${seed}`)
      assert.deepEqual(after.readFileSync('db/blobs/1'), pattern(50, 9), `seed=${seed}`)
    }
  })

  test('the same crash seed gives the same image; other seeds differ', async () => {
    const images = new Map<number, string>()
    for (const crashSeed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const runs: string[] = []
      for (let repeat = 0; repeat < 2; repeat++) {
        const { disk } = await logWithPending(99, fill(4096, 1), [
          [pattern(5000, 3), 1000],
          [pattern(700, 4), 3900],
          [pattern(100, 5), 9000],
        ])
        const img = disk.crash({ seed: crashSeed }).readFileSync('db/log')
        runs.push(Buffer.from(img).toString('hex'))
      }
      assert.equal(runs[0], runs[1], `crash seed ${crashSeed} replays`)
      images.set(crashSeed, runs[0] as string)
    }
    assert.ok(new Set(images.values()).size > 1, 'different crash seeds give different images')
  })

  test('a torn write leaves each sector old, new or zero, and bytes outside it untouched', async () => {
    const OLD = 0x11
    const NEW = 0x22
    let mixed = 0
    for (let seed = 0; seed < 120; seed++) {
      // Unaligned on both ends: sectors 1..8 are touched, bytes 0..699 and 4801.. are not.
      const { disk } = await logWithPending(seed, fill(6000, OLD), [[fill(4100, NEW), 700]])
      const img = disk.crash({ seed: seed * 3 + 1 }).readFileSync('db/log')
      assert.equal(img.length, 6000)
      for (let i = 0; i < 700; i++) assert.equal(img[i], OLD, `seed=${seed} byte ${i} before the write`)
      for (let i = 4800; i < 6000; i++) assert.equal(img[i], OLD, `seed=${seed} byte ${i} after the write`)
      const kinds = new Set<string>()
      for (let sector = 1; sector <= 9; sector++) {
        const from = Math.max(700, sector * 512)
        const to = Math.min(4800, (sector + 1) * 512)
        const part = img.subarray(from, to)
        const v = part[0]
        assert.ok(v === OLD || v === NEW || v === 0, `seed=${seed} sector ${sector} holds ${v}`)
        assert.ok(
          part.every((b) => b === v),
          `seed=${seed} sector ${sector} is not uniform`,
        )
        kinds.add(String(v))
      }
      if (kinds.size > 1) mixed++
    }
    assert.ok(mixed > 0, 'some crash tore the write')
  })

  test('without reordering the kept writes are a prefix in completion order', async () => {
    let sawMiddle = 0
    for (let seed = 0; seed < 60; seed++) {
      const writes: Array<[Uint8Array, number]> = []
      for (let i = 0; i < 8; i++) writes.push([fill(512, i + 1), i * 512])
      const { disk } = await logWithPending(seed, fill(4096, 0xee), writes)
      const img = disk.crash({ tornWrites: false, reorder: false }).readFileSync('db/log')
      const kept = [...Array(8).keys()].map((i) => img[i * 512] === i + 1)
      const firstLost = kept.indexOf(false)
      if (firstLost >= 0)
        assert.ok(
          kept.slice(firstLost).every((k) => !k),
          `seed=${seed} kept ${kept}`,
        )
      if (firstLost > 0) sawMiddle++
    }
    assert.ok(sawMiddle > 0)
  })

  test('writes still in flight at the crash may land, torn or whole', async () => {
    let landed = 0
    let inFlight = 0
    for (let seed = 0; seed < 40; seed++) {
      const { disk, s } = await freshDb(seed, { latency: 5 })
      const f = await s.openFile('log', 'create')
      await f.datasync()
      await s.syncDir('')
      const p = f.write(fill(2048, 7), 0, 2048, 0)
      // With zero latency turns the write has already completed and is merely pending.
      const isInFlight = disk.pendingCount().data === 0
      const after = disk.crash({ seed })
      const img = after.readFileSync('db/log')
      for (const b of img) assert.ok(b === 7 || b === 0)
      if (isInFlight) {
        await assert.rejects(p, IoError)
        inFlight++
        if (img.some((b) => b === 7)) landed++
      } else await p
    }
    assert.ok(inFlight > 0 && landed > 0, `${landed} of ${inFlight} in-flight writes landed`)
  })

  test('a write stores the bytes it was given: a Buffer changed after write() resolves stays out', async () => {
    // As pwrite(2) copies: the log reuses its segment Buffers once their writes settle, and
    // Buffer's slice() is a view, so the disk must not keep one.
    for (const latency of [false, true]) {
      const { disk, s } = await freshDb(3, { latency })
      const f = await s.openFile('log', 'create')
      const buf = Buffer.alloc(512, 7)
      await f.write(buf, 0, buf.length, 0)
      buf.fill(9)
      await f.datasync()
      await s.syncDir('')
      buf.fill(11)
      assert.ok((await readAll(f)).every((b) => b === 7))
      assert.ok(
        disk
          .crash({ seed: 1 })
          .readFileSync('db/log')
          .every((b) => b === 7),
      )
    }
  })
})

describe('SimDisk: folder entries', () => {
  test('a create without syncDir vanishes for some seeds; with syncDir it always survives', async () => {
    let vanished = 0
    let survived = 0
    for (let seed = 0; seed < 60; seed++) {
      for (const isDirSynced of [false, true]) {
        const { disk, s } = await freshDb(seed)
        const f = await s.openFile('seg', 'create')
        await f.write(fill(100, 5), 0, 100, 0)
        await f.datasync()
        if (isDirSynced) await s.syncDir('')
        const after = disk.crash()
        const exists = after.existsSync('db/seg')
        if (isDirSynced) {
          assert.ok(exists, `seed=${seed}`)
          assert.deepEqual(after.readFileSync('db/seg'), fill(100, 5))
        } else if (exists) survived++
        else vanished++
        assert.ok(after.existsSync('db'), 'ensureRoot synced the root entry')
      }
    }
    assert.ok(vanished > 0 && survived > 0, `vanished ${vanished} survived ${survived}`)
  })

  test('rename over a file: old or new name state until syncDir, then the new one', async () => {
    const seen = new Set<string>()
    for (let seed = 0; seed < 60; seed++) {
      for (const isDirSynced of [false, true]) {
        const { disk, s } = await freshDb(seed)
        for (const [name, byte] of [
          ['conf', 1],
          ['conf.tmp', 2],
        ] as const) {
          const f = await s.openFile(name, 'create')
          await f.write(fill(10, byte), 0, 10, 0)
          await f.datasync()
          await f.close()
        }
        await s.syncDir('')
        await s.rename('conf.tmp', 'conf')
        if (isDirSynced) await s.syncDir('')
        const after = disk.crash()
        const names = after.listSync('db').join(',')
        const conf = after.readFileSync('db/conf')[0]
        if (isDirSynced) {
          assert.equal(names, 'conf')
          assert.equal(conf, 2)
        } else {
          assert.ok(
            (names === 'conf,conf.tmp' && conf === 1) || (names === 'conf' && conf === 2),
            `seed=${seed} ${names} ${conf}`,
          )
          seen.add(names)
        }
      }
    }
    assert.equal(seen.size, 2, 'both outcomes occur')
  })

  test('a file in a folder whose own entry is not durable vanishes with it', async () => {
    let vanished = 0
    for (let seed = 0; seed < 40; seed++) {
      const { disk, s } = await freshDb(seed)
      await s.mkdir('blobs')
      const f = await s.openFile('blobs/1', 'create')
      await f.write(fill(10, 1), 0, 10, 0)
      await f.datasync()
      await s.syncDir('blobs')
      const after = disk.crash()
      if (!after.existsSync('db/blobs')) {
        assert.equal(after.existsSync('db/blobs/1'), false)
        vanished++
      } else assert.deepEqual(after.readFileSync('db/blobs/1'), fill(10, 1))
    }
    assert.ok(vanished > 0)
  })

  test('unsynced unlink may revert', async () => {
    const seen = new Set<boolean>()
    for (let seed = 0; seed < 30; seed++) {
      const { disk, s } = await freshDb(seed)
      await (await s.openFile('old', 'create')).close()
      await s.syncDir('')
      await s.unlink('old')
      assert.equal(await s.exists('old'), false)
      seen.add(disk.crash().existsSync('db/old'))
    }
    assert.deepEqual([...seen].sort(), [false, true])
  })
})

describe('SimDisk: faults', () => {
  const kinds: OpKind[] = [
    'open',
    'read',
    'write',
    'datasync',
    'truncate',
    'rename',
    'unlink',
    'syncDir',
    'mkdir',
    'close',
    'list',
    'stat',
  ]

  /** Issues op number i of `kind`, using the files prepared by `prepare`. */
  async function doOp(kind: OpKind, s: Storage, files: StorageFile[], i: number): Promise<unknown> {
    const f = files[0] as StorageFile
    switch (kind) {
      case 'open':
        return s.openFile('f0', 'readwrite')
      case 'read':
        return f.read(new Uint8Array(4), 0, 4, 0)
      case 'write':
        return f.write(fill(4, 1), 0, 4, 0)
      case 'datasync':
        return f.datasync()
      case 'truncate':
        return f.truncate(2)
      case 'rename':
        return s.rename(`f${i}`, `r${i}`)
      case 'unlink':
        return s.unlink(`f${i}`)
      case 'syncDir':
        return s.syncDir('')
      case 'mkdir':
        return s.mkdir(`d${i}`)
      case 'close':
        return (files[i] as StorageFile).close()
      case 'list':
        return s.list('')
      case 'stat':
        return s.exists('f0')
    }
  }

  async function prepare(seed: number) {
    const { disk, s } = await freshDb(seed)
    const files: StorageFile[] = []
    for (let i = 0; i < 4; i++) {
      const f = await s.openFile(`f${i}`, 'create')
      await f.write(fill(8, 1), 0, 8, 0)
      files.push(f)
    }
    return { disk, s, files }
  }

  for (const kind of kinds) {
    test(`failAt rejects the Nth ${kind} with a typed error, once or persistently`, async () => {
      for (const persistent of [false, true]) {
        const { disk, s, files } = await prepare(7)
        disk.setFaults({ failAt: { op: 1, kinds: [kind], persistent } })
        disk.setTracing(true)
        await doOp(kind, s, files, 0)
        await assert.rejects(doOp(kind, s, files, 1), (e) => {
          assert.ok(e instanceof IoError, String(e))
          assert.equal(e.syscallCode, 'EIO')
          assert.match(e.message, /seed=7/)
          return true
        })
        const third = doOp(kind, s, files, 2)
        if (persistent) await assert.rejects(third, IoError)
        else await third
        const failed = disk.trace.filter((r) => !r.ok)
        assert.equal(failed[0]?.kind, kind)
        assert.equal(failed.length, persistent ? 2 : 1)
      }
    })
  }

  test('failAt without kinds counts every op; ENOSPC and EFBIG are DiskFullError', async () => {
    const { disk, s } = await freshDb(3)
    const f = await s.openFile('x', 'create')
    disk.setFaults({ failAt: { op: 2, code: 'ENOSPC' } })
    await f.write(fill(1, 1), 0, 1, 0)
    await f.size()
    await assert.rejects(f.datasync(), (e) => e instanceof DiskFullError && /seed=3/.test(e.message))
    disk.setFaults({ failAt: { op: 0, kinds: ['write'], code: 'EFBIG' } })
    await assert.rejects(
      f.write(fill(1, 1), 0, 1, 0),
      (e) => e instanceof DiskFullError && e.syscallCode === 'EFBIG',
    )
    disk.setFaults({ failAt: undefined })
    await f.write(fill(1, 1), 0, 1, 0)
  })

  test('enospcAfterBytes: a straddling write stores a prefix, then DiskFullError', async () => {
    const { s } = await freshDb(4, { enospcAfterBytes: 1000 })
    const f = await s.openFile('log', 'create')
    await f.write(fill(600, 1), 0, 600, 0)
    await assert.rejects(f.write(fill(600, 2), 0, 600, 600), (e) => {
      assert.ok(e instanceof DiskFullError, String(e))
      assert.equal(e.syscallCode, 'ENOSPC')
      assert.match(e.message, /seed=4/)
      return true
    })
    assert.equal(await f.size(), 1000, 'the short prefix reached the file')
    const img = await readAll(f)
    assert.ok(img.subarray(600).every((b) => b === 2))
  })

  test('short writes are looped and never visible to callers', async () => {
    let primitives = 0
    for (let seed = 0; seed < 20; seed++) {
      const { disk, s } = await freshDb(seed, { shortWrites: true, trace: true })
      const f = await s.openFile('log', 'create')
      const data = pattern(10_000, seed)
      await f.write(data, 0, data.length, 0)
      await f.write(data, 5, 100, 20_000)
      assert.equal(await f.size(), 20_100)
      const img = await readAll(f)
      assert.deepEqual(img.subarray(0, 10_000), data, `seed=${seed}`)
      assert.deepEqual(img.subarray(20_000), data.subarray(5, 105), `seed=${seed}`)
      primitives += disk.trace.filter((r) => r.kind === 'write').length
    }
    assert.ok(primitives > 40, `the primitive was short sometimes (${primitives} calls for 40 writes)`)
  })

  test('latency reorders completions: a later write can complete first', async () => {
    let reordered = 0
    for (let seed = 0; seed < 20; seed++) {
      const { disk, s } = await freshDb(seed, { trace: true })
      const f = await s.openFile('log', 'create')
      const order: string[] = []
      const first = f.write(fill(10, 1), 0, 10, 0).then(() => order.push('first'))
      const second = f.write(fill(10, 2), 0, 10, 0).then(() => order.push('second'))
      await Promise.all([first, second])
      const writes = disk.trace.filter((r) => r.kind === 'write')
      assert.equal(writes.length, 2)
      if (order[0] === 'second') {
        reordered++
        assert.ok((writes[0]?.op ?? 0) > (writes[1]?.op ?? 0), 'the trace is in completion order')
        // The later completion wins, as on a real thread pool.
        assert.equal((await readAll(f))[0], 1)
      }
    }
    assert.ok(reordered > 0 && reordered < 20, `reordered in ${reordered} of 20 seeds`)
  })

  test('latency off keeps issue order', async () => {
    const { disk, s } = await freshDb(1, { latency: false, trace: true })
    const f = await s.openFile('log', 'create')
    await Promise.all([0, 1, 2, 3, 4].map((i) => f.write(fill(1, i), 0, 1, i)))
    const ops = disk.trace.filter((r) => r.kind === 'write').map((r) => r.op)
    assert.deepEqual(
      ops,
      [...ops].sort((a, b) => a - b),
    )
  })

  test('a datasync covers only writes completed before it began', async () => {
    let uncovered = 0
    for (let seed = 0; seed < 30; seed++) {
      const { disk, s } = await freshDb(seed, { trace: true })
      const f = await s.openFile('log', 'create')
      await s.syncDir('')
      const w = f.write(fill(10, 1), 0, 10, 0)
      await f.datasync()
      await w
      const durable = disk.readFileSync('db/log', 'durable')
      const wr = disk.trace.find((r) => r.kind === 'write')
      const sync = disk.trace.find((r) => r.kind === 'datasync')
      assert.ok(wr && sync)
      if (wr.end < sync.start) assert.equal(durable.length, 10, `seed=${seed}`)
      else {
        assert.equal(durable.length, 0, `seed=${seed}`)
        uncovered++
      }
    }
    assert.ok(uncovered > 0)
  })

  test('a synced write is durable when it completes, and makes nothing else durable', async () => {
    for (let seed = 0; seed < 30; seed++) {
      // Odd seeds write it on the calling thread (writeSyncedNow): the same contract.
      const isNow = seed % 2 === 1
      const msg = `seed=${seed}${isNow ? ' writeSyncedNow' : ''}`
      const { disk, s } = await freshDb(seed, { trace: true })
      const f = await s.openFile('log', 'create')
      await f.write(fill(1000, 1), 0, 1000, 0)
      await f.datasync()
      await s.syncDir('')
      await f.write(fill(100, 2), 0, 100, 0)
      await f.write(fill(100, 3), 0, 100, 500)
      // Overwrites part of the pending write at 500 and grows the file.
      if (isNow) assert.equal(f.writeSyncedNow?.(fill(700, 4), 0, 700, 550), true, msg)
      else await f.writeSynced(fill(700, 4), 0, 700, 550)
      const durable = disk.readFileSync('db/log', 'durable')
      assert.equal(durable.length, 1250, `${msg}: the size it reached is durable`)
      assert.ok(
        durable.subarray(550).every((b) => b === 4),
        `${msg}: its bytes are durable`,
      )
      assert.ok(
        durable.subarray(0, 550).every((b) => b === 1),
        `${msg}: the pending writes are not`,
      )
      assert.equal(disk.trace.at(-1)?.synced, true, `${msg}: the trace marks it`)
      const img = disk.crash().readFileSync('db/log')
      assert.ok(
        img.subarray(550).every((b) => b === 4),
        `${msg}: no older pending byte lands over it`,
      )
      assert.ok(
        img.subarray(100, 500).every((b) => b === 1),
        msg,
      )
    }
  })

  test('a failed synced write stores nothing durable', async () => {
    const { disk, f } = await logWithPending(1, fill(100, 1), [])
    disk.setFaults({ failAt: { op: 0, kinds: ['write'] } })
    await assert.rejects(
      f.writeSynced(fill(50, 2), 0, 50, 0),
      (e) => e instanceof IoError && e.syscallCode === 'EIO',
    )
    assert.equal(disk.readFileSync('db/log', 'durable')[0], 1)
  })

  test('writeSyncedNow meets the faults of writeSynced: EIO, a full disk, short writes, closed and dead files', async () => {
    const now = (f: StorageFile, b: Uint8Array, pos: number) => {
      assert.ok(f.writeSyncedNow !== undefined, 'the simulated disk offers it')
      return f.writeSyncedNow(b, 0, b.length, pos)
    }
    {
      const { disk, f } = await logWithPending(1, fill(100, 1), [])
      disk.setFaults({ failAt: { op: 0, kinds: ['write'] } })
      assert.throws(
        () => now(f, fill(50, 2), 0),
        (e) => e instanceof IoError && e.syscallCode === 'EIO',
      )
      assert.equal(disk.readFileSync('db/log', 'durable')[0], 1, 'a failed one stores nothing durable')
      assert.equal(disk.readFileSync('db/log')[0], 1, 'nor anything at all')
    }
    {
      const { disk, f } = await logWithPending(2, fill(100, 1), [])
      disk.setFaults({ enospcAfterBytes: 130 })
      // 30 bytes fit: stored and durable, then the loop meets ENOSPC (a short write, as a real disk).
      assert.throws(
        () => now(f, fill(50, 2), 200),
        (e) => e instanceof DiskFullError || (e instanceof IoError && e.syscallCode === 'ENOSPC'),
      )
      assert.equal(disk.readFileSync('db/log', 'durable').length, 230)
    }
    {
      const { disk, f } = await logWithPending(3, fill(100, 1), [])
      disk.setFaults({ shortWrites: true })
      const b = fill(3000, 7)
      assert.equal(now(f, b, 100), true)
      assert.deepEqual(disk.readFileSync('db/log', 'durable').subarray(100), b, 'it loops on short writes')
    }
    {
      const { disk, s, f } = await logWithPending(4, fill(100, 1), [])
      const ro = await s.openFile('log', 'read')
      assert.throws(() => now(ro, fill(5, 2), 0), IoError, 'a read-only file is refused')
      await f.close()
      assert.throws(() => now(f, fill(5, 2), 0), IoError, 'a closed file is refused')
      const f2 = await s.openFile('log', 'readwrite')
      disk.crash()
      assert.throws(() => now(f2, fill(5, 2), 0), IoError, 'a crashed disk is refused')
    }
  })

  test('readNow reads what read() reads and meets its faults: EIO, closed, crashed, short at the end', async () => {
    const readNow = (f: StorageFile, b: Uint8Array, off: number, len: number, pos: number) => {
      assert.ok(f.readNow !== undefined, 'the simulated disk offers it')
      return f.readNow(b, off, len, pos)
    }
    const base = pattern(5000, 3)
    const { disk, s, f } = await logWithPending(11, base, [[fill(100, 9), 4950]])
    const rng = new Prng(11)
    for (let i = 0; i < 50; i++) {
      const pos = rng.int(5100)
      const len = rng.int(600)
      const now = new Uint8Array(len + 3).fill(0xee)
      const later = new Uint8Array(len + 3).fill(0xee)
      const n = readNow(f, now, 3, len, pos)
      assert.equal(n, await f.read(later, 3, len, pos), `count of ${len} at ${pos}`)
      assert.equal(n, Math.max(0, Math.min(len, 5050 - pos)), 'short only at the end')
      assert.deepEqual(now, later, `${len} bytes at ${pos}: the cache image, unsynced bytes included`)
    }
    assert.throws(() => readNow(f, new Uint8Array(4), 0, 8, 0), InvalidArgumentError)
    disk.setFaults({ failAt: { op: 1, kinds: ['read'] } })
    const b = new Uint8Array(10)
    assert.equal(readNow(f, b, 0, 10, 0), 10, 'op 0 of the reads is not the one set to fail')
    assert.throws(
      () => readNow(f, b, 0, 10, 0),
      (e) => e instanceof IoError && e.syscallCode === 'EIO',
      'an injected read fault fails a synchronous read as an asynchronous one',
    )
    assert.equal(await f.read(b, 0, 10, 0), 10, 'the fault was one op')
    disk.setFaults({ failAt: { op: 0, kinds: ['read'], persistent: true } })
    assert.throws(() => readNow(f, b, 0, 10, 0), IoError)
    await assert.rejects(f.read(b, 0, 10, 0), IoError)
    disk.setFaults({ failAt: { op: 1_000_000 } })
    const f2 = await s.openFile('log', 'read')
    await f.close()
    assert.throws(
      () => readNow(f, b, 0, 10, 0),
      (e) => e instanceof IoError && e.syscallCode === 'EBADF',
      'a closed file is refused',
    )
    assert.equal(readNow(f2, b, 0, 10, 0), 10)
    disk.crash()
    assert.throws(() => readNow(f2, b, 0, 10, 0), IoError, 'a crashed disk is refused')
  })

  test('readNow is traced as a read', async () => {
    const disk = new SimDisk({ seed: 12, trace: true })
    const s = disk.storage()
    await s.ensureRoot()
    const f = await s.openFile('log', 'create')
    await f.write(fill(64, 1), 0, 64, 0)
    const before = disk.trace.length
    f.readNow?.(new Uint8Array(100), 0, 100, 10)
    const r = disk.trace.slice(before)
    assert.equal(r.length, 1)
    assert.equal(r[0]?.kind, 'read')
    assert.equal(r[0]?.position, 10)
    assert.equal(r[0]?.length, 54, 'the count read')
    assert.equal(r[0]?.ok, true)
  })

  test('failed datasync: the data stays in the cache but never becomes durable', async () => {
    for (let seed = 0; seed < 20; seed++) {
      const { disk, s } = await freshDb(seed)
      const f = await s.openFile('log', 'create')
      await f.write(fill(100, 1), 0, 100, 0)
      await f.datasync()
      await s.syncDir('')
      await f.write(fill(50, 2), 0, 50, 0)
      disk.setFaults({ failAt: { op: 0, kinds: ['datasync'] } })
      await assert.rejects(f.datasync(), (e) => e instanceof IoError && e.syscallCode === 'EIO')
      assert.equal((await readAll(f))[0], 2, 'reads see the new bytes')
      assert.equal(disk.readFileSync('db/log', 'durable')[0], 1)
      await f.datasync()
      assert.equal(
        disk.readFileSync('db/log', 'durable')[0],
        1,
        'the pages were marked clean: a retry does not save them',
      )
      assert.equal(disk.crash().readFileSync('db/log')[0], 1, `seed=${seed}`)
    }
  })

  test('after a crash the old disk and its open files reject every op', async () => {
    const { disk, s } = await freshDb(5)
    const f = await s.openFile('log', 'create')
    const lock = await s.lock()
    const next = disk.crash()
    assert.equal(disk.isDead, true)
    await assert.rejects(
      f.write(fill(1, 1), 0, 1, 0),
      (e) => e instanceof IoError && /seed=5/.test(e.message),
    )
    await assert.rejects(f.read(new Uint8Array(1), 0, 1, 0), IoError)
    await assert.rejects(f.close(), IoError)
    await assert.rejects(s.list(''), IoError)
    await assert.rejects(s.openFile('x', 'create'), IoError)
    await assert.rejects(lock.release(), IoError)
    assert.throws(() => disk.crash(), IoError)
    const lock2 = await next.storage().lock()
    await lock2.release()
  })
})

describe('SimDisk: storage contract', () => {
  test('lock is exclusive per disk and root', async () => {
    const { disk, s } = await freshDb(1)
    const l = await s.lock()
    await assert.rejects(disk.storage('db').lock(), DatabaseLockedError)
    const other = disk.storage('other')
    await other.ensureRoot()
    const l2 = await other.lock()
    await l.release()
    const l3 = await s.lock()
    await l3.release()
    await l2.release()
    await assert.rejects(disk.storage('missing').lock(), IoError)
  })

  test('names are checked like FileStorage; a root that is a file is not a database', async () => {
    const { disk, s } = await freshDb(1)
    for (const name of ['../x', '/x', 'a/../b', '', 'a\\b']) {
      await assert.rejects(s.openFile(name, 'createOrOpen'), InvalidArgumentError)
    }
    disk.writeFileRaw('plain', fill(3, 1))
    await assert.rejects(disk.storage('plain').ensureRoot(), NotADatabaseError)
    assert.deepEqual(disk.listSync(''), ['db', 'plain'])
  })

  test('open modes, truncate, rename, list and errors mirror the real disk', async () => {
    const { s } = await freshDb(2)
    await assert.rejects(s.openFile('x', 'read'), (e) => e instanceof IoError && e.syscallCode === 'ENOENT')
    const f = await s.openFile('x', 'createOrOpen')
    await assert.rejects(s.openFile('x', 'create'), (e) => e instanceof IoError && e.syscallCode === 'EEXIST')
    await f.write(pattern(100, 1), 0, 100, 50)
    const back = new Uint8Array(200)
    assert.equal(await f.read(back, 0, 200, 0), 150)
    assert.deepEqual(back.subarray(0, 50), new Uint8Array(50))
    await f.truncate(60)
    await f.truncate(80)
    assert.equal(await f.read(back, 0, 200, 0), 80)
    assert.deepEqual(back.subarray(60, 80), new Uint8Array(20), 'a shrink then grow reads zeros')
    await f.close()
    await f.close()
    const r = await s.openFile('x', 'read')
    await assert.rejects(
      r.write(fill(1, 1), 0, 1, 0),
      (e) => e instanceof IoError && e.syscallCode === 'EBADF',
    )
    await s.mkdir('sub')
    await s.rename('x', 'sub/y')
    assert.deepEqual(await s.list(''), ['sub'])
    assert.deepEqual(await s.list('sub'), ['y'])
    await assert.rejects(s.unlink('sub'), IoError)
    await assert.rejects(s.list('nope'), (e) => e instanceof IoError && e.syscallCode === 'ENOENT')
    assert.equal((await readAll(r)).length, 80, 'an open handle follows its file through a rename')
  })

  test('writeFileRaw plants durable bytes; clone and snapshotDurable are independent', async () => {
    const { disk, s } = await freshDb(3)
    disk.writeFileRaw('db/junk', fill(5, 9))
    assert.deepEqual(disk.readFileSync('db/junk', 'durable'), fill(5, 9))
    const f = await s.openFile('log', 'create')
    await f.write(fill(10, 1), 0, 10, 0)
    const copy = disk.clone()
    const durable = disk.snapshotDurable()
    assert.equal(durable.existsSync('db/log'), false, 'the create was not durable')
    assert.deepEqual(durable.readFileSync('db/junk'), fill(5, 9))
    assert.deepEqual(copy.readFileSync('db/log'), fill(10, 1))
    await f.write(fill(10, 2), 0, 10, 0)
    assert.deepEqual(copy.readFileSync('db/log'), fill(10, 1), 'the clone does not see later writes')
    assert.deepEqual(copy.pendingCount(), { data: 1, dir: 1 })
    assert.equal(disk.isDead, false)
  })
})

describe('SimDisk: device fault variants (opt-in)', () => {
  /** A durable 1000-byte file of 0xa1, then, with `options` on, `b` written at `pos` (unsynced unless `sync`). */
  async function setUp(
    seed: number,
    options: Partial<ConstructorParameters<typeof SimDisk>[0]>,
    b: Uint8Array,
    pos: number,
    sync: boolean,
  ) {
    const { disk, s } = await freshDb(seed)
    const f = await s.openFile('log', 'create')
    await f.write(fill(1000, 0xa1), 0, 1000, 0)
    await f.datasync()
    await s.syncDir('')
    disk.setFaults(options)
    await f.write(b, 0, b.length, pos)
    if (sync) await f.datasync()
    return { disk, f }
  }

  test('non-PSOW: a power cut may garble the durable bytes of a sector an unsynced write covers in part', async () => {
    let garbled = 0
    for (let seed = 0; seed < 40; seed++) {
      const { disk } = await setUp(seed, { nonPsowOdds: 1 }, fill(100, 0xb2), 1000, false)
      const img = disk.crash().readFileSync('db/log')
      // Sector 0 is not touched by the write: it stays durable.
      for (let i = 0; i < 512; i++) assert.equal(img[i], 0xa1, `seed=${seed} byte ${i}`)
      if (img.subarray(512, 1000).some((x) => x !== 0xa1)) garbled++
      // Same seed, PSOW (the default): the durable bytes are intact.
      const psow = (await setUp(seed, {}, fill(100, 0xb2), 1000, false)).disk.crash().readFileSync('db/log')
      for (let i = 0; i < 1000; i++) assert.equal(psow[i], 0xa1, `seed=${seed} PSOW byte ${i}`)
    }
    assert.ok(garbled > 30, `garbled ${garbled} of 40`)
    // 1000..1100 covers sectors 1 and 2 in part: both are garbled (and changed).
    const { disk } = await setUp(1, { nonPsowOdds: 1 }, fill(100, 0xb2), 1000, false)
    assert.equal(disk.injected.nonPsowSectors, 0)
    assert.equal(disk.crash().injected.nonPsowSectors, 2)
  })

  test('misdirected write: reads see it in place, the durable image has it k strides away', async () => {
    for (let seed = 0; seed < 20; seed++) {
      const { disk, f } = await setUp(
        seed,
        { misdirectOdds: 1, misdirectStrideBytes: 100 },
        fill(200, 0xb2),
        400,
        true,
      )
      assert.deepEqual((await readAll(f)).subarray(400, 600), fill(200, 0xb2))
      assert.equal(disk.injected.misdirectedWrites, 1)
      const after = disk.crash()
      const img = after.readFileSync('db/log')
      assert.equal(img.length, 1000)
      const at = img.indexOf(0xb2)
      assert.ok(at >= 0 && at !== 400 && (at - 400) % 100 === 0, `seed=${seed} landed at ${at}`)
      assert.deepEqual(img.subarray(at, at + 200), fill(200, 0xb2))
      assert.equal(img.filter((x) => x === 0xb2).length, 200)
      assert.equal(after.injected.misdirectedWrites, 1, 'the count outlives the reboot')
    }
  })

  test('lost write: a datasync covering it succeeds, yet only the size it reached is durable', async () => {
    const { disk, f } = await setUp(3, { lostWriteOdds: 1 }, fill(300, 0xb2), 900, true)
    assert.deepEqual((await readAll(f)).subarray(900, 1200), fill(300, 0xb2))
    const img = disk.crash().readFileSync('db/log')
    assert.equal(img.length, 1200)
    assert.deepEqual(img.subarray(0, 1000), fill(1000, 0xa1))
    assert.deepEqual(img.subarray(1000), fill(200, 0))
    assert.equal(disk.injected.lostWrites, 1)
  })

  test('the variants replay from the seed and reject odds outside [0, 1]', async () => {
    const run = async () => {
      const { disk } = await setUp(
        9,
        { misdirectOdds: 0.5, lostWriteOdds: 0.3, nonPsowOdds: 0.5 },
        pattern(700, 3),
        700,
        false,
      )
      return disk.crash().readFileSync('db/log')
    }
    assert.deepEqual(await run(), await run())
    assert.throws(() => new SimDisk({ seed: 1, nonPsowOdds: 2 }), InvalidArgumentError)
    assert.throws(() => new SimDisk({ seed: 1, misdirectStrideBytes: 0 }), InvalidArgumentError)
  })
})

describe('Prng', () => {
  test('is deterministic per seed and spreads its output', () => {
    const a = new Prng(42)
    const b = new Prng(42)
    const xs = Array.from({ length: 1000 }, () => a.next())
    assert.deepEqual(
      xs,
      Array.from({ length: 1000 }, () => b.next()),
    )
    assert.notDeepEqual(
      xs.slice(0, 10),
      Array.from(
        { length: 10 },
        (
          (c) => () =>
            c.next()
        )(new Prng(43)),
      ),
    )
    const counts = new Array(10).fill(0)
    const r = new Prng(7)
    for (let i = 0; i < 10_000; i++) counts[r.int(10)]++
    for (const c of counts) assert.ok(c > 850 && c < 1150, `bucket count ${c}`)
    const f = r.float()
    assert.ok(f >= 0 && f < 1)
    const c = r.clone()
    assert.equal(c.next(), r.next())
    assert.throws(() => r.int(0), RangeError)
  })
})
