// The CI smoke of the R15 database soak (`npm run soak` runs it for --minutes N;
// db-soak.ts): one 2.5 s cycle of the soak child (Zipf keys over three trees, values of 1 B
// to 1 MiB, batches, CAS, range scans checked as it writes) SIGKILLed, then the full
// verify, so the child and its checker cannot rot; and its mutation self-check: a child
// that acknowledges unflushed writes, and one that stores values a byte shorter than it
// announced, must each be caught in short cycles (0.7–1.2 s).

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { type SoakMutation, soakDb } from './db-soak.js'

/** Cycles in a fresh folder until `durationMs` has passed or a violation stops them. */
async function cycles(seed: number, durationMs: number, killAfterMs: number, mutation: SoakMutation) {
  const dir = mkdtempSync(join(tmpdir(), 'bobsled-db-soak-'))
  try {
    return await soakDb({
      dir,
      seed,
      durationMs,
      killDelay: { minMs: killAfterMs, spanMs: 500 },
      earlyShare: 0,
      mutation,
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('db soak smoke: one SIGKILLed cycle of the soak workload verifies whole', async () => {
  const seed = Number(process.env.BOBSLED_SEED ?? Date.now() % 1_000_000)
  const f = await cycles(seed, 1, 2500, 'none')
  assert.equal(f.firstViolation, undefined, f.firstViolation)
  assert.ok(f.finalVerifyOk)
  console.log(
    `RELIABILITY db-soak-smoke cycles=${f.cycles} writes=${f.writes} acked=${f.acked} kept=${f.kept} acked_lost=${f.ackedLost} phantom=${f.phantom} torn_batches=${f.tornBatches} no_prefix=${f.noPrefix} reopen_failures=${f.reopenFailures} wrong_answers=${f.wrongAnswers} ranges=${f.ranges} cas=${f.cas} batches=${f.batches} blob_files=${f.blobFilesMax} seed=${seed}`,
  )
  assert.ok(f.acked > 0 && f.batches > 0, 'the child wrote and acknowledged')
})

test('db soak mutation check: unflushed acks and short values are caught', async () => {
  // A kill can land when the log's buffer holds no acknowledged write, or before a short
  // value was written (on a loaded machine a child may write little in a second): up to ~4 s
  // of cycles each, stopped by the first catch (the first cycle, as a rule).
  const [applied, short] = await Promise.all([
    cycles(11, 4000, 700, 'ack-applied'),
    cycles(12, 4000, 700, 'short-value'),
  ])
  console.log(
    `RELIABILITY db-soak-mutation ack_applied_caught=${applied.firstViolation !== undefined} ack_applied_cycles=${applied.cycles} ack_applied_acked_lost=${applied.ackedLost} short_value_caught=${short.firstViolation !== undefined} short_value_phantom=${short.phantom} short_value_wrong_answers=${short.wrongAnswers}`,
  )
  assert.ok(applied.ackedLost > 0, 'the soak cannot fail: it missed acks of unflushed writes')
  assert.ok(short.phantom > 0, 'the soak cannot fail: it missed values shorter than announced')
})
