// Worker of the mutated-files test (mutated-files.test.ts): builds the valid images, installs
// the allocation cap on this thread, then opens and reads one mutated folder per case and
// reports the outcome. The parent watches it from another thread, so even a synchronous
// endless loop is seen as a hang (the parent stops this worker and starts a new one).

import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { parentPort, workerData } from 'node:worker_threads'
import { type Db, open as openDb } from '../../src/db.js'
import { isBobsledError } from '../../src/errors.js'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { mixSeed, Prng } from '../../src/util/prng.js'
import { installAllocCap } from '../helpers/alloc-cap.js'
import {
  buildImage,
  type DbImage,
  type Files,
  filesOf,
  hashFiles,
  IMAGE_SEGMENT_BYTES,
  type ModelRecord,
  openOn,
  plant,
} from '../helpers/db-images.js'
import { type Mutated, mutate, mutateDb } from '../helpers/file-mutations.js'
import { describeError, TimeoutError, withTimeout } from '../helpers/log-faults.js'

export interface WorkerInput {
  baseSeed: number
  from: number
  to: number
  /** Replay exactly this case seed (BOBSLED_SEED). */
  only: number | undefined
  /** One case in `realEvery` (decided by its seed) runs on real files under `tmpRoot`. */
  realEvery: number
  tmpRoot: string
  capBytes: number
  caseTimeoutMs: number
  /**
   * Harness self-check (a mutation switch): report CRC-fixing cases as plain damage, so
   * wrong data they carry must show up as silent_wrong.
   */
  isSelfCheck: boolean
}

export type OutcomeKind =
  | 'detected'
  | 'exact'
  | 'tail_unwitnessed'
  | 'truncated_below_witness'
  | 'silent_wrong'
  | 'crc_fixed_changed'
  | 'uncaught'
  | 'hang'
  | 'over_cap'

export interface CaseEnd {
  t: 'end'
  i: number
  seed: number
  kind: OutcomeKind
  detail: string
  labels: string[]
  isCrcFixed: boolean
  isReal: boolean
  /** A refused open (or read) changed bytes in the folder. */
  refusedModified: boolean
  /** The folder grew past its input by more than two segments + 64 KiB. */
  diskGrowth: boolean
  where: 'open' | 'read' | ''
  /** A database folder (open(), trees) rather than a bare log. */
  isDb?: boolean
}

const input = workerData as WorkerInput
const port = parentPort
if (port === null) throw new Error('mutated-files-worker runs as a worker thread')

const GROWTH_SLACK_BYTES = 2 * IMAGE_SEGMENT_BYTES + 64 * 1024
const DB_EVERY = 10

// Errors that escape every await (stray promises, timers) are counted against the case
// that was running.
let strays: string[] = []
process.on('uncaughtException', (e) => strays.push(`uncaughtException: ${describeError(e)}`))
process.on('unhandledRejection', (e) => strays.push(`unhandledRejection: ${describeError(e)}`))

const totalBytes = (files: Files): number => [...files.values()].reduce((n, b) => n + b.length, 0)

async function writeReal(files: Files, dir: string): Promise<void> {
  await fs.mkdir(path.join(dir, 'blobs'), { recursive: true, mode: 0o700 })
  for (const [name, bytes] of files) await fs.writeFile(path.join(dir, name), bytes, { mode: 0o600 })
}

async function readReal(dir: string): Promise<Files> {
  const out: Files = new Map()
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.name === 'LOCK') continue // the opener's lock file, not data
      if (e.isDirectory()) await walk(path.join(d, e.name), r)
      else {
        const st = await fs.stat(path.join(d, e.name))
        // A sparse file made huge by a hostile offset is reported by its size, never read.
        out.set(r, st.size > 64 * 1024 * 1024 ? new Uint8Array(0) : await fs.readFile(path.join(d, e.name)))
        if (st.size > 64 * 1024 * 1024) out.set(`${r}#size`, new Uint8Array(1))
      }
    }
  }
  await walk(dir, '')
  return out
}

async function realSize(dir: string): Promise<number> {
  let n = 0
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(path.join(d, e.name))
      else n += (await fs.stat(path.join(d, e.name))).size
    }
  }
  await walk(dir)
  return n
}

function sameRecord(a: ModelRecord, b: ModelRecord): boolean {
  return a.lsn === b.lsn && a.id === b.id && Buffer.compare(a.data, b.data) === 0
}

