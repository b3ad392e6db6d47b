// Regimen R2 scenario (c) (reliability-regimen.md §5): real processes, real files, mixed
// inserts and removes with values over the blob threshold, on 16 KiB segments so that values
// of 4–24 KiB become blob leaves and cleaning runs (it must move blob pages by relinking
// them). The child is test/crash/db-writer-child.ts with `blobs`; the checks are those of
// test/crash/db-sigkill.test.ts (a prefix of the applied writes holding every acknowledged
// one: acked_lost = phantom = nonprefix = 0, whole batches), plus: every reopen succeeds
// first try, and no blob file is left that no pointer of the log names (orphan_blobs = 0,
// test/helpers/orphan-blobs.ts, against the reopened page cache's log). 10% of kills land
// before or while the child opens.
// Folders alternate durability 'sync' and 'flush'. BOBSLED_SOAK=1 runs 1,000 kills;
// BOBSLED_SEED=<n> replays a folder's kill timings (close, not exact).

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { type Db, open, openOn } from '../../src/db.js'
import { openStorage } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { blobCensus, blobCensusOf } from '../helpers/orphan-blobs.js'
import { runChild } from './db-kill-loop.js'
import { addRecovered, checkRecovered, History, type RecoveredTotals, readState } from './db-workload.js'

const soak = process.env.BOBSLED_SOAK === '1'
const KILLS = process.env.BOBSLED_SEED !== undefined ? 10 : soak ? 1000 : 50
const KILLS_PER_FOLDER = 10

interface Totals extends RecoveredTotals {
  kills: number
  nonprefix: number
  reopenFailures: number
  orphanBlobs: number
  blobFiles: number
  /** Reopens that found the log's head dropped by cleaning (its first LSN above 0). */
  cleaned: number
  caught: number
  /** Time in the child runs and in the parent's reopen and checks. */
  childMs: number
  checkMs: number
}

/** Runs `kills` kill-and-check cycles; with `mutation`, counts violations instead of failing. */
async function killLoop(kills: number, baseSeed: number, mutation = false): Promise<Totals> {
  let dir = ''
  let h = new History()
  let durability = 'sync'
  const sum: Totals = {
    kills,
    acked: 0,
    kept: 0,
    ackedLost: 0,
    tornBatches: 0,
    phantom: 0,
    nonprefix: 0,
    reopenFailures: 0,
    orphanBlobs: 0,
    blobFiles: 0,
    cleaned: 0,
    caught: 0,
    childMs: 0,
    checkMs: 0,
  }
  try {
    for (let kill = 0; kill < kills; kill++) {
      if (kill % KILLS_PER_FOLDER === 0 || (mutation && sum.caught > 0)) {
        if (dir !== '') rmSync(dir, { recursive: true, force: true })
        dir = mkdtempSync(join(tmpdir(), 'bobsled-db-blobs-'))
        h = new History()
        durability = mutation || Math.floor(kill / KILLS_PER_FOLDER) % 2 === 0 ? 'sync' : 'flush'
      }
      const seed = baseSeed + kill
      const early = !mutation && seed % 10 === 0
      const delay = early ? seed % 20 : 10 + ((seed * 7919) % 150)
      const t0 = performance.now()
      const wrong: string[] = []
      const m = mutation ? 'ack-early' : 'none'
      await runChild(dir, seed, h, durability, 'mixed', delay, early, m, wrong, 'blobs')
      const t1 = performance.now()
      sum.childMs += t1 - t0
      const replay = `kill ${kill} seed=${seed} (replay: BOBSLED_SEED=${seed - (kill % KILLS_PER_FOLDER)})`
      assert.deepEqual(wrong, [], `${replay}: the child saw a wrong answer`)
      // The page cache open() would build, kept at hand for its log, with cleaning off: the
      // census walks the log, and a pass truncating a segment under the walk would fail it
      // ("lies in a truncated segment") or move a blob pointer past the walk's end.
      let pc: PageCache<TreePage>
      let db: Db
      try {
        pc = await PageCache.open<TreePage>(dir, treeCodec, {
          segmentBytes: 16 * 1024,
          flushEveryMs: 0,
          cleaning: false,
        })
        db = await openOn(pc)
      } catch (e) {
        sum.reopenFailures++
        assert.fail(`${replay}: reopen failed: ${(e as Error).stack}`)
      }
      const { state, phantom } = await readState(db)
      if (pc.stats().firstLsn > 0) sum.cleaned++
      const census = await blobCensusOf(pc.log, openStorage(dir))
      await db.close()
      sum.orphanBlobs += census.orphans
      sum.blobFiles += census.files
      assert.equal(census.orphans, 0, `${replay}: ${census.orphans} orphan blob files after recovery`)
      const c = addRecovered(sum, checkRecovered(h, state, phantom))
      sum.checkMs += performance.now() - t1
      if (c.violation !== undefined) {
        if (c.violation.startsWith('no prefix')) sum.nonprefix++
        if (mutation) {
          sum.caught++
          continue
        }
        assert.fail(`${replay}: ${c.violation}`)
      }
    }
  } finally {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  }
  return sum
}

test(`db SIGKILL loop with blob values (R2 c): ${KILLS} kills, nothing acknowledged lost, no orphan blob`, async () => {
  const baseSeed = Number(process.env.BOBSLED_SEED ?? Date.now() % 1_000_000)
  const s = await killLoop(KILLS, baseSeed)
  console.log(
    `RELIABILITY r2-db-blobs kills=${s.kills} acked=${s.acked} kept=${s.kept} acked_lost=${s.ackedLost} phantom=${s.phantom} nonprefix=${s.nonprefix} torn_batches=${s.tornBatches} reopen_failures=${s.reopenFailures} orphan_blobs=${s.orphanBlobs} blob_files=${s.blobFiles} head_cleaned=${s.cleaned} child_ms=${Math.round(s.childMs)} check_ms=${Math.round(s.checkMs)} seed=${baseSeed}`,
  )
  assert.ok(s.acked > KILLS, 'the children acknowledged writes')
  assert.ok(s.blobFiles > KILLS, 'the workload stored values as blobs')
})

test('mutation check: acknowledging blob writes before awaiting them is caught; a planted orphan is counted', async () => {
  const kills = 8
  const s = await killLoop(kills, 4242, true)
  console.log(`RELIABILITY r2-db-blobs-mutation kills=${kills} caught=${s.caught} acked_lost=${s.ackedLost}`)
  assert.ok(s.caught > 0, 'the harness cannot fail: it missed acks sent before the write')
  // The orphan census itself: a blob file no pointer names must be counted.
  const dir = mkdtempSync(join(tmpdir(), 'bobsled-db-blobs-census-'))
  try {
    const db = await open(dir, { segmentBytes: 16 * 1024, flushEveryMs: 0 })
    await db.insert('big', new Uint8Array(8000), { durable: true })
    await db.close()
    const before = await blobCensus(dir)
    writeFileSync(join(dir, 'blobs', '00000000000fffff'), 'planted')
    const after = await blobCensus(dir)
    assert.deepEqual([before.orphans, after.orphans, after.files - before.files], [0, 1, 1])
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
