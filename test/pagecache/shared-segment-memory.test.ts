// The arena and the log share memory (docs/DESIGN.md, "Peak RSS"): with 1 MiB segments and
// pages of 4 KiB, whole slabs leave the arena to become the log's spare segment buffers
// (the pages in them evicted together) and come back as uncarved slabs once the log no
// longer keeps them. Seeded runs on the simulated disk check every page against a model
// through writes, links, frees, overlapping reads, cleaning, reopens and power cuts, with
// poisoned slots, and that slabs really went both ways.
//
// Mutation self-check: a planted bug in the arena (a slab leaves without its free slots
// leaving the free lists, so a slot of the log's buffer is handed to a page) must show as
// divergences or errors.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { PageArena } from '../../src/pagecache/arena.js'
import { PageCache } from '../../src/pagecache/index.js'
import { Prng } from '../../src/util/prng.js'
import { appendCodec } from '../helpers/append-codec.js'
import { seedList } from '../helpers/io-recorder.js'
import { tempDir } from '../helpers/temp-dir.js'

const arenaCodec = appendCodec

const RUNS = 3
const WRITES = 2000
/** Four segments' worth of pages and the log's buffers: writes soon need slabs back. */
const CACHE_BYTES = 4 * 1024 * 1024

interface Counters {
  writes: number
  reads: number
  reopens: number
  powerCuts: number
  slabsLent: number
  slabsAdopted: number
  divergences: number
}

function bytesOf(rnd: Prng, n: number): Uint8Array {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = rnd.int(256)
  return b
}

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b))

async function run(seed: number, isMutated: boolean, c: Counters): Promise<void> {
  const rnd = new Prng(seed)
  let disk = new SimDisk({ seed })
  // The default segment size (1 MiB, an arena slab): the only one the arena shares.
  const open = (): Promise<PageCache<Uint8Array>> =>
    PageCache.open('db', arenaCodec, {
      storage: disk.storage('db'),
      flushEveryMs: 0,
      cacheCapacity: CACHE_BYTES,
      poisonFreedPages: true,
    })
  let pc = await open()
  const model = new Map<number, Uint8Array>()
  const diverged = (what: string): void => {
    c.divergences++
    if (!isMutated) assert.fail(`seed=${seed} (replay: BOBSLED_SEED=${seed}): ${what}`)
  }
  const checkAll = async (when: string): Promise<void> => {
    for (const [pid, want] of model) {
      if (!same(await pc.get(pid), want)) diverged(`page ${pid} differs ${when}`)
    }
  }
  const tally = (): void => {
    const a = pc.stats().arena
    c.slabsLent += a?.slabsLent ?? 0
    c.slabsAdopted += a?.slabsAdopted ?? 0
  }
  try {
    for (let w = 0; w < WRITES; w++) {
      c.writes++
      const pids = [...model.keys()]
      const any = (): number => pids[rnd.int(pids.length)] as number
      const r = rnd.float()
      if (r < 0.6 || pids.length < 8) {
        const pid = pids.length < 8 || rnd.chance(0.5) ? pc.allocate() : any()
        const page = bytesOf(rnd, 3900 + rnd.int(196))
        model.set(pid, page.slice())
        pc.replace(pid, page)
        page.fill(0x5a) // the cache keeps its own copy
      } else if (r < 0.7) {
        const pid = any()
        const delta = bytesOf(rnd, 1 + rnd.int(100))
        const old = model.get(pid) as Uint8Array
        const page = new Uint8Array(old.length + delta.length)
        page.set(old)
        page.set(delta, old.length)
        model.set(pid, page.slice())
        pc.link(pid, delta, page)
      } else if (r < 0.72) {
        const pid = any()
        model.delete(pid)
        pc.free(pid)
      } else if (r < 0.985) {
        // Overlapping reads: their page-ins take read space from the arena meanwhile.
        const group = Array.from({ length: 2 + rnd.int(5) }, any)
        const lent = group.map((pid) => pc.withPage(pid, (page) => same(page, model.get(pid))))
        for (const [i, ok] of (await Promise.all(lent)).entries()) {
          c.reads++
          if (ok !== true) diverged(`page ${group[i]} lent by withPage() differs`)
        }
      } else if (r < 0.993) {
        await pc.flush()
        await pc.cleanNow()
      } else if (r < 0.9965) {
        tally()
        await pc.close()
        pc = await open()
        c.reopens++
        await checkAll('after a reopen')
      } else {
        tally()
        await pc.flush()
        disk = disk.crash({ seed: rnd.int(2 ** 30) })
        pc = await open()
        c.powerCuts++
        await checkAll('after a power cut that followed a flush')
      }
      if (w % 25 === 0) await pc.whenWritable()
    }
    await checkAll('at the end')
    tally()
    const a = pc.stats().arena
    assert.ok(a !== undefined && a.slabBytes <= a.maxSlabBytes, 'the arena stays within its bytes')
  } catch (e) {
    if (!isMutated) throw e
    // The planted bug may break an invariant before it shows as wrong bytes.
    c.divergences++
  } finally {
    await pc.close().catch(() => {})
  }
}

