// Regimen R2's kill-point mode (§5.0 item 4, RocksDB's whitebox crash test): the Db SIGKILL
// loop (db-kill-loop.ts) with kill points armed in every child (BOBSLED_KILL_POINTS, see
// src/util/kill-points.ts and docs/DESIGN.md "Kill points"), so the kills land inside the
// engine's dangerous steps — between a write and its datasync, a checkpoint's rename and its
// directory sync, a blob's sync and its pointer, a truncation's zeroing and its cut, in the
// middle of recovery's repairs — instead of wherever a timer happens to fall. The child runs
// the mixed workload with 1 value in 20 blob-sized, on 16 KiB segments (cleaning all the
// time), checkpoints every 32 KiB, a scratch tree split and dropped, generateId() and a close
// and reopen now and then ('churn' in db-writer-child.ts). The parent checks a copy of the
// folder, so each child recovers what the previous kill left. At one odds for every point
// the frequent ones (a buffer sealed, a write issued: thousands a second) would take nearly
// every kill, so the children take turns: 1 in 10 at odds 1/EARLY_ODDS (it dies within its
// first few points, most often in recovery), 3 in 10 at odds 1/ODDS over every point, and
// 6 in 10 at odds 1/FOCUS_ODDS at one point alone (BOBSLED_KILL_ONLY), the points in turn
// from a place the run's seed picks. The points in AFTER_A_KILL are left out of that turn:
// they are evaluated only when an earlier kill left what they clean up (a torn tail, a tail
// journal, a checkpoint temp file, an orphan blob), so a child aimed at one would mostly
// wait for the timer; they fire when the chain of kills brings them (or never, see
// docs/RELIABILITY.md).
// Checks: R2's figures (acked_lost = phantom = nonprefix = torn_batch = reopen_failures = 0)
// and no generateId() regression; reported: which points fired, how often, and which never.
// Mutation check: the same loop with children that acknowledge writes once applied and never
// flush ('flush' mode), and children that apply each batch as separate writes, must be caught.
// BOBSLED_SOAK=1 runs 2,000 cycles at odds 1/2,000; BOBSLED_SEED=<n> (and BOBSLED_DURABILITY=flush
// for a 'flush' folder) replays a folder (close, not exact: which draw lands on which point
// depends on IO timing); BOBSLED_KILL_CYCLES and BOBSLED_KILL_ODDS override the size and odds.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { KILL_POINT_NAMES, type KillPointName } from '../../src/util/kill-points.js'
import {
  type KillLoopOptions,
  type KillPointArming,
  type KillTotals,
  killLoop,
  median,
} from './db-kill-loop.js'

const soak = process.env.BOBSLED_SOAK === '1'
const replay = process.env.BOBSLED_SEED
const CYCLES = Number(process.env.BOBSLED_KILL_CYCLES ?? (replay !== undefined ? 10 : soak ? 2000 : 40))
const ODDS = Number(process.env.BOBSLED_KILL_ODDS ?? (soak ? 2000 : 400))
const EARLY_ODDS = 3
const FOCUS_ODDS = 2
const AFTER_A_KILL: readonly KillPointName[] = [
  'log.recovery.zero-tail',
  'log.recovery.zero-slot',
  'log.open.tail-journal-replayed',
  'log.open.orphan-blob-unlinked',
  'pagecache.open.temp-unlinked',
  // Cleaning rewrites a blob page whole only once it gathered deltas; the tree never links
  // a delta onto a blob leaf, so at the Db level this one cannot fire.
  'pagecache.clean.blob-staged',
]
const FOCUS = KILL_POINT_NAMES.filter((p) => !AFTER_A_KILL.includes(p))
const CYCLES_PER_FOLDER = 10
const MUTATION_CYCLES = 4
/** A backstop only: a child that no kill point has killed by then dies of the timer. */
const BACKSTOP = { minMs: soak ? 10_000 : 2500, spanMs: 1 }

