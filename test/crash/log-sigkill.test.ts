// Real processes, real files: a child appends and flushes, the parent kills it with
// SIGKILL at a random moment (10% of the time while it is still recovering), reopens the
// log and checks that every acknowledged record is there and the log is a prefix.
// A SIGKILL keeps the OS page cache, so this proves crash-consistency of the process,
// not durability against power loss (that is test/sim/log-power-loss.test.ts).
// BOBSLED_SOAK=1 runs 5,000 kills. A failure prints the seed of its log's first cycle:
// BOBSLED_SEED=<that seed> replays that one log's history of kill timings (25 kills; the
// kill instants themselves depend on the machine, so the replay is close, not exact).

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { Log } from '../../src/log/index.js'
import { runUntilKilled } from '../helpers/kill-child.js'
import { checkPrefix } from './log-records.js'

const CHILD = fileURLToPath(new URL('./log-writer-child.js', import.meta.url))
const soak = process.env.BOBSLED_SOAK === '1'
const CYCLES = process.env.BOBSLED_SEED !== undefined ? 25 : soak ? 5000 : 150
const SEGMENT_BYTES = 16 * 1024

interface CycleResult {
  acked: number
}

async function runChild(
  dir: string,
  start: number,
  seed: number,
  killAfterMs: number,
  killBeforeOpen: boolean,
): Promise<CycleResult> {
  let acked = -1
  const args = [CHILD, dir, String(start), String(seed), String(SEGMENT_BYTES)]
  await runUntilKilled(args, killAfterMs, killBeforeOpen, (line) => {
    if (line.startsWith('ACK ')) acked = Math.max(acked, Number(line.slice(4)))
  })
  return { acked }
}

async function readAll(dir: string): Promise<Uint8Array[]> {
  const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES, flushEveryMs: 0 })
  const out: Uint8Array[] = []
  try {
    for await (const r of log.iterFrom(0)) out.push(r.data)
  } finally {
    await log.close()
  }
  return out
}

// A fresh log every CYCLES_PER_LOG kills keeps each reopen cheap; the crash history of
// one log still spans many kills.
const CYCLES_PER_LOG = 25

test(`SIGKILL loop: ${CYCLES} kills, no acknowledged record lost, always a prefix`, async () => {
  let dir = mkdtempSync(join(tmpdir(), 'bobsled-sigkill-'))
  const baseSeed = Number(process.env.BOBSLED_SEED ?? Date.now() % 1_000_000)
  let maxAcked = -1
  let count = 0
  let lost = 0
  let total = 0
  let nonPrefix = 0
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      if (cycle > 0 && cycle % CYCLES_PER_LOG === 0) {
        rmSync(dir, { recursive: true, force: true })
        dir = mkdtempSync(join(tmpdir(), 'bobsled-sigkill-'))
        maxAcked = -1
        total += count
        count = 0
      }
      const seed = baseSeed + cycle
      const early = seed % 10 === 0
      const delay = early ? seed % 15 : 20 + ((seed * 7919) % 200)
      const r = await runChild(dir, count, seed, delay, early)
      maxAcked = Math.max(maxAcked, r.acked)
      const records = await readAll(dir)
      const check = checkPrefix(records)
      if ('violation' in check) {
        nonPrefix++
        assert.fail(
          `cycle ${cycle} seed=${seed} (replay: BOBSLED_SEED=${seed - (cycle % CYCLES_PER_LOG)}): ${check.violation}`,
        )
      }
      if (check.count <= maxAcked) {
        lost++
        assert.fail(
          `cycle ${cycle} seed=${seed} (replay: BOBSLED_SEED=${seed - (cycle % CYCLES_PER_LOG)}): acknowledged seq ${maxAcked} lost (recovered ${check.count})`,
        )
      }
      // Records past the recovered prefix were never acknowledged; the next child reuses them.
      count = check.count
    }
    console.log(
      `RELIABILITY log-sigkill cycles=${CYCLES} records=${total + count} acked_lost=${lost} non_prefix=${nonPrefix} seed=${baseSeed}`,
    )
    assert.ok(count > 0, 'the children appended something')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
