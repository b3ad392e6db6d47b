// R14, space reclamation under crashes (reliability regimen §5.1): sled's
// `test_space_leaks` — thousands of overwrites of one key, then the files must stay within
// a bound of the live data — plus the same loop with a power cut every CRASH_EVERY ops.
//
// Scenarios, each without crashes and with a power cut every CRASH_EVERY operations:
//  - one-key:   overwrites of one key through open() (the public API) on the simulated disk;
//  - few-keys:  the same over 8 keys;
//  - blob-page: overwrites of one page with a base larger than a page (a blob file each
//    time) among a few small pages, on the page cache that open() builds the Db on;
//  - blob-value: the same through open(): one key overwritten with values too large for an
//    inline page (each a blob leaf, a blob file each time) among a few small keys;
//  - one-key-file: one-key on real files, a crash = the folder's bytes copied in one
//    synchronous step (what a SIGKILL at that instant leaves).
// A power cut keeps a random subset of the unsynced writes, torn at sector granularity;
// cleaning runs in the background throughout, so cuts land inside relocation, truncation
// and blob deletion too. After each cut the database is reopened and every key must hold
// its last acknowledged value or a later one (0 live keys lost).
//
// Settling: the Db has no compaction call, so after the loop the database is closed, the
// page cache under it is opened with the options open() uses and cleanNow() runs, then it
// closes (writing its checkpoint). Then, on the files as they are:
//  - data files (the log and the blob files) ≤ 4 × live + 2 segments, where live = the
//    page cache's live log bytes + live blob bytes (the ratio is reported), not counting one
//    free slot the log file may keep below its used ones by design (overBound() says why);
//  - the other files are conf, witness and one checkpoint, nothing else (no second
//    checkpoint, temp file or journal). They are held by count, not by the bound: with one
//    8-byte value, 4 × live (≈ 200 B) is less than conf + witness + checkpoint (≈ 230 B);
//  - 0 blob files that no log pointer names (orphans), after recovery;
//  - 0 live keys lost: a reopen through open() reads back every key's last value.
// Mutation checks: with cleaning off (the head is never freed), and with a storage that
// ignores blob unlinks, the same harness must report a leak.
//
// One line: `RELIABILITY r14-space-leaks …`. BOBSLED_SEED=<n> replays; BOBSLED_SOAK=1 runs
// 1,000,000 overwrites and 2,000 cuts per crash scenario (nightly size; not run in CI).

import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { type Db, type DbStore, type OpenOptions, open, openOn } from '../../src/db.js'
import { SimDisk, type Storage } from '../../src/io/index.js'
import { PageCache, type PageCacheOptions, WARM_HINT_NAME } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { Prng } from '../../src/util/prng.js'
import { filesOf } from '../helpers/db-images.js'
import { ForwardingStorage } from '../helpers/forwarding-storage.js'
import { isSoak } from '../helpers/io-recorder.js'
import { type ListPage, listCodec } from '../helpers/list-codec.js'
import { blobCensus } from '../helpers/orphan-blobs.js'
import { orphanBlobs } from '../helpers/page-history.js'
import { copyFolderNow } from '../helpers/temp-dir.js'

const S = 8 * 1024
const OVERWRITES = isSoak ? 1_000_000 : 10_000
/** Blob writes cost a file, a datasync and a folder sync each: fewer of them in CI. */
const BLOB_OVERWRITES = isSoak ? 100_000 : 1_500
const CRASH_EVERY = 500
/** Blob cuts come more often: blob writes are fewer in CI (see BLOB_OVERWRITES). */
const BLOB_CRASH_EVERY = isSoak ? CRASH_EVERY : 100
/** The regimen's bound: files ≤ 4 × live bytes + 2 segments. */
const LIVE_FACTOR = 4
const SLACK_SEGMENTS = 2
/** Free slots the log file may keep below its used ones (see leaks()). */
const MAX_FREE_SLOTS = 1
const SEED = process.env.BOBSLED_SEED !== undefined ? Number(process.env.BOBSLED_SEED) : 14

