// Fail-at-N over every IO operation kind of the simulated disk. A fixed workload (appends,
// a batch, a blob, awaited and unawaited flushes, a read, truncateBefore, close) runs with
// the N-th operation of one kind failing. Proven, per case:
//  - every rejection is a typed bobsled error (untyped = 0), and an injected IO fault is
//    never reported as corruption;
//  - after a failed write or datasync the instance is poisoned: `failure` is set, append /
//    appendBatch / appendLarge / flush / makeStable all reject with that same error, the
//    stable LSN never moves again, no flush resolves for data not stable at the failure,
//    and no datasync is issued after a failed one (fsyncgate: never retry);
//  - the database reopens afterwards, in the same process (fault cleared, no crash) and
//    after a power loss, with every acknowledged record present, a consecutive run, no
//    phantom; and after the same-process reopen, new acknowledged records survive a crash.
// BOBSLED_SEED=<n> replays one seed; failures print it. BOBSLED_SOAK=1 tries every N (up to
// 500 per kind) over 20 disk seeds per scenario.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isBobsledError, type StorageError } from '../../src/errors.js'
import { type FaultCode, type OpKind, SimDisk } from '../../src/io/index.js'
import { type FailpointName, Failpoints, Log } from '../../src/log/index.js'
import { encodeRecord } from '../crash/log-records.js'
import {
  baseSeed,
  checkRun,
  describeError,
  mixSeed,
  ProbeStorage,
  TimeoutError,
  turns,
  withTimeout,
} from '../helpers/log-faults.js'

const SEGMENT_BYTES = 1024
const KINDS: readonly OpKind[] = [
  'open',
  'read',
  'write',
  'datasync',
  'truncate',
  'rename',
  'unlink',
  'syncDir',
  'mkdir',
  'close',
  'list',
  'stat',
]
/** Most values of N tried per kind and scenario; spread over 0..K when K is larger. */
const soak = process.env.BOBSLED_SOAK === '1'
const MAX_N_PER_KIND = soak ? 500 : 20
/** Disk seeds per scenario (latency and reordering differ per seed). */
const SEEDS_PER_SCENARIO = process.env.BOBSLED_SEED !== undefined ? 1 : soak ? 20 : 3
const CASE_TIMEOUT_MS = 5000
const SEED = baseSeed(1)

let unhandled = 0
process.on('unhandledRejection', (e) => {
  unhandled++
  console.error(`unhandled rejection seed=${SEED}: ${describeError(e)}`)
})

function openLog(
  storage: ProbeStorage | ReturnType<SimDisk['storage']>,
  failpoints?: Failpoints,
): Promise<Log> {
  return Log.open('db', { storage, segmentBytes: SEGMENT_BYTES, flushEveryMs: 0, failpoints })
}

async function readAll(log: Log): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const r of log.iterFrom(0)) out.push(r.data)
  return out
}

// ---- the base state of the "existing" scenario ----

interface Base {
  disk: SimDisk
  /** Records recovered from it (seq 0..count-1). */
  count: number
  /** Highest seq acknowledged before the crash that made it. */
  acked: number
}

/**
 * A log with acknowledged records, a blob, an unsynced tail cut by a power loss, and a
 * partial slot (torn file growth) at the end, so recovery has to zero, truncate and sync.
 */