function arming(seed: number, early: boolean): KillPointArming {
  if (early) return { odds: EARLY_ODDS }
  if (seed % 10 < 4) return { odds: ODDS }
  return {
    odds: FOCUS_ODDS,
    only: FOCUS[(Math.floor(seed / 10) * 6 + (seed % 10) - 4) % FOCUS.length] as string,
  }
}

function loop(o: Partial<KillLoopOptions> & Pick<KillLoopOptions, 'durability' | 'kills' | 'baseSeed'>) {
  return killLoop({
    scenario: 'mixed',
    killsPerFolder: CYCLES_PER_FOLDER,
    killDelay: BACKSTOP,
    killPoints: arming,
    ...o,
  })
}

function add(a: KillTotals, b: KillTotals): KillTotals {
  const fired = new Map(a.killPointsFired)
  for (const [k, v] of b.killPointsFired) fired.set(k, (fired.get(k) ?? 0) + v)
  return {
    acked: a.acked + b.acked,
    kept: a.kept + b.kept,
    ackedLost: a.ackedLost + b.ackedLost,
    tornBatches: a.tornBatches + b.tornBatches,
    phantom: a.phantom + b.phantom,
    nonprefix: a.nonprefix + b.nonprefix,
    tornEqual: a.tornEqual + b.tornEqual,
    reopenFailures: a.reopenFailures + b.reopenFailures,
    killedInOpen: a.killedInOpen + b.killedInOpen,
    lostPerKill: [...a.lostPerKill, ...b.lostPerKill],
    caught: a.caught + b.caught,
    killPointsFired: fired,
    killPointsReached: new Set([...a.killPointsReached, ...b.killPointsReached]),
    timerKills: a.timerKills + b.timerKills,
    idRegressions: a.idRegressions + b.idRegressions,
    ids: a.ids + b.ids,
    inlineWrites: a.inlineWrites + b.inlineWrites,
    childMs: a.childMs + b.childMs,
    checkMs: a.checkMs + b.checkMs,
    ...(a.firstViolation !== undefined || b.firstViolation !== undefined
      ? { firstViolation: a.firstViolation ?? b.firstViolation }
      : {}),
  }
}

