// Key-level power loss over the simulated disk (regimen R3 at the API): a random workload
// of inserts, removes and batches across two trees runs on open() over a SimDisk until the
// power is cut at a seeded random moment, sometimes again during the recovery that follows.
// The crash keeps any subset of the unsynced writes, torn at sector granularity. After the
// reopen, the state must be a prefix of the issued writes that contains every acknowledged
// one (test/crash/db-workload.ts): 0 acknowledged writes lost, 0 torn batches, 0 phantoms.
// Both durability modes run: 'sync' (each awaited write is acknowledged) and 'flush'
// (await db.flush() acknowledges what came before it).
// BOBSLED_SEED=<n> replays one seed; failures print it. BOBSLED_SOAK=1 runs 5,000 seeds.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Db, type OpenOptions, open } from '../../src/index.js'
import { SimDisk } from '../../src/io/index.js'
import { Prng } from '../../src/util/prng.js'
import { checkRecovered, History, readState, runWorkload } from '../crash/db-workload.js'

const soak = process.env.BOBSLED_SOAK === '1'
const SEEDS = soak ? 5000 : 200

interface Outcome {
  acked: number
  kept: number
  ackedLost: number
  tornBatches: number
  phantom: number
  violation?: string
}

function openDb(disk: SimDisk, durability: 'sync' | 'flush'): Promise<Db> {
  const o: OpenOptions = {
    storage: disk.storage('db'),
    durability,
    segmentBytes: 8 * 1024,
    cacheCapacity: 16 * 1024,
    flushEveryMs: 0,
    nodeMaxBytes: 512,
    nodeMaxEntries: 16,
  }
  return open('db', o)
}

function cutAfter(turns: number): Promise<void> {
  return new Promise((resolve) => {
    const step = (n: number): void => {
      if (n <= 0) resolve()
      else setImmediate(() => step(n - 1))
    }
    step(turns)
  })
}

export async function runSeed(
  seed: number,
  durability: 'sync' | 'flush',
  ackEarly = false,
): Promise<Outcome> {
  const rng = new Prng(seed)
  let disk = new SimDisk({ seed, latency: true })
  const h = new History()
  const total: Outcome = { acked: 0, kept: 0, ackedLost: 0, tornBatches: 0, phantom: 0 }
  const rounds = 1 + rng.int(3)
  for (let round = 0; round <= rounds; round++) {
    const db = await openDb(disk, durability)
    const { state, phantom } = await readState(db)
    const c = checkRecovered(h, state, phantom)
    total.acked += c.acked
    total.kept += c.kept
    total.ackedLost += c.ackedLost
    total.tornBatches += c.tornBatches
    total.phantom += c.phantom
    if (c.violation !== undefined) return { ...total, violation: `round ${round}: ${c.violation}` }
    if (round === rounds) {
      await db.close()
      break
    }
    const running = runWorkload(db, rng, h.nextW, 10 + rng.int(150), h, { durability, ackEarly })
    await Promise.race([running, cutAfter(rng.int(600))])
    disk = disk.crash({ seed: rng.next() })
    await running
    if (rng.chance(0.3)) {
      // A second power cut while recovery runs.
      const opening = openDb(disk, durability).catch(() => undefined)
      await cutAfter(rng.int(40))
      disk = disk.crash({ seed: rng.next() })
      await opening
    }
  }
  return total
}

function seedsToRun(count: number, offset: number): number[] {
  const only = process.env.BOBSLED_SEED
  if (only !== undefined) return [Number(only)]
  return Array.from({ length: count }, (_, i) => offset + i)
}

for (const durability of ['sync', 'flush'] as const) {
  test(`db power loss (${durability}) over ${SEEDS} seeds: no acknowledged write lost, prefix state, whole batches`, async () => {
    const sum: Outcome = { acked: 0, kept: 0, ackedLost: 0, tornBatches: 0, phantom: 0 }
    const seeds = seedsToRun(SEEDS, durability === 'sync' ? 1 : 100_001)
    for (const seed of seeds) {
      let o: Outcome
      try {
        o = await runSeed(seed, durability)
      } catch (e) {
        assert.fail(`seed=${seed} (BOBSLED_SEED=${seed}): recovery failed: ${(e as Error).stack}`)
      }
      if (o.violation !== undefined) assert.fail(`seed=${seed} (BOBSLED_SEED=${seed}): ${o.violation}`)
      for (const k of Object.keys(sum) as (keyof Outcome)[]) if (k !== 'violation') sum[k] += o[k] as number
    }
    console.log(
      `RELIABILITY db-power-loss durability=${durability} seeds=${seeds.length} acked=${sum.acked} kept=${sum.kept} acked_lost=${sum.ackedLost} torn_batches=${sum.tornBatches} phantom=${sum.phantom} failed_reopens=0 seed=${seeds[0]}`,
    )
    assert.ok(sum.acked > seeds.length, 'the workload acknowledged writes')
  })
}

test('mutation check: acknowledging before awaiting is caught by the db power-loss test', async () => {
  let caught = 0
  const seeds = seedsToRun(60, 200_001)
  for (const seed of seeds) {
    const o = await runSeed(seed, seed % 2 === 0 ? 'sync' : 'flush', true).catch(() => undefined)
    if (o === undefined || o.violation !== undefined) caught++
  }
  console.log(`RELIABILITY db-power-loss-mutation seeds=${seeds.length} caught=${caught}`)
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(caught > 0, 'the harness cannot fail: it missed early acks')
})
