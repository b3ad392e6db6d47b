// `npm run soak` — the nightly profile (reliability-regimen R15, §5.1 "nightly size").
//   1. Builds, then runs every reliability test (test/crash, faults, format, harness,
//      reliability, sim) with BOBSLED_SOAK=1, so each runs at its nightly size, and echoes
//      their RELIABILITY lines.
//   2. Runs the database workload for --minutes N (default 10) in one folder
//      (test/crash/db-soak.ts): a child writes Zipf keys over three trees with values of
//      1 B–1 MiB (batches, CAS, removes, range scans checked as it writes; 'sync' and
//      'flush' durability; 64 KiB segments so cleaning and checkpoints never stop; a tight
//      V8 heap) until it is SIGKILLed 2–10 s after open (10% of kills are armed while it
//      opens, so some land in recovery); after every kill a full verify here (log CRCs,
//      every tree in order, every value whole, the history check: nothing acknowledged
//      lost, no phantom, whole batches; no orphan blob). fd probe of this process every
//      cycle, RSS every minute, the child's fds every second; a final verify at the end.
//   3. With --log-minutes N (default 0), the older log-only workload over one real log
//      (test/helpers/soak-child.ts): skewed 1 B–1 MiB records, batches, reservations,
//      truncateBefore, SIGKILL every 2–10 s, reopen and check after each kill.
// Options: --minutes N, --log-minutes N, --seed N (else BOBSLED_SEED, else the time),
// --suite-folders a,b (of test/; default all six above), --skip-suite, --skip-workload.
// Exit status 1 on any violation. Prints `RELIABILITY soak-…` lines.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const args = process.argv.slice(2)
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback
}
const has = (name) => args.includes(`--${name}`)
const minutes = Number(opt('minutes', '10'))
const logMinutes = Number(opt('log-minutes', '0'))
const seed = Number(opt('seed', process.env.BOBSLED_SEED ?? String(Date.now() % 1_000_000_000)))
const SEGMENT_BYTES = 64 * 1024
const SUITE_FOLDERS = opt('suite-folders', 'crash,faults,format,harness,reliability,sim').split(',')
let failed = false

function build() {
  const r = spawnSync('npm', ['run', 'build'], { stdio: 'inherit' })
  if (r.status !== 0) process.exit(r.status ?? 1)
}

/**
 * Step 1: the reliability tests at nightly size. Lines are echoed as they come (a long
 * suite shows its progress, and a run stopped early keeps what it printed): RELIABILITY
 * lines, each top-level test's result with its duration, failures.
 */
function suite() {
  const files = SUITE_FOLDERS.flatMap((d) =>
    readdirSync(join('dist/test', d))
      .filter((f) => f.endsWith('.test.js'))
      .map((f) => join('dist/test', d, f)),
  ).sort()
  const env = { ...process.env, BOBSLED_SOAK: '1' }
  // A replay seed would shrink every harness to one case: the suite runs on its own seeds.
  delete env.BOBSLED_SEED
  console.log(`soak: ${files.length} reliability test files with BOBSLED_SOAK=1`)
  const t0 = Date.now()
  const stamp = () => `[${((Date.now() - t0) / 60000).toFixed(1)} min]`
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--test', '--test-concurrency=2', '--test-reporter=tap', ...files], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let buf = ''
    let failedTests = '?'
    // A top-level test result is unindented; its duration follows two lines below it.
    let testResult
    let detail = 0
    p.stdout.setEncoding('utf8').on('data', (d) => {
      buf += d
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        nl = buf.indexOf('\n')
        if (line.includes('RELIABILITY')) console.log(`${stamp()} ${line.replace(/^\s*# /, '')}`)
        else if (/^(not )?ok \d+ - /.test(line)) testResult = line
        else if (/^\s+not ok /.test(line)) {
          console.log(`${stamp()} ${line.trim()}`)
          detail = 40
        } else if (detail > 0) {
          // A failure's YAML block (error, seed, counterexample) up to its closing '...'.
          console.log(`    ${line.trim()}`)
          detail = /^\s*\.\.\.$/.test(line) ? 0 : detail - 1
        } else if (testResult !== undefined && /^ {2}duration_ms: /.test(line)) {
          console.log(`${stamp()} ${testResult} (${(Number(line.split(': ')[1]) / 1000).toFixed(0)} s)`)
          if (testResult.startsWith('not ok')) detail = 40
          testResult = undefined
        } else if (/^# (pass|fail|todo|skipped) /.test(line)) {
          console.log(line.slice(2))
          if (line.startsWith('# fail ')) failedTests = line.slice(7)
        }
      }
    })
    p.on('error', reject)
    p.on('close', (code) => {
      console.log(
        `RELIABILITY soak-suite files=${files.length} failed=${failedTests} exit=${code} minutes=${((Date.now() - t0) / 60000).toFixed(1)}`,
      )
      if (code !== 0) failed = true
      resolve()
    })
  })
}

const fdCount = (pid) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return -1
  }
}

