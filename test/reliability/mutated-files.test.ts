// R9 (reliability-regimen §5.1) and P5/P8 (§4, §6.3): 5,000 mutated log folders, opened,
// iterated and read back. Three valid shapes are built on the simulated disk (clean close
// with batch and blobs; truncateBefore with reused slots; a power-loss image with no
// witness file), then each case applies 1–3 seeded mutations (test/helpers/file-mutations.ts):
// damage (flips, random bytes, cuts, extensions, zeroed and junk ranges, duplicated and
// swapped segments and ranges, whole files replaced, deleted, emptied, foreign or stray)
// and, in about a third of the cases, CRC-fixing changes to a message, a segment header,
// conf, the witness, a blob header or a crafted tail journal.
//
// Gates, over every case:
//  - uncaught = 0: every failure is a typed bobsled error (stray rejections count too);
//  - hangs = 0: each case has 2 s (inside the worker), and the parent thread stops a worker
//    that sends nothing for 10 s, so a synchronous endless loop is caught as well;
//  - over_cap = 0: no single typed-array/Buffer request over 16 MiB (test/helpers/alloc-cap.ts
//    checks every request before it is served; the largest legal one is an 8 MiB segment),
//    the JS heap is bounded by the worker's resourceLimits, and retained heap + ArrayBuffer
//    memory after each case must stay within 64 MiB of the start;
//  - silent_wrong = 0: for damage that no checksum can miss, never a wrong, extra or
//    reordered record without an error (CRC-fixing cases are counted apart: a CRC-32 cannot
//    tell them from honest bytes, regimen §6);
//  - truncated_below_witness = 0: a cleanly closed log whose witness file is intact never
//    loses records silently;
//  - disk_growth = 0: opening a hostile folder never makes it grow by more than two segments.
// About one case in 25 runs on real files instead of the simulated disk.
// BOBSLED_SOAK=1 runs 100,000 cases; BOBSLED_SEED=<case seed> replays one case (failures
// print it).

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Worker } from 'node:worker_threads'
import { tempDir } from '../helpers/temp-dir.js'
import type { CaseEnd, OutcomeKind, WorkerInput } from './mutated-files-worker.js'

const soak = process.env.BOBSLED_SOAK === '1'
const onlyEnv = process.env.BOBSLED_SEED
const only = onlyEnv === undefined || onlyEnv === '' ? undefined : Number(onlyEnv)
const CASES = only !== undefined ? 1 : soak ? 100_000 : 5_000
const BASE_SEED = 0x0f22_0009
const REAL_EVERY = 25
const CAP_BYTES = 16 * 1024 * 1024
const MEM_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024
const CASE_TIMEOUT_MS = 2_000
const WATCHDOG_MS = 10_000
const WORKER = new URL('./mutated-files-worker.js', import.meta.url)

interface Done {
  t: 'done'
  largestAllocBytes: number
  memGrowthBytes: number
}

type Message = { t: 'start'; i: number; seed: number } | CaseEnd | Done

interface RunResult {
  ends: CaseEnd[]
  largestAllocBytes: number
  memGrowthBytes: number
  restarts: number
}

