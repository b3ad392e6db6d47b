// What a page-in costs and what it leaves behind: one read of exactly each fragment's size
// (the page table knows it), and nothing the cache evicted stays reachable from the page
// cache (LRU, page table, read path), so V8 can free it. Real files, real reopen.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { FileStorage, type OpenMode, type Storage, type StorageFile } from '../../src/io/index.js'
import { PageCache, type PageCodec } from '../../src/pagecache/index.js'
import { bytesOf, plainAppendCodec } from '../helpers/append-codec.js'
import { ForwardingStorage, forwardFile } from '../helpers/forwarding-storage.js'
import { tempDir } from '../helpers/temp-dir.js'

const bytesCodec = plainAppendCodec

/** Records the reads of the `log` file while armed. */
class LogReads extends ForwardingStorage {
  reads: Array<{ position: number; length: number }> = []
  isWatching = false

  constructor(inner: Storage) {
    super(inner)
  }

  override async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (name !== 'log') return f
    return forwardFile(f, {
      read: (buffer, offset, length, position) => {
        if (this.isWatching) this.reads.push({ position, length })
        return f.read(buffer, offset, length, position)
      },
    })
  }
}

test('a page-in reads each fragment once, in one read of exactly its size on the log', async () => {
  const dir = (await tempDir('pc-page-in-reads')).path
  const opts = { flushEveryMs: 0, segmentBytes: 64 * 1024, cleaning: false, consolidateAfter: 8 }
  let pc = await PageCache.open(dir, bytesCodec, opts)
  // Bases on both sides of the log's 4 KiB read window, deltas well under it: without the
  // size from the page table, the first would take two reads and the others a whole window.
  const shapes = [
    { base: 6000, deltas: [10, 300] },
    { base: 100, deltas: [] },
    { base: 4090, deltas: [1, 2000, 5] },
  ]
  const pids: number[] = []
  for (const [i, s] of shapes.entries()) {
    const pid = pc.allocate()
    let page = bytesOf(s.base, i)
    pc.replace(pid, page)
    for (const [j, n] of s.deltas.entries()) {
      const d = bytesOf(n, 10 * i + j)
      page = bytesCodec.materialize(page, [d])
      pc.link(pid, d, page)
    }
    pids.push(pid)
  }
  // Not at the end of the file: a read there comes back short and readFully asks again.
  pc.replace(pc.allocate(), bytesOf(100, 99))
  await pc.close()
  const probe = new LogReads(new FileStorage(dir))
  pc = await PageCache.open(dir, bytesCodec, { ...opts, storage: probe, cacheCapacity: 0 })
  for (const [i, s] of shapes.entries()) {
    const pid = pids[i] as number
    const frags = pc.fragmentsOf(pid) as readonly number[]
    assert.equal(frags.length / 2, 1 + s.deltas.length, `page ${i} has its fragments`)
    probe.reads = []
    probe.isWatching = true
    const page = await pc.get(pid)
    probe.isWatching = false
    let want = bytesOf(s.base, i)
    for (const [j, n] of s.deltas.entries()) want = bytesCodec.materialize(want, [bytesOf(n, 10 * i + j)])
    assert.deepEqual(page, want, `page ${i} reads back`)
    const sizes = probe.reads.map((r) => r.length).sort((a, b) => a - b)
    // A read is never shorter than the longest message header (MAX_MESSAGE_HEADER_BYTES).
    const fragSizes = frags
      .filter((_, k) => k % 2 === 1)
      .map((n) => Math.max(n, 32))
      .sort((a, b) => a - b)
    assert.deepEqual(sizes, fragSizes, `page ${i}: one read per fragment, each exactly its size`)
  }
  await pc.close()
})

test('without an arena, page-ins read into space they reuse, never into space another read holds', async () => {
  const dir = (await tempDir('pc-page-in-space')).path
  const opts = { flushEveryMs: 0, segmentBytes: 256 * 1024, cleaning: false }
  // Copies what it keeps, as the contract asks, and records the memory it was handed.
  const handed: ArrayBufferLike[] = []
  const codec: PageCodec<Uint8Array> = {
    ...bytesCodec,
    materialize(base, deltas) {
      handed.push(base.buffer, ...deltas.map((d) => d.buffer))
      return bytesCodec.materialize(base, deltas)
    },
  }
  let pc = await PageCache.open(dir, codec, opts)
  const want = new Map<number, Uint8Array>()
  let fragments = 0
  for (let i = 0; i < 200; i++) {
    const pid = pc.allocate()
    // One page in 50 has a base longer than the kept read space: an array of its own.
    let page = bytesOf(i % 50 === 7 ? 40_000 : 100 + ((i * 373) % 9000), i)
    pc.replace(pid, page)
    for (let j = 0; j < i % 4; j++) {
      const d = bytesOf(10 + j * 50, i + 1000 * j)
      page = bytesCodec.materialize(page, [d])
      pc.link(pid, d, page)
    }
    fragments += 1 + (i % 4)
    want.set(pid, page)
  }
  await pc.close()
  pc = await PageCache.open(dir, codec, { ...opts, cacheCapacity: 0 })
  // All at once: every read in flight holds space no other read is given.
  const pids = [...want.keys()]
  const got = await Promise.all(pids.map((pid) => pc.get(pid)))
  for (const [k, pid] of pids.entries()) assert.deepEqual(got[k], want.get(pid), `page ${pid} reads back`)
  // One at a time: the same few buffers serve every read.
  handed.length = 0
  for (const pid of pids) assert.deepEqual(await pc.get(pid), want.get(pid), `page ${pid} reads back`)
  assert.equal(handed.length, fragments)
  // At most 4 reads at a time (a page's fragments), and the 4 long bases' own arrays.
  const distinct = new Set(handed).size
  assert.ok(distinct <= 4 + 4, `${distinct} distinct arrays for ${fragments} fragments`)
  await pc.close()
})

test('pages the LRU evicted are not kept reachable by the page cache', async () => {
  v8.setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const dir = (await tempDir('pc-evicted-collectable')).path
  const PAGE = 4096
  const pc = await PageCache.open(dir, bytesCodec, {
    flushEveryMs: 0,
    segmentBytes: 256 * 1024,
    cacheCapacity: 20 * (PAGE + 64 + 160),
  })
  // Weak references to every page object the cache was ever handed or handed out. Made in
  // functions of their own: a suspended frame may keep its last page in a register.
  const refs: Array<WeakRef<Uint8Array>> = []
  const pids: number[] = []
  const write = (): void => {
    for (let i = 0; i < 300; i++) {
      const pid = pc.allocate()
      const page = bytesOf(PAGE, i)
      refs.push(new WeakRef(page))
      pc.replace(pid, page)
      pids.push(pid)
    }
  }
  // Page-ins through the log (a stride through the pages, so most miss), each page dropped at once.
  const read = async (): Promise<void> => {
    for (let i = 0; i < 600; i++) {
      const page = await pc.get(pids[(i * 7919) % pids.length] as number)
      assert.equal(page?.length, PAGE)
      refs.push(new WeakRef(page as Uint8Array))
    }
  }
  write()
  await pc.flush()
  await read()
  // WeakRef targets stay alive until the job that made them ends: let it end, then collect.
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  gc()
  const alive = new Set(refs.map((r) => r.deref()).filter((p) => p !== undefined)).size
  const resident = pc.stats().residentPages
  assert.ok(resident > 0 && resident <= 20, `${resident} pages resident`)
  assert.ok(alive <= resident, `${alive} page arrays reachable with ${resident} resident`)
  await pc.close()
})