async function makeBase(seed: number): Promise<Base> {
  const disk0 = new SimDisk({ seed, trace: true })
  const log = await openLog(disk0.storage('db'))
  let seq = 0
  for (; seq < 8; seq++) log.append(encodeRecord(seq, 0, 1, 40 + seq * 13))
  await log.flush()
  await log.appendLarge(encodeRecord(seq++, 0, 1, log.maxInlineBytes + 200))
  log.appendBatch([encodeRecord(seq, 0, 2, 30), encodeRecord(seq + 1, 1, 2, 31)])
  seq += 2
  await log.flush()
  const acked = seq - 1
  for (let i = 0; i < 4; i++, seq++) log.append(encodeRecord(seq, 0, 1, 100))
  await log.makeDurable(log.maxReservedLsn)
  // The power goes with the last four records written but not synced. The machine keeps
  // all of them, but the last one torn (one byte damaged): a torn tail above the witness,
  // which recovery must cut and zero. A partial slot (torn file growth) follows.
  const torn = disk0.readFileSync('db/log')
  const lastLsn = log.maxReservedLsn - 60 // inside the body of the last record
  torn[lastLsn] = (torn[lastLsn] as number) ^ 0x5a
  const disk = disk0.crash({ seed: mixSeed(seed, 1) })
  const grown = new Uint8Array(torn.length + (SEGMENT_BYTES - (torn.length % SEGMENT_BYTES)) + 20)
  grown.set(torn)
  disk.writeFileRaw('db/log', grown)
  const probe = await openLog(disk.clone().storage('db'))
  const check = checkRun(await readAll(probe), 0)
  await probe.close()
  if ('violation' in check) throw new Error(`seed=${seed}: base state is broken: ${check.violation}`)
  assert.ok(check.last >= acked, `seed=${seed}: base lost acknowledged records`)
  return { disk, count: check.last + 1, acked }
}

// ---- one case ----

interface CaseResult {
  untyped: string[]
  violations: string[]
  flushAfterFailure: number
  syncAfterFailedSync: number
  otherSyncs: number
  reopens: number
  reopenOk: number
  /** The poisoning error, if any. */
  failure: StorageError | undefined
  errors: unknown[]
  acked: number
  /** Highest seq the log may start at on reopen: the one truncateBefore keeps, else 0. */
  maxFirst: number
}

interface CaseSpec {
  label: string
  /** Disk to run on (already carrying the fault). */
  disk: SimDisk
  /** First seq the workload appends (records already in the log before it). */
  startSeq: number
  /** Acknowledged before the workload. */
  acked: number
  failpoints?: Failpoints
  /** The fault code expected in typed errors from the disk (EIO → BOBSLED_IO ...). */
  code?: FaultCode
}

const IO_CODES = new Set(['BOBSLED_IO', 'BOBSLED_DISK_FULL', 'BOBSLED_FAILPOINT'])

