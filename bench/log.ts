// The log benchmark (`npm run bench:log`): bobsled's log against raw Node file I/O, every
// figure a ratio of two measurements taken in the same process run (issue: "Benchmark").
//
// Baselines (fs.promises FileHandle, nothing else):
//   raw write  — N bytes in 1 MiB sequential writes to a new file, then one datasync, where
//                N is the size of the bobsled log file of the same figure.
//   raw sync   — one writer: write 4 KiB at the end of a new file, datasync, repeat.
//   raw read   — the bobsled log file read sequentially in 1 MiB reads, after a warm read
//                (page cache hot for both sides; nothing is dropped).
//   raw pread  — one awaited 128-byte read at the file position of each record that
//                read-random reads (the 100 B log has no truncation: slot = segment, so the
//                position is the LSN); page cache hot for both sides.
// Bytes for bulk and reopen figures are the size of the log file on disk after flush
// (padding and headers included), so both sides move the same bytes. MB = 10^6 bytes.
//
// Disks and neighbours are noisy, so every measurement runs `rounds` times, bobsled and its
// baseline alternating (neither always first), and each side keeps its best round.
//
// Flags: --smoke (tiny sizes, about a second; the test suite runs it), --json (also print a
// JSON summary), --rounds=N. The exit code is 0 when goals are missed: this is a report.

import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'
import { Log, type LogMetrics } from '../src/index.js'

const MiB = 1024 * 1024
const CHUNK = MiB
/** Appends between whenWritable() checks in the bulk loops. */
const BACKPRESSURE_EVERY = 1000

interface Sizes {
  records100: number
  bytes4k: number
  durableMs: number
  warmMs: number
  writers: number
  /** Random Log.read() calls (and raw preads) per round of read-random. */
  randomReads: number
  /** Each measurement is repeated this many times (raw and bobsled alternating); best kept. */
  rounds: number
}

const FULL: Sizes = {
  records100: 1_000_000,
  bytes4k: 1024 * MiB,
  durableMs: 2000,
  warmMs: 200,
  writers: 64,
  randomReads: 50_000,
  rounds: 3,
}
const SMOKE: Sizes = {
  records100: 20_000,
  bytes4k: 8 * MiB,
  durableMs: 100,
  warmMs: 20,
  writers: 64,
  randomReads: 2_000,
  rounds: 2,
}

export interface Figure {
  name: string
  unit: string
  bobsled: number
  baselineName: string
  baseline: number
  ratio: number
  goal: number
  pass: boolean
  detail: Record<string, unknown>
}

const args = new Set(process.argv.slice(2))
const smoke = args.has('--smoke')
const wantJson = args.has('--json')
const roundsArg = process.argv.find((a) => a.startsWith('--rounds='))
const sizes: Sizes = { ...(smoke ? SMOKE : FULL) }
if (roundsArg !== undefined) sizes.rounds = Math.max(1, Number.parseInt(roundsArg.slice(9), 10) || 1)

let root: string | undefined

function now(): number {
  return performance.now()
}

function mb(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000)
}

