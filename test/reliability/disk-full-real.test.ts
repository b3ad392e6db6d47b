// R6 (reliability-regimen §5.1), P6 and P7 on a real file system, no simulator.
//  (a) As root: a child in a private mount namespace (`unshare -m`) mounts a small tmpfs over
//      a temp folder, fills it with a log until ENOSPC, then space comes back (the tmpfs is
//      remounted bigger, or a ballast file beside the log is deleted) and a second child
//      reopens the log in the same namespace.
//  (b) Any POSIX shell: a child under `ulimit -f` with SIGXFSZ ignored gets EFBIG.
// Checked per fill: the first failure a caller sees is a typed DiskFullError (or another
// typed IoError); the instance is poisoned (append, appendLarge, flush, makeStable reject
// typed); no flush resolves for bytes that were not stable when the first write failed; no
// datasync is retried; the reopen succeeds, every acknowledged record is there as a clean
// prefix, new writes work, and no temp file or orphan blob is left behind.
// Skips with a printed reason when not root or when `unshare`/`mount` is refused.
// BOBSLED_SOAK=1 runs 200 fills; BOBSLED_SEED=<n> replays one fill.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import * as path from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { mixSeed, Prng } from '../../src/util/prng.js'
import { tempDir } from '../helpers/temp-dir.js'

const CHILD = fileURLToPath(new URL('./disk-full-child.js', import.meta.url))
const soak = process.env.BOBSLED_SOAK === '1'
const only = process.env.BOBSLED_SEED
const BASE_SEED = only === undefined || only === '' ? 0x0d15_cf11 : Number(only)
const TMPFS_FILLS = only !== undefined && only !== '' ? 1 : soak ? 200 : 10
const EFBIG_FILLS = only !== undefined && only !== '' ? 1 : soak ? 20 : 2
const FILL_TIMEOUT_MS = 60_000

interface FillReport {
  seed: number
  kind: 'enospc' | 'efbig'
  acked: number
  fault: Record<string, unknown> | undefined
  after: Record<string, unknown> | undefined
  verify: Record<string, unknown> | undefined
  raw: string
}

function parse(seed: number, kind: FillReport['kind'], stdout: string, stderr: string): FillReport {
  const r: FillReport = {
    seed,
    kind,
    acked: -1,
    fault: undefined,
    after: undefined,
    verify: undefined,
    raw: '',
  }
  for (const line of stdout.split('\n')) {
    if (line.startsWith('ACK ')) r.acked = Math.max(r.acked, Number(line.slice(4)))
    else if (line.startsWith('FAULT ')) r.fault = JSON.parse(line.slice(6))
    else if (line.startsWith('AFTER ')) r.after = JSON.parse(line.slice(6))
    else if (line.startsWith('VERIFY ')) r.verify = JSON.parse(line.slice(7))
  }
  r.raw = `${stdout.slice(-1500)}\n--- stderr ---\n${stderr.slice(-1500)}`
  return r
}

function hasUnshare(): string | undefined {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`
  if (process.getuid?.() !== 0) return 'not root: mount needs CAP_SYS_ADMIN'
  const r = spawnSync(
    'unshare',
    ['-m', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs "$d" && umount "$d" && rmdir "$d"'],
    {
      encoding: 'utf8',
    },
  )
  if (r.error !== undefined) return `unshare unavailable: ${r.error.message}`
  if (r.status !== 0) return `unshare -m + mount tmpfs refused (exit ${r.status}): ${r.stderr.trim()}`
  return undefined
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`

/** One tmpfs fill: the whole cycle runs inside one private mount namespace. */
function tmpfsFill(root: string, i: number): FillReport {
  const seed = only !== undefined && only !== '' ? BASE_SEED : mixSeed(BASE_SEED, i)
  const rng = new Prng(seed)
  const mnt = path.join(root, `fill-${i}`)
  mkdirSync(mnt)
  const sizeKiB = 1024 + rng.int(3 * 1024) // 1–4 MiB
  const ballastBytes = rng.int(2) === 0 ? rng.int(sizeKiB * 512) : 0
  const freeMode = ballastBytes > 0 && rng.int(2) === 0 ? 'delete' : 'remount'
  const db = path.join(mnt, 'db')
  const node = q(process.execPath)
  const script = [
    `mount -t tmpfs -o size=${sizeKiB}k,mode=0700 tmpfs ${q(mnt)}`,
    `${node} ${q(CHILD)} fill ${q(db)} ${seed} ${ballastBytes}`,
    freeMode === 'remount' ? `mount -o remount,size=${sizeKiB * 4}k ${q(mnt)}` : 'true',
    `${node} ${q(CHILD)} verify ${q(db)} ${freeMode}`,
  ].join(' && ')
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script], { encoding: 'utf8', timeout: FILL_TIMEOUT_MS })
  return parse(seed, 'enospc', r.stdout ?? '', `${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`)
}

