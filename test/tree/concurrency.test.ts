// The iteration harness under concurrent splits and merges, run against the real
// re-seeking scan and against a mutant that walks a leaf list read up front (what a
// reader holding a stale parent across awaits would do). The real scan must pass every
// seed; the mutant must fail some, which proves the harness catches the race.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nodeAt } from '../../src/tree/btree.js'
import {
  type Bound,
  Forest,
  makeTreeConfig,
  readChunk,
  type TreeConfig,
  treeCodec,
  verifyForest,
  writeKey,
} from '../../src/tree/index.js'
import { leafEntries } from '../../src/tree/leaf.js'
import type { TreePage } from '../../src/tree/node.js'
import { Prng } from '../../src/util/prng.js'
import { MemoryPageStore } from '../helpers/memory-page-store.js'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array): string => new TextDecoder().decode(b)
const key = (i: number): Uint8Array => enc(`k${String(i).padStart(4, '0')}`)

type Scan = (forest: Forest, store: MemoryPageStore<TreePage>, root: number) => AsyncGenerator<Uint8Array>

async function* liveScan(
  forest: Forest,
  _store: MemoryPageStore<TreePage>,
  root: number,
): AsyncGenerator<Uint8Array> {
  let lower: Bound | undefined
  for (;;) {
    const chunk = await forest.read((ctx) => readChunk(ctx, root, lower, undefined, false))
    for (const [k] of chunk.entries) yield k
    if (chunk.resume === undefined) return
    lower = chunk.resume
  }
}

/** The mutant: collects the leaf page ids first, then reads each leaf by id, later. */
async function* staleLeafListScan(
  forest: Forest,
  store: MemoryPageStore<TreePage>,
  root: number,
): AsyncGenerator<Uint8Array> {
  const leaves = await forest.read((ctx) => {
    const out: number[] = []
    const walk = (pid: number): void => {
      const n = nodeAt(ctx, pid)
      if (n.kind === 'leaf') out.push(pid)
      else for (const ch of n.children) walk(ch)
    }
    walk(root)
    return out
  })
  for (const pid of leaves) {
    const page = await store.get(pid)
    if (page?.kind === 'leaf') for (const k of leafEntries(page).keys) yield k
  }
}

async function harness(scan: Scan, seed: number): Promise<{ restarts: number }> {
  const store = new MemoryPageStore<TreePage>(treeCodec, { residentMax: 8 })
  const c: TreeConfig = makeTreeConfig(store.maxPageBytes, { nodeMaxBytes: 72, nodeMaxEntries: 4 })
  const forest = await Forest.open(store, c)
  const root = forest.defaultTree.root
  const put = (k: Uint8Array, v: Uint8Array | undefined) =>
    forest.write((ctx) => writeKey(ctx, c, root, k, v))
  for (let i = 0; i < 240; i += 2) await put(key(i), enc('stable'))
  const prng = new Prng(seed)
  const next = (n: number): number => prng.int(n)
  let writing = true
  const writer = (async () => {
    while (writing) {
      const i = next(120) * 2 + 1
      await put(key(i), next(3) === 0 ? undefined : enc('v'.repeat(next(24))))
    }
  })()
  const seen: string[] = []
  try {
    for await (const k of scan(forest, store, root)) {
      seen.push(dec(k))
      // A consumer that does IO per entry: writes land between every two steps.
      for (let w = 0; w < 3; w++) await new Promise<void>((r) => setImmediate(r))
    }
  } finally {
    writing = false
    await writer
  }
  for (let j = 1; j < seen.length; j++)
    assert.ok(seen[j - 1]! < seen[j]!, `order at ${j}: ${seen[j - 1]}, ${seen[j]}`)
  const stable = seen.filter((k) => Number(k.slice(1)) % 2 === 0)
  assert.equal(stable.length, 120, 'every key present throughout, exactly once')
  await verifyForest(store, c)
  return { restarts: forest.readRestarts }
}

test('the live scan passes under concurrent splits and merges, and reads really interleave', async () => {
  let restarts = 0
  for (let seed = 1; seed <= 30; seed++) restarts += (await harness(liveScan, seed)).restarts
  assert.ok(restarts > 0, 'some reads restarted: writes landed in the middle of descents')
})

test('mutation switch: a scan over a leaf list read up front fails the same harness', async () => {
  let failures = 0
  for (let seed = 1; seed <= 30; seed++) {
    try {
      await harness(staleLeafListScan, seed)
    } catch (e) {
      if (!(e instanceof assert.AssertionError)) throw e
      failures++
    }
  }
  assert.ok(failures > 0, 'the harness caught the stale-list scan')
})

