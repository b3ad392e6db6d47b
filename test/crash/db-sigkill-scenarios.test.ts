// Regimen R2's scenarios (a) and (b) at the Db level, after sled's test_crash_recovery.rs,
// with real processes and real files (the loop: test/crash/db-kill-loop.ts; the child:
// db-writer-child.ts; the workloads and checks: db-workload.ts):
//  (a) r2-db-overwrite-256: one insert at a time, write w sets key w mod 256 to a value
//      naming w; after the SIGKILL the tree must be a clean prefix of the overwrites (the
//      keys written up to the last surviving write hold their newest value of that prefix,
//      the others the value before it: `nonprefix` counts the keys that do not);
//  (b) r2-db-batches-8: batches setting the same 8 keys (4 in each of two trees) to one
//      value, or removing all 8, up to 3 in flight; after the kill the 8 keys must all be
//      equal (`torn_batch` counts recoveries where they are not).
// Both also pass the general check of the mixed loop (a prefix of the applied writes holding
// every acknowledged one, no phantom). 1 kill in 10 is armed before the child opens, so it
// hits recovery; both durability modes run ('sync': each write acknowledged by its promise;
// 'flush': by `await db.flush()`). `median_unacked_lost` is the median, over kills, of the
// writes the child had announced that the recovery did not keep (information only).
// Mutation checks: a child that acknowledges each write once applied and never flushes (a:
// acknowledged before the sync), a child that applies each batch as 8 separate writes (b);
// both must be caught.
// BOBSLED_SOAK=1 runs 600 kills per scenario and mode; BOBSLED_SEED=<n> replays a folder's
// kill timings (close, not exact: kill instants depend on the machine).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type KillTotals, killLoop, median } from './db-kill-loop.js'
import { History, overwriteNonPrefix, type Scenario } from './db-workload.js'

const soak = process.env.BOBSLED_SOAK === '1'
const replay = process.env.BOBSLED_SEED
const KILLS = replay !== undefined ? 12 : soak ? 600 : 22
const KILLS_PER_FOLDER = 12
const MUTATION_KILLS = 6
/** Shorter than the mixed loop's: more kills in the same time, still hundreds of writes each. */
const KILL_DELAY = { minMs: 20, spanMs: 200 }

const NAMES: Record<Exclude<Scenario, 'mixed'>, string> = {
  'overwrite-256': 'r2-db-overwrite-256',
  'batches-8': 'r2-db-batches-8',
}

function line(name: string, durability: string, kills: number, sum: KillTotals, seed: number): string {
  return `RELIABILITY ${name} durability=${durability} kills=${kills} acked=${sum.acked} kept=${sum.kept} acked_lost=${sum.ackedLost} phantom=${sum.phantom} nonprefix=${sum.nonprefix} torn_batch=${sum.tornBatches + sum.tornEqual} reopen_failures=${sum.reopenFailures} killed_in_open=${sum.killedInOpen} median_unacked_lost=${median(sum.lostPerKill)} seed=${seed}`
}

for (const scenario of ['overwrite-256', 'batches-8'] as const) {
  for (const durability of ['sync', 'flush'] as const) {
    test(`${NAMES[scenario]} (${durability}): ${KILLS} SIGKILLs, nothing acknowledged lost, prefix state, whole batches`, async () => {
      const baseSeed = Number(replay ?? Date.now() % 1_000_000)
      const sum = await killLoop({
        durability,
        scenario,
        kills: KILLS,
        killsPerFolder: KILLS_PER_FOLDER,
        baseSeed,
        killDelay: KILL_DELAY,
      })
      console.log(line(NAMES[scenario], durability, KILLS, sum, baseSeed))
      assert.equal(sum.firstViolation, undefined, sum.firstViolation)
      assert.equal(sum.ackedLost + sum.phantom + sum.nonprefix + sum.tornBatches + sum.tornEqual, 0)
      assert.equal(sum.reopenFailures, 0)
      assert.ok(sum.acked > KILLS, 'the children acknowledged writes')
    })
  }
}

test('mutation checks: acks of unflushed writes (a) and batches split into single writes (b) are caught', async () => {
  const a = await killLoop({
    durability: 'flush',
    scenario: 'overwrite-256',
    kills: MUTATION_KILLS,
    killsPerFolder: MUTATION_KILLS,
    baseSeed: 4242,
    mutation: 'ack-applied',
  })
  const b = await killLoop({
    durability: 'sync',
    scenario: 'batches-8',
    kills: MUTATION_KILLS,
    killsPerFolder: MUTATION_KILLS,
    baseSeed: 4343,
    mutation: 'split-batches',
  })
  console.log(
    `RELIABILITY r2-db-scenarios-mutation ack_applied_caught=${a.caught}/${MUTATION_KILLS} acked_lost=${a.ackedLost} nonprefix=${a.nonprefix} split_batches_caught=${b.caught}/${MUTATION_KILLS} torn_batch=${b.tornBatches + b.tornEqual}`,
  )
  assert.ok(a.caught > 0, 'the harness cannot fail: it missed acks sent before the write')
  assert.ok(b.caught > 0 && b.tornEqual > 0, 'the harness cannot fail: it missed torn 8-key batches')
})

test('self-check: the sled-style prefix check rejects a state that skips an overwrite', () => {
  // Writes 0..299 set keys w mod 256; a state holding 299 for key 43 but 42's old value for
  // key 42 (write 298 lost while 299 survived) is not a prefix of them.
  const h = new History()
  for (let w = 0; w < 300; w++) h.intent({ w, group: w, ops: [{ tree: 0, key: w % 256, len: 1 }] })
  const prefix = new Map<string, number>()
  for (let w = 0; w < 300; w++) prefix.set(`0/${w % 256}`, w)
  assert.equal(overwriteNonPrefix(h, prefix), 0)
  const skipped = new Map(prefix).set('0/42', 42)
  assert.equal(overwriteNonPrefix(h, skipped), 1)
  const shorter = new Map(prefix)
  for (let w = 280; w < 300; w++) shorter.set(`0/${w % 256}`, w - 256)
  assert.equal(overwriteNonPrefix(h, shorter), 0, 'a shorter prefix is still a prefix')
})