test(`r2-kill-points: ${CYCLES} children killed at kill points (odds 1/${ODDS}), nothing acknowledged lost`, async () => {
  const baseSeed = Number(replay ?? Date.now() % 1_000_000)
  // Half the folders 'sync' (each write acked by its promise), half 'flush' (by db.flush()).
  // A replay (BOBSLED_SEED=<the folder's first seed>) runs that folder's 10 cycles in the
  // mode the failure named (BOBSLED_DURABILITY=flush, else 'sync').
  const replayFlush = replay !== undefined && process.env.BOBSLED_DURABILITY === 'flush'
  const half = replayFlush ? 0 : Math.ceil(CYCLES / 2 / CYCLES_PER_FOLDER) * CYCLES_PER_FOLDER
  const sync =
    half > 0 ? await loop({ durability: 'sync', kills: Math.min(half, CYCLES), baseSeed }) : undefined
  const flush =
    CYCLES > half && sync?.firstViolation === undefined
      ? await loop({ durability: 'flush', kills: CYCLES - half, baseSeed: baseSeed + half })
      : undefined
  const sum = sync === undefined ? (flush as KillTotals) : flush === undefined ? sync : add(sync, flush)
  const violation =
    sync?.firstViolation !== undefined
      ? `durability=sync ${sync.firstViolation}`
      : flush?.firstViolation !== undefined
        ? `durability=flush ${flush.firstViolation} (with BOBSLED_DURABILITY=flush)`
        : undefined
  const fired = [...sum.killPointsFired.entries()].sort((a, b) => b[1] - a[1])
  const hit = fired.reduce((n, [, c]) => n + c, 0)
  const never = KILL_POINT_NAMES.filter((p) => !sum.killPointsFired.has(p))
  const unreached = KILL_POINT_NAMES.filter((p) => !sum.killPointsReached.has(p))
  console.log(
    `RELIABILITY r2-kill-points cycles=${CYCLES} odds=1/${ODDS} points_hit=${hit} distinct_points=${fired.length}/${KILL_POINT_NAMES.length} reached_points=${sum.killPointsReached.size}/${KILL_POINT_NAMES.length} timer_kills=${sum.timerKills} acked=${sum.acked} kept=${sum.kept} acked_lost=${sum.ackedLost} phantom=${sum.phantom} nonprefix=${sum.nonprefix} torn_batch=${sum.tornBatches + sum.tornEqual} reopen_failures=${sum.reopenFailures} id_regressions=${sum.idRegressions} ids=${sum.ids} killed_in_open=${sum.killedInOpen} median_unacked_lost=${median(sum.lostPerKill)} child_ms=${Math.round(sum.childMs)} check_ms=${Math.round(sum.checkMs)} seed=${baseSeed}`,
  )
  console.log(`# kill points fired: ${fired.map(([p, c]) => `${p}=${c}`).join(' ')}`)
  console.log(`# kill points that never fired: ${never.join(' ')}`)
  console.log(`# kill points never even evaluated: ${unreached.join(' ')}`)
  assert.equal(violation, undefined, violation)
  assert.equal(sum.ackedLost + sum.phantom + sum.nonprefix + sum.tornBatches + sum.tornEqual, 0)
  assert.equal(sum.reopenFailures + sum.idRegressions, 0)
  assert.ok(sum.acked > CYCLES, 'the children acknowledged writes')
  // The harness must really kill at points, at several of them, not only by its timer.
  assert.ok(hit >= CYCLES / 2, `only ${hit} of ${CYCLES} children died at a kill point`)
  assert.ok(fired.length >= Math.min(12, CYCLES / 3), `kills landed at only ${fired.length} distinct points`)
})

test('r2-kill-points mutation check: acks of unflushed writes and split batches are caught under kill points', async () => {
  // Kills right after a commit reached the log's memory, where acks of unflushed writes are
  // wrong. (At odds over every point most kills land around the background IO, checkpoints
  // and cleaning, whose makeStable()/flush() has just made every acked write durable: in
  // one run that caught 1 child in 4.)
  const a = await loop({
    durability: 'flush',
    kills: MUTATION_CYCLES,
    killsPerFolder: MUTATION_CYCLES,
    baseSeed: 5151,
    mutation: 'ack-applied',
    killPoints: () => ({ odds: 50, only: 'tree.commit.appended' }),
  })
  // 8-key batches only, odds 1/ODDS over every point: a kill between two of a split batch's
  // writes leaves the 8 keys unequal.
  const uniform = (): KillPointArming => ({ odds: ODDS })
  const b = await loop({
    durability: 'sync',
    scenario: 'batches-8',
    kills: MUTATION_CYCLES,
    killsPerFolder: MUTATION_CYCLES,
    baseSeed: 5252,
    mutation: 'split-batches',
    killPoints: uniform,
  })
  const points = (t: KillTotals): number => MUTATION_CYCLES - t.timerKills
  console.log(
    `RELIABILITY r2-kill-points-mutation ack_applied_caught=${a.caught}/${MUTATION_CYCLES} acked_lost=${a.ackedLost} split_batches_caught=${b.caught}/${MUTATION_CYCLES} torn_batch=${b.tornBatches + b.tornEqual} points_hit=${points(a) + points(b)}/${2 * MUTATION_CYCLES}`,
  )
  assert.ok(a.caught > 0, 'the harness cannot fail: it missed acks of writes never flushed')
  assert.ok(b.caught > 0, 'the harness cannot fail: it missed batches split into single writes')
  assert.ok(points(a) + points(b) > MUTATION_CYCLES, 'the mutation children died at kill points')
})