test('a reader whose every page-in is overtaken by a write finishes under the writer mutex', async () => {
  const store = new MemoryPageStore<TreePage>(treeCodec, { residentMax: 2 })
  const c = makeTreeConfig(store.maxPageBytes, { nodeMaxBytes: 64, nodeMaxEntries: 4 })
  const forest = await Forest.open(store, c)
  const root = forest.defaultTree.root
  const put = (k: Uint8Array, v: Uint8Array | undefined) =>
    forest.write((ctx) => writeKey(ctx, c, root, k, v))
  for (let i = 0; i < 100; i++) await put(key(i), enc(`v${i}`))
  // Every page-in completes only after a write has landed, unless a reader holds the mutex.
  const get = store.get.bind(store)
  let n = 0
  store.get = async (pid) => {
    const page = await get(pid)
    if (!forest.mutex.isLocked) await put(key(1000 + (n++ % 50)), enc('w'))
    return page
  }
  store.evictAll()
  const got = await forest.read((ctx) =>
    readChunk(ctx, root, { key: key(40), inclusive: true }, undefined, false),
  )
  assert.equal(dec(got.entries[0]?.[0] as Uint8Array), 'k0040')
  assert.equal(forest.readsUnderMutex, 1)
  assert.ok(forest.readRestarts >= 32)
})

/**
 * Writers fired together over a store that keeps 8 pages resident: most find their leaf
 * paged out, so those queued behind the mutex page in ahead (Forest.write's `keys`). Every
 * write, single key or a batch, must land in call order: the tree ends equal to a model that
 * applies them one after another, and passes verify.
 */
async function prefetchHarness(seed: number, unsafe: boolean): Promise<{ prefetched: number }> {
  const store = new MemoryPageStore<TreePage>(treeCodec, { residentMax: 8 })
  const c = makeTreeConfig(store.maxPageBytes, { nodeMaxBytes: 72, nodeMaxEntries: 4 })
  const forest = await Forest.open(store, c)
  forest.unsafePrefetchBeforeQueue = unsafe
  const root = forest.defaultTree.root
  const model = new Map<string, string>()
  for (let i = 0; i < 200; i++) {
    await forest.write((ctx) => writeKey(ctx, c, root, key(i), enc(`v${i}`)))
    model.set(dec(key(i)), `v${i}`)
  }
  store.evictAll()
  const prng = new Prng(seed)
  const writes: Promise<unknown>[] = []
  for (let w = 0; w < 300; w++) {
    const ops: [Uint8Array, Uint8Array | undefined][] = []
    const n = prng.chance(0.3) ? 2 + prng.int(3) : 1
    for (let j = 0; j < n; j++) {
      const k = key(prng.int(220))
      const v = prng.chance(0.2) ? undefined : enc(`w${w}.${j}`)
      ops.push([k, v])
      if (v === undefined) model.delete(dec(k))
      else model.set(dec(k), dec(v))
    }
    writes.push(
      forest.write(
        (ctx) => {
          for (const [k, v] of ops) writeKey(ctx, c, root, k, v)
        },
        undefined,
        (visit) => {
          for (const [k] of ops) visit(root, k)
        },
      ),
    )
  }
  await Promise.all(writes)
  const got = new Map<string, string>()
  let lower: Bound | undefined
  for (;;) {
    const chunk = await forest.read((ctx) => readChunk(ctx, root, lower, undefined, false))
    for (const [k, v] of chunk.entries) got.set(dec(k), dec(v))
    if (chunk.resume === undefined) break
    lower = chunk.resume
  }
  assert.deepEqual(got, model, `seed ${seed}: the tree holds every write in call order`)
  await verifyForest(store, c)
  return { prefetched: forest.pagesPrefetched }
}

test('writers queued for the mutex page in ahead, and every write still lands in call order', async () => {
  let prefetched = 0
  for (let seed = 1; seed <= 10; seed++) prefetched += (await prefetchHarness(seed, false)).prefetched
  assert.ok(prefetched > 0, 'queued writers paged in ahead')
})

test('mutation switch: paging in ahead before queueing for the mutex fails the same harness', async () => {
  let failures = 0
  for (let seed = 1; seed <= 10; seed++) {
    try {
      await prefetchHarness(seed, true)
    } catch (e) {
      if (!(e instanceof assert.AssertionError)) throw e
      failures++
    }
  }
  assert.ok(failures > 0, 'the harness caught writes committed out of call order')
})