/** Runs cases [from, CASES) in a worker; a hung or dead worker is replaced after its case. */
async function runAll(
  tmpRoot: string,
  cases = CASES,
  isSelfCheck = false,
  oneSeed = only,
): Promise<RunResult> {
  const res: RunResult = { ends: [], largestAllocBytes: 0, memGrowthBytes: 0, restarts: 0 }
  let from = 0
  while (from < cases) {
    const next = await new Promise<number>((resolve) => {
      const data: WorkerInput = {
        baseSeed: BASE_SEED,
        from,
        to: cases,
        only: oneSeed,
        realEvery: REAL_EVERY,
        tmpRoot,
        capBytes: CAP_BYTES,
        caseTimeoutMs: CASE_TIMEOUT_MS,
        isSelfCheck,
      }
      const w = new Worker(WORKER, { workerData: data, resourceLimits: { maxOldGenerationSizeMb: 512 } })
      let current = { i: from, seed: oneSeed ?? 0 }
      let lastHeard = Date.now()
      let settled = false
      const finish = (nextFrom: number): void => {
        if (settled) return
        settled = true
        clearInterval(watchdog)
        void w.terminate()
        resolve(nextFrom)
      }
      const lost = (kind: OutcomeKind, detail: string): void => {
        res.ends.push({
          t: 'end',
          i: current.i,
          seed: current.seed,
          kind,
          detail,
          labels: ['(worker lost)'],
          isCrcFixed: false,
          isReal: false,
          refusedModified: false,
          diskGrowth: false,
          where: '',
        })
        res.restarts++
        finish(current.i + 1)
      }
      const watchdog = setInterval(() => {
        if (Date.now() - lastHeard > WATCHDOG_MS)
          lost('hang', `no progress for ${WATCHDOG_MS} ms (worker stopped)`)
      }, 250)
      w.on('message', (msg: Message) => {
        lastHeard = Date.now()
        if (msg.t === 'start') current = { i: msg.i, seed: msg.seed }
        else if (msg.t === 'end') res.ends.push(msg)
        else {
          res.largestAllocBytes = Math.max(res.largestAllocBytes, msg.largestAllocBytes)
          res.memGrowthBytes = Math.max(res.memGrowthBytes, msg.memGrowthBytes)
          finish(cases)
        }
      })
      w.on('error', (e) => {
        const code = (e as { code?: string }).code
        lost(code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'over_cap' : 'uncaught', `worker died: ${String(e)}`)
      })
      w.on('exit', (code) => {
        if (!settled) lost('uncaught', `worker exited with ${code} before finishing`)
      })
    })
    from = next
  }
  return res
}

/**
 * Cases the nightly size (100,000) found breaking a gate, replayed on every run:
 *  - 299168227: a CRC-fixed conf claiming 256 KiB segments over a 4 KiB log with a flipped
 *    header; recovery's zeroing of the unreadable slot wrote a whole claimed segment, and
 *    the folder grew from 4,089 to 524,384 bytes (zeroing now stops at the file's end).
 *  - 2665498338, 2139674747, 3728421532: refused opens that had zeroed log bytes or removed
 *    a stray file in blobs/ (B-R9-DB1: repairs now wait for acceptance).
 */
const PINNED_SEEDS = [299168227, 2665498338, 2139674747, 3728421532]

let tmp: { path: string; remove: () => Promise<void> }
before(async () => {
  tmp = await tempDir('mutated')
})
after(async () => {
  await tmp.remove()
})

const GATED: readonly OutcomeKind[] = [
  'uncaught',
  'hang',
  'over_cap',
  'silent_wrong',
  'truncated_below_witness',
]

type KnownBug = 'tail-journal' | 'missing-log-created'

/**
 * Cases counted apart, each with its own test below:
 *  - tail-journal: a tail journal that passes its CRC with extents outside the log. Replay
 *    once wrote each extent wherever it pointed (a huge sparse file, a multi-GiB buffer on
 *    the simulated disk, then a header scan sized by that file); it now skips extents past
 *    the log's size rounded up to a segment and refuses malformed ones (src/log/tail-journal.ts).
 *  - missing-log-created: conf present and the log file deleted. Log.open once created an
 *    empty log file (and blobs/) before recovery refused with CorruptionError, so the
 *    refused open changed the folder (regimen R8: 0 bytes modified in a refused DB); it
 *    now decides before creating anything (src/log/folder.ts refuseMissingLog).
 */
function knownBug(e: CaseEnd): KnownBug | undefined {
  if (e.labels.includes('crcTailJournal.outside')) return 'tail-journal'
  if (e.refusedModified && e.labels.includes('delete:log') && !GATED.includes(e.kind))
    return 'missing-log-created'
  return undefined
}

/**
 * A refused open changes nothing, a tail journal included: recovery once replayed a valid
 * one (or removed an invalid one) before anything else was checked; since B-R9-DB1 every
 * repair waits until the open is accepted (docs/DESIGN.md, "Accepting an open").
 */