/** Opens, iterates and reads one mutated folder. */
async function examine(
  img: DbImage,
  m: Mutated,
  seed: number,
  real: string | undefined,
): Promise<Omit<CaseEnd, 't' | 'i' | 'seed' | 'labels' | 'isCrcFixed' | 'isReal'>> {
  const inputBytes = totalBytes(m.files)
  const base = { refusedModified: false, diskGrowth: false, where: '' as CaseEnd['where'] }
  let open: () => Promise<Log>
  let snapshot: () => Promise<Files>
  if (real === undefined) {
    const disk = plant(m.files, seed)
    open = () => openOn(disk)
    snapshot = async () => filesOf(disk)
  } else {
    await writeReal(m.files, real)
    open = () => Log.open(real, { segmentBytes: IMAGE_SEGMENT_BYTES, flushEveryMs: 0 })
    snapshot = () => readReal(real)
  }
  const before = hashFiles(await snapshot())
  const sizeNow = async (): Promise<number> =>
    real === undefined ? totalBytes(await snapshot()) : realSize(real)
  let log: Log
  try {
    log = await open()
  } catch (e) {
    if (!isBobsledError(e)) return { ...base, kind: 'uncaught', detail: `open: ${describeError(e)}` }
    const modified = hashFiles(await snapshot()) !== before
    return { ...base, kind: 'detected', where: 'open', detail: e.code, refusedModified: modified }
  }
  let out: Omit<CaseEnd, 't' | 'i' | 'seed' | 'labels' | 'isCrcFixed' | 'isReal'>
  try {
    const got: ModelRecord[] = []
    for await (const r of log.iterFrom(0)) got.push({ lsn: r.lsn, id: r.id, data: r.data.slice() })
    for (const g of got) {
      const r = await log.read(g.lsn)
      if (r.id !== g.id || Buffer.compare(r.data, g.data) !== 0) {
        throw new WrongData(`read(${g.lsn}) disagrees with iteration`)
      }
    }
    const model = img.model
    const n = Math.min(got.length, model.length)
    let wrong = ''
    for (let k = 0; k < n && wrong === ''; k++) {
      if (!sameRecord(got[k] as ModelRecord, model[k] as ModelRecord))
        wrong = `record ${k} (LSN ${(model[k] as ModelRecord).lsn}) differs`
    }
    if (wrong === '' && got.length > model.length)
      wrong = `${got.length - model.length} records more than written`
    if (wrong !== '') {
      out = { ...base, kind: m.isCrcFixed ? 'crc_fixed_changed' : 'silent_wrong', detail: wrong }
    } else if (got.length < model.length) {
      const detail = `${got.length} of ${model.length} records, no error`
      if (m.isCrcFixed) out = { ...base, kind: 'crc_fixed_changed', detail }
      else if (img.isWitnessed && !m.touchedWitness)
        out = { ...base, kind: 'truncated_below_witness', detail }
      else out = { ...base, kind: 'tail_unwitnessed', detail }
    } else {
      out = { ...base, kind: 'exact', detail: '' }
    }
  } catch (e) {
    if (e instanceof WrongData)
      out = { ...base, kind: m.isCrcFixed ? 'crc_fixed_changed' : 'silent_wrong', detail: e.message }
    else if (!isBobsledError(e)) out = { ...base, kind: 'uncaught', detail: `reading: ${describeError(e)}` }
    else out = { ...base, kind: 'detected', where: 'read', detail: e.code }
  } finally {
    await log.close().catch(() => {})
  }
  out.diskGrowth = (await sizeNow()) > inputBytes + GROWTH_SLACK_BYTES
  if (out.diskGrowth) out.detail += ` (folder grew from ${inputBytes} to ${await sizeNow()} bytes)`
  return out
}

class WrongData extends Error {}

/** Where two versions of a file differ (for failure messages). */
function diffAt(a: Uint8Array | undefined, b: Uint8Array | undefined): string {
  if (a === undefined || b === undefined) return `sizes ${a?.length} ${b?.length}`
  const out: string[] = [`sizes ${a.length} ${b.length}`]
  let i = 0
  while (i < Math.min(a.length, b.length) && out.length < 6) {
    if (a[i] === b[i]) {
      i++
      continue
    }
    let j = i
    while (j < Math.min(a.length, b.length) && a[j] !== b[j]) j++
    out.push(
      `[${i}, ${j}) now ${Buffer.from(a.subarray(i, Math.min(j, i + 8))).toString('hex')} was ${Buffer.from(b.subarray(i, Math.min(j, i + 8))).toString('hex')}`,
    )
    i = j
  }
  return out.join('; ')
}