type Scenario = 'one-key' | 'few-keys' | 'blob-page' | 'blob-value' | 'one-key-file'

interface Mutation {
  /** Page cache option: cleaning off, so the log's head is never freed. */
  noCleaning?: boolean
  /** Storage wrapper: unlinks under blobs/ do nothing. */
  keepBlobs?: boolean
}

interface Figures {
  scenario: Scenario
  ops: number
  crashes: number
  /** Bytes of the data files: the log and the blob files. */
  filesBytes: number
  /** Bytes of the other files (conf, witness, checkpoint, warm-up hint), held to a count, not the bound. */
  metaBytes: number
  /** Metadata files that should not be there (a second checkpoint, temp files, a journal). */
  strayFiles: string[]
  liveBytes: number
  boundBytes: number
  /** Free slots of the log file below its last used one (cut only at its end). */
  freeSlots: number
  orphanBlobs: number
  blobFiles: number
  liveKeysLost: number
  segmentsCleaned: number
  maxFilesBytes: number
}

const optionsOf = (storage: Storage | undefined): OpenOptions => ({
  ...(storage !== undefined ? { storage } : {}),
  segmentBytes: S,
  cacheCapacity: 64 * 1024,
  flushEveryMs: 0,
})

/** The page cache options open() derives from optionsOf (src/db.ts openPageStore). */
function pageCacheOptions(storage: Storage | undefined, m: Mutation): PageCacheOptions {
  const o: PageCacheOptions = { segmentBytes: S, cacheCapacity: 64 * 1024, flushEveryMs: 0 }
  if (storage !== undefined) o.storage = storage
  if (m.noCleaning) o.cleaning = false
  return o
}

class KeepBlobsStorage extends ForwardingStorage {
  override unlink(name: string): Promise<void> {
    if (name.startsWith('blobs/')) return Promise.resolve()
    return this.inner.unlink(name)
  }
}

/** Where the database lives: a simulated disk, or a real folder (crash = copy its bytes). */
interface Place {
  storage(): Storage | undefined
  path(): string
  crash(rng: Prng): void
  files(): Map<string, number>
  /** Bytes of every file, cheaply enough to sample after every write. */
  totalBytes(): number
  listBlobs(): Promise<string[]>
}

function simPlace(seed: number, m: Mutation): Place {
  let disk: SimDisk = new SimDisk({ seed, latency: true })
  const wrap = (s: Storage): Storage => (m.keepBlobs ? new KeepBlobsStorage(s) : s)
  return {
    storage: () => wrap(disk.storage('db')),
    path: () => 'db',
    crash: (rng) => {
      disk = disk.crash({ seed: rng.next() })
    },
    files: () => new Map([...filesOf(disk)].map(([n, b]) => [n, b.length])),
    totalBytes: () => {
      // The folder holds files and one folder, blobs/ (src/log/folder.ts).
      let n = 0
      for (const name of disk.listSync('db')) {
        if (name !== 'blobs') n += disk.sizeSync(`db/${name}`)
        else for (const b of disk.listSync('db/blobs')) n += disk.sizeSync(`db/blobs/${b}`)
      }
      return n
    },
    listBlobs: () => disk.storage('db').list('blobs'),
  }
}

const tempRoots: string[] = []
process.on('exit', () => {
  for (const d of tempRoots) rmSync(d, { recursive: true, force: true })
})

