// Over-limit and wrongly typed input is rejected with a typed error before any state
// changes: the checksum, lastLsn and the store's write counts are all unchanged.

import assert from 'node:assert/strict'
import {
  InvalidArgumentError,
  LimitError,
  MAX_BATCH_OPS,
  MAX_KEY_BYTES,
  MAX_TREE_NAME_BYTES,
  MAX_TREES,
  MAX_VALUE_BYTES_CAP,
} from '../../src/index.js'
import { Prng } from '../../src/util/prng.js'
import { dbFixture, eachBackend } from './fixtures.js'

eachBackend('wrong types and over-limit input throw typed errors and change nothing', async (backend) => {
  const f = await dbFixture(backend)
  const { db } = f
  const t = await db.openTree('t')
  await db.insert('a', '1')
  await t.insert('b', '2')
  const sum = await db.checksum()
  const lsn = db.lastLsn
  const writes = f.writes()
  const bigKey = new Uint8Array(db.limits.maxKeyBytes + 1)
  const bigValue = new Uint8Array(db.limits.maxValueBytes + 1)
  const cases: [string, () => Promise<unknown>, new (...a: never[]) => Error][] = [
    ['number key', () => db.insert(1 as unknown as string, 'v'), InvalidArgumentError],
    ['null value', () => db.insert('k', null as unknown as string), InvalidArgumentError],
    ['object key in get', () => db.get({} as unknown as string), InvalidArgumentError],
    ['array value', () => db.insert('k', [1, 2] as unknown as string), InvalidArgumentError],
    ['key too long', () => db.insert(bigKey, 'v'), LimitError],
    ['string key too long', () => db.insert('x'.repeat(db.limits.maxKeyBytes + 1), 'v'), LimitError],
    ['value too long', () => db.insert('k', bigValue), LimitError],
    ['cas next too long', () => db.compareAndSwap('a', '1', bigValue), LimitError],
    [
      'durable not boolean',
      () => db.insert('k', 'v', { durable: 1 as unknown as boolean }),
      InvalidArgumentError,
    ],
    [
      'update not a function',
      () => db.updateAndFetch('a', 3 as unknown as () => undefined),
      InvalidArgumentError,
    ],
    [
      'update returns a number',
      () => db.updateAndFetch('a', () => 3 as unknown as string),
      InvalidArgumentError,
    ],
    ['update returns too much', () => db.fetchAndUpdate('a', () => bigValue), LimitError],
    ['tree name not a string', () => db.openTree(7 as unknown as string), InvalidArgumentError],
    ['empty tree name', () => db.openTree(''), InvalidArgumentError],
    ['tree name too long', () => db.openTree('n'.repeat(MAX_TREE_NAME_BYTES + 1)), LimitError],
    [
      'batch with a bad key',
      () => db.applyBatch((b) => b.insert('ok', 'v').insert(5 as unknown as string, 'v')),
      InvalidArgumentError,
    ],
    [
      'batch with a big value',
      () => db.applyBatch((b) => b.insert('ok', 'v', t).insert('k', bigValue)),
      LimitError,
    ],
    [
      'batch tree not a Tree',
      () => db.applyBatch((b) => b.insert('ok', 'v', {} as never)),
      InvalidArgumentError,
    ],
    ['durable(lsn) not a number', () => db.durable('5' as unknown as number), InvalidArgumentError],
    ['insertJSON of a BigInt', () => db.insertJSON('k', 1n), InvalidArgumentError],
    [
      'insertJSON of a cycle',
      () => {
        const o: { self?: unknown } = {}
        o.self = o
        return db.insertJSON('k', o)
      },
      InvalidArgumentError,
    ],
  ]
  for (const [name, call, type] of cases) {
    await assert.rejects(call(), type, name)
    assert.equal(await db.checksum(), sum, `${name}: contents unchanged`)
    assert.equal(db.lastLsn, lsn, `${name}: nothing written`)
    assert.equal(f.writes(), writes, `${name}: no store write`)
  }
  assert.throws(() => db.range({ gte: 3 as unknown as string }), InvalidArgumentError)
  assert.throws(() => db.scanPrefix(bigKey), LimitError)
  assert.throws(() => db.scanPrefix('a', null as never), InvalidArgumentError)
  assert.throws(() => db.scanPrefix('a', 'reverse' as never), InvalidArgumentError)
  assert.deepEqual(await db.treeNames(), ['t'])
  await f.verify()
})

eachBackend('the largest key and the largest value are accepted, stored and read back', async (backend) => {
  const f = await dbFixture(backend, { nodeMaxBytes: 256, nodeMaxEntries: 8 })
  const { db } = f
  const max = db.limits.maxValueBytes
  const key = new Uint8Array(db.limits.maxKeyBytes).fill(7)
  const value = new Uint8Array(max).fill(9)
  await db.insert('small', 'x')
  await db.insert(key, value)
  // A second large value beside it (1 MiB: the 64 MiB limit is costly, once is enough).
  await db.insert('zz', new Uint8Array(1024 * 1024).fill(1))
  await db.insert('zzz', 'y')
  await f.verify()
  const db2 = await f.restart()
  assert.deepEqual(await db2.get(key), value)
  assert.equal((await db2.get('zz'))?.length, 1024 * 1024)
  await f.verify()
})

