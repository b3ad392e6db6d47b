// Readers and iterators stay correct while writers split and merge the nodes they are
// walking; compare-and-swap and read-modify-write are atomic among concurrent callers.
// A small resident set makes nearly every read page in (an await), so writes land in the
// middle of descents and iterations.

import assert from 'node:assert/strict'
import fc from 'fast-check'
import { Prng } from '../../src/util/prng.js'
import { dbFixture, dec, eachBackend, enc, hex } from './fixtures.js'

const key = (i: number): string => `k${String(i).padStart(4, '0')}`

eachBackend(
  'iterators under concurrent writes: in order, every key present throughout exactly once',
  async (backend) => {
    let restarts = 0
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        fc.boolean(),
        fc.integer({ min: 4, max: 40 }),
        async (seed, reverse, residentMax) => {
          const f = await dbFixture(backend, { nodeMaxBytes: 80, nodeMaxEntries: 4 }, { residentMax })
          const { db } = f
          // Even keys stay throughout; odd keys churn (inserted, removed, re-inserted).
          for (let i = 0; i < 300; i += 2) await db.insert(key(i), 'stable')
          const prng = new Prng(seed)
          const next = (n: number): number => prng.int(n)
          let writing = true
          const writer = (async () => {
            let ops = 0
            while (writing || ops < 50) {
              const i = next(150) * 2 + 1
              if (next(3) === 0) await db.remove(key(i))
              else await db.insert(key(i), 'x'.repeat(next(30)))
              ops++
            }
          })()
          const seen: string[] = []
          for await (const k of db.range({ reverse }).keys()) seen.push(dec(k) as string)
          writing = false
          await writer
          for (let j = 1; j < seen.length; j++) {
            const ordered = reverse ? seen[j - 1]! > seen[j]! : seen[j - 1]! < seen[j]!
            assert.ok(ordered, `keys out of order or repeated at ${j}: ${seen[j - 1]} then ${seen[j]}`)
          }
          const stable = new Set(seen.filter((k) => Number(k.slice(1)) % 2 === 0))
          assert.equal(stable.size, 150, 'every key present throughout is returned once')
          restarts += ((await db.stats()) as { readRestarts: number }).readRestarts
          await f.verify()
        },
      ),
      { numRuns: backend === 'memory' ? 25 : 10 },
    )
    assert.ok(restarts > 0, 'writes landed in the middle of reads')
  },
)

eachBackend(
  'point reads during splits and merges always see a key that is present throughout',
  async (backend) => {
    const f = await dbFixture(backend, { nodeMaxBytes: 64, nodeMaxEntries: 4 }, { residentMax: 6 })
    const { db } = f
    for (let i = 0; i < 200; i += 2) await db.insert(key(i), `v${i}`)
    let writing = true
    const writer = (async () => {
      for (let round = 0; round < 3; round++) {
        for (let i = 1; i < 200; i += 2) await db.insert(key(i), 'churn')
        for (let i = 1; i < 200; i += 2) await db.remove(key(i))
      }
      writing = false
    })()
    let reads = 0
    while (writing) {
      const i = (reads * 38) % 200
      const want = `v${i - (i % 2)}`
      const readers = [0, 2, 4, 6].map((d) => db.getString(key((i - (i % 2) + d) % 200)))
      const got = await Promise.all(readers)
      assert.equal(got[0], want)
      for (const g of got) assert.ok(g?.startsWith('v'), `a stable key read as ${g}`)
      reads++
    }
    await writer
    assert.ok(reads > 10, `only ${reads} read rounds ran during the writes`)
    await f.verify()
  },
)

