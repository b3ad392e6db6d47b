// The public API's behaviour, one call at a time.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { ClosedError, type DbStats, InvalidArgumentError, type OpenOptions, open } from '../../src/index.js'
import { tempDir } from '../helpers/temp-dir.js'
import { collect, dbFixture, dec, eachBackend, enc, hex, TINY } from './fixtures.js'

eachBackend(
  'keys and values are copied at the call: one array refilled between calls and batch inserts lands as written',
  async (backend) => {
    const { db } = await dbFixture(backend)
    // Input copies are carved from shared slabs: each must be whole, apart and the Db's own.
    const scratchKey = new Uint8Array(8)
    const scratchValue = new Uint8Array(300)
    const fillFor = (i: number): void => {
      new DataView(scratchKey.buffer).setUint32(0, i)
      scratchValue.fill(i & 0xff, 0, 1 + (i % 300))
    }
    const expected = (i: number): Uint8Array => new Uint8Array(1 + (i % 300)).fill(i & 0xff)
    await db.applyBatch((b) => {
      for (let i = 0; i < 400; i++) {
        fillFor(i)
        b.insert(scratchKey, scratchValue.subarray(0, 1 + (i % 300)))
      }
    })
    for (let i = 400; i < 600; i++) {
      fillFor(i)
      await db.insert(scratchKey, scratchValue.subarray(0, 1 + (i % 300)))
    }
    scratchKey.fill(0xee)
    scratchValue.fill(0xee)
    for (let i = 0; i < 600; i++) {
      const k = new Uint8Array(8)
      new DataView(k.buffer).setUint32(0, i)
      assert.deepEqual(await db.get(k), expected(i), `record ${i}`)
    }
  },
)

eachBackend(
  'insert/get/remove return previous values; strings are UTF-8; values come back as copies',
  async (backend) => {
    const { db } = await dbFixture(backend)
    assert.equal(await db.insert('k', 'v1'), undefined)
    assert.equal(dec(await db.insert(enc('k'), enc('v2'))), 'v1')
    assert.equal(await db.getString('k'), 'v2')
    const got = (await db.get('k')) as Uint8Array
    got[0] = 0
    assert.equal(await db.getString('k'), 'v2', 'mutating a returned value changes nothing')
    const previous = (await db.insert('k', 'v2')) as Uint8Array
    previous.fill(0)
    assert.equal(await db.getString('k'), 'v2', 'mutating a returned previous value changes nothing')
    const input = enc('abc')
    await db.insert('m', input)
    input[0] = 0x7a
    assert.equal(await db.getString('m'), 'abc', 'mutating an inserted buffer changes nothing')
    assert.equal(await db.containsKey('k'), true)
    assert.equal(dec(await db.remove('k')), 'v2')
    assert.equal(await db.remove('k'), undefined)
    assert.equal(await db.containsKey('k'), false)
    await db.insertJSON('j', { a: [1, 2] })
    assert.deepEqual(await db.getJSON('j'), { a: [1, 2] })
    await db.insert(new Uint8Array(0), 'empty key')
    assert.equal(await db.getString(''), 'empty key')
  },
)

eachBackend('ordered reads: first/last/getLt/getGt/popMin/popMax/len/isEmpty/clear', async (backend) => {
  const { db } = await dbFixture(backend)
  assert.equal(await db.isEmpty(), true)
  assert.equal(await db.first(), undefined)
  for (const k of ['b', 'd', 'a', 'c', 'e']) await db.insert(k, k.toUpperCase())
  const pair = (e: [Uint8Array, Uint8Array] | undefined) => e && [dec(e[0]), dec(e[1])]
  assert.deepEqual(pair(await db.first()), ['a', 'A'])
  assert.deepEqual(pair(await db.last()), ['e', 'E'])
  assert.deepEqual(pair(await db.getLt('c')), ['b', 'B'])
  assert.deepEqual(pair(await db.getGt('c')), ['d', 'D'])
  assert.deepEqual(pair(await db.getGt('cc')), ['d', 'D'])
  assert.equal(await db.getLt('a'), undefined)
  assert.equal(await db.getGt('e'), undefined)
  assert.equal(await db.len(), 5)
  assert.deepEqual(pair(await db.popMin()), ['a', 'A'])
  assert.deepEqual(pair(await db.popMax()), ['e', 'E'])
  assert.equal(await db.len(), 3)
  await db.clear()
  assert.equal(await db.len(), 0)
  assert.equal(await db.popMin(), undefined)
})

