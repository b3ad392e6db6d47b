// The R15 soak's database loop (reliability-regimen R15; `npm run soak`, scripts/soak.mjs,
// and its CI smoke, db-soak.test.ts): one folder for the whole run; the writer child
// (test/helpers/soak-db-child.ts) writes the Zipf / 1 B–1 MiB workload of
// db-soak-workload.ts until it is SIGKILLed 2–10 s after open (1 kill in 10 armed 0–29 ms
// after it starts open(), so it lands in recovery), under a tight V8 heap (GC pressure).
// After every kill this process runs a full verify:
//   1. the `bobsled verify` log pass: Log.open with verifyOnOpen (every message's CRC),
//      then every record and blob read end to end;
//   2. the database reopened (the page cache open() builds), every tree scanned in order:
//      keys strictly increasing, every value whole and of the length its write announced;
//   3. that state checked against the child's history (db-workload.ts checkRecovered: a
//      prefix of the applied writes that holds every acknowledged one, whole batches, no
//      phantom), and no blob file that no log pointer names.
// Probes: this process's open fds after every cycle (the Db is closed then: the count must
// not move) and its RSS every minute; the child's fds every second.

import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { openOn } from '../../src/db.js'
import { Log } from '../../src/index.js'
import { openStorage } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { Prng } from '../../src/util/prng.js'
import { runUntilKilled } from '../helpers/kill-child.js'
import { blobCensusOf } from '../helpers/orphan-blobs.js'
import { onWriterLine } from './db-kill-loop.js'
import { SOAK_TREES, soakKeyIndex, soakValueWrite } from './db-soak-workload.js'
import { addRecovered, checkRecovered, History } from './db-workload.js'

const CHILD = fileURLToPath(new URL('../helpers/soak-db-child.js', import.meta.url))
export const SOAK_SEGMENT_BYTES = 64 * 1024
/** The child's V8 old space: values up to 1 MiB and a 256 KiB page cache under a tight heap. */
export const SOAK_CHILD_HEAP_MIB = 96

export type SoakMutation = 'none' | 'ack-applied' | 'short-value'

export interface SoakOptions {
  dir: string
  seed: number
  /** Stop starting cycles after this long (the last one still runs and is checked). */
  durationMs: number
  /** Kill delay after OPEN: minMs + [0, spanMs). Default 2000 + [0, 8000). */
  killDelay?: { minMs: number; spanMs: number }
  /** Share of cycles whose kill is armed at OPENING (in recovery). Default 0.1. */
  earlyShare?: number
  mutation?: SoakMutation
  /** RSS probe period (default one minute) and where probe lines go. */
  probeEveryMs?: number
  print?: (line: string) => void
}

export interface SoakFigures {
  cycles: number
  killsInOpen: number
  /** Cycles run in 'sync' durability (the others in 'flush', some writes durable: true). */
  syncCycles: number
  writes: number
  acked: number
  kept: number
  ackedLost: number
  phantom: number
  tornBatches: number
  /** Recoveries that no prefix of the applied writes explains (other than the above). */
  noPrefix: number
  reopenFailures: number
  verifyFailures: number
  orphanBlobs: number
  wrongAnswers: number
  /** Sums of the children's last `S` counters. */
  ranges: number
  rangeEntries: number
  cas: number
  casRefused: number
  batches: number
  logRecordsMax: number
  blobFilesMax: number
  dirMibMax: number
  recoveryMsMax: number
  verifyMsMax: number
  parentFds: number[]
  childFdsMax: number
  /** RSS of this process at each probe, MiB. */
  rssMib: number[]
  firstViolation?: string
}

const fdCount = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return -1
  }
}

function dirBytes(dir: string): number {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size
  }
  return n
}

