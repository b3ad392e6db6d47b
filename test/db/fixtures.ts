// Shared set-up for the Db tests. A suite runs over each backend of BACKENDS:
//  - 'memory': the in-memory page store (test/helpers/memory-page-store.ts); a restart
//    replays its simulated log, a crash keeps only what was made stable;
//  - 'file': the real page cache on real files in a temp folder, with small segments and a
//    small cache so eviction, page-in, cleaning and checkpoints all happen; a restart is a
//    real close and reopen; a crash copies the folder's bytes in one synchronous step (what
//    a SIGKILL at that instant leaves: every completed write), abandons the instance and
//    opens the copy;
//  - 'sim': the same page cache over the simulated disk (src/io SimDisk); a crash is a
//    power loss (any subset of unsynced writes kept, torn at sector granularity).
// The page cache is opened the way open() opens it (src/db.ts openPageStore), plus the
// knobs open() does not expose (checkpoint interval), so checkpoints happen in small tests.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { type Db, type DbStore, type OpenOptions, openOn } from '../../src/db.js'
import { SimDisk } from '../../src/io/index.js'
import { PageCache, type PageCacheOptions } from '../../src/pagecache/index.js'
import { makeTreeConfig, type TreePage, treeCodec, verifyForest } from '../../src/tree/index.js'
import { MemoryPageStore, type MemoryPageStoreOptions } from '../helpers/memory-page-store.js'
import { copyFolderNow } from '../helpers/temp-dir.js'

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
export const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b)

/** Tiny nodes: splits and merges on almost every write. */
export const TINY: OpenOptions = { nodeMaxBytes: 96, nodeMaxEntries: 4 }

export type Backend = 'memory' | 'file' | 'sim'

/** BOBSLED_DB_BACKEND=memory|file|sim runs the Db suites over one backend only. */
export const BACKENDS: readonly Backend[] =
  process.env.BOBSLED_DB_BACKEND !== undefined
    ? (process.env.BOBSLED_DB_BACKEND.split(',') as Backend[])
    : ['memory', 'file']

/** Segment size of the page-cache backends: small, so cleaning and segment turnover happen. */
export const FILE_SEGMENT_BYTES = 16 * 1024
/** Cache of the page-cache backends: a few dozen tiny pages, so reads page in. */
export const FILE_CACHE_BYTES = 8 * 1024
/** Approximate memory of one tiny resident page, to turn residentMax into cache bytes. */
const PAGE_MEMORY_BYTES = 400

export interface StoreOptions extends MemoryPageStoreOptions {
  /** Page-cache backends: segment size (memory: maxPageBytes plays that role). */
  segmentBytes?: number
  /** Page-cache backends: log bytes between checkpoints. Default 48 KiB. */
  checkpointEveryBytes?: number
}

export interface Fixture {
  backend: Backend
  db: Db
  /** The page store the Db runs on now (a new one after each restart). */
  store: DbStore
  options: OpenOptions
  /** Closes the Db, drops everything in memory (with crash: as a crash would), reopens. */
  restart(o?: { crash?: boolean }): Promise<Db>
  /** Structural check of every tree; returns keys per tree ('' = default). */
  verify(): Promise<Map<string, number>>
  /** Drops resident pages where the backend allows it (memory store only). */
  evict(): void
  /** A fingerprint of the store's writes so far: equal before and after = nothing written. */
  writes(): string
}

export interface MemoryFixture extends Fixture {
  store: MemoryPageStore<TreePage>
}

/** The memory-store fixture (for tests that use its failpoints and counters). */
export async function fixture(
  options: OpenOptions = TINY,
  storeOptions: MemoryPageStoreOptions = {},
): Promise<MemoryFixture> {
  return (await dbFixture('memory', options, storeOptions)) as MemoryFixture
}