// ---- database folders (open(), the page cache's checkpoints and the tree's pages) ----

const DB_SEGMENT_BYTES = 4096
const DB_OPTIONS = { segmentBytes: DB_SEGMENT_BYTES, flushEveryMs: 0, nodeMaxBytes: 400, nodeMaxEntries: 8 }
const DB_TREES = ['', 'a', 'b']
type TreesModel = Map<string, Map<string, string>>

interface DbShape {
  img: DbImage
  trees: TreesModel
}

const treeOf = async (db: Db, name: string) => (name === '' ? db : db.openTree(name))

/** A small database of three trees, closed cleanly (a checkpoint and a witness). */
async function buildDbShape(seed: number): Promise<DbShape> {
  const disk = new SimDisk({ seed, latency: false })
  const rng = new Prng(seed)
  const trees: TreesModel = new Map(DB_TREES.map((t) => [t, new Map<string, string>()]))
  for (let life = 0; life < 2; life++) {
    const db = await openDb('db', { ...DB_OPTIONS, storage: disk.storage('db') })
    for (let i = 0; i < 160; i++) {
      const name = DB_TREES[rng.int(3)] as string
      const k = `k${String(rng.int(120)).padStart(4, '0')}`
      const t = await treeOf(db, name)
      const m = trees.get(name) as Map<string, string>
      if (rng.int(6) === 0) {
        await t.remove(k)
        m.delete(k)
      } else {
        const v = `${k}.${life}.${i}`.padEnd(8 + rng.int(40), '~')
        await t.insert(k, v)
        m.set(k, v)
      }
    }
    await db.close()
  }
  const files = filesOf(disk)
  const conf = files.get('conf') as Uint8Array
  const v = new DataView(conf.buffer, conf.byteOffset, conf.byteLength)
  const logId = v.getUint32(20, true) * 0x1_0000_0000 + v.getUint32(16, true)
  return { img: { shape: 'clean', files, model: [], isWitnessed: true, logId }, trees }
}

/** Opens a mutated database folder with open() and reads every tree both ways. */
async function examineDb(
  shape: DbShape,
  m: Mutated,
  seed: number,
): Promise<Omit<CaseEnd, 't' | 'i' | 'seed' | 'labels' | 'isCrcFixed' | 'isReal'>> {
  const inputBytes = totalBytes(m.files)
  const base = { refusedModified: false, diskGrowth: false, where: '' as CaseEnd['where'], isDb: true }
  const disk = plant(m.files, seed)
  const before = hashFiles(filesOf(disk))
  let db: Db
  try {
    db = await openDb('db', { ...DB_OPTIONS, storage: disk.storage('db') })
  } catch (e) {
    if (!isBobsledError(e)) return { ...base, kind: 'uncaught', detail: `open: ${describeError(e)}` }
    const after = filesOf(disk)
    const changed = [...new Set([...after.keys(), ...m.files.keys()])].filter(
      (n) => Buffer.compare(Buffer.from(after.get(n) ?? []), Buffer.from(m.files.get(n) ?? [])) !== 0,
    )
    return {
      ...base,
      kind: 'detected',
      where: 'open',
      detail: `${e.code}: ${e.message}${changed.length > 0 ? ` (changed: ${changed.join(', ')})` : ''}${changed.includes('log') ? ` [log ${diffAt(after.get('log'), m.files.get('log'))}]` : ''}`,
      refusedModified: hashFiles(after) !== before,
    }
  }
  let out: Omit<CaseEnd, 't' | 'i' | 'seed' | 'labels' | 'isCrcFixed' | 'isReal'>
  try {
    const dec = new TextDecoder()
    let wrong = ''
    for (const name of DB_TREES) {
      const t = await treeOf(db, name)
      const got: string[] = []
      for await (const [k, v] of t.range()) got.push(`${dec.decode(k)}=${dec.decode(v)}`)
      const back: string[] = []
      for await (const [k, v] of t.range({ reverse: true })) back.push(`${dec.decode(k)}=${dec.decode(v)}`)
      const want = [...(shape.trees.get(name) as Map<string, string>)].sort().map(([k, v]) => `${k}=${v}`)
      if (back.reverse().join() !== got.join()) wrong ||= `tree "${name}": the reverse scan differs`
      else if (got.join() !== want.join())
        wrong ||= `tree "${name}": ${got.length} entries, ${want.length} written`
    }
    if (wrong === '') out = { ...base, kind: 'exact', detail: '' }
    else if (m.isCrcFixed) out = { ...base, kind: 'crc_fixed_changed', detail: wrong }
    else if (m.touchedWitness) out = { ...base, kind: 'tail_unwitnessed', detail: wrong }
    else out = { ...base, kind: 'silent_wrong', detail: wrong }
  } catch (e) {
    if (!isBobsledError(e)) out = { ...base, kind: 'uncaught', detail: `reading: ${describeError(e)}` }
    else out = { ...base, kind: 'detected', where: 'read', detail: e.code }
  } finally {
    await db.close().catch(() => {})
  }
  out.diskGrowth = totalBytes(filesOf(disk)) > inputBytes + 2 * DB_SEGMENT_BYTES + 64 * 1024
  return out
}

