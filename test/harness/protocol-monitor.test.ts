// R12: the IO-trace protocol monitor over seeded random log workloads (segments of 1-4 KiB,
// latency on, blobs, batches, truncateBefore, injected datasync failures), plus its
// mutation checks: acknowledging before the datasync must trip I1, and a syncDir('blobs')
// that silently does nothing must trip I3. BOBSLED_SEED=<n> replays one seed; BOBSLED_SOAK=1
// runs more seeds. Invariants: test/helpers/protocol-monitor.ts.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isSoak, seedList } from '../helpers/io-recorder.js'
import {
  formatReport,
  INVARIANTS,
  type Invariant,
  type MonitorReport,
  runMonitorSeed,
} from '../helpers/protocol-monitor.js'

const SEEDS = isSoak ? 20_000 : 300

function sum(
  reports: MonitorReport[],
  pick: (r: MonitorReport) => Record<Invariant, number>,
): Record<Invariant, number> {
  const out = { I1: 0, I2: 0, I3: 0, I4: 0, I5: 0 }
  for (const r of reports) for (const inv of INVARIANTS) out[inv] += pick(r)[inv]
  return out
}

test(`protocol monitor over ${SEEDS} seeded workloads: no invariant violated`, async () => {
  const seeds = seedList(SEEDS, 1)
  const reports: MonitorReport[] = []
  let firstFailure: string | undefined
  for (const seed of seeds) {
    let r: MonitorReport
    try {
      r = await runMonitorSeed(seed)
    } catch (e) {
      assert.fail(`seed=${seed}: the workload failed: ${(e as Error).stack}`)
    }
    reports.push(r)
    const bad = INVARIANTS.reduce((n, inv) => n + r.violations[inv], 0)
    if (bad > 0 && firstFailure === undefined) {
      firstFailure = `seed=${seed}: ${bad} protocol violations (replay: BOBSLED_SEED=${seed})\n${formatReport(r)}`
    }
  }
  const v = sum(reports, (r) => r.violations)
  const c = sum(reports, (r) => r.checked)
  const events = reports.reduce((n, r) => n + r.events, 0)
  const total = INVARIANTS.reduce((n, inv) => n + v[inv], 0)
  const failing = reports.filter((r) => INVARIANTS.some((inv) => r.violations[inv] > 0)).map((r) => r.seed)
  console.log(
    `RELIABILITY protocol-monitor seeds=${seeds.length} events=${events} violations=${total} ` +
      `(I1=${v.I1} I2=${v.I2} I3=${v.I3} I4=${v.I4} I5=${v.I5}) seed=${failing[0] ?? seeds[0]}`,
  )
  console.log(
    `protocol-monitor coverage: acked extents=${c.I1} failed log syncs=${c.I2} blob pointers=${c.I3} ` +
      `renames=${c.I4} slot reuses=${c.I5}` +
      (failing.length > 0 ? ` failing seeds=${failing.slice(0, 20).join(',')}` : ''),
  )
  if (firstFailure !== undefined) assert.fail(firstFailure)
  assert.equal(total, 0)
  if (process.env.BOBSLED_SEED === undefined) {
    // Every invariant must have had something to check, or it proves nothing.
    for (const inv of INVARIANTS) assert.ok(c[inv] > 0, `${inv} checked nothing over ${seeds.length} seeds`)
  }
})

async function mutation(
  name: string,
  inv: Invariant,
  options: Parameters<typeof runMonitorSeed>[1],
  count: number,
): Promise<void> {
  const seeds = seedList(count, 50_001)
  let found = 0
  let example = ''
  for (const seed of seeds) {
    const r = await runMonitorSeed(seed, { ...options, faultOdds: 0 })
    found += r.violations[inv]
    if (example === '' && r.violations[inv] > 0) example = r.messages[inv][0] as string
  }
  console.log(`RELIABILITY protocol-monitor-mutation ${name} seeds=${seeds.length} ${inv}=${found}`)
  if (example !== '') console.log(`  e.g. ${example.slice(0, 400)}`)
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(found > 0, `the monitor missed ${name}: ${inv} saw nothing`)
}

test('mutation check: acknowledging before the datasync trips I1', async () => {
  await mutation('unsafeAckBeforeSync', 'I1', { unsafeAckBeforeSync: true }, 5)
})

test("mutation check: a syncDir('blobs') that does nothing trips I3", async () => {
  await mutation('skip-syncDir-blobs', 'I3', { skipBlobDirSync: true }, 10)
})