function runChild(dir, start, childSeed, killAfterMs, killBeforeOpen, child) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dir, String(start), String(childSeed), String(SEGMENT_BYTES)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let acked = -1
    let trunc = -1
    let out = ''
    let err = ''
    let timer
    let fdsMax = 0
    const probe = setInterval(() => {
      fdsMax = Math.max(fdsMax, fdCount(p.pid))
    }, 1000)
    const arm = () => {
      timer ??= setTimeout(() => p.kill('SIGKILL'), killAfterMs)
    }
    if (killBeforeOpen) arm()
    p.stdout.on('data', (d) => {
      out += d.toString()
      let nl = out.indexOf('\n')
      while (nl >= 0) {
        const line = out.slice(0, nl)
        out = out.slice(nl + 1)
        if (line === 'OPEN') arm()
        else if (line.startsWith('ACK ')) acked = Math.max(acked, Number(line.slice(4)))
        else if (line.startsWith('TRUNC ')) trunc = Math.max(trunc, Number(line.slice(6)))
        nl = out.indexOf('\n')
      }
    })
    p.stderr.on('data', (d) => {
      err += d.toString()
    })
    p.on('error', reject)
    p.on('exit', (code, signal) => {
      clearInterval(probe)
      if (timer !== undefined) clearTimeout(timer)
      if (signal !== 'SIGKILL') reject(new Error(`soak child exited with ${code}: ${err.slice(-2000)}`))
      else resolve({ acked, trunc, fdsMax })
    })
  })
}

