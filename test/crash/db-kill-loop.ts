// The Db SIGKILL loop shared by test/crash/db-sigkill.test.ts (the mixed workload) and
// test/crash/db-sigkill-scenarios.test.ts (regimen R2's scenarios): runs the writer child
// (db-writer-child.ts) in a folder, SIGKILLs it at a random moment (1 kill in 10 armed
// 0–19 ms after it starts open(), so it lands in recovery), reopens the folder with open()
// in this process and checks the state against the history the child printed
// (db-workload.ts).
// With `killPoints` (test/crash/db-kill-points.test.ts) the child runs with kill points armed
// (src/util/kill-points.ts) and mostly dies of one; the timer is only a backstop. The parent
// then checks a copy of the folder, so the next child opens it as the kill left it and its
// recovery repairs it (recovery's own kill points): an early kill is a child armed at high
// odds, which dies within its first few points, in recovery when there is one to do.

import { cpSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Db, open } from '../../src/index.js'
import { KILL_POINT_LINE_PREFIX, KILL_POINT_REACHED_PREFIX } from '../../src/util/kill-points.js'
import { mixSeed } from '../../src/util/prng.js'
import { runUntilKilled } from '../helpers/kill-child.js'
import {
  addRecovered,
  BATCH_KEYS,
  batchKeysTorn,
  checkRecovered,
  History,
  OVERWRITE_KEYS,
  overwriteNonPrefix,
  type RecoveredTotals,
  readState,
  type Scenario,
} from './db-workload.js'

const CHILD = fileURLToPath(new URL('./db-writer-child.js', import.meta.url))

/** What the kill-point loop adds to a child run. */
export interface ChildExtras {
  /** The child's environment (arms its kill points). */
  env?: NodeJS.ProcessEnv
  /** Each id the child's generateId() returned, in order. */
  onId?: (id: number) => void
  /** Each `S <n>` line: the inline writes of the child's open instance so far. */
  onInlineWrites?: (n: number) => void
}

/**
 * Runs the writer child until killed, feeding its intents and acks into `h` and its wrong
 * answers into `wrong`. `values` 'blobs': values over the blob threshold (R2c); 'some-blobs'
 * 1 in 20 over it. `extras`: the child runs the churn workload with kill points armed.
 */
export function runChild(
  dir: string,
  seed: number,
  h: History,
  durability: string,
  scenario: Scenario,
  killAfterMs: number,
  early: boolean,
  mutation: Mutation,
  wrong: string[],
  values?: 'blobs' | 'some-blobs',
  extras?: ChildExtras,
): Promise<{ opened: boolean; stderr: string }> {
  const args = [CHILD, dir, String(seed), String(h.nextW), durability, mutation, scenario]
  if (values !== undefined || extras?.env !== undefined) args.push(values ?? '-')
  if (extras?.env !== undefined) args.push('churn')
  const onLine = onWriterLine(h, wrong, extras?.onId, extras?.onInlineWrites)
  return runUntilKilled(args, killAfterMs, early ? 'at-opening' : false, onLine, extras?.env)
}

/**
 * The parser of a writer child's lines (I, A, F, E, G: db-writer-child.ts), feeding intents
 * and acks into `h`, wrong answers into `wrong` and generated ids into `onId`; also used by
 * the R15 soak (db-soak.ts).
 */
export function onWriterLine(
  h: History,
  wrong: string[],
  onId?: (id: number) => void,
  onInlineWrites?: (n: number) => void,
): (line: string) => void {
  return (line) => {
    if (line.startsWith('S ')) onInlineWrites?.(Number(line.slice(2)))
    else if (line.startsWith('E ')) wrong.push(line.slice(2))
    else if (line.startsWith('G ')) onId?.(Number(line.slice(2)))
    else if (line.startsWith('A ')) h.ack(Number(line.slice(2)), false)
    else if (line.startsWith('F ')) h.ack(Number(line.slice(2)), true)
    else if (line.startsWith('I ')) {
      const [, w, group, ops] = line.split(' ')
      h.intent({
        w: Number(w),
        group: Number(group),
        ops: (ops as string).split(',').map((o) => {
          const [tree, key, len] = o.split(':').map(Number)
          return { tree: tree as number, key: key as number, len: len as number }
        }),
      })
    }
  }
}

/** The kill point a child's stderr names as the one that killed it, if any. */
export function firedKillPoint(stderr: string): string | undefined {
  const at = stderr.lastIndexOf(KILL_POINT_LINE_PREFIX)
  if (at < 0) return undefined
  return stderr.slice(at + KILL_POINT_LINE_PREFIX.length).split(' ')[0]
}

