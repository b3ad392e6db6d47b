// Inline page-ins (PageCacheOptions.inlineReads; docs/DESIGN.md, "Inline reads"): a user's
// page-in of inline records reads them with StorageFile.readNow and builds the page in the
// same step; cleaning never does (a pass would never yield), a blob page goes through the
// pool, and a few slow inline reads send the next page-ins to the pool. Real files, real
// reopen.

import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FileStorage, type OpenMode, type Storage, type StorageFile } from '../../src/io/index.js'
import { PageCache, type PageCodec } from '../../src/pagecache/index.js'
import { appendCodec, bytesOf, plainAppendCodec } from '../helpers/append-codec.js'
import { ForwardingStorage, forwardFile } from '../helpers/forwarding-storage.js'
import { tempDir } from '../helpers/temp-dir.js'

/** Counts the log file's reads by path, and can make each synchronous one slow. */
class ReadCounter extends ForwardingStorage {
  reads = 0
  readsNow = 0
  /** Milliseconds each readNow() spins before it reads (a device read, not the OS cache). */
  slowMs = 0

  constructor(inner: Storage) {
    super(inner)
  }

  override async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (name !== 'log') return f
    const readNow = f.readNow?.bind(f)
    const writeSyncedNow = f.writeSyncedNow?.bind(f)
    return forwardFile(f, {
      read: (b, o, l, p) => {
        this.reads++
        return f.read(b, o, l, p)
      },
      ...(readNow === undefined
        ? {}
        : {
            readNow: (b: Uint8Array, o: number, l: number, p: number) => {
              this.readsNow++
              const until = performance.now() + this.slowMs
              while (performance.now() < until) {
                // the device at work
              }
              return readNow(b, o, l, p)
            },
          }),
      ...(writeSyncedNow === undefined ? {} : { writeSyncedNow }),
    })
  }
}

const OPTS = {
  flushEveryMs: 0,
  segmentBytes: 64 * 1024,
  cleaning: false,
  consolidateAfter: 8,
  warmCache: false,
}

/** `count` pages of a base and 0-5 deltas each, closed; returns each page's bytes by id. */
async function makePages(dir: string, codec: PageCodec<Uint8Array>, count: number) {
  const pc = await PageCache.open(dir, codec, OPTS)
  const want = new Map<number, Uint8Array>()
  for (let i = 0; i < count; i++) {
    const pid = pc.allocate()
    let page = bytesOf(50 + ((i * 997) % 5000), i)
    pc.replace(pid, page)
    for (let j = 0; j < i % 6; j++) {
      const d = bytesOf(1 + ((i * 31 + j * 7) % 300), 1000 + i * 10 + j)
      page = codec.materialize(page, [d])
      pc.link(pid, d, page)
    }
    want.set(pid, page)
  }
  await pc.close()
  return want
}

describe('inline page-ins', () => {
  for (const [name, codec] of [
    ['arena', appendCodec],
    ['no arena', plainAppendCodec],
  ] as const) {
    test(`a user's page-in reads inline and builds what the pool's path builds (${name})`, async () => {
      const dir = (await tempDir('pc-inline-reads')).path
      const want = await makePages(dir, codec, 120)
      for (const inlineReads of [true, false]) {
        const probe = new ReadCounter(new FileStorage(dir))
        const pc = await PageCache.open(dir, codec, { ...OPTS, storage: probe, inlineReads })
        const before = { reads: probe.reads, readsNow: probe.readsNow }
        let fragments = 0
        for (const [pid, bytes] of want) {
          fragments += (pc.fragmentsOf(pid) as readonly number[]).length / 2
          assert.deepEqual(await pc.get(pid), bytes, `page ${pid}, inlineReads ${inlineReads}`)
        }
        // Read again: resident now, no read at all.
        for (const [pid, bytes] of want) assert.deepEqual(await pc.withPage(pid, (p) => p.slice()), bytes)
        const s = pc.stats().inlineReads
        if (inlineReads) {
          assert.equal(s.pageIns, want.size, 'every page-in went inline')
          assert.equal(probe.readsNow - before.readsNow, fragments, 'one synchronous read per fragment')
          assert.equal(probe.reads, before.reads, 'and none through the pool')
        } else {
          assert.deepEqual(s, { pageIns: 0, slowPageIns: 0, fallbacks: 0 })
          assert.equal(probe.readsNow, before.readsNow, 'off: never a synchronous read')
          assert.equal(probe.reads - before.reads, fragments)
        }
        await pc.close()
      }
    })
  }

  test('four slow inline page-ins of sixteen send the next 256 through the pool', async () => {
    const dir = (await tempDir('pc-inline-slow')).path
    const want = await makePages(dir, plainAppendCodec, 300)
    const probe = new ReadCounter(new FileStorage(dir))
    const pc = await PageCache.open(dir, plainAppendCodec, { ...OPTS, storage: probe })
    probe.slowMs = 1.5
    const pids = [...want.keys()]
    for (const pid of pids) assert.deepEqual(await pc.get(pid), want.get(pid))
    // 4 slow inline (trip), 256 through the pool, 4 slow inline (trip), the last 36 through the pool.
    assert.deepEqual(pc.stats().inlineReads, { pageIns: 8, slowPageIns: 8, fallbacks: 292 })
    await pc.close()
    // Fast reads never trip it.
    const fast = new ReadCounter(new FileStorage(dir))
    const pc2 = await PageCache.open(dir, plainAppendCodec, { ...OPTS, storage: fast })
    for (const pid of pids) assert.deepEqual(await pc2.get(pid), want.get(pid))
    const s = pc2.stats().inlineReads
    assert.equal(s.fallbacks, 0)
    assert.equal(s.pageIns, pids.length)
    await pc2.close()
  })

  test("cleaning's page-ins never read inline, and a blob page goes through the pool", async () => {
    const dir = (await tempDir('pc-inline-clean')).path
    const want = await makePages(dir, plainAppendCodec, 200)
    let pc = await PageCache.open(dir, plainAppendCodec, OPTS)
    const big = pc.allocate()
    const large = bytesOf(pc.maxPageBytes + 5000, 7)
    await pc.replaceLarge(big, large)
    // Overwrite half the pages, so the old segments hold dead bytes to clean.
    for (const [pid, bytes] of want) {
      if (pid % 2 === 0) continue
      const page = bytesOf(bytes.length, pid + 5)
      pc.replace(pid, page)
      want.set(pid, page)
    }
    await pc.close()
    const probe = new ReadCounter(new FileStorage(dir))
    pc = await PageCache.open(dir, plainAppendCodec, { ...OPTS, storage: probe, cleaning: true })
    await pc.cleanNow()
    assert.ok(pc.stats().pagesRelocated > 0, 'cleaning relocated cold pages')
    assert.equal(probe.readsNow, 0, 'through the pool only')
    assert.deepEqual(pc.stats().inlineReads, { pageIns: 0, slowPageIns: 0, fallbacks: 0 })
    await pc.close()
    pc = await PageCache.open(dir, plainAppendCodec, { ...OPTS, storage: probe })
    assert.deepEqual(await pc.get(big), large)
    assert.deepEqual(pc.stats().inlineReads, { pageIns: 0, slowPageIns: 0, fallbacks: 1 })
    for (const [pid, bytes] of want) assert.deepEqual(await pc.get(pid), bytes, `page ${pid} after cleaning`)
    await pc.close()
  })
})