eachBackend('compareAndSwap: concurrent increments conflict, retry, and lose no update', async (backend) => {
  const { db } = await dbFixture(backend)
  await db.insert('counter', '0')
  let conflicts = 0
  const worker = async (): Promise<void> => {
    for (let n = 0; n < 20; n++) {
      for (;;) {
        const cur = (await db.get('counter')) as Uint8Array
        const r = await db.compareAndSwap('counter', cur, String(Number(dec(cur)) + 1))
        if (r.ok) break
        conflicts++
        assert.notEqual(hex(r.current as Uint8Array), hex(cur), 'a failed CAS reports the current value')
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  assert.equal(await db.getString('counter'), '160')
  assert.ok(conflicts > 0, 'concurrent CAS calls conflicted')
})

eachBackend('compareAndSwap on absent keys and to removal', async (backend) => {
  const { db } = await dbFixture(backend)
  assert.deepEqual(await db.compareAndSwap('k', undefined, 'a'), { ok: true })
  const r = await db.compareAndSwap('k', undefined, 'b')
  assert.equal(r.ok, false)
  assert.equal(dec((r as { current: Uint8Array }).current), 'a')
  assert.deepEqual(await db.compareAndSwap('k', enc('a'), undefined), { ok: true })
  assert.equal(await db.get('k'), undefined)
  const r2 = await db.compareAndSwap('k', 'a', 'c')
  assert.deepEqual(r2, { ok: false, current: undefined })
})

eachBackend(
  'updateAndFetch/fetchAndUpdate are atomic under concurrency and run f once each',
  async (backend) => {
    const f = await dbFixture(backend, { nodeMaxBytes: 64, nodeMaxEntries: 4 }, { residentMax: 4 })
    const { db } = f
    for (let i = 0; i < 100; i++) await db.insert(key(i), 'x')
    let calls = 0
    const inc = (old: Uint8Array | undefined): string => {
      calls++
      return String(Number(dec(old) ?? '0') + 1)
    }
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 ? db.updateAndFetch('n', inc) : db.fetchAndUpdate('n', inc),
      ),
    )
    assert.equal(calls, 50)
    assert.equal(await db.getString('n'), '50')
    const news = results.filter((_, i) => i % 2).map((r) => Number(dec(r)))
    const olds = results.filter((_, i) => i % 2 === 0).map((r) => Number(dec(r) ?? '0'))
    assert.deepEqual(
      [...news.map((n) => n - 1), ...olds].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i),
    )
    assert.equal(dec(await db.updateAndFetch('n', () => undefined)), undefined)
    assert.equal(await db.containsKey('n'), false)
    await f.verify()
  },
)

eachBackend(
  'every operation is one synchronous store write, so no reader can see half of it',
  async (backend) => {
    // Splits, merges, batches, clear and dropTree all touch several pages; each must reach
    // the store as one link, replace, free or writeBatch call (synchronous, so nothing runs
    // between its parts).
    const f = await dbFixture(backend, { nodeMaxBytes: 64, nodeMaxEntries: 4 }, { residentMax: 5 })
    const { db } = f
    const store = f.store as unknown as Record<string, (...a: unknown[]) => unknown>
    let calls = 0
    let batches = 0
    let depth = 0 // the memory store's link/replace/free call its own writeBatch
    for (const m of ['link', 'replace', 'free', 'writeBatch'] as const) {
      const orig = (store[m] as (...a: unknown[]) => unknown).bind(store)
      store[m] = (...a: unknown[]) => {
        if (depth === 0) calls++
        if (m === 'writeBatch') batches++
        depth++
        try {
          return orig(...a)
        } finally {
          depth--
        }
      }
    }
    const t = await db.openTree('t')
    let multiPage = 0
    const op = async (what: () => Promise<unknown>): Promise<void> => {
      const before = calls
      const batchesBefore = batches
      await what()
      assert.ok(calls - before <= 1, `one operation made ${calls - before} store writes`)
      if (batches > batchesBefore) multiPage++
    }
    for (let i = 0; i < 200; i++) await op(() => db.insert(key((i * 37) % 200), 'v'.repeat(i % 20)))
    for (let i = 0; i < 20; i++) {
      await op(() =>
        db.applyBatch((b) => {
          for (let j = 0; j < 10; j++) b.insert(key(i * 10 + j), String(i), t).remove(key(i * 10 + j))
        }),
      )
    }
    await op(() => t.clear())
    for (let i = 0; i < 50; i++) await op(() => t.insert(key(i), 'w'))
    await op(() => db.dropTree('t'))
    assert.ok(multiPage > 10, `only ${multiPage} operations touched several pages`)
    await f.verify()
  },
)
