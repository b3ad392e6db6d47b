// The device-fault variants of R3 (reliability-regimen R3 nightly column, §7 item 1) and
// their verdicts, shared by the log-level variants (test/sim/power-loss-variants.test.ts)
// and the Db and page-cache ones (test/sim/db-power-loss-variants.test.ts). Each variant
// runs a power-loss workload on a simulated disk that breaks one assumption recovery relies
// on (docs/FORMAT.md, "Durability assumptions"):
//  - non-PSOW: a power cut may garble the whole of a sector an unsynced write covers in
//    part, previously synced bytes included;
//  - misdirect (sector or segment stride): a write lands k strides away in the same file;
//  - lost write: a write never reaches the disk although a later datasync succeeds.
// bobsled assumes PSOW and has no redundancy, so acknowledged writes may be lost here: that
// is reported, not gated. What gates: every seed ends (no hang), every error is typed (no
// crash), and nothing comes back wrong without an error (silent_wrong).

import { InvariantError, isBobsledError } from '../../src/errors.js'
import type { SimDisk, SimFaults } from '../../src/io/index.js'

/** A seed that has not ended after this long is a hang (a CI seed takes a few ms). */
export const HANG_MS = 20_000

export interface Variant {
  name: string
  device: SimFaults
}

/** The four variants, with the misdirect-by-a-segment stride of the workload's segments. */
export function variants(prefix: string, segmentBytes: number): Variant[] {
  return [
    { name: `${prefix}-non-psow`, device: { nonPsowOdds: 0.5 } },
    { name: `${prefix}-misdirect-sector`, device: { misdirectOdds: 0.02, misdirectStrideBytes: 512 } },
    {
      name: `${prefix}-misdirect-segment`,
      device: { misdirectOdds: 0.02, misdirectStrideBytes: segmentBytes },
    },
    { name: `${prefix}-lost-write`, device: { lostWriteOdds: 0.02 } },
  ]
}

export type Verdict = 'ok' | 'acked_lost' | 'detected' | 'silent_wrong' | 'crash' | 'hang'

/**
 * What a run reports: nothing wrong, only an acknowledged tail missing, wrong data, or a
 * typed error it saw without it being thrown at the caller (background work's error).
 */
export interface RunResult {
  kind?: 'acked_lost' | 'wrong' | 'detected'
  violation?: string
}

/** Runs one seed under the hang deadline and sorts its end into a verdict. */
export async function judge(run: () => Promise<RunResult>): Promise<{ verdict: Verdict; detail: string }> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<'hang'>((resolve) => {
    timer = setTimeout(() => resolve('hang'), HANG_MS)
  })
  try {
    const o = await Promise.race([run(), hang])
    if (o === 'hang') return { verdict: 'hang', detail: `no end after ${HANG_MS} ms` }
    if (o.kind === 'wrong') return { verdict: 'silent_wrong', detail: o.violation ?? '' }
    if (o.kind === 'acked_lost') return { verdict: 'acked_lost', detail: o.violation ?? '' }
    if (o.kind === 'detected') return { verdict: 'detected', detail: 'BOBSLED_CORRUPTION (background)' }
    return { verdict: 'ok', detail: '' }
  } catch (e) {
    if (isBobsledError(e) && !(e instanceof InvariantError)) return { verdict: 'detected', detail: e.code }
    return { verdict: 'crash', detail: (e as Error)?.stack ?? String(e) }
  } finally {
    clearTimeout(timer)
  }
}

/** Verdict counts over a variant's seeds, with the faults the disks injected. */
export class Tally {
  readonly count: Record<Verdict, number> = {
    ok: 0,
    acked_lost: 0,
    detected: 0,
    silent_wrong: 0,
    crash: 0,
    hang: 0,
  }
  readonly codes = new Map<string, number>()
  readonly injected = { nonPsowSectors: 0, misdirectedWrites: 0, lostWrites: 0 }
  faultySeeds = 0
  /** Seeds that broke a gate (silent_wrong, crash, hang), with the replay seed. */
  readonly bad: string[] = []

  add(seed: number, r: { verdict: Verdict; detail: string }, lastDisk: SimDisk | undefined): void {
    this.count[r.verdict]++
    if (r.verdict === 'detected') this.codes.set(r.detail, (this.codes.get(r.detail) ?? 0) + 1)
    if (r.verdict === 'silent_wrong' || r.verdict === 'crash' || r.verdict === 'hang')
      this.bad.push(`seed=${seed} (BOBSLED_SEED=${seed}) ${r.verdict}: ${r.detail}`)
    const i = lastDisk?.injected
    if (i !== undefined) {
      this.injected.nonPsowSectors += i.nonPsowSectors
      this.injected.misdirectedWrites += i.misdirectedWrites
      this.injected.lostWrites += i.lostWrites
      if (i.nonPsowSectors + i.misdirectedWrites + i.lostWrites > 0) this.faultySeeds++
    }
  }

  get injectedTotal(): number {
    return this.injected.nonPsowSectors + this.injected.misdirectedWrites + this.injected.lostWrites
  }

  /** The test's RELIABILITY line. */
  line(name: string, seeds: readonly number[], extra = ''): string {
    const c = this.count
    const detectedBy = [...this.codes].map(([code, n]) => `${code}:${n}`).join(',') || '-'
    return (
      `RELIABILITY ${name} seeds=${seeds.length}${extra} injected=${this.injectedTotal} seeds_with_faults=${this.faultySeeds} ` +
      `ok=${c.ok} acked_lost=${c.acked_lost} detected=${c.detected} (${detectedBy}) ` +
      `silent_wrong=${c.silent_wrong} crashes=${c.crash} hangs=${c.hang} seed=${seeds[0]}`
    )
  }
}
