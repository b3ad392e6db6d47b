// bobsled from the root build (`npm run build` writes dist/), through the package's entry,
// the one-module bundle dist/bobsled.js, as `import 'bobsled'` loads it. The database API is coded
// against the pinned names (open / applyBatch / insert / get / range / flush / sizeOnDisk /
// close); until the build exports `open`, load() reports "not built yet" and the harness skips
// bobsled. BOBSLED_DIST overrides the module path (e.g. to try another build);
// BOBSLED_WARM_CACHE=0 opens with `warmCache: false` (no warm-up after the reopen), to compare.

import * as fs from 'node:fs'
import { pathToFileURL } from 'node:url'

const DEFAULT_DIST = new URL('../../../dist/bobsled.js', import.meta.url)

/** The bobsled module, or a reason it can't be benchmarked yet. */
export async function load() {
  const url = process.env.BOBSLED_DIST ? pathToFileURL(process.env.BOBSLED_DIST) : DEFAULT_DIST
  if (!fs.existsSync(url)) return { missing: `not built yet (no ${url.pathname}; run npm run build)` }
  const mod = await import(url.href)
  if (typeof mod.open !== 'function') return { missing: 'not built yet (the build exports no open())' }
  return { mod }
}

function version() {
  try {
    const pkg = new URL('../../../package.json', import.meta.url)
    return JSON.parse(fs.readFileSync(pkg, 'utf8')).version
  } catch {
    return '?'
  }
}

/** bobsled's cache for this bench (its default is 256 MiB); stated in the output. */
const BOBSLED_CACHE_BYTES = 1024 * 1024 * 1024

export const peer = {
  name: 'bobsled',
  label: `bobsled ${version()}`,
  bulkSetting:
    "open(path, {durability:'flush', cacheCapacity: 1 GiB}); db.applyBatch() of 1000 inserts, each awaited; then db.flush()",
  durableSetting: "open(path, {durability:'sync', cacheCapacity: 1 GiB}); await db.insert(k, v)",
  concurrency: '64 async loops, each awaiting its insert (group commit is up to the engine)',
  isGetSync: false,

  async open(dir, mode) {
    const { mod, missing } = await load()
    if (mod === undefined) throw new Error(`bobsled: ${missing}`)
    // 1 GiB of cache, kept so runs compare with earlier ones. Before compact leaves the tree
    // cost ~200 B per entry beyond its bytes and the default 256 MiB thrashed at 1M entries;
    // now 1M entries charge ~142 MB of cache (docs/DESIGN.md, "Tree: in-memory leaves").
    const db = await mod.open(dir, {
      durability: mode === 'durable' ? 'sync' : 'flush',
      cacheCapacity: BOBSLED_CACHE_BYTES,
      ...(process.env.BOBSLED_WARM_CACHE === '0' ? { warmCache: false } : {}),
    })
    return {
      async writeBatch(keys, values) {
        await db.applyBatch((b) => {
          for (let i = 0; i < keys.length; i++) b.insert(keys[i], values[i])
        })
      },
      async sync() {
        await db.flush()
      },
      async put(key, value) {
        await db.insert(key, value)
      },
      get(key) {
        return db.get(key)
      },
      async scan(visit) {
        for await (const [key, value] of db.range({})) visit(key, value)
      },
      sizeOnDisk() {
        return db.sizeOnDisk()
      },
      async close() {
        await db.close()
      },
    }
  },
}
