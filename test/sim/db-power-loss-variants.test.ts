// R3's device-fault variants one and two layers up (test/sim/device-variants.ts has the
// variants and the verdicts; test/sim/power-loss-variants.test.ts runs them on the log):
//  - r3v-db-*: the key-level power-loss run (test/sim/db-power-loss-run.ts: inserts,
//    removes and batches across two trees through open(), both durability modes by seed
//    parity) on a disk without PSOW, with misdirected writes, or with lost writes;
//  - r3v-pc-*: the page cache's power-loss run (test/sim/pagecache-power-loss-run.ts:
//    blob pages, links, batches, cleaning, checkpoints) on the same disks.
// Gates, as for the log: silent_wrong = 0 (a state that is no prefix of the writes: a
// phantom value, a torn batch, writes out of order — or, for the page cache, an orphan blob,
// broken accounting, two page tables from one image), crashes = 0 (an error that is not a
// typed bobsled error), hangs = 0. acked_lost (the state is a prefix that stops before an
// acknowledged write) is reported: bobsled assumes PSOW and has no redundancy. `rollbacks`
// counts the acked_lost seeds whose state went back to an earlier round's, past writes an
// earlier recovery had already returned (the page cache's pages since 2026-11-26; the Db's
// keys since 2026-11-27, when r3v-db-non-psow seed 4 lost a whole recovered batch, all six
// keys of it across both trees, to a torn sector: it had counted as silent_wrong).
// Mutation checks: two keys (two pages) trading contents before the check must be
// silent_wrong; so must a compare-and-swap that fails with no other writer.
// BOBSLED_SEED=<n> replays one seed of every variant; BOBSLED_SOAK=1 runs 2,000 per variant.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { SimDisk, SimFaults } from '../../src/io/index.js'
import { isSoak, seedList } from '../helpers/io-recorder.js'
import { runDbSeed } from './db-power-loss-run.js'
import { judge, Tally, variants } from './device-variants.js'
import { newTotals, runPcSeed } from './pagecache-power-loss-run.js'

const DB_SEEDS = isSoak ? 2000 : 30
const PC_SEEDS = isSoak ? 2000 : 20
/** The Db run's segment size (db-power-loss-run.ts); the page cache run picks 1–4 KiB. */
const DB_SEGMENT_BYTES = 8 * 1024

function judgeDb(
  seed: number,
  device: SimFaults,
  disks: { last?: SimDisk; rollback?: boolean },
  swapValues = false,
) {
  const durability = seed % 2 === 0 ? 'sync' : 'flush'
  return judge(async () => {
    const o = await runDbSeed(seed, durability, {
      device,
      swapValues,
      onDisk: (d) => {
        disks.last = d
      },
    })
    disks.rollback = o.rollback === true
    return o
  })
}

for (const v of variants('r3v-db', DB_SEGMENT_BYTES)) {
  test(`${v.name}: ${DB_SEEDS} seeds of the Db workload end typed, short or right, never wrong`, async () => {
    const seeds = seedList(DB_SEEDS, 1)
    const tally = new Tally()
    let rollbacks = 0
    for (const seed of seeds) {
      const disks: { last?: SimDisk; rollback?: boolean } = {}
      tally.add(seed, await judgeDb(seed, v.device, disks), disks.last)
      if (disks.rollback === true) rollbacks++
    }
    console.log(tally.line(v.name, seeds, ` rollbacks=${rollbacks}`))
    assert.deepEqual(tally.bad, [], `${v.name}: ${tally.bad.length} seeds broke a gate`)
    if (process.env.BOBSLED_SEED === undefined)
      assert.ok(tally.injectedTotal > 0, `${v.name} injected no fault`)
  })
}

// The page cache's misdirect-by-a-segment stride: 2 KiB, the middle of the sizes it picks.
for (const v of variants('r3v-pc', 2048)) {
  test(`${v.name}: ${PC_SEEDS} seeds of the page-cache workload end typed, short or right, never wrong`, async () => {
    const seeds = seedList(PC_SEEDS, 1)
    const tally = new Tally()
    const totals = newTotals()
    let rollbacks = 0
    for (const seed of seeds) {
      const disks: { last?: SimDisk } = {}
      const r = await judge(async () => {
        const o = await runPcSeed(seed, totals, {
          device: v.device,
          onDisk: (d) => {
            disks.last = d
          },
        })
        if (o.rollback === true) rollbacks++
        return o
      })
      tally.add(seed, r, disks.last)
    }
    console.log(tally.line(v.name, seeds, ` rollbacks=${rollbacks} busy_refusals=${totals.busyRefusals}`))
    assert.deepEqual(tally.bad, [], `${v.name}: ${tally.bad.length} seeds broke a gate`)
    if (process.env.BOBSLED_SEED === undefined)
      assert.ok(tally.injectedTotal > 0, `${v.name} injected no fault`)
  })
}

test('mutation check: two keys (two pages) trading contents are counted as silent_wrong and break the gate', async () => {
  const seeds = seedList(10, 1)
  let dbCaught = 0
  let pcCaught = 0
  let casCaught = 0
  for (const seed of seeds) {
    if ((await judgeDb(seed, {}, {}, true)).verdict === 'silent_wrong') dbCaught++
    const cas = await judge(() => runDbSeed(seed, 'sync', { casFails: true }))
    if (cas.verdict === 'silent_wrong') casCaught++
    const pc = await judge(() => runPcSeed(seed, newTotals(), { swapPages: true }))
    if (pc.verdict === 'silent_wrong') pcCaught++
  }
  console.log(
    `RELIABILITY r3v-mutation seeds=${seeds.length} db_silent_wrong_caught=${dbCaught} pc_silent_wrong_caught=${pcCaught} cas_failure_caught=${casCaught}`,
  )
  assert.ok(casCaught > 0, 'the Db workload cannot fail on a compare-and-swap that failed alone')
  assert.ok(dbCaught > 0, 'the Db variant gate cannot fail: it missed values on the wrong keys')
  assert.ok(pcCaught > 0, 'the page-cache variant gate cannot fail: it missed pages with swapped contents')
})
