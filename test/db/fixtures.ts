// Shared set-up for the Db tests: a database over the in-memory page store, reopened on
// the same store to model a restart.

import { type Db, type DbStore, type OpenOptions, openOn } from '../../src/db.js'
import { makeTreeConfig, type TreePage, treeCodec, verifyForest } from '../../src/tree/index.js'
import { MemoryPageStore, type MemoryPageStoreOptions } from '../helpers/memory-page-store.js'

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
export const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b)

/** Tiny nodes: splits and merges on almost every write. */
export const TINY: OpenOptions = { nodeMaxBytes: 96, nodeMaxEntries: 4 }

export interface Fixture {
  store: MemoryPageStore<TreePage>
  db: Db
  options: OpenOptions
  /** Closes the Db, drops everything in memory (optionally unstable writes too), reopens. */
  restart(o?: { crash?: boolean }): Promise<Db>
  /** Structural check of every tree; returns keys per tree ('' = default). */
  verify(): Promise<Map<string, number>>
}

export async function fixture(
  options: OpenOptions = TINY,
  storeOptions: MemoryPageStoreOptions = {},
): Promise<Fixture> {
  const store = new MemoryPageStore<TreePage>(treeCodec, { consolidateAfter: 3, ...storeOptions })
  const f: Fixture = {
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
      const c = makeTreeConfig(store.maxPageBytes, options)
      return (await verifyForest(store, c)).keys
    },
  }
  return f
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