eachBackend('more trees than limits.maxTrees is a LimitError, with nothing written', async (backend) => {
  const f = await dbFixture(backend)
  const { db } = f
  // The published limit follows the page size (the catalog is one META page) and holds
  // for names of any length: exactly that many trees open, the next one is refused.
  const most = db.limits.maxTrees
  assert.ok(most >= 1 && most <= MAX_TREES)
  if (backend === 'memory') assert.equal(most, MAX_TREES)
  for (let n = 0; n < most; n++) {
    const name = `${n}-`.padEnd(MAX_TREE_NAME_BYTES, 'x')
    const r = await db.openTree(name).catch((e: unknown) => e)
    assert.ok(!(r instanceof Error), `tree ${n} of ${most}: ${String(r)}`)
  }
  const writes = f.writes()
  await assert.rejects(db.openTree('one-too-many'), LimitError)
  assert.equal(f.writes(), writes, 'a refused openTree writes nothing')
  assert.equal((await db.treeNames()).length, most)
})

eachBackend(
  'small pages (a 4 KiB segment) lower the key limit, and the tree works at it with values inline and as blobs',
  async (backend) => {
    const f = await dbFixture(
      backend,
      { nodeMaxEntries: 8 },
      { maxPageBytes: 4096 / 4 - 32, segmentBytes: 4096 },
    )
    const { db } = f
    const { maxKeyBytes, maxValueBytes } = db.limits
    assert.ok(maxKeyBytes < MAX_KEY_BYTES && maxKeyBytes >= 64, `key limit ${maxKeyBytes}`)
    assert.equal(maxValueBytes, MAX_VALUE_BYTES_CAP, 'small pages do not lower the value limit')
    // The largest value whose leaf still fits an inline page, and one that makes a blob leaf.
    const inlineMax = f.store.maxPageBytes - maxKeyBytes - 64
    const prng = new Prng(7)
    const model = new Map<string, number>()
    for (let i = 0; i < 400; i++) {
      const k = new Uint8Array(prng.int(4) === 0 ? maxKeyBytes : 1 + prng.int(12)).fill(prng.int(8))
      k[0] = prng.int(256)
      const vlen = prng.int(3) === 0 ? (prng.int(2) === 0 ? inlineMax : 3 * 4096) : prng.int(40)
      if (prng.int(4) === 0) {
        await db.remove(k)
        model.delete(Buffer.from(k).toString('hex'))
      } else {
        await db.insert(k, new Uint8Array(vlen))
        model.set(Buffer.from(k).toString('hex'), vlen)
      }
    }
    assert.equal((await f.verify()).get(''), model.size)
    await assert.rejects(db.insert(new Uint8Array(maxKeyBytes + 1), 'v'), LimitError)
    await assert.rejects(db.insert('k', new Uint8Array(maxValueBytes + 1)), LimitError)
  },
)

eachBackend('pages too small for the tree are refused at open', async (backend) => {
  await assert.rejects(
    dbFixture(backend, undefined, { maxPageBytes: 300, segmentBytes: 1024 }),
    InvalidArgumentError,
  )
})

eachBackend(
  'applyBatch takes MAX_BATCH_OPS operations; one more is a LimitError with nothing written',
  async (backend) => {
    const f = await dbFixture(backend)
    const { db } = f
    assert.equal(db.limits.maxBatchOps, MAX_BATCH_OPS)
    const t = await db.openTree('t')
    await db.insert('before', 'x')
    const sum = await db.checksum()
    const lsn = db.lastLsn
    const writes = f.writes()
    const key = (i: number): string => `k${String(i).padStart(6, '0')}`
    // One over, across two trees: refused while build() queues it, before anything is written.
    await assert.rejects(
      db.applyBatch((b) => {
        for (let i = 0; i < MAX_BATCH_OPS; i++) b.insert(key(i), 'v', i % 2 === 0 ? db : t)
        b.remove('before')
      }),
      (e: unknown) =>
        e instanceof LimitError && e.maximum === MAX_BATCH_OPS && e.actual === MAX_BATCH_OPS + 1,
    )
    assert.equal(await db.checksum(), sum, 'contents unchanged')
    assert.equal(db.lastLsn, lsn, 'nothing written')
    assert.equal(f.writes(), writes, 'no store write')
    // Exactly the limit lands whole.
    await db.applyBatch((b) => {
      for (let i = 0; i < MAX_BATCH_OPS - 1; i++) b.insert(key(i), 'v', i % 2 === 0 ? db : t)
      b.remove('before')
    })
    assert.equal((await db.len()) + (await t.len()), MAX_BATCH_OPS - 1)
    assert.equal(await db.get('before'), undefined)
    await f.verify()
  },
)
