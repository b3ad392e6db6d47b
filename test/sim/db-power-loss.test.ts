// Key-level power loss over the simulated disk (regimen R3 at the API; the run is
// test/sim/db-power-loss-run.ts, shared with the device-fault variants): a random workload
// of inserts, removes and batches across two trees runs on open() over a SimDisk until the
// power is cut at a seeded random moment, sometimes again during the recovery that follows.
// The crash keeps any subset of the unsynced writes, torn at sector granularity. After the
// reopen, the state must be a prefix of the issued writes that contains every acknowledged
// one (test/crash/db-workload.ts): 0 acknowledged writes lost, 0 torn batches, 0 phantoms.
// Both durability modes run: 'sync' (each awaited write is acknowledged) and 'flush'
// (await db.flush() acknowledges what came before it). A third run has one durable writer
// and room in the cache, so nearly every acknowledgement rests on an inline O_DSYNC write.
// BOBSLED_SEED=<n> replays one seed; failures print it. BOBSLED_SOAK=1 runs 5,000 seeds.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type DbOutcome as Outcome, runDbSeed as runSeed } from './db-power-loss-run.js'

const soak = process.env.BOBSLED_SOAK === '1'
const SEEDS = soak ? 5000 : 200

function seedsToRun(count: number, offset: number): number[] {
  const only = process.env.BOBSLED_SEED
  if (only !== undefined) return [Number(only)]
  return Array.from({ length: count }, (_, i) => offset + i)
}

for (const durability of ['sync', 'flush'] as const) {
  test(`db power loss (${durability}) over ${SEEDS} seeds: no acknowledged write lost, prefix state, whole batches`, async () => {
    const sum: Outcome = { acked: 0, kept: 0, ackedLost: 0, tornBatches: 0, phantom: 0, inlineWrites: 0 }
    let inlineSeeds = 0
    const seeds = seedsToRun(SEEDS, durability === 'sync' ? 1 : 100_001)
    for (const seed of seeds) {
      let o: Outcome
      try {
        o = await runSeed(seed, durability)
      } catch (e) {
        assert.fail(`seed=${seed} (BOBSLED_SEED=${seed}): recovery failed: ${(e as Error).stack}`)
      }
      if (o.violation !== undefined) assert.fail(`seed=${seed} (BOBSLED_SEED=${seed}): ${o.violation}`)
      for (const k of ['acked', 'kept', 'ackedLost', 'tornBatches', 'phantom', 'inlineWrites'] as const)
        sum[k] += o[k]
      if (o.inlineWrites > 0) inlineSeeds++
    }
    console.log(
      `RELIABILITY db-power-loss durability=${durability} seeds=${seeds.length} acked=${sum.acked} kept=${sum.kept} acked_lost=${sum.ackedLost} torn_batches=${sum.tornBatches} phantom=${sum.phantom} failed_reopens=0 inline_seeds=${inlineSeeds} inline_writes=${sum.inlineWrites} seed=${seeds[0]}`,
    )
    assert.ok(sum.acked > seeds.length, 'the workload acknowledged writes')
    // Even seeds write lone rounds inline (runDbSeed): that path must have been cut too.
    if (process.env.BOBSLED_SEED === undefined) assert.ok(inlineSeeds > 0, 'lone rounds went inline')
  })
}

// One durable writer awaiting each overwrite, with room in the cache: nearly every round is
// alone, so nearly every acknowledged write rests on an inline O_DSYNC write
// (docs/DESIGN.md, "Inline synced writes"), which the mixed workload above reaches rarely.
const ONE_WRITER = {
  inlineSyncedWrites: true,
  scenario: 'overwrite-256',
  cacheCapacity: 1024 * 1024,
} as const

test(`db power loss (sync), one writer with inline synced writes over ${SEEDS} seeds: no acknowledged write lost`, async () => {
  const sum: Outcome = { acked: 0, kept: 0, ackedLost: 0, tornBatches: 0, phantom: 0, inlineWrites: 0 }
  const seeds = seedsToRun(SEEDS, 300_001)
  for (const seed of seeds) {
    let o: Outcome
    try {
      o = await runSeed(seed, 'sync', ONE_WRITER)
    } catch (e) {
      assert.fail(`seed=${seed} (BOBSLED_SEED=${seed}): recovery failed: ${(e as Error).stack}`)
    }
    if (o.violation !== undefined) assert.fail(`seed=${seed} (BOBSLED_SEED=${seed}): ${o.violation}`)
    for (const k of ['acked', 'kept', 'ackedLost', 'tornBatches', 'phantom', 'inlineWrites'] as const)
      sum[k] += o[k]
  }
  console.log(
    `RELIABILITY db-power-loss-one-writer durability=sync seeds=${seeds.length} acked=${sum.acked} kept=${sum.kept} acked_lost=${sum.ackedLost} phantom=${sum.phantom} failed_reopens=0 inline_writes=${sum.inlineWrites} seed=${seeds[0]}`,
  )
  assert.ok(sum.acked > seeds.length, 'the workload acknowledged writes')
  // Most acknowledgements must rest on inline writes, or this test covers nothing new.
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(sum.inlineWrites > sum.acked / 2, `inline writes ${sum.inlineWrites} for ${sum.acked} acks`)
})

test('mutation check: a disk that ignores O_DSYNC is caught by the one-writer run', async () => {
  let caught = 0
  const seeds = seedsToRun(60, 400_001)
  for (const seed of seeds) {
    const o = await runSeed(seed, 'sync', {
      ...ONE_WRITER,
      device: { unsafeIgnoreSyncedWrites: true },
    }).catch(() => undefined)
    if (o === undefined || o.violation !== undefined) caught++
  }
  console.log(`RELIABILITY db-power-loss-one-writer-mutation seeds=${seeds.length} caught=${caught}`)
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(caught > 0, 'the harness cannot fail: it missed acks resting on unsynced inline writes')
})

test('mutation check: acknowledging before awaiting is caught by the db power-loss test', async () => {
  let caught = 0
  const seeds = seedsToRun(60, 200_001)
  for (const seed of seeds) {
    const o = await runSeed(seed, seed % 2 === 0 ? 'sync' : 'flush', { ackEarly: true }).catch(
      () => undefined,
    )
    if (o === undefined || o.violation !== undefined) caught++
  }
  console.log(`RELIABILITY db-power-loss-mutation seeds=${seeds.length} caught=${caught}`)
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(caught > 0, 'the harness cannot fail: it missed early acks')
})