/** The kill points a child's stderr says it evaluated at least once. */
export function reachedKillPoints(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith(KILL_POINT_REACHED_PREFIX))
    .map((l) => l.slice(KILL_POINT_REACHED_PREFIX.length))
}

export type Mutation = 'none' | 'ack-early' | 'ack-applied' | 'split-batches'

export interface KillLoopOptions {
  durability: 'sync' | 'flush'
  scenario?: Scenario
  kills: number
  killsPerFolder: number
  baseSeed: number
  /** The kill comes minMs + [0, spanMs) after the child opened (default 30 + [0, 250)). */
  killDelay?: { minMs: number; spanMs: number }
  /**
   * Mutation check (violations are counted, the loop goes on): the child acknowledges before
   * awaiting ('ack-early'), acknowledges unflushed writes in 'flush' mode ('ack-applied'),
   * or applies each batch as separate writes ('split-batches').
   */
  mutation?: Mutation
  /**
   * Kill points armed in every child, as this says for the child of `seed` (`early`: the 1
   * kill in 10 that the timer loop arms before open); the timer (killDelay) is then only a
   * backstop.
   */
  killPoints?: (seed: number, early: boolean) => KillPointArming
}

/** A child's kill points: odds 1/`odds` at each point, only those named `only*` if given. */
export interface KillPointArming {
  odds: number
  /** BOBSLED_KILL_ONLY: comma-separated name prefixes. */
  only?: string
}

export interface KillTotals extends RecoveredTotals {
  /** Scenario (a): keys that disagree with the sled-style prefix, summed over kills. */
  nonprefix: number
  /** Scenario (b): recoveries whose 8 batch keys were not all equal. */
  tornEqual: number
  reopenFailures: number
  /** Kills that landed before the child's open() had returned (armed at OPENING: in recovery). */
  killedInOpen: number
  /** Writes printed as issued that the recovery did not keep, one entry per kill. */
  lostPerKill: number[]
  /** Kills whose recovery broke a rule (the mutation check counts these). */
  caught: number
  /** Kill-point mode: how often each kill point killed a child. */
  killPointsFired: Map<string, number>
  /** Kill-point mode: the points some child evaluated (reached), fired or not. */
  killPointsReached: Set<string>
  /** Kill-point mode: children that the timer killed because no kill point fired. */
  timerKills: number
  /** Kill-point mode: ids from generateId() not above every id returned before them. */
  idRegressions: number
  /** Kill-point mode: ids generateId() returned. */
  ids: number
  /** Lone durable rounds the children wrote inline (their `S` lines). */
  inlineWrites: number
  /** Wall time spent running children, and checking their folders (ms). */
  childMs: number
  checkMs: number
  /** The first violation, with the seed that replays its folder. */
  firstViolation?: string
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)] as number
}

/**
 * Runs `kills` kill-and-check cycles, a fresh folder every `killsPerFolder` (and after every
 * caught violation, so one violation does not hide the next). Stops at the first violation
 * unless `mutation` is set.
 */
