// The peer benchmark (`npm run bench:peers`, issue 4): bobsled against lmdb, classic-level and
// better-sqlite3 on the same machine and the same seeded data, one child process per peer, in
// a fresh folder under os.tmpdir() each. Prints raw figures, bobsled/peer ratios with the
// issue's goals (PASS/MISS), and writes bench/RESULTS.md.
//
// The peers are native addons, so they live in bench/peers/node_modules with their own
// package-lock.json; the engine's root install never builds them. If that folder is missing
// this script runs `npm ci` there first (better-sqlite3 compiles from source: minutes).
//
// Flags:
//   --records N      records to load (default 1,000,000)
//   --quick          100,000 records and 1 s durable runs (smoke)
//   --only a,b       peers to run: bobsled, lmdb, level|classic-level, sqlite|better-sqlite3
//   --seed N         PRNG seed (default 0xb0b51ed; decimal or 0x hex)
//   --reads N        random reads (default 200,000)
//   --durable-ms N   length of each durable-write run (default 3000)
//   --out PATH       write the report here (default bench/RESULTS.md; --quick runs write
//                    only when --out is given)
//   --no-write       print only
//   --keep           keep the database folders
// Exit code: 0 when every peer ran (goals missed or bobsled not built are reported, not
// failures), 1 when a peer crashed.

import { execFileSync, fork } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { PEERS, peerName } from './adapters/index.mjs'
import { DEFAULT_SEED } from './data.mjs'
import { markdown, printReport, summarize } from './report.mjs'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const DEFAULT_OUT = path.join(HERE, '..', 'RESULTS.md')
const WRITERS = 64

function usage(message) {
  console.error(`bench:peers: ${message}`)
  console.error(
    'flags: --records N --quick --only a,b --seed N --reads N --durable-ms N --out PATH --no-write --keep',
  )
  process.exit(2)
}

function parseCount(flag, text) {
  const n = Number(String(text).replaceAll('_', '').replaceAll(',', ''))
  if (!Number.isSafeInteger(n) || n <= 0) usage(`${flag} wants a positive integer, got ${text}`)
  return n
}