async function runWorkload(spec: CaseSpec): Promise<CaseResult> {
  const r: CaseResult = {
    untyped: [],
    violations: [],
    flushAfterFailure: 0,
    syncAfterFailedSync: 0,
    otherSyncs: 0,
    reopens: 0,
    reopenOk: 0,
    failure: undefined,
    errors: [],
    acked: spec.acked,
    maxFirst: 0,
  }
  let log: Log | undefined
  /** The stable LSN when the first write or datasync failed; it must never move after. */
  let stableAtFailure: number | undefined
  const snapshot = (): void => {
    if (stableAtFailure === undefined && log !== undefined) stableAtFailure = log.stableLsn
  }
  const probe = new ProbeStorage(spec.disk.storage('db'))
  const note = (what: string, e: unknown): void => {
    r.errors.push(e)
    if (!isBobsledError(e)) r.untyped.push(`${what}: ${describeError(e)}`)
    else if (!IO_CODES.has(e.code) && e.code !== 'BOBSLED_CLOSED') {
      // An injected IO fault is never corruption, a version problem or a lock.
      r.violations.push(`${what}: unexpected ${describeError(e)}`)
    }
  }
  const ack = (upTo: number): void => {
    r.acked = Math.max(r.acked, upTo)
  }
  const pending: Promise<unknown>[] = []
  /** Tracks a flush-like promise that acknowledges `upTo` when it resolves with `target`. */
  const watchFlush = (
    what: string,
    p: Promise<unknown>,
    target: () => number,
    upTo: number,
  ): Promise<void> => {
    const t = target()
    return p.then(
      () => {
        if (stableAtFailure !== undefined && t > stableAtFailure) {
          r.flushAfterFailure++
          r.violations.push(`${what}: resolved for LSN ${t} after a failure at stable ${stableAtFailure}`)
        }
        ack(upTo)
      },
      (e) => note(what, e),
    )
  }
  let seq = spec.startSeq
  const step = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn()
    } catch (e) {
      note(what, e)
    }
  }
  try {
    log = await openLog(probe, spec.failpoints)
    // The moment the instance is poisoned: from then on the stable LSN must not move.
    const target = log as unknown as { poison: (cause: unknown, what: string) => void }
    const poison = target.poison.bind(log)
    target.poison = (cause, what) => {
      snapshot()
      probe.markPoisoned()
      poison(cause, what)
    }
  } catch (e) {
    note('open', e)
  }
  if (log !== undefined) {
    const L = log
    // 1. read what is there
    await step('iterFrom', async () => {
      const c = checkRun(await readAll(L), 0)
      if ('violation' in c) r.violations.push(`iterFrom at open: ${c.violation}`)
      else if (c.last !== spec.startSeq - 1)
        r.violations.push(`iterFrom at open: last seq ${c.last}, expected ${spec.startSeq - 1}`)
    })
    // 2. single appends, awaited flush
    await step('append', () => {
      for (let i = 0; i < 4; i++) {
        L.append(encodeRecord(seq, 0, 1, 20 + i * 30))
        seq++
      }
    })
    await step('flush', () => watchFlush('flush', L.flush(), () => L.maxReservedLsn, seq - 1))
    // 3. a batch, an unawaited flush, more appends, a blob, an awaited flush
    await step('appendBatch', () => {
      L.appendBatch([
        encodeRecord(seq, 0, 3, 50),
        encodeRecord(seq + 1, 1, 3, 60),
        encodeRecord(seq + 2, 2, 3, 70),
      ])
      seq += 3
    })
    await step('flush (unawaited)', () => {
      pending.push(watchFlush('flush (unawaited)', L.flush(), () => L.maxReservedLsn, seq - 1))
    })
    await step('append', () => {
      for (let i = 0; i < 2; i++) {
        L.append(encodeRecord(seq, 0, 1, 90))
        seq++
      }
    })
    await step('appendLarge', async () => {
      const s = seq
      const p = L.appendLarge(encodeRecord(s, 0, 1, L.maxInlineBytes + 300))
      seq++
      try {
        await p
      } catch (e) {
        seq-- // not appended
        throw e
      }
    })
    await step('flush', () => watchFlush('flush', L.flush(), () => L.maxReservedLsn, seq - 1))
    // 4. enough to fill several segments; remember an LSN in the middle
    let midLsn = -1
    let midSeq = -1
    await step('append many', () => {
      for (let i = 0; i < 18; i++) {
        const lsn = L.append(encodeRecord(seq, 0, 1, 110 + ((i * 37) % 70)))
        if (i === 12) {
          midLsn = lsn
          midSeq = seq
        }
        seq++
      }
    })
    await step('flush', () => watchFlush('flush', L.flush(), () => L.maxReservedLsn, seq - 1))
    // 5. read one record back
    if (midLsn >= 0) {
      await step('read', async () => {
        const rec = await L.read(midLsn)
        const want = encodeRecord(midSeq, 0, 1, 110 + ((12 * 37) % 70))
        if (Buffer.compare(rec.data, want) !== 0) r.violations.push(`read(${midLsn}) returned wrong bytes`)
      })
    }
    // 6. truncate the front, append after it, makeStable
    if (midLsn >= 0) {
      r.maxFirst = midSeq
      await step('truncateBefore', () => L.truncateBefore(midLsn))
    }
    await step('append + makeStable', async () => {
      let last = -1
      for (let i = 0; i < 3; i++) {
        last = L.append(encodeRecord(seq, 0, 1, 25))
        seq++
      }
      await watchFlush('makeStable', L.makeStable(last), () => last, seq - 1)
    })
    // 7. every pending call settles (none hangs)
    await Promise.all(pending)
    // 8. sticky failure: every later call fails with the same typed error
    if (L.failure !== undefined) {
      r.failure = L.failure
      const f = L.failure
      const expectSame = async (what: string, fn: () => unknown): Promise<void> => {
        try {
          await fn()
          r.violations.push(`${what} succeeded on a poisoned log`)
        } catch (e) {
          if (e !== f) r.violations.push(`${what} failed with ${describeError(e)}, not the poisoning error`)
        }
      }
      await expectSame('append', () => L.append(encodeRecord(seq, 0, 1, 1)))
      await expectSame('appendBatch', () =>
        L.appendBatch([encodeRecord(seq, 0, 2, 1), encodeRecord(seq + 1, 1, 2, 1)]),
      )
      await expectSame('appendLarge', () => L.appendLarge(new Uint8Array(L.maxInlineBytes + 10)))
      await expectSame('flush', () => L.flush())
      await expectSame('makeStable', () => L.makeStable(L.maxReservedLsn))
      await expectSame('makeStable(0)', () => L.makeStable(0))
      await expectSame('truncateBefore', () => L.truncateBefore(0))
      if (!isBobsledError(f) || !IO_CODES.has(f.code)) r.violations.push(`failure is ${describeError(f)}`)
      if (f.code !== 'BOBSLED_FAILPOINT' && f.cause === undefined)
        r.violations.push('the IoError carries no cause')
      if (spec.code === 'ENOSPC' && f.code !== 'BOBSLED_DISK_FULL' && f.code !== 'BOBSLED_FAILPOINT') {
        r.violations.push(`ENOSPC gave ${f.code}, not BOBSLED_DISK_FULL`)
      }
      if (stableAtFailure !== undefined && L.stableLsn !== stableAtFailure) {
        r.violations.push(`stable LSN moved from ${stableAtFailure} to ${L.stableLsn} after the failure`)
      }
    }
    await step('close', () => L.close())
    if (L.failure !== undefined && r.failure === undefined) r.failure = L.failure
  }
  await turns(10) // stray simulated ops of the failed instance finish
  r.syncAfterFailedSync = probe.syncAfterFailedSync
  r.otherSyncs = probe.otherSyncsAfterFailedSync
  for (const v of probe.afterFailure) r.violations.push(v)
  if (r.untyped.length > 0) r.violations.push(...r.untyped)
  return r
}

