// Usage: npm run build && node bench/reopen-stall.mjs [records] [dist folder]
// (docs/DESIGN.md, "Segment cleaning": close finishes the run).
// Bulk-loads N records (16 B keys, 100 B values) in batches of 1000, flushes, closes (timed),
// reopens at durability 'sync', then times 2 s of awaited inserts over random loaded keys:
// the first five inserts, the longest, ops/s; and how long the close took.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

const N = Number(process.argv[2] ?? 300000)
const dist =
  process.argv[3] === undefined ? new URL('../dist/', import.meta.url) : pathToFileURL(`${process.argv[3]}/`)
const { open } = await import(new URL('src/index.js', dist).href)
const dir = mkdtempSync(join(tmpdir(), 'stall-'))
const keys = Array.from({ length: N }, () => randomBytes(16))
let db = await open(dir, { durability: 'flush', cacheCapacity: 1 << 30 })
for (let i = 0; i < N; i += 1000)
  await db.applyBatch((b) => {
    for (let j = i; j < Math.min(N, i + 1000); j++) b.insert(keys[j], randomBytes(100))
  })
await db.flush()
let t = performance.now()
await db.close()
const closeMs = performance.now() - t
t = performance.now()
db = await open(dir, { durability: 'sync', cacheCapacity: 1 << 30 })
await db.get(keys[0])
const reopenMs = performance.now() - t
let max = 0,
  n = 0
const end = performance.now() + 2000
const first = []
while (performance.now() < end) {
  const a = performance.now()
  await db.insert(keys[(Math.random() * N) | 0], randomBytes(100))
  const d = performance.now() - a
  if (n < 5) first.push(d.toFixed(1))
  max = Math.max(max, d)
  n++
}
console.log(
  `N=${N} close=${closeMs.toFixed(0)}ms reopen=${reopenMs.toFixed(1)}ms durable-1=${(n / 2).toFixed(0)} ops/s max=${max.toFixed(1)}ms first=${first.join('/')} size=${((await db.sizeOnDisk()) / 1e6).toFixed(1)}MB`,
)
await db.close()
rmSync(dir, { recursive: true, force: true })