let simDisks = 0
const tempDirs: string[] = []
// Every file-backed fixture still open when its test file ends is closed here: a test that
// leaves its Db open would otherwise leave the log's FileHandle to the garbage collector
// (Node's DEP0137 warning) with the folder lock held until then.
const openFixtures: Fixture[] = []
after(async () => {
  for (const f of openFixtures) await f.db.close().catch(() => {})
})
process.on('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true })
})

/** A Db over `backend`; see the header for what restart and crash mean on each. */
export async function dbFixture(
  backend: Backend,
  options: OpenOptions = TINY,
  storeOptions: StoreOptions = {},
): Promise<Fixture> {
  if (backend === 'memory') {
    const { segmentBytes: _s, checkpointEveryBytes: _c, ...memOptions } = storeOptions
    const store = new MemoryPageStore<TreePage>(treeCodec, { consolidateAfter: 3, ...memOptions })
    const f: MemoryFixture = {
      backend,
      store,
      db: await openOn(store as DbStore, options),
      options,
      async restart(o = {}) {
        if (o.crash) store.restart({ crash: true })
        else {
          await f.db.close()
          store.restart()
        }
        f.db = await openOn(store as DbStore, options)
        return f.db
      },
      async verify() {
        const c = makeTreeConfig(store.maxPageBytes, {
          ...options,
          maxLargePageBytes: store.maxLargePageBytes,
        })
        return (await verifyForest(store, c)).keys
      },
      evict: () => store.evictAll(),
      writes: () => JSON.stringify(store.counts),
    }
    return f
  }

  const pcOptions: PageCacheOptions = {
    segmentBytes: storeOptions.segmentBytes ?? FILE_SEGMENT_BYTES,
    cacheCapacity:
      storeOptions.residentMax !== undefined
        ? storeOptions.residentMax * PAGE_MEMORY_BYTES
        : FILE_CACHE_BYTES,
    consolidateAfter: 3,
    checkpointEveryBytes: storeOptions.checkpointEveryBytes ?? 48 * 1024,
    // Writes are stable only when asked (the memory store's autoStable: false).
    flushEveryMs: 0,
  }
  let disk: SimDisk | undefined
  let crashes = 0
  let path: string
  if (backend === 'sim') {
    disk = new SimDisk({ seed: ++simDisks, latency: false })
    path = 'db'
  } else {
    const root = mkdtempSync(join(tmpdir(), 'bobsled-dbfix-'))
    tempDirs.push(root)
    path = join(root, 'db0')
  }
  const openStore = (): Promise<PageCache<TreePage>> =>
    PageCache.open<TreePage>(
      path,
      treeCodec,
      disk ? { ...pcOptions, storage: disk.storage('db') } : pcOptions,
    )
  let store = await openStore()
  const f: Fixture = {
    backend,
    store,
    db: await openOn(store, options),
    options,
    async restart(o = {}) {
      if (!o.crash) await f.db.close()
      else if (disk !== undefined) {
        const old = f.db
        disk = disk.crash({ seed: disk.seed + ++crashes })
        await old.close().catch(() => {})
      } else {
        const old = f.db
        const next = join(path, '..', `db${++crashes}`)
        copyFolderNow(path, next)
        await old.close().catch(() => {})
        path = next
      }
      store = await openStore()
      f.store = store
      f.db = await openOn(store, options)
      return f.db
    },
    async verify() {
      const c = makeTreeConfig(store.maxPageBytes, { ...options, maxLargePageBytes: store.maxLargePageBytes })
      return (await verifyForest(store, c)).keys
    },
    evict: () => {},
    writes: () => String(store.log.maxReservedLsn),
  }
  openFixtures.push(f)
  return f
}

/** Registers one test per backend, named "<name> [<backend>]". */
export function eachBackend(
  name: string,
  body: (backend: Backend) => Promise<void>,
  backends: readonly Backend[] = BACKENDS,
): void {
  for (const b of backends) test(`${name} [${b}]`, () => body(b))
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
