// Pinned shrunk counterexamples of the page cache model test (test/pagecache/page-cache-model.test.ts).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { deltaOf, type ListPage, listCodec } from '../helpers/list-codec.js'

const openOn = (disk: SimDisk, segmentBytes: number): Promise<PageCache<ListPage>> =>
  PageCache.open('db', listCodec, {
    storage: disk.storage('db'),
    segmentBytes,
    flushEveryMs: 0,
    cacheCapacity: 1500,
    consolidateAfter: 3,
    checkpointEveryBytes: 3 * segmentBytes,
  })

test('link() on a page stored as a blob keeps its delta instead of consolidating over the inline limit', async () => {
  // Was: consolidation called replace() with the whole page and threw LimitError.
  const disk = new SimDisk({ seed: 0, latency: true })
  let pc = await openOn(disk, 1024)
  const p = pc.allocate()
  const items = ['L'.repeat(1100)]
  await pc.replaceLarge(p, { items: [...items] })
  for (let i = 0; i < 6; i++) {
    items.push(`d${i}`)
    pc.link(p, deltaOf(`d${i}`), { items: [...items] })
  }
  items.push('b')
  pc.writeBatch([{ kind: 'link', pid: p, delta: deltaOf('b'), page: { items: [...items] } }])
  await pc.close()
  pc = await openOn(disk, 1024)
  assert.deepEqual((await pc.get(p))?.items, items)
  await pc.close()
})