function filePlace(): Place {
  const root = mkdtempSync(join(tmpdir(), 'bobsled-r14-'))
  tempRoots.push(root)
  let n = 0
  let dir = join(root, 'db0')
  const walk = (d: string, rel: string, out: Map<string, number>): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'LOCK') continue
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) walk(join(d, e.name), r, out)
      else out.set(r, statSync(join(d, e.name)).size)
    }
  }
  return {
    storage: () => undefined,
    path: () => dir,
    crash: () => {
      const next = join(root, `db${++n}`)
      copyFolderNow(dir, next)
      dir = next
    },
    files: () => {
      const out = new Map<string, number>()
      walk(dir, '', out)
      return out
    },
    totalBytes() {
      return sumBytes(this.files())
    },
    listBlobs: async () => {
      try {
        return readdirSync(join(dir, 'blobs'))
      } catch {
        return []
      }
    },
  }
}

/** Whole slots of the log file beyond the segments the log holds. */
const freeSlotsOf = (files: Map<string, number>, segments: number): number =>
  Math.max(0, Math.floor((files.get('log') ?? 0) / S) - segments)

const sumBytes = (files: Map<string, number>): number => [...files.values()].reduce((a, b) => a + b, 0)

const isData = (name: string): boolean => name === 'log' || name.startsWith('blobs/')
const dataBytes = (files: Map<string, number>): number =>
  sumBytes(new Map([...files].filter(([n]) => isData(n))))

/**
 * The settled folder holds conf, witness, one checkpoint and the warm-up hint (one file of
 * 36 B + 4 B per resident page, rewritten in place by each checkpoint) besides its data files.
 */
function strayFilesOf(files: Map<string, number>): string[] {
  const meta = [...files.keys()].filter((n) => !isData(n))
  const checkpoints = meta.filter((n) => /^checkpoint-[0-9a-f]{16}$/.test(n))
  const kept = new Set(['conf', 'witness', WARM_HINT_NAME])
  const stray = meta.filter((n) => !kept.has(n) && !checkpoints.includes(n))
  if (checkpoints.length > 1) stray.push(...checkpoints.slice(1))
  return stray
}

/** The value of the seq-th write to key: self-describing, of a seeded length. */
function workloadValue(key: string, seq: number, rng: Prng): string {
  return `${key}|${seq}|`.padEnd(8 + rng.int(120), '.')
}

/** blob-value: a value over the inline page of S-byte segments (a quarter segment), or a small one. */
function blobScenarioValue(key: string, seq: number, rng: Prng): string {
  return key === 'big' ? `${key}|${seq}|`.padEnd(S / 4 + rng.int(3000), 'B') : workloadValue(key, seq, rng)
}

function seqOf(key: string, v: string | undefined): number | string {
  if (v === undefined) return -1
  const [k, s] = v.split('|')
  if (k !== key || s === undefined || !/^\d+$/.test(s))
    return `a value not written to ${key}: ${v.slice(0, 40)}`
  return Number(s)
}

/**
 * Per key: the last acknowledged seq and the last issued seq. After a cut a key must hold
 * a value whose seq lies in [acked, issued] (-1: absent, before the first ack).
 */
class KeyModel {
  readonly acked = new Map<string, number>()
  readonly issued = new Map<string, number>()
  issue(key: string, seq: number): void {
    this.issued.set(key, seq)
  }
  ackAll(): void {
    for (const [k, s] of this.issued) this.acked.set(k, s)
  }
  /** Checks a recovered key; returns the number of lost acknowledged keys (0 or 1) or a violation. */
  check(key: string, got: number | string): number | string {
    if (typeof got === 'string') return got
    const a = this.acked.get(key) ?? -1
    const i = this.issued.get(key) ?? -1
    if (got > i) return `key ${key}: seq ${got} was never issued (last ${i})`
    if (got < a) return 1
    this.acked.set(key, got)
    this.issued.set(key, got)
    return 0
  }
}

async function openDbAt(place: Place, m: Mutation): Promise<Db> {
  const storage = place.storage()
  if (!m.noCleaning && !m.keepBlobs) return open(place.path(), optionsOf(storage))
  // The mutations need page cache options open() does not take; same options otherwise.
  const pc = await PageCache.open<TreePage>(place.path(), treeCodec, pageCacheOptions(storage, m))
  return openOn(pc as DbStore, optionsOf(storage))
}

