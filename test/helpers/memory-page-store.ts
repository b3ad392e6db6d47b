// An in-memory PageStore that models the contract of src/pagecache/page-store.ts the way
// the real page cache keeps it: every page lives as encoded bytes (a base and its deltas)
// in a simulated log, and get() re-materialises it through the codec whenever the page is
// not resident (after evictAll(), a small residentMax, or restart()). Writes are
// synchronous; get() always awaits, so readers interleave with writers as they would over
// real IO. writeBatch is all-or-nothing, also when a failpoint fires half-way through it.

import { ClosedError, FailpointError, LimitError } from '../../src/errors.js'
import type { PageCodec, PageId, PageStore, PageWrite, StagedPage } from '../../src/pagecache/page-store.js'
import { assert } from '../../src/util/assert.js'
import { asLsn, type Lsn } from '../../src/util/brand.js'

type Fragment = { pid: PageId; kind: 'base' | 'delta' | 'free'; bytes: Uint8Array }
interface Record {
  /** LSN of the record's last byte. */
  lsn: number
  frags: Fragment[]
}

export interface MemoryPageStoreOptions {
  maxPageBytes?: number
  /** Largest base stageLarge() takes (the page cache's blob limit). Default 256 MiB. */
  maxLargePageBytes?: number
  /** Deltas kept before a link() consolidates the page into a new base. */
  consolidateAfter?: number
  /** Resident pages kept; beyond it the least recently used are evicted. Default unbounded. */
  residentMax?: number
  /** When false, writes are durable only once makeStable()/flush() covers them. Default true. */
  autoStable?: boolean
}

export class MemoryPageStore<T> implements PageStore<T> {
  readonly maxPageBytes: number
  readonly maxLargePageBytes: number
  /** Bases from stageLarge() not consumed yet, with their bytes. */
  private readonly staged = new Map<StagedPage, Uint8Array>()
  private readonly consolidateAfter: number
  residentMax: number
  private readonly autoStable: boolean
  /** The simulated log: every write, in LSN order. */
  private log: Record[] = []
  private nextLsn = 1
  private stable = 0
  /** The on-log representation of each live page: base first, then deltas. */
  private frags = new Map<PageId, Uint8Array[]>()
  /** Materialised pages (a Map keeps LRU order: re-inserted on access). */
  private resident = new Map<PageId, T>()
  private allocated = new Set<PageId>()
  private freeIds: PageId[] = []
  private nextPid = 0
  private isClosed = false
  /** Failpoint: the Nth write inside the next writeBatch (0-based) throws; nothing is applied. */
  failBatchAtWrite: number | undefined
  /** Failpoint: the next link/replace/free throws before any change. */
  failNextWrite = false
  readonly counts = { pageIns: 0, links: 0, replaces: 0, frees: 0, batches: 0, consolidations: 0, staged: 0 }

  constructor(
    private readonly codec: PageCodec<T>,
    o: MemoryPageStoreOptions = {},
  ) {
    this.maxPageBytes = o.maxPageBytes ?? 256 * 1024 - 64
    this.maxLargePageBytes = o.maxLargePageBytes ?? 256 * 1024 * 1024
    this.consolidateAfter = o.consolidateAfter ?? 8
    this.residentMax = o.residentMax ?? Number.POSITIVE_INFINITY
    this.autoStable = o.autoStable ?? true
  }

  get stableLsn(): Lsn {
    return asLsn(this.stable)
  }

  allocate(): PageId {
    this.checkOpen()
    const pid = this.freeIds.length > 0 ? (this.freeIds.shift() as PageId) : this.nextPid++
    this.allocated.add(pid)
    return pid
  }

  async get(pid: PageId): Promise<T | undefined> {
    this.checkOpen()
    await new Promise<void>((r) => setImmediate(r))
    this.checkOpen()
    // Materialise from what is current when the read completes, as a real page-in must.
    const r = this.resident.get(pid)
    if (r !== undefined) {
      this.touch(pid, r)
      return r
    }
    const f = this.frags.get(pid)
    if (f === undefined) return undefined
    const page = this.codec.materialize(f[0] as Uint8Array, f.slice(1))
    this.counts.pageIns++
    this.touch(pid, page)
    return page
  }