/** Reopens `disk` and checks: every acknowledged record, a consecutive run, no phantom. */
async function verify(
  disk: SimDisk,
  acked: number,
  maxFirst: number,
  what: string,
): Promise<string | undefined> {
  let log: Log
  try {
    log = await openLog(disk.storage('db'))
  } catch (e) {
    return `${what}: reopen failed: ${describeError(e)}`
  }
  try {
    const c = checkRun(await readAll(log), maxFirst)
    if ('violation' in c) return `${what}: ${c.violation}`
    if (c.last < acked) return `${what}: acknowledged seq ${acked} lost (log ends at ${c.last})`
    return undefined
  } catch (e) {
    return `${what}: reading failed: ${describeError(e)}`
  } finally {
    await log.close().catch(() => {})
  }
}

/** After the case: reopen in-process, after a power loss, and in-process then power loss. */
async function reopenChecks(spec: CaseSpec, r: CaseResult, seed: number): Promise<void> {
  const disk = spec.disk
  disk.setFaults({ failAt: undefined, enospcAfterBytes: undefined, shortWrites: false })
  spec.failpoints?.clear()
  const maxFirst = r.maxFirst
  const power = disk.clone().crash({ seed: mixSeed(seed, 7) })
  const checks: Array<[SimDisk, string]> = [
    [power, 'reopen after power loss'],
    [disk, 'reopen in the same process'],
  ]
  for (const [d, what] of checks) {
    r.reopens++
    const v = await verify(d, r.acked, maxFirst, what)
    if (v === undefined) r.reopenOk++
    else r.violations.push(v)
  }
}

