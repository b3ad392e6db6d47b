// The read path, alone (`node bench/read-path.mjs`): random awaited gets, a full ordered scan
// and reopen (open + first get) of one bobsled database, measured exactly as bench/peers does
// (same data, same loops) but without the peers, so a change can be tried in seconds.
//
// --builds a,b compares builds in one run (paths to a dist/src/index.js each; default the
// root build), alternating rounds so that load on the shared machine hits them alike; each
// figure is the best of its rounds. The database is built once by the first build and kept
// in --dir (reused when it exists). Builds in one process share this file's read loop, which
// turns polymorphic once a second build's Db has run through it: the first build's first
// round can be the only fast one. For a small difference in gets, alternate `--part get`
// runs of each build in their own processes instead, and compare `ops/cpu-s` (operations per
// second of this process's CPU time), which other sessions' load moves far less than ops/s.
//
// --fresh: load a new database in this process first, then measure reads and scan right after
// the load (as bench/peers does, with the load's background work still going on).
//
// Flags: --records N (default 1,000,000), --reads N (default 200,000), --rounds N (default
// 3), --reopens N (default 5), --dir PATH (default os.tmpdir()/bobsled-read-path-<records>),
// --builds a,b, --part get|scan|reopen (runs that part alone, once; with --prof DIR its timed run is
// profiled into DIR/part.cpuprofile).

import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { DEFAULT_SEED, pick, Records, VALUE_BYTES } from './peers/data.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const STREAM_READS = 1
const CACHE_BYTES = 1024 * 1024 * 1024

function parseArgs(argv) {
  const o = { records: 1_000_000, reads: 200_000, rounds: 3, reopens: 5, dir: undefined, builds: undefined }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2)
    const value = () => inline ?? argv[++i]
    if (flag === '--records') o.records = Number(value())
    else if (flag === '--reads') o.reads = Number(value())
    else if (flag === '--rounds') o.rounds = Number(value())
    else if (flag === '--reopens') o.reopens = Number(value())
    else if (flag === '--dir') o.dir = path.resolve(value())
    else if (flag === '--builds')
      o.builds = value()
        .split(',')
        .map((p) => path.resolve(p))
    else if (flag === '--part') o.part = value()
    else if (flag === '--fresh') o.fresh = true
    else if (flag === '--prof') o.prof = path.resolve(value())
    else throw new Error(`unknown flag ${argv[i]}`)
  }
  o.dir ??= path.join(os.tmpdir(), `bobsled-read-path-${o.records}`)
  o.builds ??= [path.join(HERE, '..', 'dist', 'src', 'index.js')]
  return o
}

const opts = parseArgs(process.argv.slice(2))
const data = new Records(DEFAULT_SEED, opts.records)
const mods = []
for (const b of opts.builds) mods.push(await import(pathToFileURL(b).href))
const openDb = (mod) => mod.open(opts.dir, { durability: 'flush', cacheCapacity: CACHE_BYTES })