function parseArgs(argv) {
  const opts = {
    records: undefined,
    quick: false,
    only: [...PEERS],
    seed: DEFAULT_SEED,
    reads: 200_000,
    durableMs: undefined,
    out: undefined,
    write: true,
    keep: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2)
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`)
    switch (flag) {
      case '--records':
        opts.records = parseCount(flag, value())
        break
      case '--quick':
        opts.quick = true
        break
      case '--only': {
        const names = value().split(',').filter(Boolean)
        opts.only = names.map((n) => peerName(n) ?? usage(`unknown peer ${n} (known: ${PEERS.join(', ')})`))
        break
      }
      case '--seed': {
        const s = value()
        const n = s.startsWith('0x') ? Number.parseInt(s.slice(2), 16) : Number(s)
        if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) usage(`--seed wants a uint32, got ${s}`)
        opts.seed = n
        break
      }
      case '--reads':
        opts.reads = parseCount(flag, value())
        break
      case '--durable-ms':
        opts.durableMs = parseCount(flag, value())
        break
      case '--out':
        opts.out = path.resolve(value())
        break
      case '--no-write':
        opts.write = false
        break
      case '--keep':
        opts.keep = true
        break
      default:
        usage(`unknown flag ${argv[i]}`)
    }
  }
  opts.records ??= opts.quick ? 100_000 : 1_000_000
  opts.durableMs ??= opts.quick ? 1000 : 3000
  // Run order is fixed (bobsled first), whatever order --only lists.
  opts.only = PEERS.filter((p) => opts.only.includes(p))
  return opts
}

function ensurePeersInstalled() {
  if (fs.existsSync(path.join(HERE, 'node_modules'))) return
  console.log(
    'bench/peers/node_modules is missing: running `npm ci` in bench/peers (compiles better-sqlite3)',
  )
  execFileSync('npm', ['ci'], { cwd: HERE, stdio: 'inherit' })
}

function machine() {
  const cpus = os.cpus()
  const fsTypes = {
    ef53: 'ext4',
    58465342: 'xfs',
    1021994: 'tmpfs',
    '9123683e': 'btrfs',
    '794c7630': 'overlayfs',
  }
  let fsType = '?'
  try {
    const t = fs.statfsSync(os.tmpdir()).type.toString(16)
    fsType = fsTypes[t] ?? `0x${t}`
  } catch {}
  return (
    `${cpus[0]?.model ?? '?'} x ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ` +
    `${os.type()} ${os.release()} ${os.arch()}, tmpdir ${os.tmpdir()} (${fsType})`
  )
}

function loadAverage() {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')
}

/** Runs one peer in its own process; resolves to its message (result, skipped or error). */
function runPeer(name, config) {
  return new Promise((resolve) => {
    let message
    const child = fork(path.join(HERE, 'child.mjs'), [name, JSON.stringify(config)], { stdio: 'inherit' })
    child.on('message', (m) => {
      message = m
    })
    child.on('exit', (code, signal) => {
      resolve(message ?? { name, error: `child exited with ${signal ?? `code ${code}`} before reporting` })
    })
  })
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  ensurePeersInstalled()
  const header = {
    date: new Date().toISOString(),
    machine: machine(),
    node: process.version,
    seed: `0x${opts.seed.toString(16)}`,
    records: opts.records,
    reads: opts.reads,
    durableMs: opts.durableMs,
    command: `node bench/peers/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    // Other processes on the machine skew every figure; the 1-minute load average says how much.
    loadStart: loadAverage(),
    settings: [],
    skipped: [],
  }
  console.log('bench:peers: bobsled vs lmdb, classic-level, better-sqlite3')
  console.log(`  date ${header.date}`)
  console.log(`  machine ${header.machine}`)
  console.log(`  node ${header.node}, seed ${header.seed}, ${opts.records.toLocaleString('en-US')} records`)
  console.log(`  load average at start ${header.loadStart} (${os.cpus().length} cores)`)
  console.log(
    `  16 B random keys, 100 B random values, batches of 1000; ${opts.reads.toLocaleString('en-US')} random reads; ` +
      `durable writes ${opts.durableMs} ms each with 1 and ${WRITERS} writers\n`,
  )

  const results = {}
  const labels = {}
  let crashed = false
  for (const name of opts.only) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bobsled-peers-${name}-`))
    const config = {
      dir,
      records: opts.records,
      seed: opts.seed,
      reads: opts.reads,
      durableMs: opts.durableMs,
      writers: WRITERS,
    }
    console.log(`${name} (${dir})`)
    const m = await runPeer(name, config)
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true })
    if (m.result) {
      results[name] = m.result
      labels[name] = m.result.label
      header.settings.push({ label: m.result.label, ...m.result.settings })
    } else if (m.skipped) {
      header.skipped.push(`${name}: ${m.skipped}`)
    } else {
      crashed = true
      header.skipped.push(`${name}: FAILED: ${m.error}`)
    }
  }

  header.loadEnd = loadAverage()
  console.log(`\nload average at end ${header.loadEnd}`)
  console.log('\nsettings (bulk = workload 1 and the overwrites; durable = workloads 2 and 5)')
  for (const s of header.settings) {
    console.log(
      `  ${s.label}\n    bulk:       ${s.bulk}\n    durable:    ${s.durable}\n    64 writers: ${s.concurrency}`,
    )
  }
  for (const s of header.skipped) console.log(`  not run: ${s}`)

  const summary = summarize(results, opts.only)
  printReport(summary, opts.only, labels)

  const out = opts.out ?? (opts.quick ? undefined : DEFAULT_OUT)
  if (opts.write && out !== undefined) {
    header.notes = fs.existsSync(path.join(HERE, 'NOTES.md'))
      ? fs.readFileSync(path.join(HERE, 'NOTES.md'), 'utf8').trim()
      : ''
    fs.writeFileSync(out, markdown(summary, opts.only, labels, header))
    console.log(`\nwrote ${path.relative(process.cwd(), out) || out}`)
  }
  if (crashed) process.exitCode = 1
}

await main()