const breaksGate = (e: CaseEnd): boolean => GATED.includes(e.kind) || e.diskGrowth || e.refusedModified

let run: Promise<RunResult> | undefined
const results = (): Promise<RunResult> => {
  run ??= runAll(tmp.path)
  return run
}

function show(e: CaseEnd): string {
  return `case ${e.i} seed=${e.seed} (replay: BOBSLED_SEED=${e.seed}) ${e.isReal ? 'real' : 'sim'} [${e.labels.join(' ')}]: ${e.kind} ${e.detail}`
}

/** Up to 4 examples of each way a gate broke, so one noisy class cannot hide another. */
function examples(bad: readonly CaseEnd[]): string[] {
  const out: string[] = []
  for (const k of [...GATED, 'disk_growth', 'refused_open_modified']) {
    const of = bad.filter((e) =>
      k === 'disk_growth' ? e.diskGrowth : k === 'refused_open_modified' ? e.refusedModified : e.kind === k,
    )
    out.push(...of.slice(0, 4).map(show))
  }
  return out
}

test(`${CASES} mutated log folders (CRC-fixing included): no uncaught error, hang, over-cap allocation or silent wrong data`, async () => {
  const t0 = performance.now()
  const r = await results()
  const ms = performance.now() - t0
  const judged = r.ends.filter((e) => knownBug(e) === undefined)
  const tailJournal = r.ends.filter((e) => knownBug(e) === 'tail-journal')
  const missingLog = r.ends.filter((e) => knownBug(e) === 'missing-log-created')
  const count = (k: OutcomeKind): number => judged.filter((e) => e.kind === k).length
  const real = r.ends.filter((e) => e.isReal).length
  const crcFixed = r.ends.filter((e) => e.isCrcFixed).length
  const detectedOpen = r.ends.filter((e) => e.kind === 'detected' && e.where === 'open').length
  const detectedRead = r.ends.filter((e) => e.kind === 'detected' && e.where === 'read').length
  const refusedModified = judged.filter((e) => e.refusedModified)
  console.log(
    `RELIABILITY mutated-files cases=${r.ends.length} real_files=${real} crc_fixing=${crcFixed} ` +
      `uncaught=${count('uncaught')} hangs=${count('hang')} over_cap=${count('over_cap')} ` +
      `silent_wrong=${count('silent_wrong')} truncated_below_witness=${count('truncated_below_witness')} ` +
      `disk_growth=${judged.filter((e) => e.diskGrowth).length} refused_open_modified=${refusedModified.length} ` +
      `detected_open=${detectedOpen} detected_read=${detectedRead} exact=${r.ends.filter((e) => e.kind === 'exact').length} ` +
      `tail_unwitnessed=${count('tail_unwitnessed')} crc_fixed_changed=${r.ends.filter((e) => e.kind === 'crc_fixed_changed').length} ` +
      `tail_journal_outside_broken=${tailJournal.filter(breaksGate).length}/${tailJournal.length} ` +
      `missing_log_created=${missingLog.length} ` +
      `largest_alloc_served_kib=${Math.round(r.largestAllocBytes / 1024)} mem_growth_mib=${(r.memGrowthBytes / 2 ** 20).toFixed(1)} ` +
      `worker_restarts=${r.restarts} ms=${Math.round(ms)} seed=${only ?? BASE_SEED}`,
  )
  const db = r.ends.filter((e) => e.isDb === true)
  const dbKind = (k: OutcomeKind): number => db.filter((e) => e.kind === k).length
  const labelled = (p: string): number => db.filter((e) => e.labels.some((l) => l.startsWith(p))).length
  console.log(
    `RELIABILITY mutated-files-db cases=${db.length} crc_tree_page=${labelled('crcTreePage')} crc_checkpoint=${labelled('crcCheckpoint')} ` +
      `detected_open=${db.filter((e) => e.kind === 'detected' && e.where === 'open').length} ` +
      `detected_read=${db.filter((e) => e.kind === 'detected' && e.where === 'read').length} exact=${dbKind('exact')} ` +
      `crc_fixed_changed=${dbKind('crc_fixed_changed')} tail_unwitnessed=${dbKind('tail_unwitnessed')} ` +
      `uncaught=${dbKind('uncaught')} hangs=${dbKind('hang')} over_cap=${dbKind('over_cap')} silent_wrong=${dbKind('silent_wrong')} ` +
      `refused_open_modified=${db.filter((e) => e.refusedModified).length}`,
  )
  const bad = judged.filter(breaksGate)
  assert.deepEqual(examples(bad), [], `${bad.length} cases broke a gate`)
  assert.equal(r.ends.length, CASES, 'every case reported')
  assert.ok(r.memGrowthBytes <= MEM_GROWTH_LIMIT_BYTES, `memory grew by ${r.memGrowthBytes} bytes`)
  if (only === undefined) {
    assert.ok(real > 0 && crcFixed > CASES / 5, 'the mix holds real files and CRC-fixing cases')
    assert.ok(detectedOpen + detectedRead > CASES / 3, 'most damage is detected')
  }
})