/**
 * The same-process reopen goes on writing and acknowledging; a power loss afterwards must
 * keep what it acknowledged. Returns a violation or undefined.
 */
async function writeThenCrash(disk: SimDisk, r: CaseResult, seed: number): Promise<string | undefined> {
  let acked = r.acked
  try {
    const log = await openLog(disk.storage('db'))
    let last = -1
    for await (const rec of log.iterFrom(0)) last = decodeSeq(rec.data)
    for (let i = 0; i < 3; i++) log.append(encodeRecord(last + 1 + i, 0, 1, 70))
    await log.flush()
    acked = Math.max(acked, last + 3)
    const after = disk.crash({ seed: mixSeed(seed, 8) })
    await log.close().catch(() => {})
    return await verify(after, acked, r.maxFirst, 'same-process reopen, more writes, then power loss')
  } catch (e) {
    return `same-process reopen and write: ${describeError(e)}`
  }
}

function decodeSeq(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0)
}

/** Ops of `kind` the workload issues with no fault (so N = 0..K-1 each hit one). */
function countKind(disk: SimDisk, from: number, kind: OpKind): number {
  return disk.trace.slice(from).filter((t) => t.kind === kind).length
}

function sampleN(k: number): number[] {
  if (k <= MAX_N_PER_KIND) return Array.from({ length: k + 1 }, (_, i) => i) // k: no fault fires
  const out = new Set<number>([0, 1, k - 1])
  for (let i = 0; out.size < MAX_N_PER_KIND; i++) out.add(Math.round((i * (k - 1)) / (MAX_N_PER_KIND - 1)))
  return [...out].sort((a, b) => a - b)
}

interface Totals {
  cases: number
  untyped: number
  flushAfterFailure: number
  syncAfterFailedSync: number
  otherSyncs: number
  reopens: number
  reopenOk: number
  poisoned: number
  failures: string[]
}

async function runCase(
  scenario: 'fresh' | 'existing',
  base: Base | undefined,
  kind: OpKind | undefined,
  n: number,
  code: FaultCode,
  seed: number,
  t: Totals,
  extra: {
    failpoints?: Failpoints
    faults?: Parameters<SimDisk['setFaults']>[0]
    after?: (disk: SimDisk, r: CaseResult) => Promise<void>
  } = {},
): Promise<CaseResult> {
  const disk = base === undefined ? new SimDisk({ seed, trace: true }) : base.disk.clone()
  if (kind !== undefined) disk.setFaults({ failAt: { op: n, kinds: [kind], code } })
  if (extra.faults !== undefined) disk.setFaults(extra.faults)
  const spec: CaseSpec = {
    label: `seed=${seed} scenario=${scenario} kind=${kind ?? '-'} n=${n} code=${code}`,
    disk,
    startSeq: base?.count ?? 0,
    acked: base?.acked ?? -1,
    failpoints: extra.failpoints,
    code,
  }
  let r: CaseResult
  try {
    r = await withTimeout(
      (async () => {
        const res = await runWorkload(spec)
        await reopenChecks(spec, res, seed)
        await extra.after?.(disk, res)
        return res
      })(),
      CASE_TIMEOUT_MS,
      spec.label,
    )
  } catch (e) {
    const hang = e instanceof TimeoutError
    t.cases++
    t.failures.push(`${spec.label}: ${hang ? 'HANG' : 'harness error'} ${describeError(e)}`)
    throw new Error(`${spec.label}: ${describeError(e)}`)
  }
  t.cases++
  t.untyped += r.untyped.length
  t.flushAfterFailure += r.flushAfterFailure
  t.syncAfterFailedSync += r.syncAfterFailedSync
  t.otherSyncs += r.otherSyncs
  t.reopens += r.reopens
  t.reopenOk += r.reopenOk
  if (r.failure !== undefined) t.poisoned++
  for (const v of r.violations) t.failures.push(`${spec.label}: ${v}`)
  return r
}

