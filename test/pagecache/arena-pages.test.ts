// Byte-string pages in the page cache's arena (PageCodec.arena): seeded runs over the
// simulated disk (latency on, so page-ins overlap and evict each other's pages) with a
// cache of a few pages, tiny segments (cleaning relocates resident pages) and poisoned
// slots. Every page read — by get() after a whole group of concurrent reads settled, or
// inside withPage() — must equal the model, and so must every page after a reopen and
// after a power cut that follows a flush. The caller's arrays are scribbled over after
// every write: the cache must have copied them.
//
// Mutation self-check: with `unsafeLendFromGet` get() lends the arena's slot instead of
// a copy; a page another page-in evicts meanwhile then reads as poison or as another
// page, and the same runs must report divergences.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { Prng } from '../../src/util/prng.js'
import { appendCodec } from '../helpers/append-codec.js'
import { seedList } from '../helpers/io-recorder.js'

const arenaCodec = appendCodec

const RUNS = 8
const OPS = 300

interface Counters {
  ops: number
  reads: number
  pageIns: number
  reopens: number
  powerCuts: number
  relocated: number
  divergences: number
}

function bytesOf(rnd: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = rnd.int(256)
  return b
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length)
  c.set(a)
  c.set(b, a.length)
  return c
}

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b))

async function run(seed: number, lendFromGet: boolean, c: Counters): Promise<void> {
  const rnd = new Prng(seed)
  let disk = new SimDisk({ seed, latency: true })
  const segmentBytes = rnd.chance(0.5) ? 8192 : 16384
  const open = (): Promise<PageCache<Uint8Array>> =>
    PageCache.open('db', arenaCodec, {
      storage: disk.storage('db'),
      segmentBytes,
      flushEveryMs: 0,
      cacheCapacity: 6000,
      consolidateAfter: 3,
      poisonFreedPages: true,
      unsafeLendFromGet: lendFromGet,
    })
  let pc = await open()
  const model = new Map<number, Uint8Array>()
  const maxBytes = Math.min(pc.maxPageBytes, 1800)
  const diverged = (what: string): void => {
    c.divergences++
    if (!lendFromGet) assert.fail(`seed=${seed} (replay: BOBSLED_SEED=${seed}): ${what}`)
  }
  const checkAll = async (when: string): Promise<void> => {
    for (const [pid, want] of model) {
      if (!same(await pc.get(pid), want)) diverged(`page ${pid} differs ${when}`)
    }
  }
  try {
    for (let op = 0; op < OPS; op++) {
      c.ops++
      const pids = [...model.keys()]
      const any = (): number => pids[rnd.int(pids.length)] as number
      const r = rnd.float()
      if (r < 0.25 || pids.length < 3) {
        const pid = pc.allocate()
        const page = bytesOf(rnd, 1 + rnd.int(maxBytes))
        model.set(pid, page.slice())
        pc.replace(pid, page)
        page.fill(0x5a) // the cache keeps its own copy
      } else if (r < 0.37) {
        const pid = any()
        const page = bytesOf(rnd, 1 + rnd.int(maxBytes))
        model.set(pid, page.slice())
        pc.replace(pid, page)
        page.fill(0x5a)
      } else if (r < 0.5) {
        const pid = any()
        const delta = bytesOf(rnd, 1 + rnd.int(200))
        const page = concat(model.get(pid) as Uint8Array, delta)
        if (page.length > maxBytes) continue
        model.set(pid, page.slice())
        pc.link(pid, delta, page)
        page.fill(0x5a)
      } else if (r < 0.53) {
        const pid = any()
        model.delete(pid)
        pc.free(pid)
      } else if (r < 0.55) {
        // A base too large for an inline record: a blob, paged in whole.
        const pid = any()
        const page = bytesOf(rnd, pc.maxPageBytes + 1 + rnd.int(3 * pc.maxPageBytes))
        model.set(pid, page.slice())
        const lsn = pc.replaceLarge(pid, page)
        page.fill(0x5a)
        await lsn
      } else if (r < 0.57) {
        // Rewriting a page with the very bytes withPage() lends (same slot, no copy).
        const pid = any()
        if ((model.get(pid) as Uint8Array).length > pc.maxPageBytes) continue
        await pc.withPage(pid, (page) => pc.replace(pid, page))
      } else if (r < 0.85) {
        // Concurrent reads: their page-ins overlap and evict each other's pages.
        const group = Array.from({ length: 2 + rnd.int(6) }, any)
        for (const pid of group) if (!pc.isResident(pid)) c.pageIns++
        const viaGet = group.map((pid) => (rnd.chance(0.5) ? pc.get(pid) : undefined))
        const lent = group.map((pid) => pc.withPage(pid, (page) => same(page, model.get(pid))))
        const gots = await Promise.all(viaGet)
        const oks = await Promise.all(lent)
        for (const [i, pid] of group.entries()) {
          c.reads++
          if (oks[i] !== true) diverged(`page ${pid} lent by withPage() differs`)
          if (viaGet[i] !== undefined) {
            c.reads++
            if (!same(gots[i], model.get(pid)))
              diverged(`page ${pid} from get() differs once other reads settled`)
          }
        }
      } else if (r < 0.94) {
        const relocatedBefore = pc.stats().pagesRelocated
        await pc.flush()
        await pc.cleanNow()
        c.relocated += pc.stats().pagesRelocated - relocatedBefore
      } else if (r < 0.97) {
        await pc.close()
        pc = await open()
        c.reopens++
        await checkAll('after a reopen')
      } else {
        await pc.flush()
        disk = disk.crash({ seed: rnd.int(2 ** 30) })
        pc = await open()
        c.powerCuts++
        await checkAll('after a power cut that followed a flush')
      }
      if (rnd.chance(0.1)) await pc.whenWritable()
    }
    await checkAll('at the end')
    const a = pc.stats().arena
    assert.ok(a !== undefined && a.slabBytes <= a.maxSlabBytes, 'the arena stays within its bytes')
  } finally {
    await pc.close().catch(() => {})
  }
}

