// The B+tree against a sorted-map model: random operation sequences with tiny nodes (so
// splits, borrows, merges and root collapses happen all the time), evictions and restarts
// of the memory store (every page re-materialised from its bytes), and the structural
// checker after every step.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import type { PageCodec } from '../../src/pagecache/page-store.js'
import {
  Forest,
  getValue,
  makeTreeConfig,
  readChunk,
  type TreeConfig,
  treeCodec,
  verifyForest,
  writeKey,
} from '../../src/tree/index.js'
import type { TreePage } from '../../src/tree/node.js'
import { MemoryPageStore } from '../helpers/memory-page-store.js'

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

type Op =
  | { t: 'set'; k: Uint8Array; v: Uint8Array }
  | { t: 'del'; k: Uint8Array }
  | { t: 'get'; k: Uint8Array }
  | { t: 'scan'; a: Uint8Array; b: Uint8Array; reverse: boolean }
  | { t: 'evict' }
  | { t: 'restart' }

const key = fc.uint8Array({ minLength: 0, maxLength: 4, max: 5 })
const value = fc.oneof(
  { weight: 9, arbitrary: fc.uint8Array({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 100, maxLength: 400 }) },
)
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ t: fc.constant('set' as const), k: key, v: value }) },
  { weight: 7, arbitrary: fc.record({ t: fc.constant('del' as const), k: key }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('get' as const), k: key }) },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant('scan' as const), a: key, b: key, reverse: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'evict' as const }) },
  { weight: 1, arbitrary: fc.constant({ t: 'restart' as const }) },
)

async function run(
  ops: Op[],
  config: { nodeMaxBytes: number; nodeMaxEntries: number },
  codec: PageCodec<TreePage> = treeCodec,
): Promise<void> {
  const store = new MemoryPageStore<TreePage>(codec, { consolidateAfter: 3 })
  const c: TreeConfig = makeTreeConfig(store.maxPageBytes, config)
  let forest = await Forest.open(store, c)
  const model = new Map<string, Uint8Array>()
  const root = forest.defaultTree.root
  for (const o of ops) {
    if (o.t === 'set' || o.t === 'del') {
      const v = o.t === 'set' ? o.v : undefined
      const { value: old } = await forest.write((ctx) => writeKey(ctx, c, root, o.k, v))
      const want = model.get(hex(o.k))
      assert.deepEqual(old && hex(old), want && hex(want), `previous value of ${hex(o.k)}`)
      if (v === undefined) model.delete(hex(o.k))
      else model.set(hex(o.k), v)
    } else if (o.t === 'get') {
      const got = await forest.read((ctx) => getValue(ctx, root, o.k))
      const want = model.get(hex(o.k))
      assert.deepEqual(got && hex(got), want && hex(want), `get ${hex(o.k)}`)
    } else if (o.t === 'scan') {
      const [lo, hi] = hex(o.a) <= hex(o.b) ? [o.a, o.b] : [o.b, o.a]
      const got: string[] = []
      let lower: { key: Uint8Array; inclusive: boolean } | undefined = { key: lo, inclusive: true }
      let upper: { key: Uint8Array; inclusive: boolean } | undefined = { key: hi, inclusive: false }
      // Chunks cut short by `most` (a range's limit) must resume right after their last entry.
      const b0 = o.a[0] ?? 0
      const most = b0 % 4 === 0 ? Number.POSITIVE_INFINITY : 1 + (b0 % 3)
      for (;;) {
        const ch = await forest.read((ctx) => readChunk(ctx, root, lower, upper, o.reverse, most))
        assert.ok(ch.count <= most, `a chunk holds at most ${most} entries`)
        for (const [k, v] of ch.entries) got.push(`${hex(k)}=${hex(v)}`)
        if (ch.resume === undefined) break
        if (o.reverse) upper = ch.resume
        else lower = ch.resume
      }
      const want = [...model.entries()]
        .filter(([k]) => k >= hex(lo) && k < hex(hi))
        .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
        .map(([k, v]) => `${k}=${hex(v)}`)
      if (o.reverse) want.reverse()
      assert.deepEqual(got, want, `scan [${hex(lo)}, ${hex(hi)})${o.reverse ? ' reverse' : ''}`)
    } else if (o.t === 'evict') store.evictAll()
    else {
      await forest.close()
      store.restart()
      forest = await Forest.open(store, c)
    }
    const report = await verifyForest(store, c)
    assert.equal(report.keys.get(''), model.size, 'key count')
  }
  await forest.close()
}

test('random operations match a sorted map; invariants hold after every step (tiny nodes)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(op, { minLength: 20, maxLength: 150, size: 'max' }),
      fc.record({
        nodeMaxBytes: fc.integer({ min: 48, max: 256 }),
        nodeMaxEntries: fc.integer({ min: 4, max: 8 }),
      }),
      (ops, config) => run(ops, config),
    ),
    { numRuns: process.env.BOBSLED_SOAK ? 3000 : 200 },
  )
})

test('mutation switch: the same harness fails when page-in drops the last delta', async () => {
  // A codec that loses a page's newest delta when it re-materialises the page: only
  // restarts and evictions expose it, so this proves the harness exercises page-in.
  const lossy: PageCodec<TreePage> = {
    ...treeCodec,
    materialize: (base, deltas) => treeCodec.materialize(base, deltas.slice(0, -1)),
  }
  await assert.rejects(
    fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 20, maxLength: 150, size: 'max' }), (ops) =>
        run(ops, { nodeMaxBytes: 128, nodeMaxEntries: 6 }, lossy),
      ),
      { numRuns: 60 },
    ),
  )
})

test('a tree grows several levels and shrinks back to an empty root leaf', async () => {
  const store = new MemoryPageStore<TreePage>(treeCodec)
  const c = makeTreeConfig(store.maxPageBytes, { nodeMaxBytes: 64, nodeMaxEntries: 4 })
  const forest = await Forest.open(store, c)
  const root = forest.defaultTree.root
  const k = (i: number): Uint8Array => new TextEncoder().encode(String(i).padStart(5, '0'))
  for (let i = 0; i < 500; i++) await forest.write((ctx) => writeKey(ctx, c, root, k((i * 7919) % 500), k(i)))
  const grown = await verifyForest(store, c)
  assert.equal(grown.keys.get(''), 500)
  assert.ok((grown.depth.get('') as number) >= 4, `depth ${grown.depth.get('')}`)
  for (let i = 0; i < 500; i++)
    await forest.write((ctx) => writeKey(ctx, c, root, k((i * 331) % 500), undefined))
  const shrunk = await verifyForest(store, c)
  assert.equal(shrunk.keys.get(''), 0)
  assert.equal(shrunk.depth.get(''), 0)
  assert.equal(shrunk.pages, 3, 'META, counter and the empty root leaf')
})