/** Step 2: the database workload with kills (test/crash/db-soak.ts). */
async function dbWorkload() {
  const { soakDb } = await import('../dist/test/crash/db-soak.js')
  const dir = mkdtempSync(join(tmpdir(), 'bobsled-soak-db-'))
  const t0 = Date.now()
  try {
    console.log(`soak: database workload for ${minutes} min in ${dir} seed=${seed}`)
    const f = await soakDb({ dir, seed, durationMs: minutes * 60_000, print: console.log })
    // Warm-up: the first tenth of the probes (at least 3) are not compared.
    const rss = f.rssMib
    const warm = Math.min(rss.length - 1, Math.max(3, Math.floor(rss.length / 10)))
    const rssGrowth = rss.length > warm + 1 ? (100 * (rss[rss.length - 1] - rss[warm])) / rss[warm] : 0
    const fds = f.parentFds
    const fdsConstant = fds.every((n) => n === fds[0])
    const violations = f.ackedLost + f.phantom + f.tornBatches + f.noPrefix + f.reopenFailures + f.verifyFailures
    console.log(
      `RELIABILITY soak-db minutes=${((Date.now() - t0) / 60000).toFixed(1)} cycles=${f.cycles} kills_in_open=${f.killsInOpen} sync_cycles=${f.syncCycles} ` +
        `writes=${f.writes} acked=${f.acked} kept=${f.kept} acked_lost=${f.ackedLost} phantom=${f.phantom} torn_batches=${f.tornBatches} ` +
        `no_prefix=${f.noPrefix} reopen_failures=${f.reopenFailures} verify_failures=${f.verifyFailures} orphan_blobs=${f.orphanBlobs} ` +
        `wrong_answers=${f.wrongAnswers} batches=${f.batches} cas=${f.cas} cas_refused=${f.casRefused} ranges=${f.ranges} range_entries=${f.rangeEntries} ` +
        `final_verify=${f.finalVerifyOk ? 'ok' : 'FAILED'} fds_constant=${fdsConstant} parent_fds=${fds[0] ?? -1}..${fds[fds.length - 1] ?? -1} ` +
        `child_fds_max=${f.childFdsMax} rss_mib=${rss.map((x) => x.toFixed(0)).join(',')} rss_growth_after_warmup_pct=${rssGrowth.toFixed(1)} ` +
        `log_records_max=${f.logRecordsMax} blob_files_max=${f.blobFilesMax} dir_mib_max=${f.dirMibMax.toFixed(1)} ` +
        `recovery_ms_max=${f.recoveryMsMax.toFixed(0)} verify_ms_max=${f.verifyMsMax.toFixed(0)} seed=${seed}`,
    )
    if (f.firstViolation !== undefined) console.log(`soak: first violation: ${f.firstViolation}`)
    // And the user's own tool on the folder as the last kill left it.
    const cli = spawnSync(process.execPath, ['dist/src/cli/main.js', 'verify', '--dir', dir, '--json'], {
      encoding: 'utf8',
    })
    let report = {}
    try {
      report = JSON.parse(cli.stdout)
    } catch {}
    console.log(
      `RELIABILITY soak-db-cli-verify exit=${cli.status} ok=${report.ok} problems=${report.problems?.length} ` +
        `log_records=${report.log?.records} trees=${report.trees?.map((t) => `${t.name || 'default'}:${t.entries}`).join(',')} checksum=${report.checksum}`,
    )
    if (cli.status !== 0) failed = true
    if (violations + f.wrongAnswers + f.orphanBlobs > 0 || !f.finalVerifyOk || !fdsConstant) failed = true
    if (rssGrowth > 10) console.log(`soak: RSS grew ${rssGrowth.toFixed(1)}% after warm-up (goal ≤ 10%)`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Step 3: the log-only workload with kills. */
async function logWorkload() {
  const { Log } = await import('../dist/src/log/index.js')
  const { checkRun } = await import('../dist/test/helpers/log-faults.js')
  const { Prng } = await import('../dist/src/util/prng.js')
  const child = 'dist/test/helpers/soak-child.js'
  const rng = new Prng(seed)
  const dir = mkdtempSync(join(tmpdir(), 'bobsled-soak-'))
  const deadline = Date.now() + logMinutes * 60_000
  const f = {
    cycles: 0,
    early: 0,
    ackedLost: 0,
    nonPrefix: 0,
    reopenFailures: 0,
    records: 0,
    maxLogMiB: 0,
    childFdsMax: 0,
    recoveryMsMax: 0,
  }
  let maxAcked = -1
  let maxFirst = 0
  let next = 0
  const fds = []
  const rss = []
  const readAll = async (verifyOnOpen) => {
    const t0 = performance.now()
    const log = await Log.open(dir, { segmentBytes: SEGMENT_BYTES, flushEveryMs: 0, verifyOnOpen })
    f.recoveryMsMax = Math.max(f.recoveryMsMax, performance.now() - t0)
    const out = []
    try {
      for await (const r of log.iterFrom(0)) out.push(r.data)
    } finally {
      await log.close()
    }
    return out
  }
  const check = async (verifyOnOpen, what) => {
    let records
    try {
      records = await readAll(verifyOnOpen)
    } catch (e) {
      f.reopenFailures++
      console.error(`soak ${what} seed=${seed}: reopen failed: ${e?.name} ${e?.code ?? ''} ${e?.message}`)
      return false
    }
    const c = checkRun(records, maxFirst)
    if ('violation' in c) {
      f.nonPrefix++
      console.error(`soak ${what} seed=${seed}: ${c.violation}`)
      return false
    }
    if (c.last < maxAcked) {
      f.ackedLost++
      console.error(`soak ${what} seed=${seed}: acknowledged seq ${maxAcked} lost (last ${c.last})`)
      return false
    }
    if (c.last >= 0) {
      next = c.last + 1
      maxFirst = c.first
    } else {
      // Everything was truncated away: the next run starts above anything acknowledged.
      next = Math.max(next, maxAcked + 1)
      maxFirst = next
    }
    return true
  }
  try {
    while (Date.now() < deadline) {
      const cycleSeed = (seed + f.cycles) >>> 0
      const early = rng.int(10) === 0
      if (early) f.early++
      const delay = early ? rng.int(30) : 2000 + rng.int(8000)
      const r = await runChild(dir, next, cycleSeed, delay, early, child)
      f.cycles++
      f.childFdsMax = Math.max(f.childFdsMax, r.fdsMax)
      maxAcked = Math.max(maxAcked, r.acked)
      // Records below an announced truncation point may be gone.
      if (r.trunc >= 0) maxFirst = Math.max(maxFirst, r.trunc)
      const ok = await check(false, `cycle ${f.cycles} (child seed ${cycleSeed})`)
      f.maxLogMiB = Math.max(f.maxLogMiB, statSync(join(dir, 'log')).size / 2 ** 20)
      fds.push(fdCount(process.pid))
      rss.push(process.memoryUsage().rss)
      if (!ok) break
      f.records = next
    }
    const finalOk = await check(true, 'final verify (verifyOnOpen)')
    // Warm-up: the first tenth of the cycles (at least 3) are not compared.
    const warm = Math.min(rss.length - 1, Math.max(3, Math.floor(rss.length / 10)))
    const rssGrowth = rss.length > warm ? (100 * (rss[rss.length - 1] - rss[warm])) / rss[warm] : 0
    const fdsConstant = fds.length === 0 || fds.every((n) => n === fds[0])
    console.log(
      `RELIABILITY soak-workload minutes=${logMinutes} cycles=${f.cycles} kills_before_open=${f.early} records=${f.records} ` +
        `acked_lost=${f.ackedLost} non_prefix=${f.nonPrefix} reopen_failures=${f.reopenFailures} ` +
        `final_verify=${finalOk ? 'ok' : 'FAILED'} fds_constant=${fdsConstant} fds=${fds[0] ?? -1}..${fds[fds.length - 1] ?? -1} ` +
        `rss_growth_after_warmup_pct=${rssGrowth.toFixed(1)} child_fds_max=${f.childFdsMax} ` +
        `max_log_mib=${f.maxLogMiB.toFixed(1)} recovery_ms_max=${f.recoveryMsMax.toFixed(0)} seed=${seed}`,
    )
    if (f.ackedLost + f.nonPrefix + f.reopenFailures > 0 || !finalOk || !fdsConstant) failed = true
    if (rssGrowth > 10) console.log(`soak: RSS grew ${rssGrowth.toFixed(1)}% after warm-up (goal ≤ 10%)`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

build()
if (!has('skip-suite')) await suite()
if (!has('skip-workload')) {
  await dbWorkload()
  if (logMinutes > 0) await logWorkload()
}
process.exit(failed ? 1 : 0)