export async function killLoop(o: KillLoopOptions): Promise<KillTotals> {
  const scenario = o.scenario ?? 'mixed'
  const mutation = o.mutation !== undefined && o.mutation !== 'none'
  const { minMs, spanMs } = o.killDelay ?? { minMs: 30, spanMs: 250 }
  let dir = ''
  let h = new History()
  const wrongAnswers: string[] = []
  const sum: KillTotals = {
    acked: 0,
    kept: 0,
    ackedLost: 0,
    tornBatches: 0,
    phantom: 0,
    nonprefix: 0,
    tornEqual: 0,
    reopenFailures: 0,
    killedInOpen: 0,
    lostPerKill: [],
    caught: 0,
    killPointsFired: new Map(),
    killPointsReached: new Set(),
    timerKills: 0,
    idRegressions: 0,
    ids: 0,
    inlineWrites: 0,
    childMs: 0,
    checkMs: 0,
  }
  const kp = o.killPoints
  /** The highest id a child of this folder got from generateId(). */
  let lastId = -1
  const idsWrong: string[] = []
  const onId = (id: number): void => {
    sum.ids++
    if (!(id > lastId)) {
      sum.idRegressions++
      idsWrong.push(`generateId() returned ${id} after ${lastId}`)
    }
    lastId = Math.max(lastId, id)
  }
  try {
    for (let kill = 0; kill < o.kills; kill++) {
      if (kill % o.killsPerFolder === 0) {
        if (dir !== '') rmSync(dir, { recursive: true, force: true })
        dir = mkdtempSync(join(tmpdir(), 'bobsled-db-sigkill-'))
        h = new History()
        lastId = -1
      }
      const seed = o.baseSeed + kill
      const early = !mutation && seed % 10 === 0
      const delay = early && kp === undefined ? seed % 20 : minMs + ((seed * 7919) % spanMs)
      const arming = kp?.(seed, early)
      // A child's count starts at 0 and again at each reopen of its churn rounds.
      let lastInline = 0
      const onInlineWrites = (n: number): void => {
        sum.inlineWrites += n >= lastInline ? n - lastInline : n
        lastInline = n
      }
      const extras: ChildExtras =
        arming === undefined
          ? { onInlineWrites }
          : {
              env: {
                ...process.env,
                BOBSLED_KILL_POINTS: String(arming.odds),
                BOBSLED_KILL_SEED: String(mixSeed(seed, 0x6b696c6c)),
                BOBSLED_KILL_ONLY: arming.only ?? '',
              },
              onId,
              onInlineWrites,
            }
      const t0 = performance.now()
      const { opened, stderr } = await runChild(
        dir,
        seed,
        h,
        o.durability,
        scenario,
        delay,
        early && kp === undefined,
        o.mutation ?? 'none',
        wrongAnswers,
        kp === undefined ? undefined : 'some-blobs',
        extras,
      )
      const t1 = performance.now()
      sum.childMs += t1 - t0
      if (!opened) sum.killedInOpen++
      if (kp !== undefined) {
        const point = firedKillPoint(stderr)
        for (const p of reachedKillPoints(stderr)) sum.killPointsReached.add(p)
        if (point === undefined) sum.timerKills++
        else sum.killPointsFired.set(point, (sum.killPointsFired.get(point) ?? 0) + 1)
      }
      const issued = h.intents.length
      // Kill points: check a copy, so the next child recovers the folder as the kill left it.
      let checkDir = dir
      if (kp !== undefined) {
        checkDir = `${dir}-check`
        cpSync(dir, checkDir, { recursive: true })
      }
      let checked: { violation?: string; kept: number }
      try {
        checked = await verify(checkDir, h, scenario, sum)
      } finally {
        if (checkDir !== dir) rmSync(checkDir, { recursive: true, force: true })
      }
      sum.checkMs += performance.now() - t1
      const kept = checked.kept
      const violation =
        wrongAnswers.length > 0
          ? `the child saw a wrong answer: ${wrongAnswers.splice(0).join('; ')}`
          : idsWrong.length > 0
            ? idsWrong.splice(0).join('; ')
            : checked.violation
      sum.lostPerKill.push(issued - kept)
      if (violation !== undefined) {
        const replay = `BOBSLED_SEED=${seed - (kill % o.killsPerFolder)}`
        sum.firstViolation ??= `kill ${kill} seed=${seed} (replay: ${replay}): ${violation}`
        sum.caught++
        if (!mutation) break
        // A fresh folder: the broken history cannot be checked further.
        rmSync(dir, { recursive: true, force: true })
        dir = mkdtempSync(join(tmpdir(), 'bobsled-db-sigkill-'))
        h = new History()
        lastId = -1
      }
    }
  } finally {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  }
  return sum
}

/** Reopens the folder and checks it; `kept` is how many of the cycle's writes it holds. */
async function verify(
  dir: string,
  h: History,
  scenario: Scenario,
  sum: KillTotals,
): Promise<{ violation?: string; kept: number }> {
  let db: Db
  try {
    db = await open(dir, { segmentBytes: 16 * 1024, flushEveryMs: 0 })
  } catch (e) {
    sum.reopenFailures++
    return { violation: `reopen failed: ${(e as Error).stack}`, kept: 0 }
  }
  let state: Map<string, number>
  let phantomValues: string[]
  try {
    ;({ state, phantom: phantomValues } = await readState(db))
  } finally {
    await db.close()
  }
  // The scenario checks first: checkRecovered moves the history's base on.
  const nonprefix = scenario === 'overwrite-256' ? overwriteNonPrefix(h, state) : 0
  const tornEqual = scenario === 'batches-8' ? batchKeysTorn(state) : 0
  sum.nonprefix += nonprefix
  sum.tornEqual += tornEqual
  const c = addRecovered(sum, checkRecovered(h, state, phantomValues))
  if (c.violation !== undefined) return { violation: c.violation, kept: 0 }
  if (nonprefix > 0)
    return {
      violation: `${nonprefix} of ${OVERWRITE_KEYS} keys are not a clean prefix of the overwrites`,
      kept: 0,
    }
  if (tornEqual > 0) return { violation: `the ${BATCH_KEYS} batch keys are not all equal`, kept: 0 }
  return { kept: c.kept }
}