test('a CRC-valid tail journal whose extents lie outside the log: typed error, no over-cap allocation, no growth, no hang', async () => {
  const r = await results()
  const of = r.ends.filter((e) => knownBug(e) === 'tail-journal')
  const bad = of.filter(breaksGate)
  assert.deepEqual(examples(bad), [], `${bad.length} of ${of.length} cases broke a gate`)
})

/**
 * B-R9-DB1 (fixed): a database folder whose log opened (its recovery zeroed junk past the
 * last message of a segment) and whose page cache or tree then refused it was left
 * changed. Recovery now only plans its writes; they happen once every layer accepted the
 * open (test/regressions/db-refused-open-writes-nothing.test.ts pins it with a mutation
 * check). Here: no refused database open of the run changed a byte.
 */
test('B-R9-DB1: a database refused at open (by the log, the page cache or the tree) is left unchanged', async () => {
  const r = await results()
  const db = r.ends.filter((e) => e.isDb === true)
  const of = db.filter((e) => e.refusedModified)
  console.log(
    `RELIABILITY mutated-files-db-refused cases=${db.filter((e) => e.kind === 'detected' && e.where === 'open').length} modified=${of.length} seed=${only ?? BASE_SEED}`,
  )
  assert.deepEqual(of.slice(0, 4).map(show), [], `${of.length} refused database opens changed the folder`)
})

test('conf present, log file deleted: the refused open creates nothing', async () => {
  const r = await results()
  const bad = r.ends.filter((e) => knownBug(e) === 'missing-log-created')
  assert.deepEqual(bad.slice(0, 4).map(show), [], `${bad.length} refused opens changed the folder`)
})

test('harness self-check: CRC-fixed wrong data reported as plain damage, and crafted journals, trip the gates', async (t) => {
  if (only !== undefined) {
    t.skip('BOBSLED_SEED replays one case')
    return
  }
  // The first 400 cases again, with the mutation switch on.
  const r = await runAll(tmp.path, 400, true)
  const wrong = r.ends.filter((e) => e.kind === 'silent_wrong').length
  const overCap = r.ends.filter((e) => e.kind === 'over_cap').length
  console.log(
    `RELIABILITY mutated-files-mutation cases=${r.ends.length} silent_wrong_caught=${wrong} over_cap_caught=${overCap}`,
  )
  assert.ok(wrong > 0, 'wrong data from CRC-fixed bytes is seen by the comparison')
  assert.ok(overCap > 0, 'the allocation cap sees an over-cap request planted in the crafted-journal cases')
})

test('cases found at nightly size stay fixed (pinned seeds)', { skip: only !== undefined }, async () => {
  for (const seed of PINNED_SEEDS) {
    const r = await runAll(tmp.path, 1, false, seed)
    assert.equal(r.ends.length, 1, `seed ${seed}: one case`)
    assert.deepEqual(r.ends.filter(breaksGate).map(show), [], `seed ${seed}`)
  }
})