const fresh = (): Counters => ({
  writes: 0,
  reads: 0,
  reopens: 0,
  powerCuts: 0,
  slabsLent: 0,
  slabsAdopted: 0,
  divergences: 0,
})

test(`shared segment memory: ${RUNS} seeded runs of ${WRITES} steps, 4 KiB pages, 0 divergences`, async () => {
  const c = fresh()
  const seeds = seedList(RUNS, 1)
  const t0 = performance.now()
  for (const seed of seeds) await run(seed, false, c)
  console.log(
    `RELIABILITY shared-segment-memory runs=${seeds.length} steps=${c.writes} reads=${c.reads} ` +
      `reopens=${c.reopens} power_cuts=${c.powerCuts} slabs_lent=${c.slabsLent} slabs_adopted=${c.slabsAdopted} ` +
      `divergences=${c.divergences} ms=${Math.round(performance.now() - t0)} seed=${seeds[0]}`,
  )
  assert.equal(c.divergences, 0)
  assert.ok(c.slabsLent > 5 * seeds.length, 'whole slabs became the log buffers')
  assert.ok(c.slabsAdopted > seeds.length, 'the log gave buffers back to the arena')
  assert.ok(c.reopens > 0 && c.powerCuts > 0, 'the runs reopened and lost power')
})

test('mutation self-check: a slab leaving the arena with its free slots still listed is caught', async () => {
  const proto = PageArena.prototype as unknown as { retire(i: number): void }
  const retire = proto.retire
  // The planted bug: the slab's index and buffer go, its free slot ids stay in the lists.
  proto.retire = function (this: unknown, i: number): void {
    const self = this as { slabs: unknown[]; slabOf: Map<unknown, number>; freeIndices: number[] }
    self.slabOf.delete(self.slabs[i])
    self.slabs[i] = undefined
    self.freeIndices.push(i)
  }
  const c = fresh()
  const seeds = seedList(RUNS, 1)
  try {
    for (const seed of seeds) await run(seed, true, c)
  } finally {
    proto.retire = retire
  }
  console.log(
    `RELIABILITY shared-segment-memory-mutation runs=${seeds.length} divergences=${c.divergences} seed=${seeds[0]}`,
  )
  assert.ok(c.divergences > 0, 'a slot of a slab the log now owns must read wrong or break an invariant')
})

test('a write burst ends: every segment buffer the log lets go of comes back to the arena', async () => {
  // Before, the arena pooled at most 4: the rest of a burst's buffers (15 in the default
  // part of bench:pagecache) were garbage until a full GC while the pages, whose budget grew
  // by them, carved new slabs beside them ("Peak RSS" in docs/DESIGN.md).
  const dir = await tempDir('shared-memory-burst')
  try {
    const pc = await PageCache.open(dir.path, arenaCodec, { cacheCapacity: 32 * 1024 * 1024 })
    const rnd = new Prng(7)
    const pages: Array<[number, Uint8Array]> = []
    let held = 0
    // Three bursts of 12 MiB, none awaited while it runs: the log holds a buffer per
    // segment written until its write completes.
    for (let burst = 0; burst < 3; burst++) {
      for (let i = 0; i < 3000; i++) {
        const pid = pc.allocate()
        const page = bytesOf(rnd, 4096)
        pc.replace(pid, page)
        if (i % 10 === 0) pages.push([pid, page])
        held = Math.max(held, pc.log.segmentBufferBytes)
      }
      await pc.flush()
      // Reads page in, and carve pooled slabs for their pages.
      for (let i = 0; i < 200; i++) {
        const [pid, page] = pages[rnd.int(pages.length)] as [number, Uint8Array]
        assert.equal(await pc.withPage(pid, (p) => Buffer.compare(p, page)), 0, `page ${pid}`)
      }
    }
    const st = pc.stats().arena
    assert.ok(st !== undefined)
    const segment = 1024 * 1024
    assert.ok(held >= 8 * segment, `the log held ${held / segment} buffers at most`)
    assert.ok(st.slabsAdopted > 4, `${st.slabsAdopted} buffers came back`)
    assert.equal(st.slabsRefused, 0, 'a buffer the capacity had room for was left to the collector')
    await pc.close()
  } finally {
    await dir.remove()
  }
})