/** Steps 1–3 of the verify (file comment); returns the violations found. */
async function verify(
  dir: string,
  h: History,
  lenOf: Map<string, number>,
  f: SoakFigures,
): Promise<string[]> {
  const problems: string[] = []
  const t0 = performance.now()
  try {
    const log = await Log.open(dir, { verifyOnOpen: true, flushEveryMs: 0 })
    let records = 0
    try {
      for await (const _ of log.iterFrom(0)) records++
    } finally {
      await log.close()
    }
    f.logRecordsMax = Math.max(f.logRecordsMax, records)
  } catch (e) {
    f.verifyFailures++
    return [`log pass: ${(e as Error).stack}`]
  }
  const t1 = performance.now()
  let pc: PageCache<TreePage>
  let db: Awaited<ReturnType<typeof openOn>>
  try {
    // Cleaning off: the blob census below walks the log, which a pass must not truncate
    // under it (or move a pointer past the walk's end).
    pc = await PageCache.open<TreePage>(dir, treeCodec, {
      segmentBytes: SOAK_SEGMENT_BYTES,
      flushEveryMs: 0,
      cleaning: false,
    })
    db = await openOn(pc)
  } catch (e) {
    f.reopenFailures++
    return [`reopen failed: ${(e as Error).stack}`]
  }
  f.recoveryMsMax = Math.max(f.recoveryMsMax, performance.now() - t1)
  const state = new Map<string, number>()
  const phantom: string[] = []
  try {
    const names = await db.treeNames()
    for (const name of names)
      if (!(SOAK_TREES as readonly string[]).includes(name)) problems.push(`a tree nobody made: ${name}`)
    for (const [t, name] of SOAK_TREES.entries()) {
      if (name !== '' && !names.includes(name)) continue
      const tree = name === '' ? db : await db.openTree(name)
      let prev: Buffer | undefined
      for await (const [k, v] of tree.range()) {
        const kb = Buffer.from(k)
        if (prev !== undefined && Buffer.compare(prev, kb) >= 0) problems.push(`tree ${t}: keys out of order`)
        prev = kb
        const key = soakKeyIndex(k)
        const w = soakValueWrite(v)
        const want = lenOf.get(`${t}/${key}@${w}`)
        if (key < 0 || w < 0 || want !== v.length)
          phantom.push(
            `${t}/${kb.toString('latin1', 0, 8)}=${Buffer.from(v).toString('latin1', 0, 12)} (${v.length} B, announced ${want})`,
          )
        else state.set(`${t}/${key}`, w)
      }
    }
    const census = await blobCensusOf(pc.log, openStorage(dir))
    f.orphanBlobs += census.orphans
    f.blobFilesMax = Math.max(f.blobFilesMax, census.files)
    if (census.orphans > 0) problems.push(`${census.orphans} orphan blob files`)
  } catch (e) {
    f.verifyFailures++
    problems.push(`tree pass: ${(e as Error).stack}`)
  } finally {
    await db.close()
  }
  f.verifyMsMax = Math.max(f.verifyMsMax, performance.now() - t0)
  if (problems.length > 0) return problems
  const intents = h.intents.length
  const c = addRecovered(f, checkRecovered(h, state, phantom))
  if (c.violation !== undefined) {
    if (c.ackedLost + c.phantom + c.tornBatches === 0) f.noPrefix++
    return [`${c.violation} (${intents} writes this cycle)`]
  }
  // The base moved on: only the lengths of the values it holds are needed from now on.
  for (const k of [...lenOf.keys()]) {
    const [slot, w] = k.split('@') as [string, string]
    if (h.base.get(slot) !== Number(w)) lenOf.delete(k)
  }
  return []
}

