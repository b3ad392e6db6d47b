// Real processes, real files, at the key level (regimen R2 for the Db API): a child opens
// the database with open() and writes inserts, removes and batches across two trees,
// reporting each write's intent before it and its acknowledgement after its promise
// resolved (test/crash/db-writer-child.ts); the parent SIGKILLs it at a random moment
// (10% of the time while it is still opening), reopens and checks that the state is a
// prefix of the applied writes holding every acknowledged one: 0 acks lost, 0 torn
// batches, 0 phantoms. Two variants: durability 'sync', and 'flush' with explicit
// `await db.flush()` acknowledgements. A fresh folder every KILLS_PER_FOLDER kills.
// A SIGKILL keeps the OS page cache: this is process-crash consistency, not power loss
// (test/sim/db-power-loss.test.ts). BOBSLED_SOAK=1 runs 300 kills per variant;
// BOBSLED_SEED=<n> replays a folder's kill timings (close, not exact: kill instants
// depend on the machine).

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { open } from '../../src/index.js'
import { runUntilKilled } from '../helpers/kill-child.js'
import { checkRecovered, History, readState } from './db-workload.js'

const CHILD = fileURLToPath(new URL('./db-writer-child.js', import.meta.url))
const soak = process.env.BOBSLED_SOAK === '1'
const KILLS = process.env.BOBSLED_SEED !== undefined ? 10 : soak ? 300 : 30
const KILLS_PER_FOLDER = 10

function runChild(
  dir: string,
  seed: number,
  h: History,
  durability: string,
  killAfterMs: number,
  early: boolean,
  ackEarly = false,
) {
  const args = [CHILD, dir, String(seed), String(h.nextW), durability, ackEarly ? '1' : '0']
  return runUntilKilled(args, killAfterMs, early, (line) => {
    if (line.startsWith('A ')) h.ack(Number(line.slice(2)), false)
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
  })
}

interface Totals {
  acked: number
  kept: number
  ackedLost: number
  tornBatches: number
  phantom: number
  caught: number
}

/** Runs `kills` kill-and-check cycles; with `mutation`, counts violations instead of failing. */
async function killLoop(
  durability: 'sync' | 'flush',
  kills: number,
  baseSeed: number,
  mutation = false,
): Promise<Totals> {
  let dir = ''
  let h = new History()
  const sum: Totals = { acked: 0, kept: 0, ackedLost: 0, tornBatches: 0, phantom: 0, caught: 0 }
  try {
    for (let kill = 0; kill < kills; kill++) {
      if (kill % KILLS_PER_FOLDER === 0 || (mutation && sum.caught > 0)) {
        if (dir !== '') rmSync(dir, { recursive: true, force: true })
        dir = mkdtempSync(join(tmpdir(), 'bobsled-db-sigkill-'))
        h = new History()
      }
      const seed = baseSeed + kill
      const early = !mutation && seed % 10 === 0
      const delay = early ? seed % 20 : 30 + ((seed * 7919) % 250)
      await runChild(dir, seed, h, durability, delay, early, mutation)
      const db = await open(dir, { segmentBytes: 16 * 1024, flushEveryMs: 0 })
      const { state, phantom } = await readState(db)
      await db.close()
      const c = checkRecovered(h, state, phantom)
      sum.acked += c.acked
      sum.kept += c.kept
      sum.ackedLost += c.ackedLost
      sum.tornBatches += c.tornBatches
      sum.phantom += c.phantom
      if (c.violation !== undefined) {
        if (mutation) {
          sum.caught++
          continue
        }
        assert.fail(
          `kill ${kill} seed=${seed} (replay: BOBSLED_SEED=${seed - (kill % KILLS_PER_FOLDER)}): ${c.violation}`,
        )
      }
    }
  } finally {
    if (dir !== '') rmSync(dir, { recursive: true, force: true })
  }
  return sum
}

for (const durability of ['sync', 'flush'] as const) {
  test(`db SIGKILL loop (${durability}): ${KILLS} kills, no acknowledged write lost, prefix state, whole batches`, async () => {
    const baseSeed = Number(process.env.BOBSLED_SEED ?? Date.now() % 1_000_000)
    const sum = await killLoop(durability, KILLS, baseSeed)
    console.log(
      `RELIABILITY db-sigkill durability=${durability} kills=${KILLS} acked=${sum.acked} kept=${sum.kept} acked_lost=${sum.ackedLost} torn_batches=${sum.tornBatches} phantom=${sum.phantom} seed=${baseSeed}`,
    )
    assert.ok(sum.acked > KILLS, 'the children acknowledged writes')
  })
}

test('mutation check: a child that acknowledges before awaiting is caught by the SIGKILL loop', async () => {
  // 'sync' with the ack printed before the write's promise: a kill between the two loses
  // an "acknowledged" write. A few kills must show it.
  const kills = 12
  const sum = await killLoop('sync', kills, 777, true)
  console.log(
    `RELIABILITY db-sigkill-mutation kills=${kills} caught=${sum.caught} acked_lost=${sum.ackedLost}`,
  )
  assert.ok(sum.caught > 0, 'the harness cannot fail: it missed acks sent before the write')
})