eachBackend('range bounds, reverse, limit, keys()/values() and scanPrefix', async (backend) => {
  const { db } = await dbFixture(backend)
  for (let i = 0; i < 60; i++) await db.insert(`k${String(i).padStart(2, '0')}`, `v${i}`)
  await db.insert('j', 'x')
  await db.insert('l', 'y')
  const keys = async (it: AsyncIterable<Uint8Array>) => (await collect(it)).map((k) => dec(k))
  assert.deepEqual(await keys(db.range({ gte: 'k10', lt: 'k13' }).keys()), ['k10', 'k11', 'k12'])
  assert.deepEqual(await keys(db.range({ gt: 'k10', lte: 'k13' }).keys()), ['k11', 'k12', 'k13'])
  assert.deepEqual(await keys(db.range({ gt: 'k10', lte: 'k13', reverse: true }).keys()), [
    'k13',
    'k12',
    'k11',
  ])
  assert.deepEqual(await keys(db.range({ limit: 2 }).keys()), ['j', 'k00'])
  assert.deepEqual(await keys(db.range({ reverse: true, limit: 2 }).keys()), ['l', 'k59'])
  assert.deepEqual((await collect(db.range({ gte: 'k05', lt: 'k07' }).values())).map(dec), ['v5', 'v6'])
  const all = await collect(db.scanPrefix('k'))
  assert.equal(all.length, 60)
  assert.deepEqual(await keys(db.scanPrefix('k5', { reverse: true }).keys()), [
    'k59',
    'k58',
    'k57',
    'k56',
    'k55',
    'k54',
    'k53',
    'k52',
    'k51',
    'k50',
  ])
  assert.deepEqual(await keys(db.range({ gte: 'z' }).keys()), [])
  assert.throws(() => db.range({ gt: 'a', gte: 'b' }), InvalidArgumentError)
  assert.throws(() => db.range({ limit: -1 }), InvalidArgumentError)
  // Iterating twice gives two independent iterations.
  const r = db.range({ lt: 'k02' })
  assert.equal((await collect(r)).length, 3)
  assert.equal((await collect(r)).length, 3)
})

eachBackend(
  'keys order bytewise (unsigned, UTF-8 bytes), in scans, neighbours, first/last and prefixes',
  async (backend) => {
    const { db } = await dbFixture(backend)
    // Unsigned bytes around the sign bit, a prefix before its extensions, the empty key, and
    // strings whose UTF-8 order differs from JavaScript's UTF-16 order ('\u{1F600}' sorts
    // before '\uFFFF' as UTF-16 code units, after it as UTF-8 bytes).
    const keys: Uint8Array[] = [
      new Uint8Array([]),
      new Uint8Array([0x00]),
      new Uint8Array([0x00, 0x00]),
      new Uint8Array([0x7f]),
      new Uint8Array([0x80]),
      new Uint8Array([0x80, 0x00]),
      new Uint8Array([0xfe, 0xff]),
      new Uint8Array([0xff]),
      new Uint8Array([0xff, 0xff, 0x01]),
      enc('a'),
      enc('\u00e9'),
      enc('\uffff'),
      enc('\u{1f600}'),
      // Equal in their first 4 bytes, so a leaf's word compare ties and the byte loop decides.
      new Uint8Array([0x61, 0x61, 0x61, 0x61, 0x7f]),
      new Uint8Array([0x61, 0x61, 0x61, 0x61, 0x80]),
      new Uint8Array([0x61, 0x61, 0x61, 0x61, 0xff, 0x00]),
    ]
    const shuffled = [...keys].sort((a, b) => hex(a).length - hex(b).length || (hex(a) < hex(b) ? 1 : -1))
    for (const [i, k] of shuffled.entries()) await db.insert(k, `v${i}`)
    const want = [...keys].sort(Buffer.compare).map(hex)
    for (const k of keys) assert.notEqual(await db.get(k), undefined, `get ${hex(k)}`)
    assert.deepEqual((await collect(db.range().keys())).map(hex), want)
    assert.deepEqual((await collect(db.range({ reverse: true }).keys())).map(hex), [...want].reverse())
    assert.equal(hex((await db.first())?.[0] as Uint8Array), want[0])
    assert.equal(hex((await db.last())?.[0] as Uint8Array), want.at(-1))
    assert.equal(hex((await db.getGt(new Uint8Array([0x7f])))?.[0] as Uint8Array), '80')
    assert.equal(hex((await db.getLt(new Uint8Array([0x80])))?.[0] as Uint8Array), '7f')
    assert.equal(hex((await db.getLt(enc('\u{1f600}')))?.[0] as Uint8Array), hex(enc('\uffff')))
    assert.deepEqual(
      (await collect(db.range({ gte: new Uint8Array([0x7f]), lt: new Uint8Array([0xff]) }).keys())).map(hex),
      // é is c3a9, U+FFFF efbfbf, U+1F600 f09f9880: all below feff.
      ['7f', '80', '8000', hex(enc('\u00e9')), hex(enc('\uffff')), hex(enc('\u{1f600}')), 'feff'],
    )
    // A prefix of 0xff has no upper bound key: the scan runs to the end of the tree.
    assert.deepEqual((await collect(db.scanPrefix(new Uint8Array([0xff])).keys())).map(hex), ['ff', 'ffff01'])
    assert.deepEqual((await collect(db.scanPrefix(new Uint8Array([0x80])).keys())).map(hex), ['80', '8000'])
  },
)