/** Checks every key of `model` in `db`; returns lost keys or throws on a violation. */
async function checkKeys(db: Db, model: KeyModel, where: string): Promise<number> {
  let lost = 0
  for (const key of model.issued.keys()) {
    const r = model.check(key, seqOf(key, await db.getString(key)))
    if (typeof r === 'string') throw new Error(`${where}: ${r}`)
    lost += r
  }
  return lost
}

/** Closes, cleans until settled on the page cache under the Db, closes again; returns its stats. */
async function settle(
  place: Place,
  m: Mutation,
): Promise<{ live: number; cleaned: number; segments: number }> {
  const pc = await PageCache.open<TreePage>(place.path(), treeCodec, pageCacheOptions(place.storage(), m))
  if (!m.noCleaning) await pc.cleanNow()
  const st = pc.stats()
  if (st.backgroundError !== undefined) throw new Error(`background error: ${st.backgroundError}`)
  await pc.close()
  return { live: st.liveBytes + st.liveBlobBytes, cleaned: st.segmentsCleaned, segments: st.segments }
}

async function runDbScenario(
  scenario: 'one-key' | 'few-keys' | 'blob-value' | 'one-key-file',
  crashing: boolean,
  seed: number,
  m: Mutation = {},
): Promise<Figures> {
  const rng = new Prng(seed)
  const place = scenario === 'one-key-file' ? filePlace() : simPlace(seed, m)
  const isBlob = scenario === 'blob-value'
  const keys =
    scenario === 'few-keys'
      ? Array.from({ length: 8 }, (_, i) => `key-${i}`)
      : isBlob
        ? ['big', 's0', 's1', 's2']
        : ['k']
  const ops = isBlob ? BLOB_OVERWRITES : OVERWRITES
  const crashEvery = isBlob ? BLOB_CRASH_EVERY : CRASH_EVERY
  const valueFor = isBlob ? blobScenarioValue : workloadValue
  const pick = (): string => (isBlob && rng.chance(0.5) ? 'big' : rng.pick(keys))
  const model = new KeyModel()
  let db = await openDbAt(place, m)
  let crashes = 0
  let lost = 0
  let cleaned = 0
  let maxFiles = 0
  const stats = async (): Promise<{ segmentsCleaned: number }> =>
    ((await db.stats()) as { store: { segmentsCleaned: number } }).store
  let seq = 0
  for (let op = 1; op <= ops; op++) {
    const key = pick()
    await db.insert(key, valueFor(key, ++seq, rng))
    model.issue(key, seq)
    if (rng.chance(isBlob ? 1 / 10 : 1 / 40)) {
      await db.flush()
      model.ackAll()
    }
    if (crashing && op % crashEvery === 0) {
      // A few more writes in flight (blob-value: a blob being written), then the power goes.
      const tail = Array.from({ length: rng.int(4) }, () => {
        const k = pick()
        model.issue(k, ++seq)
        return db.insert(k, valueFor(k, seq, rng)).catch(() => {})
      })
      if (isBlob) await new Promise((r) => setImmediate(r))
      cleaned += (await stats()).segmentsCleaned
      maxFiles = Math.max(maxFiles, sumBytes(place.files()))
      place.crash(rng)
      crashes++
      await Promise.all(tail)
      await db.close().catch(() => {})
      db = await openDbAt(place, m)
      lost += await checkKeys(db, model, `${scenario} seed=${seed} after cut ${crashes} (op ${op})`)
    }
  }
  await db.flush()
  model.ackAll()
  cleaned += (await stats()).segmentsCleaned
  await db.close()
  maxFiles = Math.max(maxFiles, sumBytes(place.files()))
  const settled = await settle(place, m)
  const files = place.files()
  // Recovery, every key through the public API, then orphans: blob files no pointer names.
  db = await openDbAt(place, m)
  lost += await checkKeys(db, model, `${scenario} seed=${seed} after settling`)
  await db.close()
  const census = await blobCensus(place.storage() ?? place.path())
  const orphans = census.orphans
  return {
    scenario,
    ops,
    crashes,
    filesBytes: dataBytes(files),
    metaBytes: sumBytes(files) - dataBytes(files),
    strayFiles: strayFilesOf(files),
    liveBytes: settled.live,
    boundBytes: LIVE_FACTOR * settled.live + SLACK_SEGMENTS * S,
    freeSlots: freeSlotsOf(files, settled.segments),
    orphanBlobs: orphans,
    blobFiles: census.files,
    liveKeysLost: lost,
    segmentsCleaned: cleaned + settled.cleaned,
    maxFilesBytes: maxFiles,
  }
}