function newTotals(): Totals {
  return {
    cases: 0,
    untyped: 0,
    flushAfterFailure: 0,
    syncAfterFailedSync: 0,
    otherSyncs: 0,
    reopens: 0,
    reopenOk: 0,
    poisoned: 0,
    failures: [],
  }
}

function assertClean(t: Totals, seed: number): void {
  if (t.failures.length > 0) {
    assert.fail(`seed=${seed}: ${t.failures.length} violation(s):\n${t.failures.slice(0, 15).join('\n')}`)
  }
  assert.equal(unhandled, 0, `seed=${seed}: unhandled rejections`)
}

test('fail-at-N for every IO op kind: typed errors, sticky failure, reopen keeps every acknowledged record', async () => {
  const t = newTotals()
  const base = await makeBase(mixSeed(SEED, 100))
  for (const [scenario, seed] of (['fresh', 'existing'] as const).flatMap((sc) =>
    Array.from(
      { length: SEEDS_PER_SCENARIO },
      (_, i) => [sc, mixSeed(SEED + i, sc === 'fresh' ? 1 : 2)] as const,
    ),
  )) {
    const b = scenario === 'existing' ? base : undefined
    // Calibrate: the same run with no fault; it must pass the same checks.
    const calib = b === undefined ? new SimDisk({ seed, trace: true }) : b.disk.clone()
    const from = calib.trace.length
    const clean = await runWorkload({
      label: 'calibration',
      disk: calib,
      startSeq: b?.count ?? 0,
      acked: b?.acked ?? -1,
    })
    assert.deepEqual(clean.violations, [], `seed=${seed} scenario=${scenario}: the fault-free run fails`)
    assert.equal(clean.errors.length, 0, `seed=${seed} scenario=${scenario}: the fault-free run had errors`)
    for (const kind of KINDS) {
      const k = countKind(calib, from, kind)
      const codes: FaultCode[] = kind === 'write' ? ['EIO', 'ENOSPC'] : ['EIO']
      for (const code of codes) {
        for (const n of sampleN(k)) await runCase(scenario, b, kind, n, code, seed, t)
      }
    }
  }
  const pct = ((100 * t.reopenOk) / Math.max(1, t.reopens)).toFixed(1)
  console.log(
    `RELIABILITY log-fail-at-n kinds=${KINDS.length} cases=${t.cases} poisoned=${t.poisoned} untyped=${t.untyped} flush_after_failed_sync=${t.flushAfterFailure} sync_after_failed_sync=${t.syncAfterFailedSync} blob_syncs_after_failed_sync=${t.otherSyncs} reopen_ok=${pct}% reopens=${t.reopens} seed=${SEED}`,
  )
  assertClean(t, SEED)
  assert.ok(
    t.poisoned > 20,
    `seed=${SEED}: only ${t.poisoned} cases poisoned the log: the faults do not bite`,
  )
})

test('ENOSPC after a byte budget: DiskFullError (BOBSLED_DISK_FULL), poisoned, reopen keeps acknowledged records', async () => {
  const t = newTotals()
  const seed = mixSeed(SEED, 3)
  let diskFull = 0
  for (const budget of [0, 100, 600, 1500, 2500, 4000, 6000, 9000]) {
    const r = await runCase('fresh', undefined, undefined, 0, 'ENOSPC', seed, t, {
      faults: { enospcAfterBytes: budget },
    })
    const codes = r.errors.filter(isBobsledError).map((e) => e.code)
    if (codes.includes('BOBSLED_DISK_FULL')) diskFull++
    for (const c of codes) {
      if (c !== 'BOBSLED_DISK_FULL')
        t.failures.push(`seed=${seed} budget=${budget}: error ${c}, expected BOBSLED_DISK_FULL`)
    }
  }
  assertClean(t, seed)
  assert.ok(diskFull >= 6, `seed=${seed}: only ${diskFull} budgets produced DiskFullError`)
})

