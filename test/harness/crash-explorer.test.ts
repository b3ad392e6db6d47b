// R4 (crash-state explorer part): every crash state the model allows, for small workloads
// (four canonical ones plus seeded random ones), is reopened and checked: no acknowledged
// record lost, prefix, no phantom, whole batches, reopen succeeds. Mutation checks: with
// unsafeAckBeforeSync it must find a state that loses an acknowledged record; with
// syncDir('blobs') made a no-op, a state whose pointer names a missing blob.
// BOBSLED_SEED=<n> replays one random workload (plus the canonical ones); BOBSLED_SOAK=1 runs
// more. The model is described in test/helpers/crash-explorer.ts.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  addResults,
  CANONICAL,
  type ExploreResult,
  emptyResult,
  exploreWorkload,
  failures,
  randomWorkload,
} from '../helpers/crash-explorer.js'
import { isSoak, seedList } from '../helpers/io-recorder.js'

const RANDOM = isSoak ? 3_000 : 60

function line(name: string, workloads: number, r: ExploreResult, seed: number): string {
  return (
    `RELIABILITY ${name} workloads=${workloads} crash_points=${r.crashPoints} states=${r.states} ` +
    `acked_lost=${r.acked_lost} non_prefix=${r.non_prefix} phantom=${r.phantom} ` +
    `torn_batches=${r.torn_batches} failed_reopens=${r.failed_reopens} seed=${seed}`
  )
}

test('crash-state explorer: every crash state of small workloads recovers a valid prefix', async () => {
  const seeds = seedList(RANDOM, 1)
  const workloads = [...CANONICAL, ...seeds.map(randomWorkload)]
  let total = emptyResult()
  let ops = 0
  let firstFailure: string | undefined
  let firstSeed: number | undefined
  for (const w of workloads) {
    // Canonical workloads run under the first seed (it only drives the disk's latency).
    const seed = w.name.startsWith('random-') ? Number(w.name.slice(7)) : (seeds[0] as number)
    let r: Awaited<ReturnType<typeof exploreWorkload>>
    try {
      r = await exploreWorkload(w, { seed })
    } catch (e) {
      assert.fail(`seed=${seed} workload=${w.name}: the explorer failed: ${(e as Error).stack}`)
    }
    ops += r.ops
    total = addResults(total, r)
    if (failures(r) > 0 && firstFailure === undefined) {
      firstSeed = seed
      firstFailure = `seed=${seed} workload=${w.name} (replay: BOBSLED_SEED=${seed}):\n${r.examples.join('\n')}`
    }
  }
  console.log(line('crash-explorer', workloads.length, total, firstSeed ?? (seeds[0] as number)))
  console.log(
    `crash-explorer coverage: io_ops=${ops} distinct_images_reopened=${total.distinctImages} ` +
      `max_pending=${total.maxPending} sampled_points=${total.sampledPoints}`,
  )
  if (firstFailure !== undefined) assert.fail(firstFailure)
  assert.equal(failures(total), 0)
  assert.ok(total.states > total.crashPoints, 'the explorer explored more than one state per point')
})

test('mutation check: acknowledging before the datasync loses an acknowledged record', async () => {
  const seeds = seedList(4, 1)
  const workloads = [...CANONICAL, ...seeds.map(randomWorkload)]
  let total = emptyResult()
  for (const w of workloads) {
    const seed = w.name.startsWith('random-') ? Number(w.name.slice(7)) : (seeds[0] as number)
    total = addResults(total, await exploreWorkload(w, { seed, unsafeAckBeforeSync: true }))
  }
  console.log(line('crash-explorer-mutation', workloads.length, total, seeds[0] as number))
  const lost = total.examples.find((e) => e.includes('acked_lost'))
  if (lost !== undefined) console.log(`  e.g. ${lost.slice(0, 500)}`)
  assert.ok(total.acked_lost > 0, 'the explorer cannot fail: it found no lost acknowledged record')
})

test("mutation check: a syncDir('blobs') that does nothing leaves a pointer to a missing blob", async () => {
  const seed = seedList(1, 1)[0] as number
  let total = emptyResult()
  for (const w of CANONICAL)
    total = addResults(total, await exploreWorkload(w, { seed, skipSyncDir: ['blobs'] }))
  console.log(line('crash-explorer-mutation-blobs', CANONICAL.length, total, seed))
  const bad = total.examples[0]
  if (bad !== undefined) console.log(`  e.g. ${bad.slice(0, 500)}`)
  assert.ok(failures(total) > 0, 'the explorer missed a blob whose folder entry was never synced')
})
