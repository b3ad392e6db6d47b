// Inline page-ins through the public API on real files (docs/DESIGN.md, "Inline reads"):
// after a real reopen with the warm-up off, gets, a range scan and inserts into cold leaves
// page in with synchronous reads when inlineReads is on (the default) and through the pool
// when it is off, and both read back every value, then and after another reopen.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { open } from '../../src/index.js'
import { tempDir } from '../helpers/temp-dir.js'

const key = (i: number): string => `key:${String(i).padStart(5, '0')}`
const value = (i: number, round: number): string => `value ${i} of round ${round} `.padEnd(60 + (i % 50), '.')
const text = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b)

interface InlineReads {
  pageIns: number
  slowPageIns: number
  fallbacks: number
}

async function inlineReads(db: { stats(): Promise<object> }): Promise<InlineReads> {
  return ((await db.stats()) as { store: { inlineReads: InlineReads } }).store.inlineReads
}

test('gets, scans and inserts after a reopen page in inline (or not, when off) and read back every value', async () => {
  const dir = await tempDir('db-inline-reads')
  const N = 4000
  try {
    let db = await open(dir.path, { flushEveryMs: 0 })
    for (let i = 0; i < N; i += 500) {
      await db.applyBatch((b) => {
        for (let j = i; j < i + 500; j++) b.insert(key(j), value(j, 0))
      })
    }
    await db.close()
    for (const [round, on] of [
      [1, true],
      [2, false],
      [3, true],
    ] as const) {
      db = await open(dir.path, { warmCache: false, inlineReads: on, durability: 'sync' })
      for (let i = 0; i < N; i += 400)
        assert.equal(text(await db.get(key(i))), value(i, round - 1), `${key(i)}`)
      const afterGets = await inlineReads(db)
      // Inserts into leaves still cold, then a scan over all of them.
      for (let i = 3; i < N; i += 7) await db.insert(key(i), value(i, round))
      let n = 0
      for await (const [k, v] of db.range()) {
        const i = Number(text(k)?.slice(4))
        const want = i % 7 === 3 ? value(i, round) : value(i, round - 1)
        assert.equal(text(v), want, `scan at ${text(k)}`)
        n++
      }
      assert.equal(n, N)
      const s = await inlineReads(db)
      const msg = `round ${round} inlineReads=${on}: ${JSON.stringify(afterGets)} then ${JSON.stringify(s)}`
      if (on) {
        assert.ok(afterGets.pageIns >= 5, `the gets paged leaves in inline: ${msg}`)
        // Until the open is accepted the log reads through recovery's view of the file
        // (RepairedFile); it reads inline too, so not one page-in went to the pool.
        assert.equal(s.fallbacks, 0, `no page-in fell back to the pool: ${msg}`)
        assert.ok(s.pageIns > afterGets.pageIns, `so did the inserts and the scan: ${msg}`)
      } else assert.deepEqual(s, { pageIns: 0, slowPageIns: 0, fallbacks: 0 }, msg)
      await db.close()
      // A real reopen reads back every value, then every key takes this round's value.
      db = await open(dir.path, { warmCache: false, inlineReads: on })
      for (let i = 0; i < N; i++) {
        const got = text(await db.get(key(i)))
        assert.equal(
          got,
          i % 7 === 3 ? value(i, round) : value(i, round - 1),
          `${msg}: ${key(i)} after a reopen`,
        )
      }
      for (let i = 0; i < N; i += 500) {
        await db.applyBatch((b) => {
          for (let j = i; j < i + 500; j++) b.insert(key(j), value(j, round))
        })
      }
      await db.close()
    }
  } finally {
    await dir.remove()
  }
})