eachBackend('named trees: openTree/treeNames/dropTree, handles of a dropped tree reject', async (backend) => {
  const f = await dbFixture(backend)
  const { db } = f
  const users = await db.openTree('users')
  assert.equal(users.name, 'users')
  assert.equal(db.name, '')
  await users.insert('u1', 'ada')
  await db.insert('u1', 'default')
  assert.equal(await users.getString('u1'), 'ada')
  assert.equal(await db.getString('u1'), 'default')
  const again = await db.openTree('users')
  assert.equal(await again.getString('u1'), 'ada')
  await db.openTree('posts')
  assert.deepEqual(await db.treeNames(), ['posts', 'users'])
  assert.equal(await db.dropTree('users'), true)
  assert.equal(await db.dropTree('users'), false)
  await assert.rejects(users.get('u1'), InvalidArgumentError)
  assert.deepEqual(await db.treeNames(), ['posts'])
  const fresh = await db.openTree('users')
  assert.equal(await fresh.get('u1'), undefined, 'a re-created tree starts empty')
  await f.verify()
})

eachBackend('trees and contents survive a restart; checksum is equal before and after', async (backend) => {
  const f = await dbFixture(backend)
  const t = await f.db.openTree('t')
  for (let i = 0; i < 200; i++) {
    await f.db.insert(`a${i}`, `${i}`)
    await t.insert(`b${i}`, `${i * 2}`)
  }
  const sum = await f.db.checksum()
  const db = await f.restart()
  assert.equal(await db.checksum(), sum)
  assert.equal(await (await db.openTree('t')).getString('b7'), '14')
  assert.deepEqual(await db.treeNames(), ['t'])
  await db.insert('a0', 'changed')
  assert.notEqual(await db.checksum(), sum)
})

eachBackend(
  "durability 'sync' and { durable: true } wait for makeStable; lastLsn and durable()",
  async (backend) => {
    const f = await dbFixture(backend, { ...TINY, durability: 'sync' }, { autoStable: false })
    await f.db.insert('a', '1')
    assert.ok(f.store.stableLsn >= f.db.lastLsn, 'an awaited sync write is stable')
    const g = await dbFixture(backend, TINY, { autoStable: false })
    await g.db.insert('a', '1')
    assert.ok(g.store.stableLsn < g.db.lastLsn, "a 'flush' write is not stable yet")
    await g.db.insert('b', '2', { durable: true })
    assert.ok(g.store.stableLsn >= g.db.lastLsn)
    await g.db.insert('c', '3')
    await g.db.durable(g.db.lastLsn)
    assert.ok(g.store.stableLsn >= g.db.lastLsn)
    await g.db.insert('d', '4')
    await g.db.flush()
    assert.ok(g.store.stableLsn >= g.db.lastLsn)
  },
)