/**
 * Self-check of the allocation cap: an over-cap request made during a case, as a src bug
 * would make it (crafted tail journals did, before replay bounded its extents), must be
 * counted even though the error never reaches the case.
 */
function plantOverCap(capBytes: number): void {
  try {
    new ArrayBuffer(capBytes + 1)
  } catch {
    // Refused by the cap, as intended; the count is what the self-check reads.
  }
}

async function main(): Promise<void> {
  const shapes = await Promise.all([
    buildImage('clean', 0xc1ea),
    buildImage('truncated', 0x7a11),
    buildImage('crashed', 0xc4a5),
  ])
  // A second log of each shape (another log id), for foreign files.
  const others = await Promise.all([
    buildImage('clean', 0x0c1e),
    buildImage('truncated', 0x07a1),
    buildImage('crashed', 0x0c4a),
  ])
  const dbShapes = await Promise.all([buildDbShape(0xdb01), buildDbShape(0xdb02)])
  const alloc = installAllocCap(input.capBytes)
  const mem = (): number => {
    const u = process.memoryUsage()
    return u.heapUsed + u.arrayBuffers
  }
  const baseline = mem()
  let peak = baseline
  for (let i = input.from; i < input.to; i++) {
    const seed = input.only ?? mixSeed(input.baseSeed, i)
    port?.postMessage({ t: 'start', i, seed })
    const rng = new Prng(seed)
    const k = rng.int(3)
    // One case in DB_EVERY is a database folder (its own stream, so the log cases keep theirs).
    const isDb = new Prng(seed ^ 0xdb).int(DB_EVERY) === 0
    const img = isDb ? (dbShapes[0] as DbShape).img : (shapes[k] as DbImage)
    const m = isDb ? mutateDb(img, (dbShapes[1] as DbShape).img, rng) : mutate(img, others[k] as DbImage, rng)
    const isReal = !isDb && rng.int(input.realEvery) === 0
    const real = isReal ? path.join(input.tmpRoot, `case-${i}`) : undefined
    strays = []
    const overBefore = alloc.overCap
    let r: Omit<CaseEnd, 't' | 'i' | 'seed' | 'labels' | 'isCrcFixed' | 'isReal'>
    if (input.isSelfCheck && m.labels.some((l) => l.startsWith('crcTailJournal')))
      plantOverCap(input.capBytes)
    try {
      r = await withTimeout(
        isDb ? examineDb(dbShapes[0] as DbShape, m, seed) : examine(img, m, seed, real),
        input.caseTimeoutMs,
        `case ${i}`,
      )
    } catch (e) {
      r =
        e instanceof TimeoutError
          ? { kind: 'hang', detail: e.message, refusedModified: false, diskGrowth: false, where: '' }
          : {
              kind: 'uncaught',
              detail: describeError(e),
              refusedModified: false,
              diskGrowth: false,
              where: '',
            }
    }
    // Let stray callbacks of this case run before judging it.
    await new Promise<void>((res) => setImmediate(res))
    if (alloc.overCap > overBefore)
      r = { ...r, kind: 'over_cap', detail: `${alloc.lastOver}; then ${r.kind} ${r.detail}` }
    else if (strays.length > 0 && r.kind !== 'hang') r = { ...r, kind: 'uncaught', detail: strays.join('; ') }
    if (real !== undefined) await fs.rm(real, { recursive: true, force: true })
    peak = Math.max(peak, mem())
    const end: CaseEnd = { t: 'end', i, seed, labels: m.labels, isCrcFixed: m.isCrcFixed, isReal, ...r }
    if (input.isSelfCheck && r.kind === 'crc_fixed_changed') end.kind = 'silent_wrong'
    port?.postMessage(end)
  }
  port?.postMessage({ t: 'done', largestAllocBytes: alloc.largestBytes, memGrowthBytes: peak - baseline })
}

await main()