const fresh = (): Counters => ({
  ops: 0,
  reads: 0,
  pageIns: 0,
  reopens: 0,
  powerCuts: 0,
  relocated: 0,
  divergences: 0,
})

test(`arena pages: ${RUNS} seeded runs of ${OPS} operations, poisoned slots, 0 divergences`, async () => {
  const c = fresh()
  const seeds = seedList(RUNS, 1)
  const t0 = performance.now()
  for (const seed of seeds) await run(seed, false, c)
  console.log(
    `RELIABILITY arena-pages runs=${seeds.length} ops=${c.ops} reads=${c.reads} page_ins=${c.pageIns} ` +
      `reopens=${c.reopens} power_cuts=${c.powerCuts} relocated=${c.relocated} divergences=${c.divergences} ` +
      `ms=${Math.round(performance.now() - t0)} seed=${seeds[0]}`,
  )
  assert.equal(c.divergences, 0)
  assert.ok(
    c.pageIns > 100 * seeds.length && c.reopens > 0 && c.powerCuts > 0 && c.relocated > 10 * seeds.length,
    'the runs paged in, reopened, lost power and relocated pages',
  )
})

test('mutation self-check: get() lending the arena slot is caught as divergences', async () => {
  const c = fresh()
  const seeds = seedList(3, 1)
  for (const seed of seeds) await run(seed, true, c)
  console.log(
    `RELIABILITY arena-pages-mutation runs=${seeds.length} divergences=${c.divergences} seed=${seeds[0]}`,
  )
  assert.ok(c.divergences > 0, 'a page kept past its eviction must read wrong')
})

test('a Buffer page is copied, into a slot or, over the largest slot, into an array of its own', async () => {
  const disk = new SimDisk({ seed: 7 })
  // 2 MiB segments: records up to a quarter of one are inline, so 300 KiB is a replace().
  const pc = await PageCache.open('db', arenaCodec, {
    storage: disk.storage('db'),
    segmentBytes: 2 * 1024 * 1024,
    flushEveryMs: 0,
  })
  try {
    // 4 KiB goes into an arena slot; 300 KiB is over the largest slot (256 KiB), so the
    // cache keeps a plain array: a Buffer's slice() would have been a view of the caller's.
    for (const n of [4096, 300 * 1024]) {
      const rnd = new Prng(n)
      const page = Buffer.from(bytesOf(rnd, n))
      const want = Uint8Array.from(page)
      const pid = pc.allocate()
      pc.replace(pid, page)
      page.fill(0xab)
      assert.ok(pc.isResident(pid), `the ${n} B page is resident`)
      assert.ok(same(await pc.get(pid), want), `the ${n} B page reads back as written`)
    }
  } finally {
    await pc.close()
  }
})