/** The seq a blob-page scenario page holds (its first item starts with `seq|`). */
function pageSeq(p: ListPage | undefined): number | string {
  if (p === undefined) return -1
  const s = (p.items[0] ?? '').split('|')[0] as string
  return /^\d+$/.test(s)
    ? Number(s)
    : `a page not written by the workload: ${(p.items[0] ?? '').slice(0, 40)}`
}

async function runBlobScenario(crashing: boolean, seed: number, m: Mutation = {}): Promise<Figures> {
  const rng = new Prng(seed)
  const place = simPlace(seed, m)
  const openPc = (): Promise<PageCache<ListPage>> =>
    PageCache.open<ListPage>('db', listCodec, pageCacheOptions(place.storage(), m))
  let pc = await openPc()
  const model = new KeyModel()
  const big = pc.allocate()
  const small = [pc.allocate(), pc.allocate(), pc.allocate()]
  const pids = [big, ...small]
  let seq = 0
  let crashes = 0
  let lost = 0
  let cleaned = 0
  let orphans = 0
  let maxFiles = 0
  const checkPages = async (where: string): Promise<void> => {
    for (const pid of pids) {
      const r = model.check(String(pid), pageSeq(await pc.get(pid)))
      if (typeof r === 'string') throw new Error(`blob-page seed=${seed} ${where}: ${r}`)
      lost += r
    }
    orphans += (await orphanBlobs(pc, () => place.listBlobs())).length
  }
  const write = async (pid: number): Promise<void> => {
    model.issue(String(pid), ++seq)
    if (pid === big) {
      const items = [`${seq}|`.padEnd(pc.maxPageBytes + 1 + rng.int(3000), 'B')]
      await pc.replaceLarge(pid, { items })
    } else {
      await pc.whenWritable()
      pc.replace(pid, { items: [`${seq}|`.padEnd(20 + rng.int(200), 's')] })
    }
  }
  for (let op = 1; op <= BLOB_OVERWRITES; op++) {
    await write(rng.chance(0.5) ? big : rng.pick(small))
    // The peak during the run, after every write: cleaning must keep up with dead blobs,
    // not only reclaim them when settling (B-PC5 peaked at 696 KB for 4.5 KB live).
    maxFiles = Math.max(maxFiles, place.totalBytes())
    if (rng.chance(1 / 10)) {
      await pc.flush()
      model.ackAll()
    }
    if (crashing && op % BLOB_CRASH_EVERY === 0) {
      // A blob write in flight (file written, pointer not yet logged), then the power goes.
      const inFlight = write(big).catch(() => {})
      await new Promise((r) => setImmediate(r))
      cleaned += pc.stats().segmentsCleaned
      maxFiles = Math.max(maxFiles, sumBytes(place.files()))
      place.crash(rng)
      crashes++
      await inFlight
      await pc.close().catch(() => {})
      pc = await openPc()
      await checkPages(`after cut ${crashes} (op ${op})`)
    }
  }
  await pc.flush()
  model.ackAll()
  if (!m.noCleaning) await pc.cleanNow()
  const st = pc.stats()
  if (st.backgroundError !== undefined) throw new Error(`background error: ${st.backgroundError}`)
  cleaned += st.segmentsCleaned
  await pc.close()
  maxFiles = Math.max(maxFiles, sumBytes(place.files()))
  const files = place.files()
  pc = await openPc()
  await checkPages('after settling')
  await pc.close()
  const live = st.liveBytes + st.liveBlobBytes
  return {
    scenario: 'blob-page',
    ops: BLOB_OVERWRITES,
    crashes,
    filesBytes: dataBytes(files),
    metaBytes: sumBytes(files) - dataBytes(files),
    strayFiles: strayFilesOf(files),
    liveBytes: live,
    boundBytes: LIVE_FACTOR * live + SLACK_SEGMENTS * S,
    freeSlots: freeSlotsOf(files, st.segments),
    orphanBlobs: orphans,
    blobFiles: [...files.keys()].filter((n) => n.startsWith('blobs/')).length,
    liveKeysLost: lost,
    segmentsCleaned: cleaned,
    maxFilesBytes: maxFiles,
  }
}

