// The Db SIGKILL loop shared by test/crash/db-sigkill.test.ts (the mixed workload) and
// test/crash/db-sigkill-scenarios.test.ts (regimen R2's scenarios): runs the writer child
// (db-writer-child.ts) in a folder, SIGKILLs it at a random moment (1 kill in 10 armed
// 0–19 ms after it starts open(), so it lands in recovery), reopens the folder with open()
// in this process and checks the state against the history the child printed
// (db-workload.ts).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Db, open } from '../../src/index.js'
import { runUntilKilled } from '../helpers/kill-child.js'
import {
  BATCH_KEYS,
  batchKeysTorn,
  checkRecovered,
  History,
  OVERWRITE_KEYS,
  overwriteNonPrefix,
  readState,
  type Scenario,
} from './db-workload.js'

const CHILD = fileURLToPath(new URL('./db-writer-child.js', import.meta.url))

/**
 * Runs the writer child until killed, feeding its intents and acks into `h` and its wrong
 * answers into `wrong`. `values` 'blobs': values over the blob threshold (R2c).
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
  values?: 'blobs',
): Promise<{ opened: boolean }> {
  const args = [CHILD, dir, String(seed), String(h.nextW), durability, mutation, scenario]
  if (values !== undefined) args.push(values)
  return runUntilKilled(args, killAfterMs, early ? 'at-opening' : false, onWriterLine(h, wrong))
}

/**
 * The parser of a writer child's lines (I, A, F, E: db-writer-child.ts), feeding intents and
 * acks into `h` and wrong answers into `wrong`; also used by the R15 soak (db-soak.ts).
 */
export function onWriterLine(h: History, wrong: string[]): (line: string) => void {
  return (line) => {
    if (line.startsWith('E ')) wrong.push(line.slice(2))
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
}

export interface KillTotals {
  acked: number
  kept: number
  ackedLost: number
  tornBatches: number
  phantom: number
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
  }
  try {
    for (let kill = 0; kill < o.kills; kill++) {
      if (kill % o.killsPerFolder === 0) {
        if (dir !== '') rmSync(dir, { recursive: true, force: true })
        dir = mkdtempSync(join(tmpdir(), 'bobsled-db-sigkill-'))
        h = new History()
      }
      const seed = o.baseSeed + kill
      const early = !mutation && seed % 10 === 0
      const delay = early ? seed % 20 : minMs + ((seed * 7919) % spanMs)
      const { opened } = await runChild(
        dir,
        seed,
        h,
        o.durability,
        scenario,
        delay,
        early,
        o.mutation ?? 'none',
        wrongAnswers,
      )
      if (!opened) sum.killedInOpen++
      const issued = h.intents.length
      const checked = await verify(dir, h, scenario, sum)
      const kept = checked.kept
      const violation =
        wrongAnswers.length > 0
          ? `the child saw a wrong answer: ${wrongAnswers.splice(0).join('; ')}`
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
  const c = checkRecovered(h, state, phantomValues)
  sum.acked += c.acked
  sum.kept += c.kept
  sum.ackedLost += c.ackedLost
  sum.tornBatches += c.tornBatches
  sum.phantom += c.phantom
  if (c.violation !== undefined) return { violation: c.violation, kept: 0 }
  if (nonprefix > 0)
    return {
      violation: `${nonprefix} of ${OVERWRITE_KEYS} keys are not a clean prefix of the overwrites`,
      kept: 0,
    }
  if (tornEqual > 0) return { violation: `the ${BATCH_KEYS} batch keys are not all equal`, kept: 0 }
  return { kept: c.kept }
}