/** Loads every record into a new database in dir; returns it open, flushed. */
async function load(mod, dir) {
  const t0 = performance.now()
  const db = await mod.open(dir, { durability: 'flush', cacheCapacity: CACHE_BYTES })
  for (const { keys, values } of data.batches(0)) {
    await db.applyBatch((b) => {
      for (let i = 0; i < keys.length; i++) b.insert(keys[i], values[i])
    })
  }
  await db.flush()
  console.log(`loaded ${dir} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  return db
}

if (opts.fresh) {
  fs.rmSync(opts.dir, { recursive: true, force: true })
} else if (!fs.existsSync(opts.dir)) {
  await (await load(mods[0], opts.dir)).close()
}

const order = new Uint32Array(opts.reads)
{
  const next = data.stream(STREAM_READS)
  for (let i = 0; i < opts.reads; i++) order[i] = pick(next, data.records)
}

/** Awaited random gets per second; `cpu` gets the rate per second of CPU time. */
async function reads(db, cpu = {}) {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < opts.reads; i++) {
    const v = await db.get(data.key(order[i]))
    if (v === undefined || v.length !== VALUE_BYTES) throw new Error(`read ${i} missed`)
  }
  const c = process.cpuUsage(c0)
  cpu.rate = opts.reads / ((c.user + c.system) / 1e6)
  return opts.reads / ((performance.now() - t0) / 1000)
}

async function scan(db) {
  let n = 0
  const t0 = performance.now()
  for await (const [k, v] of db.range({})) n += k.length > 0 && v.length > 0 ? 1 : 0
  if (n !== opts.records) throw new Error(`scan saw ${n} of ${opts.records}`)
  return n / ((performance.now() - t0) / 1000)
}

async function reopen(mod) {
  const t0 = performance.now()
  const db = await mod.open(opts.dir, { durability: 'sync', cacheCapacity: CACHE_BYTES })
  const first = await db.get(data.key(0))
  const ms = performance.now() - t0
  if (first === undefined) throw new Error('first get after reopen missed')
  await db.close()
  return ms
}

/**
 * One round of one build: a fresh open, a first pass of reads that pages the tree in (bench/peers
 * reads right after its load, with every page resident), then the timed reads and scan.
 */
async function round(mod) {
  const db = await openDb(mod)
  await reads(db)
  const r = { reads: await reads(db), scan: await scan(db) }
  await db.close()
  const times = []
  for (let i = 0; i < opts.reopens; i++) times.push(await reopen(mod))
  r.reopenMs = Math.min(...times)
  return r
}

/** Runs f, profiled into opts.prof when given. */
async function profiled(f) {
  if (opts.prof === undefined) return f()
  const { Session } = await import('node:inspector/promises')
  const s = new Session()
  s.connect()
  await s.post('Profiler.enable')
  await s.post('Profiler.start')
  const r = await f()
  const { profile } = await s.post('Profiler.stop')
  fs.mkdirSync(opts.prof, { recursive: true })
  fs.writeFileSync(path.join(opts.prof, `${opts.part}.cpuprofile`), JSON.stringify(profile))
  s.disconnect()
  return r
}

if (opts.part !== undefined) {
  const mod = mods[0]
  if (opts.part === 'reopen') {
    await reopen(mod)
    console.log(`reopen ${(await profiled(() => reopen(mod))).toFixed(1)} ms`)
  } else {
    const db = opts.fresh ? await load(mod, opts.dir) : await openDb(mod)
    if (!opts.fresh) await reads(db)
    if (opts.part === 'get') {
      const cpu = {}
      const rate = await profiled(() => reads(db, cpu))
      console.log(`reads ${Math.round(rate)} ops/s ${Math.round(cpu.rate)} ops/cpu-s`)
    } else console.log(`scan ${Math.round(await profiled(() => scan(db)))} rec/s`)
    await db.close()
  }
} else {
  const best = opts.builds.map(() => ({ reads: 0, scan: 0, reopenMs: Number.POSITIVE_INFINITY }))
  for (let r = 0; r < opts.rounds; r++) {
    for (let b = 0; b < mods.length; b++) {
      const x = await round(mods[b])
      best[b].reads = Math.max(best[b].reads, x.reads)
      best[b].scan = Math.max(best[b].scan, x.scan)
      best[b].reopenMs = Math.min(best[b].reopenMs, x.reopenMs)
    }
  }
  console.log(
    `load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )
  for (let b = 0; b < mods.length; b++) {
    const name = path.relative(process.cwd(), opts.builds[b])
    const x = best[b]
    console.log(`read-path ${name} reads ${Math.round(x.reads)} ops/s`)
    console.log(`read-path ${name} scan ${Math.round(x.scan)} rec/s`)
    console.log(`read-path ${name} reopen ${x.reopenMs.toFixed(1)} ms`)
  }
}