test('short writes: the workload fully succeeds (writes are looped)', async () => {
  const t = newTotals()
  for (let i = 0; i < 8; i++) {
    const seed = mixSeed(SEED, 40 + i)
    const r = await runCase('fresh', undefined, undefined, 0, 'EIO', seed, t, {
      faults: { shortWrites: true },
    })
    assert.equal(
      r.errors.length,
      0,
      `seed=${seed}: short writes made calls fail: ${r.errors.map(describeError).join('; ')}`,
    )
    assert.equal(r.failure, undefined, `seed=${seed}`)
  }
  assertClean(t, SEED)
})

const FAILPOINTS: readonly FailpointName[] = [
  'datasync',
  'buffer write',
  'buffer write post',
  'blob write',
  'blob sync',
  'segment zero',
  'recovery zero',
  'conf write',
]

test('named failpoints: typed error, poison or a clean failed open, reopen recovers every acknowledged record', async () => {
  const t = newTotals()
  const base = await makeBase(mixSeed(SEED, 100))
  const fired = new Map<string, number>()
  for (const name of FAILPOINTS) {
    for (const scenario of ['fresh', 'existing'] as const) {
      for (const skip of [0, 1, 2, 5]) {
        const seed = mixSeed(SEED, 50)
        const failpoints = new Failpoints()
        failpoints.set(name, { skip })
        const r = await runCase(
          scenario,
          scenario === 'existing' ? base : undefined,
          undefined,
          skip,
          'EIO',
          seed,
          t,
          {
            failpoints,
          },
        )
        const hit = r.errors.some((e) => isBobsledError(e) && e.code === 'BOBSLED_FAILPOINT')
        if (hit) fired.set(name, (fired.get(name) ?? 0) + 1)
        if (hit && name !== 'recovery zero' && name !== 'conf write' && r.failure === undefined) {
          t.failures.push(
            `seed=${seed} failpoint=${name} skip=${skip} ${scenario}: fired without poisoning the log`,
          )
        }
      }
    }
  }
  console.log(
    `RELIABILITY log-failpoints names=${FAILPOINTS.length} cases=${t.cases} fired=${[...fired].map(([k, v]) => `${k.replace(/ /g, '_')}:${v}`).join(',')} untyped=${t.untyped} flush_after_failed_sync=${t.flushAfterFailure} reopen_ok=${((100 * t.reopenOk) / Math.max(1, t.reopens)).toFixed(1)}% seed=${SEED}`,
  )
  assertClean(t, SEED)
  for (const name of FAILPOINTS)
    assert.ok((fired.get(name) ?? 0) > 0, `seed=${SEED}: failpoint "${name}" never fired`)
})

test('after a failed datasync, a same-process reopen that goes on writing keeps its acknowledged records through a power loss', async () => {
  const t = newTotals()
  const seed = mixSeed(SEED, 1)
  let lost = 0
  let cases = 0
  for (const n of sampleN(14)) {
    await runCase('fresh', undefined, 'datasync', n, 'EIO', seed, t, {
      after: async (disk, r) => {
        cases++
        const v = await writeThenCrash(disk, r, seed)
        if (v !== undefined) {
          lost++
          t.failures.push(`seed=${seed} kind=datasync n=${n}: ${v}`)
        }
      },
    })
  }
  console.log(`RELIABILITY log-fsyncgate-reopen cases=${cases} acked_lost_or_corrupt=${lost} seed=${SEED}`)
  assertClean(t, SEED)
})
