// The warm-up after open with a codec that builds pages on their first use (the tree's:
// PageCodec.materializeOnUse; docs/DESIGN.md, "Warm-up after open"): warmed leaves are
// installed unbuilt, answer as the written leaves did once used, are charged at least what
// they hold once built, and a leaf whose bytes are damaged (its record intact) fails at its
// first use with the CorruptionError a page-in meets. Real files, real reopen.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CorruptionError } from '../../src/errors.js'
import { PageCache, type PageCacheOptions } from '../../src/pagecache/index.js'
import { encodeLeafDelta, encodePage, treeCodec } from '../../src/tree/codec.js'
import { type Leaf, leafEntries, leafGet, leafPut, makeLeaf } from '../../src/tree/leaf.js'
import type { TreePage } from '../../src/tree/node.js'
import { tempDir } from '../helpers/temp-dir.js'

const OPTS: PageCacheOptions = { flushEveryMs: 0, segmentBytes: 64 * 1024, cleaning: false }
const LEAVES = 300
const enc = new TextEncoder()
const bytes = (s: string): Uint8Array => enc.encode(s)

function leafOf(p: TreePage | undefined): Leaf {
  assert.ok(p !== undefined && p.kind === 'leaf', 'a leaf page')
  return p
}

async function warmedUp(pc: PageCache<TreePage>): Promise<void> {
  while (!pc.stats().warmUp.isDone) await new Promise((resolve) => setTimeout(resolve, 2))
}

test('leaves warmed after open are built at first use: same answers, and a damaged one fails there', async () => {
  const dir = (await tempDir('pc-warm-on-use')).path
  let pc = await PageCache.open(dir, treeCodec, OPTS)
  const want = new Map<number, Leaf>()
  for (let i = 0; i < LEAVES; i++) {
    const pid = pc.allocate()
    const keys = [0, 1, 2, 3, 4, 5].map((k) => bytes(`key ${i} ${k}`))
    const leaf = makeLeaf(
      keys,
      keys.map((_, k) => bytes(`value ${i} ${k} `.repeat(k + 1))),
    )
    pc.replace(pid, leaf)
    want.set(pid, leaf)
  }
  // Deltas on most leaves, in later places of the log: sets, overwrites and removals.
  for (let round = 0; round < 3; round++) {
    for (const [pid, leaf] of want) {
      if ((pid + round) % 3 === 0) continue
      const key = bytes(`key ${pid} ${round % 2 === 0 ? 9 - round : round}`)
      const value = round === 2 ? undefined : bytes(`round ${round} of ${pid}`)
      const next = leafPut(leaf, key, value)
      pc.link(pid, encodeLeafDelta([{ key, value }]), next)
      want.set(pid, next)
    }
  }
  // Keys out of order under an intact record: only decoding the leaf can tell.
  const damaged = pc.allocate()
  const [a, b] = [bytes('a'), bytes('b')]
  const swapped = encodePage(makeLeaf([a, b], [b, a])).slice()
  swapped.set(b, swapped.indexOf(a[0] as number, 2))
  swapped.set(a, swapped.lastIndexOf(b[0] as number))
  assert.throws(() => treeCodec.materialize(swapped, []), CorruptionError)
  pc.replace(damaged, makeLeaf([a, b], [b, a]), swapped)
  await pc.close()

  pc = await PageCache.open(dir, treeCodec, OPTS)
  await warmedUp(pc)
  const s = pc.stats()
  assert.equal(s.warmUp.pagesWarmed, LEAVES + 1)
  let charged = s.cacheBytes
  for (const [pid, leaf] of want) {
    const page = leafOf(pc.peek(pid))
    assert.ok(page.isPending, `leaf ${pid} waits for its first use`)
    assert.deepEqual(leafEntries(page), leafEntries(leaf), `leaf ${pid} reads back`)
    assert.ok(!page.isPending)
    assert.deepEqual(leafGet(page, bytes(`key ${pid} 0`)), leafGet(leaf, bytes(`key ${pid} 0`)))
    charged -= treeCodec.memoryBytes(page)
  }
  // Built, every leaf holds no more than the cache charged for it unbuilt.
  assert.ok(charged >= 0, `the built leaves hold ${-charged} bytes more than charged`)
  const bad = leafOf(pc.peek(damaged))
  assert.throws(() => leafGet(bad, a), CorruptionError)
  assert.throws(() => bad.count, CorruptionError, 'and at every use after')
  // A write through the cache meets it too, and leaves the page as it was.
  assert.throws(() => pc.replace(damaged, bad), CorruptionError)
  await pc.close()

  // The same page paged in by its user, no warm-up: the same error, at the page-in.
  const off = await PageCache.open(dir, treeCodec, { ...OPTS, warmCache: false })
  await assert.rejects(off.get(damaged), CorruptionError)
  for (const [pid, leaf] of want) assert.deepEqual(leafEntries(leafOf(await off.get(pid))), leafEntries(leaf))
  await off.close()
})