/** One EFBIG fill: RLIMIT_FSIZE on the child, lifted for the verifying child. */
function efbigFill(root: string, i: number): FillReport {
  const seed = only !== undefined && only !== '' ? BASE_SEED : mixSeed(BASE_SEED ^ 0xef, i)
  const rng = new Prng(seed)
  const db = path.join(root, `efbig-${i}`, 'db')
  mkdirSync(path.dirname(db))
  // dash and bash both count `ulimit -f` in 512- or 1024-byte blocks; either way 0.5–2 MiB.
  const blocks = 1024 + rng.int(1024)
  const node = q(process.execPath)
  const script = `(ulimit -f ${blocks} && exec ${node} ${q(CHILD)} fill ${q(db)} ${seed} efbig) && ${node} ${q(CHILD)} verify ${q(db)} none`
  const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', timeout: FILL_TIMEOUT_MS })
  return parse(seed, 'efbig', r.stdout ?? '', `${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`)
}

/** Problems with one fill, as messages (empty: it kept every promise). */
function problems(r: FillReport): string[] {
  const bad: string[] = []
  const f = r.fault
  const a = r.after
  const v = r.verify
  if (f === undefined || a === undefined) return [`the filling child did not report (crash?)\n${r.raw}`]
  if (f.typed !== true) bad.push(`untyped failure: ${f.name}: ${f.message}`)
  else if (f.isIoError !== true) bad.push(`failure is ${f.code}, not an IoError/DiskFullError`)
  const wantErrno = r.kind === 'enospc' ? 'ENOSPC' : 'EFBIG'
  if (f.isDiskFull !== true || f.errno !== wantErrno)
    bad.push(`expected DiskFullError(${wantErrno}), got ${f.code} errno=${String(f.errno)}: ${f.message}`)
  if (a.poisoned !== true) bad.push('the instance was not poisoned')
  for (const k of ['append', 'appendLarge', 'flush', 'makeStable']) {
    const got = String(a[k])
    if (got === 'resolved' || got.startsWith('UNTYPED')) bad.push(`after the fault ${k}() gave ${got}`)
  }
  if (a.stableMoved === true) bad.push('the stable LSN moved after the fault')
  if (a.flushesAfterFault !== 0) bad.push(`${String(a.flushesAfterFault)} flushes resolved after the fault`)
  if (a.untypedRejections !== 0) bad.push(`${String(a.untypedRejections)} untyped flush rejections`)
  if (a.syncAfterFailedSync !== 0) bad.push('a failed datasync was retried')
  if (a.logIoAfterPoison !== 0) bad.push(`${String(a.logIoAfterPoison)} log writes/syncs after poisoning`)
  if (String(a.close).startsWith('UNTYPED')) bad.push(`close() after the fault: ${String(a.close)}`)
  if (v === undefined || v.reopen !== true) {
    bad.push(`reopen after space returned failed: ${JSON.stringify(v)}\n${r.raw}`)
    return bad
  }
  if (v.violation !== null) bad.push(`recovered log is not a clean prefix: ${String(v.violation)}`)
  if (typeof v.recovered === 'number' && v.recovered <= r.acked)
    bad.push(`acknowledged seq ${r.acked} lost: recovered ${v.recovered} records`)
  if (v.afterMore !== (v.recovered as number) + 20)
    bad.push(`new writes after the reopen: ${JSON.stringify(v)}`)
  if (Array.isArray(v.leftovers) && v.leftovers.length > 0)
    bad.push(`temp files left: ${v.leftovers.join(',')}`)
  if (v.orphanBlobs !== 0) bad.push(`${String(v.orphanBlobs)} orphan blob files after the reopen`)
  return bad
}

