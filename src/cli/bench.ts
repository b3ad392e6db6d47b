// `bobsled bench`: a quick benchmark of the key-value API on this machine's disk. It prints
// one line per figure; bench/ holds the careful ones (baselines, rounds, peers).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkEmptyOrMissing, emit, fmt, mib, openOrCreate, perSec, progress } from './common.js'

export interface BenchOptions {
  dir: string | undefined
  records: number
  valueBytes: number
  json: boolean
  progress: boolean
}

/** 16-byte keys as in LevelDB's db_bench: zero-padded decimal, so key order is number order. */
const keyOf = (i: number): string => `k${String(i).padStart(15, '0')}`

/** Entries per applyBatch in the batched-insert figure. */
const BATCH_OPS = 1000

export async function runBench(o: BenchOptions): Promise<void> {
  // A fresh folder, never the user's database: the benchmark writes and then deletes it.
  const own = o.dir === undefined
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'bobsled-bench-'))
  if (!own) checkEmptyOrMissing(dir)
  const value = new Uint8Array(o.valueBytes).fill(0x61)
  const n = o.records
  const figures: Array<{ name: string; ops: number; ms: number; opsPerSec: number }> = []
  const measure = async (name: string, ops: number, f: () => Promise<void>): Promise<void> => {
    const t0 = performance.now()
    await f()
    const ms = performance.now() - t0
    figures.push({ name, ops, ms: Math.round(ms), opsPerSec: perSec(ops, ms) })
  }
  let sizeOnDisk = 0
  try {
    let db = await openOrCreate(dir)
    const bar = progress(o, 'bench', 4 * n)
    await measure('insert (one awaited insert each, sequential keys)', n, async () => {
      for (let i = 0; i < n; i++) {
        await db.insert(keyOf(i), value)
        if (i % 4096 === 0) bar.update(i)
      }
    })
    const batched = await db.openTree('batched')
    await measure(`insert (applyBatch of ${BATCH_OPS})`, n, async () => {
      for (let i = 0; i < n; i += BATCH_OPS) {
        const end = Math.min(n, i + BATCH_OPS)
        await db.applyBatch((b) => {
          for (let j = i; j < end; j++) b.insert(keyOf(j), value, batched)
        })
        bar.update(n + end)
      }
    })
    await measure('flush (make everything durable)', 1, () => db.flush())
    await measure('durable insert (awaits fdatasync)', Math.min(n, 200), async () => {
      for (let i = 0; i < Math.min(n, 200); i++) await db.insert(`durable${i}`, value, { durable: true })
    })
    // A fixed stride through the keys: every read lands away from the last one.
    const stride = 7919
    await measure('get (random order)', n, async () => {
      for (let i = 0; i < n; i++) {
        await db.get(keyOf((i * stride) % n))
        if (i % 4096 === 0) bar.update(2 * n + i)
      }
    })
    await measure('scan (range over every entry)', n, async () => {
      let seen = 0
      for await (const _ of db.range({ gte: keyOf(0), lt: keyOf(n) })) {
        if (++seen % 4096 === 0) bar.update(3 * n + seen)
      }
    })
    bar.stop()
    await db.close()
    await measure('reopen (recovery)', 1, async () => {
      db = await openOrCreate(dir)
    })
    sizeOnDisk = await db.sizeOnDisk()
    await db.close()
  } finally {
    if (own) rmSync(dir, { recursive: true, force: true })
  }
  const doc = { dir: own ? '(temporary)' : dir, records: n, valueBytes: o.valueBytes, sizeOnDisk, figures }
  emit(o, doc, () =>
    [
      `${fmt(n)} records, 16 B keys, ${o.valueBytes} B values, in ${own ? 'a temporary folder' : dir}`,
      ...figures.map((f) =>
        f.ops === 1
          ? `${f.name.padEnd(52)} ${String(f.ms).padStart(9)} ms`
          : `${f.name.padEnd(52)} ${fmt(f.opsPerSec).padStart(9)} ops/s  (${fmt(f.ops)} in ${f.ms} ms)`,
      ),
      `size on disk ${mib(sizeOnDisk)}`,
    ].join('\n'),
  )
}
