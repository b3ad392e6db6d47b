// Seeded power loss over the page cache with cleaning and checkpoints running (issue 3,
// R3/R14 for pages; the run is test/sim/pagecache-power-loss-run.ts): a random workload of overwrites, links, frees, batches and large
// (blob) pages on segments of 1–4 KiB runs until the power is cut at a random moment; the
// disk keeps a random subset of the unsynced writes, torn at sector granularity. Reopen
// and check: the store equals the model at some prefix of the write history at least as
// long as the acknowledged one (no acknowledged update lost, no live page lost by
// relocation, batches whole), no blob file that no log pointer names, reopen never fails,
// and recovering the same image twice gives the same page table.
// BOBSLED_SEED=<n> replays one seed; BOBSLED_SOAK=1 runs 10,000 seeds.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isSoak, seedList } from '../helpers/io-recorder.js'
import { newTotals, runPcSeed } from './pagecache-power-loss-run.js'

const SEEDS = isSoak ? 10_000 : 300

test(`page cache power loss over ${SEEDS} seeds with cleaning: nothing acknowledged lost`, async () => {
  const seeds = seedList(SEEDS, 1)
  const t = newTotals()
  let failedReopens = 0
  const t0 = performance.now()
  for (const seed of seeds) {
    let v: string | undefined
    try {
      v = (await runPcSeed(seed, t)).violation
    } catch (e) {
      failedReopens++
      assert.fail(`seed=${seed} (replay: BOBSLED_SEED=${seed}): reopen failed: ${(e as Error).stack}`)
    }
    if (v !== undefined) assert.fail(`seed=${seed} (replay: BOBSLED_SEED=${seed}): ${v}`)
  }
  console.log(
    `RELIABILITY pagecache-power-loss seeds=${seeds.length} acked_writes=${t.acked} recovered_writes=${t.recovered} ` +
      `acked_lost=0 live_lost=0 torn_batches=0 orphan_blobs=0 failed_reopens=${failedReopens} recover_twice_diff=0 ` +
      `busy_refusals=${t.busyRefusals} inline_writes=${t.inlineWrites} inline_page_ins=${t.inlinePageIns} reads_checked=${t.readsChecked} pages_relocated=${t.relocated} blob_pointers_relinked=${t.relinked} segments_cleaned=${t.cleaned} checkpoints=${t.checkpoints} ` +
      `ms=${Math.round(performance.now() - t0)} seed=${seeds[0]}`,
  )
  assert.equal(t.busyRefusals, 0, 'a write was refused because cleaning was relocating its page')
  if (process.env.BOBSLED_SEED === undefined) {
    assert.ok(t.relocated > 0 && t.cleaned > 0, 'cleaning ran')
    assert.ok(t.relinked > 0, 'cleaning moved blob pages by relinking')
    assert.ok(t.acked > 0, 'writes were acknowledged')
    assert.ok(t.inlineWrites > 0, 'lone rounds went inline (even seeds)')
    assert.ok(t.inlinePageIns > 0, 'user page-ins went inline (seeds not a multiple of 3)')
    assert.ok(t.readsChecked > 0, 'the workload read pages back while it wrote')
  }
})
