// Values up to MAX_VALUE_BYTES_CAP (64 MiB): a value too large for an inline page gets a blob
// leaf of its own (docs/DESIGN.md, "Tree: large values"). Round trips at every size boundary
// over each backend, reopen and power cut, atomic batches of several blob values, and the
// write-amplification rule: writes beside a blob leaf never rewrite its blob.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LimitError, MAX_VALUE_BYTES_CAP, open } from '../../src/index.js'
import { SimDisk } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import type { TreePage } from '../../src/tree/index.js'
import { entryBytes, varintBytes } from '../../src/tree/node.js'
import type { MemoryPageStore } from '../helpers/memory-page-store.js'
import { blobCensus } from '../helpers/orphan-blobs.js'
import { dbFixture, dec, eachBackend, type Fixture } from './fixtures.js'

/** Page size of the page-cache backends' 16 KiB segments; the memory store is given the same. */
const PAGE_BYTES = (16 * 1024) / 4 - 32 - 9
const OPTIONS = { nodeMaxBytes: 1024, nodeMaxEntries: 16 }
const MiB = 1024 * 1024

/** Blob files written so far by the store (the page cache counts per open). */
function blobsWritten(f: Fixture): number {
  if (f.store instanceof PageCache) return f.store.log.metrics().blobsWritten
  return (f.store as MemoryPageStore<TreePage>).counts.staged
}

/** The largest value whose one-entry leaf under `key` still fits an inline page. */
function inlineMaxValue(key: Uint8Array, pageBytes: number): number {
  let v = pageBytes
  while (1 + varintBytes(1) + entryBytes(key, new Uint8Array(0)) - 1 + varintBytes(v) + v > pageBytes) v--
  return v
}