/** Files over the bound (the regimen's, plus the one free slot the log file keeps by design). */
function overBound(f: Figures): string[] {
  const out: string[] = []
  // The log file keeps one free slot below its used ones by design (PageCache.usesTopSlots:
  // a file is cut only at its end, and emptying the top slot would relocate every page to
  // save one slot); docs/RELIABILITY.md, R14. Beyond that slot, the regimen's bound holds.
  if (f.freeSlots > MAX_FREE_SLOTS) out.push(`log file keeps ${f.freeSlots} free slots (> ${MAX_FREE_SLOTS})`)
  const counted = f.filesBytes - Math.min(f.freeSlots, MAX_FREE_SLOTS) * S
  if (counted > f.boundBytes) out.push(`files ${counted} B (less the free slot) > bound ${f.boundBytes} B`)
  return out
}

/** What the harness reports as a leak: every run asserts none, and mutations must trip it. */
function leaks(f: Figures, withBound = true): string[] {
  const out = withBound ? overBound(f) : []
  if (f.strayFiles.length > 0) out.push(`stray files ${f.strayFiles.join(',')}`)
  if (f.orphanBlobs > 0) out.push(`${f.orphanBlobs} orphan blob files`)
  if (f.liveKeysLost > 0) out.push(`${f.liveKeysLost} live keys lost`)
  return out
}

const show = (f: Figures): string =>
  `${f.scenario}${f.crashes > 0 ? `+cuts` : ''}: ops=${f.ops} cuts=${f.crashes} files=${f.filesBytes} meta=${f.metaBytes} live=${f.liveBytes} ` +
  `ratio=${(f.filesBytes / f.liveBytes).toFixed(2)} bound=${f.boundBytes} free_slots=${f.freeSlots} max_files_during=${f.maxFilesBytes} ` +
  `orphan_blobs=${f.orphanBlobs} blob_files=${f.blobFiles} live_keys_lost=${f.liveKeysLost} segments_cleaned=${f.segmentsCleaned}`

function run(scenario: Scenario, crashing: boolean, seed: number, m: Mutation = {}): Promise<Figures> {
  return scenario === 'blob-page'
    ? runBlobScenario(crashing, seed, m)
    : runDbScenario(scenario, crashing, seed, m)
}

const SCENARIOS: Array<[Scenario, boolean]> = [
  ['one-key', false],
  ['one-key', true],
  ['few-keys', false],
  ['few-keys', true],
  ['blob-page', false],
  ['blob-page', true],
  ['blob-value', true],
  ['one-key-file', true],
]

/**
 * Blob runs (blob-page, blob-value) were not held to the files bound while B-PC5 was open (fixed: cleaning
 * counts dead blob files; docs/RELIABILITY.md). Their peak during the run is reported, not
 * gated: replaceLarge() does not wait for cleaning.
 */