eachBackend('every call after close() rejects with ClosedError', async (backend) => {
  const { db } = await dbFixture(backend)
  await db.insert('a', '1')
  await db.close()
  await assert.rejects(db.get('a'), ClosedError)
  await assert.rejects(db.insert('a', '2'), ClosedError)
  await assert.rejects(db.openTree('x'), ClosedError)
  await assert.rejects(db.generateId(), ClosedError)
  await db.close()
})

eachBackend('stats, sizeOnDisk and limits are reported', async (backend) => {
  const { db } = await dbFixture(backend)
  await db.insert('a', '1')
  assert.ok((await db.sizeOnDisk()) > 0)
  // Typed: no cast (tsc fails this file if stats() loses its DbStats type).
  const s: DbStats = await db.stats()
  assert.equal(s.trees, 0)
  assert.equal(s.durability, 'flush')
  assert.ok(s.lastLsn >= 0, `lastLsn ${s.lastLsn}`)
  if (backend === 'file') {
    // The page cache's space and memory figures, as `bobsled stats` explains them.
    assert.ok(s.store !== undefined)
    assert.ok(s.store.pages >= 1 && s.store.residentPages <= s.store.pages)
    assert.ok(s.store.cacheBytes > 0 && s.store.cacheBytes <= s.store.cacheCapacity)
    assert.ok(s.store.liveBytes > 0)
  }
  // 4 KiB on the memory store's large pages; the page size caps it on small segments.
  assert.equal(s.limits.maxKeyBytes, backend === 'memory' ? 4096 : db.limits.maxKeyBytes)
  assert.ok(s.limits.maxKeyBytes >= 1024, `key limit ${s.limits.maxKeyBytes}`)
  assert.ok(db.limits.maxValueBytes > (backend === 'memory' ? 100_000 : 1000))
})

test('open() validates its arguments before touching the disk', async () => {
  await assert.rejects(open(42 as unknown as string), InvalidArgumentError)
  const root = await tempDir('open-args')
  try {
    // Each refused open names a folder that does not exist: it must still not exist after.
    const bad: Array<[string, OpenOptions]> = [
      ['durability', { durability: 'always' as 'sync' }],
      ['cacheCapacity', { cacheCapacity: -1 }],
      ['segmentBytes', { segmentBytes: 3000 }],
      ['nodeMaxBytes', { nodeMaxBytes: 'big' as unknown as number }],
      ['nodeMaxBytes', { nodeMaxBytes: 15 }],
      ['nodeMaxEntries', { nodeMaxEntries: 1 }],
      ['nodeMaxEntries', { nodeMaxEntries: 2 ** 20 + 1 }],
      ['idPersistInterval', { idPersistInterval: 0 }],
      ['idPersistInterval', { idPersistInterval: 1.5 }],
      ['warmCache', { warmCache: 'yes' as unknown as boolean }],
    ]
    for (const [i, [name, options]] of bad.entries()) {
      const dir = join(root.path, `db${i}`)
      await assert.rejects(open(dir, options), InvalidArgumentError, name)
      assert.equal(existsSync(dir), false, `a refused ${name} created ${dir}`)
    }
    // The same options in range open, so the refusals above were the options' doing.
    const db = await open(join(root.path, 'ok'), {
      nodeMaxBytes: 16,
      nodeMaxEntries: 4,
      idPersistInterval: 1,
    })
    await db.insert('k', 'v')
    await db.close()
  } finally {
    await root.remove()
  }
})

eachBackend(
  'openTree, dropTree and checksum racing each other leave a consistent database',
  async (backend) => {
    const f = await dbFixture(backend)
    const { db } = f
    for (let round = 0; round < 20; round++) {
      const t = await db.openTree('t')
      for (let i = 0; i < 20; i++) await t.insert(`k${i}`, 'v')
      const results = await Promise.allSettled([
        db.checksum(),
        db.dropTree('t'),
        db.openTree('t').then((h) => h.insert('late', 'x')),
        db.checksum(),
      ])
      for (const r of results) {
        if (r.status === 'rejected') assert.ok(r.reason instanceof InvalidArgumentError, String(r.reason))
      }
      const names = await db.treeNames()
      const counts = await f.verify()
      assert.equal(counts.size, names.length + 1)
      if (names.includes('t')) assert.ok((await (await db.openTree('t')).len()) <= 1)
      await db.dropTree('t')
    }
  },
)