  peek(pid: PageId): T | undefined {
    return this.resident.get(pid)
  }

  replace(pid: PageId, page: T, bytes?: Uint8Array): Lsn {
    this.preWrite()
    return this.writeBatch([{ kind: 'replace', pid, page, bytes }], true)
  }

  link(pid: PageId, delta: Uint8Array, page: T): Lsn {
    this.preWrite()
    return this.writeBatch([{ kind: 'link', pid, delta, page }], true)
  }

  free(pid: PageId): Lsn {
    this.preWrite()
    return this.writeBatch([{ kind: 'free', pid }], true)
  }

  writeBatch(writes: readonly PageWrite<T>[], single = false): Lsn {
    this.checkOpen()
    assert(writes.length > 0, 'a batch has at least one write')
    // Validate everything first: an invalid write throws before any change.
    // Liveness as the batch goes: the store's pages, overridden by the batch's own writes.
    const changed = new Map<PageId, boolean>()
    const live = {
      has: (pid: PageId): boolean => changed.get(pid) ?? this.frags.has(pid),
      add: (pid: PageId): void => void changed.set(pid, true),
      delete: (pid: PageId): void => void changed.set(pid, false),
    }
    const encoded: Fragment[] = []
    const usedStaged = new Set<StagedPage>()
    const failAt = single ? undefined : this.failBatchAtWrite
    if (!single) {
      this.counts.batches++
      this.failBatchAtWrite = undefined
    }
    writes.forEach((w, i) => {
      assert(Number.isSafeInteger(w.pid) && w.pid >= 0, `write of page ${w.pid}: not a page id`)
      if (failAt === i) throw new FailpointError('memory store writeBatch')
      if (w.kind === 'free') {
        assert(live.has(w.pid), `free of page ${w.pid}, which holds nothing`)
        live.delete(w.pid)
        encoded.push({ pid: w.pid, kind: 'free', bytes: new Uint8Array(0) })
      } else if (w.kind === 'link') {
        assert(live.has(w.pid), `link to page ${w.pid}, which holds nothing`)
        if (w.delta.length > this.maxPageBytes)
          throw new LimitError('delta bytes', this.maxPageBytes, w.delta.length)
        encoded.push({ pid: w.pid, kind: 'delta', bytes: w.delta.slice() })
      } else {
        assert(
          live.has(w.pid) || this.allocated.has(w.pid),
          `replace of page ${w.pid}, which was never allocated`,
        )
        let bytes: Uint8Array
        if (w.staged !== undefined) {
          const st = this.staged.get(w.staged)
          assert(
            st !== undefined && !usedStaged.has(w.staged),
            `staged base of page ${w.pid} unknown or used`,
          )
          assert(w.staged.pid === w.pid, `base staged for page ${w.staged.pid} written to page ${w.pid}`)
          usedStaged.add(w.staged)
          bytes = st
        } else {
          bytes = (w.bytes ?? this.codec.encode(w.page)).slice()
          if (bytes.length > this.maxPageBytes)
            throw new LimitError('page bytes', this.maxPageBytes, bytes.length)
        }
        live.add(w.pid)
        encoded.push({ pid: w.pid, kind: 'base', bytes })
      }
    })
    // Apply: one log record for the whole batch, so a crash keeps all of it or none.
    for (const st of usedStaged) this.staged.delete(st)
    this.nextLsn += encoded.reduce((a, f) => a + f.bytes.length + 16, 0)
    const rec: Record = { lsn: this.nextLsn - 1, frags: [] }
    writes.forEach((w, i) => {
      let frag = encoded[i] as Fragment
      if (frag.kind === 'free') {
        this.frags.delete(w.pid)
        this.resident.delete(w.pid)
        this.allocated.delete(w.pid)
        this.freeIds.push(w.pid)
        this.freeIds.sort((a, b) => a - b)
        this.counts.frees++
      } else if (w.kind === 'link') {
        const f = this.frags.get(w.pid) as Uint8Array[]
        if (f.length > this.consolidateAfter) {
          // The store consolidates instead of appending: the delta's page becomes a base.
          frag = { pid: w.pid, kind: 'base', bytes: this.codec.encode(w.page) }
          this.frags.set(w.pid, [frag.bytes])
          this.counts.consolidations++
        } else f.push(frag.bytes)
        this.touch(w.pid, w.page)
        this.counts.links++
      } else if (w.kind === 'replace') {
        this.frags.set(w.pid, [frag.bytes])
        this.allocated.delete(w.pid)
        this.touch(w.pid, w.page)
        this.counts.replaces++
      }
      rec.frags.push(frag)
    })
    this.log.push(rec)
    const last = this.nextLsn - 1
    if (this.autoStable) this.stable = last
    return asLsn(last)
  }

