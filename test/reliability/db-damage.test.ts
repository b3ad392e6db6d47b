// R8 with the checkpoint as the snapshot (reliability-regimen §5.1 R8, §6.3), at the page
// cache and Db level: a catalogue of damaged checkpoint files (deleted, emptied, cut, zeroed,
// flipped in each region, another database's, an older life's, temp files) and of crafted,
// CRC-valid hostile structures (cycles in index nodes, children that are missing, huge or
// not tree pages, a chain deeper than any tree, a catalog naming garbage roots, huge page
// ids in log records, checkpoints with too long or foreign fragment lists). Each case opens
// a copy of one database with open() and reads and writes every tree
// (db-damage-worker.ts).
//
// Gates, over every case:
//  - bad = 0: no untyped or non-corruption error, no hang (5 s per case inside the worker,
//    and the parent stops a worker silent for 10 s, so a synchronous endless walk counts),
//    no stray rejection, and for damage (not crafted) cases no data differing from the model
//    without an error: a checkpoint is an optimisation, so its damage falls back to an older
//    one or a full log scan (or is a CorruptionError), never a silent empty database;
//  - refused_modified = 0: a refused open leaves the folder's bytes as they were.
// Crafted cases that change the data without an error are counted (`changed`), not gated:
// a CRC-32 does not tell crafted from honest bytes.
// Mutation self-check: an open that serves an empty database when it sees an unusable
// checkpoint must be caught. BOBSLED_SEED=<n> builds the image from another seed (the
// catalogue is the same); BOBSLED_SOAK=1 runs it over 20 image seeds.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import type { DamageEnd, DamageInput } from './db-damage-worker.js'

const soak = process.env.BOBSLED_SOAK === '1'
const seedEnv = process.env.BOBSLED_SEED
const BASE_SEED = 0xda3a
const SEEDS =
  seedEnv !== undefined && seedEnv !== ''
    ? [Number(seedEnv)]
    : soak
      ? Array.from({ length: 20 }, (_, i) => BASE_SEED + i)
      : [BASE_SEED]
const CASE_TIMEOUT_MS = 5_000
const WATCHDOG_MS = 10_000
const WORKER = new URL('./db-damage-worker.js', import.meta.url)

async function runAll(
  seed: number,
  isSelfCheck: boolean,
  family?: DamageInput['family'],
  only?: readonly string[],
): Promise<{ ends: DamageEnd[]; total: number }> {
  const ends: DamageEnd[] = []
  let from = 0
  let total = Number.POSITIVE_INFINITY
  while (from < total) {
    from = await new Promise<number>((resolve) => {
      const data: DamageInput = { from, only, family, seed, caseTimeoutMs: CASE_TIMEOUT_MS, isSelfCheck }
      const w = new Worker(WORKER, { workerData: data, resourceLimits: { maxOldGenerationSizeMb: 512 } })
      let current = from
      let lastHeard = Date.now()
      let settled = false
      const finish = (next: number): void => {
        if (settled) return
        settled = true
        clearInterval(watchdog)
        void w.terminate()
        resolve(next)
      }
      const lost = (detail: string): void => {
        ends.push({
          t: 'end',
          i: current,
          name: `case ${current}`,
          family: 'crafted',
          kind: 'bad',
          detail,
          refusedModified: false,
          fellBack: false,
        })
        finish(current + 1)
      }
      const watchdog = setInterval(() => {
        if (Date.now() - lastHeard > WATCHDOG_MS)
          lost(`hang: no progress for ${WATCHDOG_MS} ms (worker stopped)`)
      }, 250)
      w.on('message', (m: { t: 'start'; i: number } | DamageEnd | { t: 'done' }) => {
        lastHeard = Date.now()
        if (m.t === 'start') current = m.i
        else if (m.t === 'end') ends.push(m)
        else {
          total = current + 1
          finish(total)
        }
      })
      w.on('error', (e) => lost(`worker died: ${String(e)}`))
      w.on('exit', (code) => {
        if (!settled) lost(`worker exited with ${code}`)
      })
    })
  }
  return { ends, total }
}

const show = (e: DamageEnd): string =>
  `[${e.family}] ${e.name}: ${e.kind} ${e.detail}${e.refusedModified ? ' (refused open modified the folder)' : ''}`

test('R8 checkpoint and tree damage: a CorruptionError or the model, never a hang, untyped error, silent empty db or a changed refused folder', async () => {
  const t0 = performance.now()
  const all: DamageEnd[] = []
  for (const seed of SEEDS) all.push(...(await runAll(seed, false)).ends)
  const of = (f: DamageEnd['family'], k: DamageEnd['kind']): number =>
    all.filter((e) => e.family === f && e.kind === k).length
  const bad = all.filter((e) => e.kind === 'bad' || e.refusedModified)
  console.log(
    `RELIABILITY db-damage cases=${all.length} damage=${all.filter((e) => e.family === 'damage').length} ` +
      `exact=${of('damage', 'exact')} fell_back=${all.filter((e) => e.family === 'damage' && e.fellBack).length} ` +
      `detected_open=${of('damage', 'detected_open')} detected_later=${of('damage', 'detected_later')} ` +
      `crafted=${all.filter((e) => e.family === 'crafted').length} crafted_detected_open=${of('crafted', 'detected_open')} ` +
      `crafted_detected_later=${of('crafted', 'detected_later')} crafted_exact=${of('crafted', 'exact')} crafted_changed=${of('crafted', 'changed')} ` +
      `bad=${all.filter((e) => e.kind === 'bad').length} refused_modified=${all.filter((e) => e.refusedModified).length} ` +
      `ms=${Math.round(performance.now() - t0)} seed=${SEEDS.length === 1 ? SEEDS[0] : `${SEEDS[0]}..${SEEDS[SEEDS.length - 1]}`}`,
  )
  if (process.env.BOBSLED_DAMAGE_VERBOSE === '1') for (const e of all) console.log(show(e))
  assert.deepEqual(bad.map(show), [], `${bad.length} cases broke a gate`)
  assert.ok(
    of('damage', 'exact') > 0 && all.some((e) => e.fellBack),
    'damaged checkpoints are skipped, and the data stays',
  )
})

test('R8 self-check: an open that serves an empty database for an unusable checkpoint is caught', async () => {
  // The planted bug only concerns damaged checkpoints: the crafted cases would add time, not evidence.
  const { ends } = await runAll(SEEDS[0] as number, true, 'damage')
  const caught = ends.filter((e) => e.family === 'damage' && e.kind === 'bad').length
  console.log(`RELIABILITY db-damage-mutation cases=${ends.length} silent_empty_caught=${caught}`)
  assert.ok(caught > 0, 'a silent empty database is reported')
})