const KNOWN_B_PC5 = false
const isBlobScenario = (s: Scenario): boolean => s === 'blob-page' || s === 'blob-value'

test('R14 space leaks: overwrites with and without power cuts stay within 4 × live + 2 segments', async () => {
  const all: Figures[] = []
  const t0 = performance.now()
  for (const [scenario, crashing] of SCENARIOS) {
    const f = await run(scenario, crashing, SEED)
    console.log(`r14 ${show(f)}`)
    all.push(f)
    const gateBound = !(KNOWN_B_PC5 && isBlobScenario(scenario))
    assert.deepEqual(leaks(f, gateBound), [], `${show(f)} (replay: BOBSLED_SEED=${SEED})`)
  }
  const db = all.filter((f) => !isBlobScenario(f.scenario))
  const blob = all.filter((f) => isBlobScenario(f.scenario))
  const ratio = (fs: Figures[]): string => Math.max(...fs.map((f) => f.filesBytes / f.liveBytes)).toFixed(1)
  const sum = (k: keyof Figures): number => all.reduce((a, f) => a + (f[k] as number), 0)
  console.log(
    `RELIABILITY r14-space-leaks runs=${all.length} overwrites=${sum('ops')} cuts=${sum('crashes')} ` +
      `db_worst_files_over_live=${ratio(db)} db_over_bound=${db.filter((f) => overBound(f).length > 0).length} ` +
      `db_free_slot_runs=${db.filter((f) => f.freeSlots > 0).length} ` +
      `blob_worst_files_over_live=${ratio(blob)} blob_over_bound=${blob.filter((f) => overBound(f).length > 0).length} ` +
      `blob_peak_files=${Math.max(...blob.map((f) => f.maxFilesBytes))} ` +
      `orphan_blobs=${sum('orphanBlobs')} live_keys_lost=${sum('liveKeysLost')} ` +
      `segments_cleaned=${sum('segmentsCleaned')} ms=${Math.round(performance.now() - t0)} seed=${SEED}`,
  )
  assert.ok(sum('segmentsCleaned') > 0, 'cleaning ran')
  assert.ok(
    blob.every((f) => f.blobFiles > 0),
    'the blob scenario left blob files to count',
  )
})

test('B-PC5: overwriting a blob-sized page keeps its files within 4 × live + 2 segments', {
  todo: KNOWN_B_PC5 ? 'src bug B-PC5: dead blob files are invisible to cleaning' : false,
}, async () => {
  const f = await run('blob-page', false, SEED)
  assert.deepEqual(overBound(f), [], show(f))
})

test('B-PC5: overwriting a blob value through open() keeps its files within 4 × live + 2 segments', {
  todo: KNOWN_B_PC5 ? 'src bug B-PC5: dead blob files are invisible to cleaning' : false,
}, async () => {
  const f = await run('blob-value', false, SEED)
  assert.deepEqual(overBound(f), [], show(f))
})

test('R14 mutation check: no head freeing and no blob deletion are reported as leaks', async () => {
  const noCleaning = await run('one-key', false, SEED, { noCleaning: true })
  const keepBlobs = await run('blob-page', true, SEED, { keepBlobs: true })
  console.log(`r14-mutation ${show(noCleaning)}`)
  console.log(`r14-mutation ${show(keepBlobs)}`)
  console.log(
    `RELIABILITY r14-space-leaks-mutation no_head_freeing="${leaks(noCleaning).join('; ')}" ` +
      `no_blob_deletion="${leaks(keepBlobs, false).join('; ')}" seed=${SEED}`,
  )
  assert.ok(overBound(noCleaning).length > 0, 'the harness missed a log that is never cleaned')
  assert.ok(keepBlobs.orphanBlobs > 0, 'the harness missed blob files that are never deleted')
})