  async stageLarge(pid: PageId, bytes: Uint8Array): Promise<StagedPage> {
    this.checkOpen()
    assert(Number.isSafeInteger(pid) && pid >= 0, `staging page ${pid}: not a page id`)
    if (bytes.length > this.maxLargePageBytes)
      throw new LimitError('page bytes', this.maxLargePageBytes, bytes.length)
    await new Promise<void>((r) => setImmediate(r))
    this.checkOpen()
    const st: StagedPage = { pid, sizeBytes: bytes.length }
    this.staged.set(st, bytes.slice())
    this.counts.staged++
    return st
  }

  async dropStaged(staged: StagedPage): Promise<void> {
    this.staged.delete(staged)
  }

  async flush(): Promise<Lsn> {
    this.checkOpen()
    await new Promise<void>((r) => setImmediate(r))
    this.stable = this.nextLsn - 1
    return asLsn(this.stable)
  }

  async makeStable(lsn: number): Promise<void> {
    this.checkOpen()
    await new Promise<void>((r) => setImmediate(r))
    if (lsn > this.stable) this.stable = Math.min(lsn, this.nextLsn - 1)
  }

  async whenWritable(): Promise<void> {
    this.checkOpen()
  }

  pageIds(): Iterable<PageId> {
    return [...this.frags.keys()].sort((a, b) => a - b)
  }

  async close(): Promise<void> {
    if (this.isClosed) return
    this.isClosed = true
  }

  /** Drops every materialised page: the next get() of each page re-materialises it from bytes. */
  evictAll(): void {
    this.resident.clear()
  }

  /**
   * A restart: drops everything in memory and recovers the pages by replaying the log. With
   * `crash`, writes not yet covered by the stable LSN are lost, as after a power cut.
   */
  restart(o: { crash?: boolean } = {}): void {
    if (o.crash) {
      this.log = this.log.filter((r) => r.lsn <= this.stable)
      this.nextLsn = (this.log.at(-1)?.lsn ?? 0) + 1
    }
    this.frags = new Map()
    for (const rec of this.log) {
      for (const f of rec.frags) {
        if (f.kind === 'free') this.frags.delete(f.pid)
        else if (f.kind === 'base') this.frags.set(f.pid, [f.bytes])
        else {
          const chain = this.frags.get(f.pid)
          assert(chain !== undefined, `recovered a delta for page ${f.pid} without a base`)
          chain.push(f.bytes)
        }
      }
    }
    this.resident = new Map()
    this.allocated = new Set()
    const ids = [...this.frags.keys()]
    this.nextPid = ids.length === 0 ? 0 : Math.max(...ids) + 1
    this.freeIds = []
    for (let p = 0; p < this.nextPid; p++) if (!this.frags.has(p)) this.freeIds.push(p)
    this.stable = this.nextLsn - 1
    this.isClosed = false
  }

  /** Bytes the simulated log holds for live pages (what a compacted log would take). */
  async sizeOnDisk(): Promise<number> {
    let n = 0
    for (const f of this.frags.values()) for (const b of f) n += b.length
    return n
  }

  stats(): object {
    return { ...this.counts, pages: this.frags.size, resident: this.resident.size }
  }

  private preWrite(): void {
    this.checkOpen()
    if (this.failNextWrite) {
      this.failNextWrite = false
      throw new FailpointError('memory store write')
    }
  }

  private touch(pid: PageId, page: T): void {
    this.resident.delete(pid)
    this.resident.set(pid, page)
    while (this.resident.size > this.residentMax) {
      const oldest = this.resident.keys().next().value as PageId
      this.resident.delete(oldest)
    }
  }

  private checkOpen(): void {
    if (this.isClosed) throw new ClosedError('the memory page store is closed')
  }
}