function perSec(count: number, ms: number): number {
  return count / (ms / 1000)
}

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`
  if (v >= 100) return v.toFixed(0)
  if (v >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

function line(f: Figure): string {
  const cols = [
    f.name.padEnd(14),
    `bobsled ${fmt(f.bobsled)} ${f.unit}`.padEnd(24),
    `${f.baselineName} ${fmt(f.baseline)} ${f.unit}`.padEnd(26),
    `ratio ${f.ratio.toFixed(2)}`.padEnd(13),
    `goal >= ${f.goal}`.padEnd(13),
    f.pass ? 'PASS' : 'MISS',
  ]
  return cols.join(' ')
}

function figure(
  name: string,
  unit: string,
  bobsled: number,
  baselineName: string,
  baseline: number,
  goal: number,
  detail: Record<string, unknown>,
): Figure {
  const ratio = bobsled / baseline
  const f: Figure = { name, unit, bobsled, baselineName, baseline, ratio, goal, pass: ratio >= goal, detail }
  console.log(line(f))
  return f
}

async function freshDir(name: string): Promise<string> {
  const d = path.join(root as string, name)
  await fsp.rm(d, { recursive: true, force: true })
  await fsp.mkdir(d)
  return d
}

async function fileSize(p: string): Promise<number> {
  return (await fsp.stat(p)).size
}

function record(bytes: number): Uint8Array {
  const b = new Uint8Array(bytes)
  randomFillSync(b)
  return b
}

function pick(m: LogMetrics): Record<string, unknown> {
  return {
    writes: m.writes,
    bytesWritten: m.bytesWritten,
    syncs: m.syncs,
    syncMsTotal: Math.round(m.syncMsTotal),
    syncMsMax: Math.round(m.syncMsMax * 10) / 10,
    stalls: m.stalls,
    stallMsTotal: Math.round(m.stallMsTotal),
    segmentsOpened: m.segmentsOpened,
    waitersPerSync: m.waitersPerSync,
  }
}

// ---- baselines ----

/** Writes `bytes` to a new file in 1 MiB writes, then one datasync. Returns ms. */
async function rawWrite(bytes: number): Promise<number> {
  const p = path.join(root as string, 'raw-write')
  const buf = Buffer.allocUnsafeSlow(CHUNK)
  randomFillSync(buf)
  const fh = await fsp.open(p, 'w')
  try {
    const t0 = now()
    let pos = 0
    while (pos < bytes) {
      const n = Math.min(CHUNK, bytes - pos)
      let done = 0
      while (done < n) done += (await fh.write(buf, done, n - done, pos + done)).bytesWritten
      pos += n
    }
    await fh.datasync()
    return now() - t0
  } finally {
    await fh.close()
    await fsp.rm(p, { force: true })
  }
}

/** Reads a file sequentially in 1 MiB reads. Returns ms. */
async function rawRead(p: string): Promise<number> {
  const buf = Buffer.allocUnsafeSlow(CHUNK)
  const fh = await fsp.open(p, 'r')
  try {
    const t0 = now()
    let pos = 0
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos)
      if (bytesRead === 0) break
      pos += bytesRead
    }
    return now() - t0
  } finally {
    await fh.close()
  }
}

/**
 * Runs `writers` loops of `op` for warmMs + runMs; counts the ops that finish inside the
 * measured window (after the warm-up). Same method for raw and bobsled.
 */
async function timedOps(writers: number, op: () => Promise<void>): Promise<number> {
  const t0 = now()
  const from = t0 + sizes.warmMs
  const until = from + sizes.durableMs
  let ops = 0
  const loop = async (): Promise<void> => {
    while (now() < until) {
      await op()
      const t = now()
      if (t >= from && t <= until) ops++
    }
  }
  await Promise.all(Array.from({ length: writers }, loop))
  return ops
}

/** Bytes a synced-overwrite baseline cycles over (written and synced once before it runs). */
const OVERWRITE_SPAN_BYTES = 64 * 1024 * 1024

/**
 * Records/s of one writer that writes `group` 4 KiB records in one write and makes them
 * durable, then repeats. Appending (the default): write at the end of a new file, then
 * datasync; group 1 is the durable-1 baseline, group = writers what group commit reaches
 * that way. `overwrite`: one write through an O_DSYNC descriptor over blocks already written
 * and synced (cycling over OVERWRITE_SPAN_BYTES): one trip to the thread pool and no file
 * growth to journal, the cheapest durable write Node has on this disk.
 */
async function rawSyncRate(group = 1, overwrite = false): Promise<number> {
  const p = path.join(root as string, 'raw-sync')
  const buf = Buffer.concat(Array.from({ length: group }, () => record(4096)))
  let span = Number.POSITIVE_INFINITY
  if (overwrite) {
    const zeros = Buffer.alloc(1024 * 1024)
    const init = await fsp.open(p, 'w')
    for (let at = 0; at < OVERWRITE_SPAN_BYTES; at += zeros.length)
      await init.write(zeros, 0, zeros.length, at)
    await init.datasync()
    await init.close()
    span = OVERWRITE_SPAN_BYTES - (OVERWRITE_SPAN_BYTES % buf.length)
  }
  const fh = overwrite
    ? await fsp.open(p, fs.constants.O_RDWR | fs.constants.O_DSYNC)
    : await fsp.open(p, 'w')
  let pos = 0
  try {
    const ops = await timedOps(1, async () => {
      await fh.write(buf, 0, buf.length, pos % span)
      pos += buf.length
      if (!overwrite) await fh.datasync()
    })
    return perSec(ops * group, sizes.durableMs)
  } finally {
    await fh.close()
    await fsp.rm(p, { force: true })
  }
}

// ---- bobsled ----

interface BulkResult {
  dir: string
  records: number
  ms: number
  fileBytes: number
  metrics: LogMetrics
}

/** Appends `count` records of `rec` to a new log, then one flush; closes the log. */
async function bulk(name: string, rec: Uint8Array, count: number): Promise<BulkResult> {
  const dir = await freshDir(name)
  const log = await Log.open(dir)
  const t0 = now()
  for (let i = 0; i < count; i++) {
    log.append(rec)
    if (i % BACKPRESSURE_EVERY === BACKPRESSURE_EVERY - 1) await log.whenWritable()
  }
  await log.flush()
  const ms = now() - t0
  const metrics = log.metrics()
  await log.close()
  return { dir, records: count, ms, fileBytes: await fileSize(path.join(dir, 'log')), metrics }
}

/** Times Log.open of an existing log (recovery reads and verifies all of it). Returns ms. */
async function reopen(dir: string, expectRecords: number): Promise<number> {
  const t0 = now()
  const log = await Log.open(dir)
  const ms = now() - t0
  const got = log.metrics().recoveredRecords
  await log.close()
  if (got !== expectRecords) throw new Error(`reopen recovered ${got} records, expected ${expectRecords}`)
  return ms
}

/** The LSNs of every record of the log in `dir`, and a seeded random sample of `n` of them. */
async function sampleLsns(dir: string, n: number): Promise<number[]> {
  const log = await Log.open(dir)
  const lsns: number[] = []
  try {
    for await (const r of log.iterFrom(0)) lsns.push(r.lsn)
  } finally {
    await log.close()
  }
  let x = 0x9e3779b9
  const out: number[] = []
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0
    out.push(lsns[x % lsns.length] as number)
  }
  return out
}

/** One awaited Log.read() per LSN. Returns ms. */
async function readRandom(dir: string, lsns: readonly number[]): Promise<number> {
  const log = await Log.open(dir)
  try {
    const t0 = now()
    for (const lsn of lsns) await log.read(lsn)
    return now() - t0
  } finally {
    await log.close()
  }
}

/** One awaited 128-byte pread at each LSN's file position. Returns ms. */
async function rawPread(file: string, lsns: readonly number[]): Promise<number> {
  const buf = Buffer.allocUnsafeSlow(128)
  const fh = await fsp.open(file, 'r')
  try {
    const t0 = now()
    for (const lsn of lsns) await fh.read(buf, 0, 128, lsn)
    return now() - t0
  } finally {
    await fh.close()
  }
}

interface DurableResult {
  rate: number
  metrics: LogMetrics
}

/** `writers` loops of append(4 KiB) + makeStable on a new log; ops/s over the window. */
async function durable(name: string, writers: number): Promise<DurableResult> {
  const dir = await freshDir(name)
  const log = await Log.open(dir)
  const rec = record(4096)
  try {
    const ops = await timedOps(writers, async () => {
      await log.makeStable(log.append(rec))
    })
    return { rate: perSec(ops, sizes.durableMs), metrics: log.metrics() }
  } finally {
    await log.close()
    await fsp.rm(dir, { recursive: true, force: true })
  }
}

function bestDurable(rs: DurableResult[]): DurableResult {
  return rs.reduce((a, b) => (b.rate > a.rate ? b : a))
}

function bestBulk(rs: BulkResult[]): BulkResult {
  return rs.reduce((a, b) => (b.fileBytes / b.ms > a.fileBytes / a.ms ? b : a))
}

/** Runs both sides of a round, the baseline first in odd rounds, so neither always goes first. */
async function alternate(
  round: number,
  bobsled: () => Promise<void>,
  raw: () => Promise<void>,
): Promise<void> {
  if (round % 2 === 0) {
    await bobsled()
    await raw()
  } else {
    await raw()
    await bobsled()
  }
}

// ---- the run ----

async function main(): Promise<number> {
  const tmp = os.tmpdir()
  const need = smoke ? 64 * MiB : 3 * 1024 * MiB
  const st = await fsp.statfs(tmp)
  const free = st.bavail * st.bsize
  if (free < need) {
    console.error(
      `bench:log needs ${(need / MiB).toFixed(0)} MiB free in ${tmp}, has ${(free / MiB).toFixed(0)} MiB`,
    )
    return 1
  }
  root = await fsp.mkdtemp(path.join(tmp, 'bobsled-bench-'))
  console.log(
    `bobsled log bench${smoke ? ' (--smoke)' : ''}: node ${process.version}, ${os.cpus().length} cpus, dir ${root}, ` +
      `${sizes.records100} x 100 B, ${(sizes.bytes4k / MiB).toFixed(0)} MiB of 4 KiB, ` +
      `durable ${sizes.durableMs} ms windows, best of ${sizes.rounds} rounds, default segment size, MB = 10^6 bytes`,
  )
  const figures: Figure[] = []
  try {
    // Bulk 100 B; the log of the last round is kept for reopen-1M.
    let b100: BulkResult | undefined
    const bulk100: BulkResult[] = []
    const raw100: number[] = []
    for (let r = 0; r < sizes.rounds; r++) {
      if (b100 !== undefined) await fsp.rm(b100.dir, { recursive: true, force: true })
      await alternate(
        r,
        async () => {
          b100 = await bulk('bulk-100', record(100), sizes.records100)
          bulk100.push(b100)
        },
        async () => {
          raw100.push(await rawWrite((b100 ?? bulk100[0] ?? { fileBytes: sizes.records100 * 106 }).fileBytes))
        },
      )
    }
    const best100 = bestBulk(bulk100)
    figures.push(
      figure(
        'bulk-100B',
        'MB/s',
        mb(best100.fileBytes, best100.ms),
        'raw',
        mb(best100.fileBytes, Math.min(...raw100)),
        0.5,
        {
          bytesBasis: 'log file size after flush',
          fileBytes: best100.fileBytes,
          records: best100.records,
          bobsledMs: bulk100.map((b) => b.ms),
          rawMs: raw100,
          metrics: pick(best100.metrics),
        },
      ),
    )

    // Bulk 4 KiB; the log of the last round is kept for reopen-1GiB.
    const rec4k = record(4096)
    const count4k = Math.ceil(sizes.bytes4k / rec4k.length)
    let b4k: BulkResult | undefined
    const bulk4k: BulkResult[] = []
    const raw4k: number[] = []
    for (let r = 0; r < sizes.rounds; r++) {
      if (b4k !== undefined) await fsp.rm(b4k.dir, { recursive: true, force: true })
      await alternate(
        r,
        async () => {
          b4k = await bulk('bulk-4k', rec4k, count4k)
          bulk4k.push(b4k)
        },
        async () => {
          raw4k.push(await rawWrite((b4k ?? bulk4k[0] ?? { fileBytes: sizes.bytes4k }).fileBytes))
        },
      )
    }
    const best4k = bestBulk(bulk4k)
    figures.push(
      figure(
        'bulk-4K',
        'MB/s',
        mb(best4k.fileBytes, best4k.ms),
        'raw',
        mb(best4k.fileBytes, Math.min(...raw4k)),
        0.8,
        {
          bytesBasis: 'log file size after flush',
          fileBytes: best4k.fileBytes,
          records: best4k.records,
          bobsledMs: bulk4k.map((b) => b.ms),
          rawMs: raw4k,
          metrics: pick(best4k.metrics),
        },
      ),
    )

    // Durable appends: rounds of raw, 1 writer, 64 writers; best round of each.
    const rawRates: number[] = []
    const rawGroupRates: number[] = []
    const bestRates: number[] = []
    const bestGroupRates: number[] = []
    const d1: DurableResult[] = []
    const d64: DurableResult[] = []
    for (let r = 0; r < sizes.rounds; r++) {
      rawRates.push(await rawSyncRate())
      d1.push(await durable('durable-1', 1))
      d64.push(await durable('durable-64', sizes.writers))
      rawGroupRates.push(await rawSyncRate(sizes.writers))
      bestRates.push(await rawSyncRate(1, true))
      bestGroupRates.push(await rawSyncRate(sizes.writers, true))
    }
    const best1 = bestDurable(d1)
    const best64 = bestDurable(d64)
    figures.push(
      figure('durable-1', 'ops/s', best1.rate, 'raw', Math.max(...rawRates), 0.8, {
        windowMs: sizes.durableMs,
        bobsledRates: d1.map((d) => Math.round(d.rate)),
        rawRates: rawRates.map(Math.round),
        metrics: pick(best1.metrics),
      }),
    )
    figures.push(
      figure('durable-64', 'ops/s', best64.rate, '1-writer', best1.rate, 30, {
        writers: sizes.writers,
        windowMs: sizes.durableMs,
        bobsledRates: d64.map((d) => Math.round(d.rate)),
        rawGroupRates: rawGroupRates.map(Math.round),
        rawSyncedOverwriteRates: bestRates.map(Math.round),
        rawSyncedOverwriteGroupRates: bestGroupRates.map(Math.round),
        metrics: pick(best64.metrics),
      }),
    )
    // Not a goal of the issue: what the disk allows. The 30× goal assumes a sync costs the
    // same for 4 KiB and for 64 × 4 KiB; where it does not, even a perfect group is short.
    const ceiling = Math.max(...rawGroupRates)
    console.log(
      `  (durable-64 ceiling: raw ${sizes.writers} x 4 KiB in one write + one datasync = ${fmt(ceiling)} ops/s` +
        ` = ${(ceiling / Math.max(...rawRates)).toFixed(1)} x raw 1-writer; bobsled durable-64 / ceiling = ${(best64.rate / ceiling).toFixed(2)})`,
    )
    // The goal's ratio as the disk itself gives it, with no CPU spent per round: both rates
    // the cheapest durable write there is (one O_DSYNC write over written blocks).
    const best = Math.max(...bestRates)
    const bestGroup = Math.max(...bestGroupRates)
    console.log(
      `  (the disk's own best: 1 x 4 KiB per O_DSYNC overwrite = ${fmt(best)} ops/s, ${sizes.writers} x 4 KiB = ${fmt(bestGroup)} ops/s:` +
        ` ${(bestGroup / best).toFixed(1)} x, the most any group commit reaches here with no CPU per round;` +
        ` bobsled durable-1 / ${fmt(best)} = ${(best1.rate / best).toFixed(2)}, durable-64 / ${fmt(bestGroup)} = ${(best64.rate / bestGroup).toFixed(2)})`,
    )

    // Reopen of the 100 B log: records/s against the bulk-append records/s.
    const last100 = b100 as BulkResult
    const r100: number[] = []
    for (let r = 0; r < sizes.rounds; r++) r100.push(await reopen(last100.dir, last100.records))
    figures.push(
      figure(
        'reopen-1M',
        'rec/s',
        perSec(last100.records, Math.min(...r100)),
        'bulk',
        perSec(best100.records, best100.ms),
        1.0,
        { records: last100.records, openMs: r100 },
      ),
    )

    // Random reads of 100 B records (a page-in reads its fragments this way): records/s
    // against raw preads of the same positions, alternating, best of each.
    const sample = await sampleLsns(last100.dir, sizes.randomReads)
    const readMs: number[] = []
    const preadMs: number[] = []
    for (let r = 0; r < sizes.rounds; r++) {
      await alternate(
        r,
        async () => {
          readMs.push(await readRandom(last100.dir, sample))
        },
        async () => {
          preadMs.push(await rawPread(path.join(last100.dir, 'log'), sample))
        },
      )
    }
    figures.push(
      figure(
        'read-random',
        'rec/s',
        perSec(sample.length, Math.min(...readMs)),
        'pread',
        perSec(sample.length, Math.min(...preadMs)),
        0.5,
        { reads: sample.length, readMs, preadMs },
      ),
    )
    await fsp.rm(last100.dir, { recursive: true, force: true })

    // Reopen of the 4 KiB log: file bytes/s against raw reads of the same file, both page
    // cache hot (one warm read first), alternating, best of each.
    const last4k = b4k as BulkResult
    const logFile = path.join(last4k.dir, 'log')
    const fileBytes = await fileSize(logFile)
    await rawRead(logFile)
    const rawReadMs: number[] = []
    const openMs: number[] = []
    for (let r = 0; r < sizes.rounds; r++) {
      await alternate(
        r,
        async () => {
          openMs.push(await reopen(last4k.dir, last4k.records))
        },
        async () => {
          rawReadMs.push(await rawRead(logFile))
        },
      )
    }
    figures.push(
      figure(
        'reopen-1GiB',
        'MB/s',
        mb(fileBytes, Math.min(...openMs)),
        'raw',
        mb(fileBytes, Math.min(...rawReadMs)),
        0.5,
        {
          bytesBasis: 'log file size',
          fileBytes,
          openMs,
          rawReadMs,
        },
      ),
    )
  } finally {
    await fsp.rm(root, { recursive: true, force: true })
  }

  const missed = figures.filter((f) => !f.pass).map((f) => f.name)
  console.log(
    `summary: ${figures.length - missed.length}/${figures.length} PASS` +
      (missed.length > 0 ? `, MISS: ${missed.join(', ')}` : ''),
  )
  if (wantJson) {
    console.log(
      JSON.stringify(
        { smoke, node: process.version, cpus: os.cpus().length, sizes, figures, missed },
        null,
        2,
      ),
    )
  }
  return 0
}

function cleanupSync(): void {
  if (root !== undefined) fs.rmSync(root, { recursive: true, force: true })
}

process.on('SIGINT', () => {
  cleanupSync()
  process.exit(130)
})

main().then(
  (code) => {
    process.exitCode = code
  },
  (e) => {
    cleanupSync()
    console.error(e)
    process.exitCode = 1
  },
)