/** Runs kill-and-verify cycles in `o.dir` until `o.durationMs` has passed, then a final verify. */
export async function soakDb(o: SoakOptions): Promise<SoakFigures & { finalVerifyOk: boolean }> {
  const print = o.print ?? ((): void => {})
  const rng = new Prng(o.seed)
  const { minMs, spanMs } = o.killDelay ?? { minMs: 2000, spanMs: 8000 }
  const mutation = o.mutation ?? 'none'
  const f: SoakFigures = {
    cycles: 0,
    killsInOpen: 0,
    syncCycles: 0,
    writes: 0,
    acked: 0,
    kept: 0,
    ackedLost: 0,
    phantom: 0,
    tornBatches: 0,
    noPrefix: 0,
    reopenFailures: 0,
    verifyFailures: 0,
    orphanBlobs: 0,
    wrongAnswers: 0,
    ranges: 0,
    rangeEntries: 0,
    cas: 0,
    casRefused: 0,
    batches: 0,
    logRecordsMax: 0,
    blobFilesMax: 0,
    dirMibMax: 0,
    recoveryMsMax: 0,
    verifyMsMax: 0,
    parentFds: [],
    childFdsMax: 0,
    rssMib: [],
  }
  const h = new History()
  /** `${slot}@${w}` → announced length of that write's value there (checks every recovered value). */
  const lenOf = new Map<string, number>()
  const t0 = Date.now()
  const probeEveryMs = o.probeEveryMs ?? 60_000
  let nextProbe = t0
  let lastProbe = t0
  const probe = (): void => {
    lastProbe = Date.now()
    const rss = process.memoryUsage().rss / 2 ** 20
    f.rssMib.push(rss)
    print(
      `soak-db probe t_min=${((Date.now() - t0) / 60_000).toFixed(1)} cycles=${f.cycles} parent_fds=${fdCount(process.pid)} ` +
        `rss_mib=${rss.toFixed(1)} heap_mib=${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1)} ` +
        `child_fds_max=${f.childFdsMax} dir_mib=${f.dirMibMax.toFixed(1)} writes=${f.writes} acked=${f.acked}`,
    )
  }
  const fail = (cycleSeed: number, what: string): void => {
    f.firstViolation ??= `cycle ${f.cycles} (child seed ${cycleSeed}, soak seed ${o.seed}): ${what}`
    print(`soak-db VIOLATION cycle ${f.cycles} child seed ${cycleSeed}: ${what}`)
  }
  while (Date.now() - t0 < o.durationMs) {
    const cycleSeed = (o.seed * 1000 + f.cycles) >>> 0
    const early = rng.float() < (o.earlyShare ?? 0.1)
    // The ack-applied mutation needs 'flush' mode: 'sync' would make every write durable.
    const sync = rng.int(4) === 0 && mutation !== 'ack-applied'
    const delay = early ? rng.int(30) : minMs + rng.int(spanMs)
    const wrong: string[] = []
    let counters = ''
    let childFds = 0
    let probeChild: NodeJS.Timeout | undefined
    const onLine = onWriterLine(h, wrong)
    const args = [
      `--max-old-space-size=${SOAK_CHILD_HEAP_MIB}`,
      CHILD,
      o.dir,
      String(cycleSeed),
      String(h.nextW),
    ]
    args.push(String(SOAK_SEGMENT_BYTES), sync ? 'sync' : 'flush', mutation)
    const { opened } = await runUntilKilled(
      args,
      delay,
      early ? 'at-opening' : false,
      (line) => {
        if (line.startsWith('S ')) counters = line
        else if (line.startsWith('I ')) {
          onLine(line)
          const i = h.intents.at(-1)
          if (i !== undefined)
            for (const op of i.ops) if (op.len >= 0) lenOf.set(`${op.tree}/${op.key}@${i.w}`, op.len)
          f.writes++
        } else onLine(line)
      },
      undefined,
      (pid) => {
        probeChild = setInterval(() => {
          childFds = Math.max(childFds, fdCount(pid))
        }, 1000)
      },
    ).finally(() => clearInterval(probeChild))
    f.cycles++
    if (!opened) f.killsInOpen++
    if (sync) f.syncCycles++
    f.childFdsMax = Math.max(f.childFdsMax, childFds)
    for (const [, k, v] of counters.matchAll(/(\w+)=(\d+)/g)) {
      const n = Number(v)
      if (k === 'ranges') f.ranges += n
      else if (k === 'rangeEntries') f.rangeEntries += n
      else if (k === 'cas') f.cas += n
      else if (k === 'casRefused') f.casRefused += n
      else if (k === 'batches') f.batches += n
    }
    const problems = await verify(o.dir, h, lenOf, f)
    f.dirMibMax = Math.max(f.dirMibMax, dirBytes(o.dir) / 2 ** 20)
    f.parentFds.push(fdCount(process.pid))
    if (wrong.length > 0) {
      f.wrongAnswers += wrong.length
      problems.unshift(`the child saw a wrong answer: ${wrong.slice(0, 3).join('; ')}`)
    }
    if (problems.length > 0) {
      // The history cannot be checked further against this folder: stop at the first.
      fail(cycleSeed, problems.join(' | '))
      break
    }
    if (Date.now() >= nextProbe) {
      probe()
      nextProbe += probeEveryMs
    }
  }
  // The last state, unless the loop's own probe has just taken it.
  if (Date.now() - lastProbe > probeEveryMs / 10) probe()
  // One more full verify of the folder as the last kill left it (and as a user would find it).
  const finalProblems = f.firstViolation === undefined ? await verify(o.dir, h, lenOf, f) : ['skipped']
  const finalVerifyOk = finalProblems.length === 0
  if (!finalVerifyOk && f.firstViolation === undefined) fail(-1, `final verify: ${finalProblems.join(' | ')}`)
  return { ...f, finalVerifyOk }
}
