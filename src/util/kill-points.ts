// Kill points: the whitebox mode of the SIGKILL loop (reliability regimen §5.0 item 4,
// RocksDB's whitebox crash test). With BOBSLED_KILL_POINTS=<odds> in the environment, each
// evaluation of a named point below SIGKILLs the process with probability 1/odds, so kills
// land inside the dangerous steps (between a write and its sync, a rename and its directory
// sync, ...) far more often than a timer does. docs/DESIGN.md, "Kill points", lists where
// each one sits.
//
// Off (the variable unset), a point costs one test of a constant: call sites read
// `if (KILL_ODDS) maybeKill('name')`. Not exported by the package: a test tool, switched on
// only through the environment of a process that is meant to die.
//
// Process-global on purpose, unlike the per-log failpoints: a kill ends every database of
// the process at once, so there is no per-instance state to keep apart.

import { writeSync } from 'node:fs'
import { Prng } from './prng.js'

/** Every kill point, named layer.step.moment; the SIGKILL test reports which ones fired. */
export const KILL_POINT_NAMES = [
  // log: the IO-buffer write path and group commit
  'log.buffer.sealed',
  'log.write.issued',
  'log.write.done.unpublished',
  'log.write.done.published',
  'log.sync.before',
  'log.sync.done.unpublished',
  'log.sync.done.published',
  'log.segment.opened',
  'log.slot.reused',
  'log.witness.appended',
  'log.blob.written',
  'log.blob.synced',
  'log.blob.dir-synced',
  'log.blob.pointer-appended',
  'log.truncate.first-lsn-stable',
  'log.truncate.zeroed',
  'log.truncate.zero-synced',
  'log.truncate.blobs-unlinked',
  'log.shrink.before',
  'log.shrink.cut',
  'log.close.witness-file-synced',
  'log.close.witness-file-renamed',
  // log: open and recovery (the repair writes before anything new is written)
  'log.recovery.zero-tail',
  'log.recovery.tail-journaled',
  'log.recovery.zero-slot',
  'log.recovery.before-sync',
  'log.recovery.synced',
  'log.open.tail-journal-replayed',
  'log.open.orphan-blob-unlinked',
  // page cache: cleaning, checkpoints
  'pagecache.consolidate',
  'pagecache.batch.appended',
  'pagecache.clean.relocated',
  'pagecache.clean.blob-staged',
  'pagecache.clean.drained',
  'pagecache.clean.copies-stable',
  'pagecache.clean.truncated',
  'pagecache.checkpoint.temp-written',
  'pagecache.checkpoint.temp-synced',
  'pagecache.checkpoint.renamed',
  'pagecache.checkpoint.dir-synced',
  'pagecache.checkpoint.old-unlinked',
  'pagecache.open.temp-unlinked',
  // tree and Db
  'tree.split',
  'tree.merge',
  'tree.commit.large-staged',
  'tree.commit.appended',
  'tree.drop.appended',
  'tree.id.counter-appended',
  'tree.id.counter-stable',
  'db.batch.appended',
  'db.write.stable-unacked',
] as const

export type KillPointName = (typeof KILL_POINT_NAMES)[number]

/** The line a kill point writes to stderr just before the SIGKILL (the test parses it). */
export const KILL_POINT_LINE_PREFIX = 'BOBSLED_KILL_POINT '
/**
 * The line each point writes to stderr the first time it is evaluated in the process, so a
 * test can tell a point its workload never reaches from one the draws passed over.
 */
export const KILL_POINT_REACHED_PREFIX = 'BOBSLED_KILL_POINT_REACHED '

function readOdds(raw: string | undefined): number {
  if (raw === undefined || raw === '' || raw === '0') return 0
  const odds = Number(raw)
  // Loud rather than off: someone who set it expects kills, and a typo would test nothing.
  if (!Number.isSafeInteger(odds) || odds < 1 || odds > 0x100000000) {
    throw new RangeError(
      `BOBSLED_KILL_POINTS must be an integer in 1..2^32 (a kill at each kill point with odds 1/N), got '${raw}'`,
    )
  }
  return odds
}

function readSeed(raw: string | undefined): number {
  if (raw === undefined || raw === '') return Math.floor(Math.random() * 0x100000000)
  const seed = Number(raw)
  if (!Number.isSafeInteger(seed)) throw new RangeError(`BOBSLED_KILL_SEED must be an integer, got '${raw}'`)
  return seed
}

/** 0 when kill points are off; else N, for a kill at each evaluation with probability 1/N. */
export const KILL_ODDS = readOdds(process.env.BOBSLED_KILL_POINTS)
/** BOBSLED_KILL_SEED, or a random one (printed with the kill, so a run can be replayed-ish). */
export const KILL_SEED = KILL_ODDS === 0 ? 0 : readSeed(process.env.BOBSLED_KILL_SEED)
/**
 * BOBSLED_KILL_ONLY=<prefix>[,<prefix>...]: only points whose name starts with one of them
 * draw (the others pass untouched). At one odds for all, the points evaluated thousands of
 * times a second (a buffer sealed, a write issued) take nearly every kill; a focused run
 * aims at the rare ones (a checkpoint's rename, a truncation's cut), as RocksDB's
 * kill_exclude_prefixes does the other way round.
 */
const KILL_ONLY: readonly string[] | undefined =
  KILL_ODDS === 0 || !process.env.BOBSLED_KILL_ONLY ? undefined : process.env.BOBSLED_KILL_ONLY.split(',')

let rng: Prng | undefined
let evaluations = 0
const reached = new Set<KillPointName>()

/** Best effort: the process is about to be killed, or the line is only information. */
function say(line: string): void {
  try {
    writeSync(2, line)
  } catch {
    // stderr gone: the kill matters, the line does not.
  }
}

/**
 * SIGKILLs this process with probability 1/KILL_ODDS (never when off). Call sites test
 * `if (KILL_ODDS)` first so that an unarmed point costs no call.
 * The same seed gives the same sequence of draws; which point the n-th draw lands on
 * still depends on how IO completions interleave, so a replay is close, not exact.
 */
export function maybeKill(name: KillPointName): void {
  if (KILL_ODDS === 0) return
  if (!reached.has(name)) {
    reached.add(name)
    say(`${KILL_POINT_REACHED_PREFIX}${name}\n`)
  }
  if (KILL_ONLY !== undefined && !KILL_ONLY.some((prefix) => name.startsWith(prefix))) return
  rng ??= new Prng(KILL_SEED)
  evaluations++
  if (rng.int(KILL_ODDS) !== 0) return
  say(`${KILL_POINT_LINE_PREFIX}${name} odds=1/${KILL_ODDS} seed=${KILL_SEED} evaluation=${evaluations}\n`)
  process.kill(process.pid, 'SIGKILL')
  // The signal lands asynchronously: block this thread so that nothing after the point runs.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)
}