let root: { path: string; remove: () => Promise<void> }
const totals = {
  fills: 0,
  faults: 0,
  diskFull: 0,
  untyped: 0,
  ackedLost: 0,
  flushAfter: 0,
  reopenOk: 0,
  acked: 0,
  orphans: 0,
  leftovers: 0,
}
const kinds: Record<string, number> = {}
before(async () => {
  root = await tempDir('disk-full')
})
after(async () => {
  await root.remove()
})

function tally(r: FillReport): void {
  totals.fills++
  if (r.fault !== undefined) totals.faults++
  if (r.fault?.isDiskFull === true) totals.diskFull++
  if (r.fault !== undefined && r.fault.typed !== true) totals.untyped++
  if (r.after !== undefined) totals.flushAfter += Number(r.after.flushesAfterFault ?? 0)
  if (r.verify?.reopen === true) totals.reopenOk++
  if (typeof r.verify?.recovered === 'number' && r.verify.recovered <= r.acked) totals.ackedLost++
  totals.acked += r.acked + 1
  totals.orphans += Number(r.verify?.orphanBlobs ?? 0)
  totals.leftovers += Array.isArray(r.verify?.leftovers) ? r.verify.leftovers.length : 0
  const k = `${r.kind}:${String(r.fault?.errno ?? r.fault?.code ?? 'none')}`
  kinds[k] = (kinds[k] ?? 0) + 1
}

test(`disk full on a real tmpfs (${TMPFS_FILLS} fills) and EFBIG under ulimit -f (${EFBIG_FILLS}): typed, poisoned, nothing acknowledged lost`, async (t) => {
  const skip = hasUnshare()
  const bad: string[] = []
  if (skip === undefined) {
    for (let i = 0; i < TMPFS_FILLS; i++) {
      const r = tmpfsFill(root.path, i)
      tally(r)
      for (const p of problems(r)) bad.push(`seed=${r.seed} (replay: BOBSLED_SEED=${r.seed}) tmpfs: ${p}`)
    }
  } else {
    t.diagnostic(`tmpfs part skipped: ${skip}`)
    console.log(`RELIABILITY disk-full-real skipped="${skip}"`)
  }
  for (let i = 0; i < EFBIG_FILLS; i++) {
    const r = efbigFill(root.path, i)
    tally(r)
    for (const p of problems(r)) bad.push(`seed=${r.seed} (replay: BOBSLED_SEED=${r.seed}) efbig: ${p}`)
  }
  const pct = ((100 * totals.reopenOk) / Math.max(1, totals.fills)).toFixed(0)
  console.log(
    `RELIABILITY disk-full-real fills=${totals.fills} faults=${totals.faults} disk_full_typed=${totals.diskFull} ` +
      `untyped=${totals.untyped} acked=${totals.acked} acked_lost=${totals.ackedLost} flush_after_fault=${totals.flushAfter} ` +
      `reopen_ok=${pct}% orphan_blobs=${totals.orphans} leftover_tmp=${totals.leftovers} kinds=${Object.entries(
        kinds,
      )
        .map(([k, v]) => `${k}:${v}`)
        .join(',')} seed=${BASE_SEED}`,
  )
  assert.deepEqual(bad.slice(0, 10), [], `${bad.length} problems`)
  if (skip !== undefined) t.skip(skip)
})