/** A value of n bytes whose content depends on a tag, so mix-ups show. */
function tagged(n: number, tag: number): Uint8Array {
  const v = new Uint8Array(n)
  for (let i = 0; i < n; i += 4096) v[i] = (tag + i / 4096) & 0xff
  if (n > 0) v[n - 1] = tag
  return v
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array, what: string): void {
  assert.ok(a !== undefined, `${what}: missing`)
  assert.equal(a.length, b.length, `${what}: length`)
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${what}: content`)
}

eachBackend(
  'values at every size boundary round-trip, through restarts, up to the 64 MiB limit',
  async (backend) => {
    const f = await dbFixture(backend, OPTIONS, { maxPageBytes: PAGE_BYTES })
    let db = f.db
    assert.equal(db.limits.maxValueBytes, MAX_VALUE_BYTES_CAP)
    const key = (i: number): Uint8Array => new TextEncoder().encode(`v${String(i).padStart(2, '0')}`)
    const inline = inlineMaxValue(key(0), PAGE_BYTES)
    const sizes = [
      0,
      1,
      OPTIONS.nodeMaxBytes,
      inline - 1,
      inline, // the largest inline leaf
      inline + 1, // the smallest blob leaf
      inline + 5, // over a page, its record still under a quarter segment
      PAGE_BYTES + 64, // a blob file
      MiB,
      8 * MiB,
      MAX_VALUE_BYTES_CAP,
    ]
    const want = new Map<number, Uint8Array>()
    await db.insert('a-small', 'x')
    const blobs0 = blobsWritten(f)
    for (let i = 0; i < sizes.length; i++) {
      const v = tagged(sizes[i] as number, i)
      want.set(i, v)
      await db.insert(key(i), v)
      if (i % 3 === 0) await db.insert(`${dec(key(i))}-next`, 'y')
    }
    await db.insert('z-small', 'z')
    // Values over the inline page took a blob leaf, one each; the page cache logs the two
    // whose record still fits a quarter segment inline (inline + 1, inline + 5), not as files.
    const leafOver = (slack: number) =>
      sizes.filter((n) => 1 + 1 + entryBytes(key(0), new Uint8Array(n)) > PAGE_BYTES + slack).length
    assert.equal(blobsWritten(f) - blobs0, backend === 'memory' ? leafOver(0) : leafOver(9))
    const check = async (when: string): Promise<void> => {
      for (const [i, v] of want) sameBytes(await db.get(key(i)), v, `${when}: value of ${sizes[i]} bytes`)
      let n = 0
      for await (const [k, v] of db.range({ gte: 'v', lt: 'w' })) {
        const s = dec(k) as string
        if (s.endsWith('-next')) continue
        sameBytes(v, want.get(Number(s.slice(1))) as Uint8Array, `${when}: range ${s}`)
        n++
      }
      assert.equal(n, want.size, `${when}: range count`)
      assert.equal(await db.getString('a-small'), 'x')
      assert.equal(await db.getString('z-small'), 'z')
      await f.verify()
    }
    await check('written')
    const sum = await db.checksum()
    db = await f.restart()
    await check('reopened')
    assert.equal(await db.checksum(), sum)
    // One over the limit: LimitError, nothing written.
    const lsn = db.lastLsn
    const writes = f.writes()
    await assert.rejects(db.insert('k', new Uint8Array(MAX_VALUE_BYTES_CAP + 1)), LimitError)
    await assert.rejects(
      db.applyBatch((b) => b.insert('ok', 'v').insert('k', new Uint8Array(MAX_VALUE_BYTES_CAP + 1))),
      LimitError,
    )
    assert.equal(db.lastLsn, lsn)
    assert.equal(f.writes(), writes)
    // Overwrite big by small and small by big, remove big ones: the leaves change kind.
    const last = sizes.length - 1
    want.set(last, tagged(3, 99))
    await db.insert(key(last), want.get(last) as Uint8Array)
    want.set(0, tagged(2 * MiB, 98))
    await db.insert(key(0), want.get(0) as Uint8Array)
    for (const i of [8, 9]) {
      await db.remove(key(i))
      want.delete(i)
    }
    await check('rewritten')
    db = await f.restart()
    await check('rewritten, reopened')
    await db.close()
  },
)

eachBackend('writes beside a blob leaf, and removing them, never rewrite its blob', async (backend) => {
  const f = await dbFixture(backend, { nodeMaxBytes: 256, nodeMaxEntries: 4 }, { maxPageBytes: PAGE_BYTES })
  const { db } = f
  const big = tagged(3 * PAGE_BYTES, 7)
  await db.insert('m', big)
  const blobs = blobsWritten(f)
  // Neighbours on both sides and far away, splits and merges all around the blob leaf.
  const keys: string[] = []
  for (let i = 0; i < 60; i++) keys.push(`m${String(i).padStart(2, '0')}`, `l${i}`, `a${i}`, `z${i}`)
  for (const k of keys) await db.insert(k, `value of ${k}`)
  await f.verify()
  for (const k of keys) await db.remove(k)
  await f.verify()
  assert.equal(blobsWritten(f), blobs, 'no neighbour write copied the blob leaf')
  sameBytes(await db.get('m'), big, 'the blob value')
  assert.equal(await db.len(), 1)
  // Alone again in its tree, it still is no root (a root split would copy it).
  await db.insert('b', 'small')
  await db.remove('b')
  assert.equal(blobsWritten(f), blobs)
  await f.verify()
  await db.close()
})

eachBackend(
  'one applyBatch of several blob values and small ones is atomic and reads back',
  async (backend) => {
    const f = await dbFixture(backend, OPTIONS, { maxPageBytes: PAGE_BYTES })
    let db = f.db
    const t = await db.openTree('other')
    const vs = [1, 2, 3].map((i) => tagged(PAGE_BYTES * (i + 1), i))
    await db.applyBatch((b) =>
      b
        .insert('b1', vs[0] as Uint8Array)
        .insert('b2', vs[1] as Uint8Array, t)
        .insert('s', 'small')
        .insert('b3', vs[2] as Uint8Array)
        .insert('b1', vs[2] as Uint8Array),
    )
    sameBytes(await db.get('b1'), vs[2] as Uint8Array, 'b1 (its last write in the batch)')
    sameBytes(await t.get('b2'), vs[1] as Uint8Array, 'b2')
    sameBytes(await db.get('b3'), vs[2] as Uint8Array, 'b3')
    await f.verify()
    db = await f.restart()
    sameBytes(await db.get('b1'), vs[2] as Uint8Array, 'b1 reopened')
    sameBytes(await (await db.openTree('other')).get('b2'), vs[1] as Uint8Array, 'b2 reopened')
    await f.verify()
    await db.close()
  },
)

test('power cuts with blob values: the durable ones survive whole, unflushed ones all or nothing, no orphan blob', async () => {
  let keptBatches = 0
  for (let round = 0; round < 12; round++) {
    let disk = new SimDisk({ seed: 100 + round, latency: false })
    const opts = { segmentBytes: 16 * 1024, flushEveryMs: 0, ...OPTIONS }
    let db = await open('db', { ...opts, storage: disk.storage('db') })
    const durable = tagged(5 * PAGE_BYTES, round)
    await db.insert('durable', durable, { durable: true })
    await db.insert('small', 'kept', { durable: true })
    // Unflushed: a batch of two blob values, then an overwrite of the durable blob value.
    const a = tagged(2 * PAGE_BYTES, 50 + round)
    const b = tagged(4 * PAGE_BYTES, 60 + round)
    await db.applyBatch((x) => x.insert('a', a).insert('b', b))
    const over = tagged(3 * PAGE_BYTES, 70 + round)
    const overwrite = db.insert('durable', over)
    if (round % 2 === 1) await overwrite
    // The cut comes before any flush, right as one starts, or after one.
    if (round % 3 === 1) {
      db.flush().catch(() => {})
    } else if (round % 3 === 2) await db.flush()
    disk = disk.crash({ seed: 200 + round })
    await overwrite.catch(() => {})
    await db.close().catch(() => {})
    db = await open('db', { ...opts, storage: disk.storage('db') })
    const got = await db.get('durable')
    assert.ok(got !== undefined, 'the durable blob value survives')
    assert.ok(
      Buffer.from(got).equals(Buffer.from(durable)) || Buffer.from(got).equals(Buffer.from(over)),
      'the durable key holds its old or its new value, whole',
    )
    assert.equal(await db.getString('small'), 'kept')
    const ga = await db.get('a')
    const gb = await db.get('b')
    assert.equal(ga === undefined, gb === undefined, 'the batch is all or nothing')
    if (ga !== undefined) keptBatches++
    if (ga !== undefined) sameBytes(ga, a, 'a')
    if (gb !== undefined) sameBytes(gb, b, 'b')
    await db.close()
    // Every blob file left is named by a pointer of the log: none orphaned by the cut (the
    // overwritten value's blob may stay until cleaning drops its segment).
    const census = await blobCensus(disk.storage('db'))
    assert.equal(census.orphans, 0, 'orphan blob files')
    const live = [got, ga, gb].filter((v) => v !== undefined).length
    assert.ok(census.files >= live && census.files <= live + 1, `${census.files} blob files, ${live} live`)
  }
  console.log(`large-values power cuts: rounds=12 unflushed_batch_kept=${keptBatches}`)
})
