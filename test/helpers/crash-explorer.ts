// Crash-state explorer: an in-process ALICE (reliability regimen §5.0 item 3, R4).
//
// A small workload runs once on a traced SimDisk (no faults, latency on) through a
// RecordingStorage that keeps the bytes of every write. The explorer then replays the trace
// through its own model of the file system and, at every crash point, lists every disk
// image a power cut could leave; each distinct image is reopened with Log.open on a fresh
// SimDisk and its records are checked against what had been acknowledged and issued.
//
// The model (the same as SimDisk's, docs/FORMAT.md "Durability assumptions"):
//  - Crash point k is the moment just before op k+1 of the trace completes (the trace is in
//    completion order; op k has completed). Completed = end ≤ T_k, the end tick of op k.
//  - A completed write or size change (truncate) of a file is pending until a datasync of
//    the same inode that BEGAN after the write ENDED has completed; then it is durable.
//    A datasync covers nothing that completed after it began.
//  - A create (open of a missing name), mkdir, rename or unlink is pending until a syncDir of
//    its folder that began after it ended has completed. A file whose entry never became
//    durable is gone at the crash, whatever its data.
//  - A write issued but not completed at the crash point (start < end tick of op k+1, end >
//    T_k) is pending too: it may have reached the disk.
//  - The crash keeps the durable state plus ANY SUBSET of the pending ops, applied in
//    completion order (in-flight writes last). All subsets when there are at most
//    `exhaustiveLimit` (10) pending ops, else `samples` (1,000) seeded random subsets plus
//    the empty and the full one.
//  - Not modelled (left to the seeded power-loss test, R3): a kept write torn at sector
//    granularity, a file size that grows without its content, in-flight folder ops,
//    misdirected and lost writes, PSOW violations.
// Pending data ops of files that no outcome can reach (unlinked, never durably named) are
// dropped from the subsets: they cannot change any image.
//
// Checks per state (P1-P4 of regimen §4): reopen succeeds; the records are consecutive
// self-checking records from seq 0 (prefix, no phantom or torn bytes); no batch is cut;
// every acknowledged seq (a flush, makeStable or close that resolved before the crash
// point) is there; nothing beyond what had been issued before the crash point is there.

import { createHash } from 'node:crypto'
import type { TraceRecord } from '../../src/io/index.js'
import { SimDisk } from '../../src/io/index.js'
import {
  applyDirOp,
  cloneDirs,
  type Dirs,
  type Entry,
  type DirOp as SimDirOp,
} from '../../src/io/sim-storage.js'
import { Log } from '../../src/log/index.js'
import { mixSeed, Prng } from '../../src/util/prng.js'
import { decodeRecord, encodeRecord } from '../crash/log-records.js'
import { RecordingStorage, showRecord } from './io-recorder.js'

const ROOT = 'db'
const ROOT_DIR = 0

// ---- the workload driver --------------------------------------------------------------

interface Issued {
  seq: number
  /** Logical clock at the append call. */
  clock: number
}

interface Acked {
  /** Every seq ≤ this one is acknowledged. */
  seq: number
  clock: number
}

/** Drives a Log on the recorded disk and notes, on the trace clock, what was issued and acked. */
export class Driver {
  seq = 0
  readonly issued: Issued[] = []
  readonly acked: Acked[] = []
  /** truncateBefore(LSN of record `seq`) calls: the log may start at any seq ≤ it after them. */
  readonly truncations: Issued[] = []
  /** LSN of each record whose LSN the API returned (singles, blobs, a batch's last). */
  private readonly lsnOf = new Map<number, number>()
  private log: Log | undefined
  private readonly pending: Promise<unknown>[] = []

  constructor(
    readonly rec: RecordingStorage,
    readonly segmentBytes: number,
    private readonly unsafeAckBeforeSync: boolean,
  ) {}

  private get l(): Log {
    if (this.log === undefined) throw new Error('the log is not open')
    return this.log
  }

  async open(): Promise<void> {
    this.log = await Log.open(ROOT, {
      storage: this.rec,
      segmentBytes: this.segmentBytes,
      flushEveryMs: 0,
      unsafeAckBeforeSync: this.unsafeAckBeforeSync,
    })
    let last = -1
    for await (const r of this.log.iterFrom(0)) last = decodeRecord(r.data)?.seq ?? -2
    if (last !== this.seq - 1)
      throw new Error(`reopen without a crash ends at seq ${last}, expected ${this.seq - 1}`)
  }

  append(pad: number): void {
    const clock = this.rec.clock()
    const lsn = this.l.append(encodeRecord(this.seq, 0, 1, Math.min(pad, this.l.maxInlineBytes - 12)))
    this.lsnOf.set(this.seq, lsn)
    this.issued.push({ seq: this.seq++, clock })
  }

  batch(n: number, pad: number): void {
    const clock = this.rec.clock()
    const p = Math.min(pad, this.l.maxInlineBytes - 12)
    const last = this.l.appendBatch(Array.from({ length: n }, (_, k) => encodeRecord(this.seq + k, k, n, p)))
    this.lsnOf.set(this.seq + n - 1, last)
    for (let k = 0; k < n; k++) this.issued.push({ seq: this.seq++, clock })
  }

  /** A record over maxInlineBytes: a blob file plus a pointer. Awaited, so seqs stay in LSN order. */
  async blob(extra: number): Promise<void> {
    const clock = this.rec.clock()
    const seq = this.seq++
    this.issued.push({ seq, clock })
    this.lsnOf.set(seq, await this.l.appendLarge(encodeRecord(seq, 0, 1, this.l.maxInlineBytes + extra)))
  }

  /** truncateBefore(the LSN of a record chosen by `pick` among those with a known LSN). */
  async truncateBefore(pick: (n: number) => number): Promise<void> {
    const known = [...this.lsnOf.keys()]
    if (known.length === 0) return
    const seq = known[pick(known.length)] as number
    this.truncations.push({ seq, clock: this.rec.clock() })
    await this.l.truncateBefore(this.lsnOf.get(seq) as number)
  }

  private ackAfter(p: Promise<unknown>, upTo: number): Promise<void> {
    return p.then(() => {
      this.acked.push({ seq: upTo, clock: this.rec.clock() })
    })
  }

  async flush(): Promise<void> {
    await this.ackAfter(this.l.flush(), this.seq - 1)
  }

  /** A flush nobody waits for now (its acknowledgement is still noted when it resolves). */
  flushLater(): void {
    this.pending.push(this.ackAfter(this.l.flush(), this.seq - 1))
  }

  /** Writes everything appended so far without a datasync (makeDurable); no acknowledgement. */
  async writeOut(): Promise<void> {
    await this.l.makeDurable(this.l.maxReservedLsn)
  }

  /** makeStable of the last record appended. */
  makeStableLater(): void {
    const lsn = this.l.maxReservedLsn
    this.pending.push(this.ackAfter(this.l.makeStable(lsn), this.seq - 1))
  }

  async turns(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r))
  }

  async close(): Promise<void> {
    await Promise.all(this.pending.splice(0))
    await this.ackAfter(this.l.close(), this.seq - 1)
    this.log = undefined
  }
}

export interface Workload {
  name: string
  segmentBytes: number
  run(d: Driver): Promise<void>
}

/** The canonical small workloads (R4): create, appends, a batch, a blob, close and reopen. */
export const CANONICAL: Workload[] = [
  {
    name: 'create-append-batch-close',
    segmentBytes: 1024,
    async run(d) {
      await d.open()
      d.append(20)
      d.append(40)
      await d.flush()
      d.batch(3, 30)
      await d.flush()
      await d.close()
    },
  },
  {
    name: 'blob-close-reopen',
    segmentBytes: 1024,
    async run(d) {
      await d.open()
      d.append(10)
      await d.blob(200)
      await d.flush()
      d.append(10)
      await d.close()
      await d.open()
      d.append(10)
      await d.flush()
      await d.close()
    },
  },
  {
    // Many written-but-unsynced writes at once: more than 10 pending ops, so sampled subsets.
    name: 'unsynced-writes',
    segmentBytes: 1024,
    async run(d) {
      await d.open()
      for (let i = 0; i < 12; i++) {
        d.append(40 + 10 * i)
        await d.writeOut()
      }
      d.batch(3, 20)
      await d.flush()
      await d.close()
    },
  },
  {
    name: 'segment-spanning-batch',
    segmentBytes: 1024,
    async run(d) {
      await d.open()
      for (let i = 0; i < 5; i++) d.append(150)
      d.makeStableLater()
      d.batch(4, 120)
      await d.flush()
      await d.close()
    },
  },
]

/** A seeded random small workload. */
export function randomWorkload(seed: number): Workload {
  return {
    name: `random-${seed}`,
    segmentBytes: new Prng(seed).pick([1024, 2048] as const),
    async run(d) {
      const rng = new Prng(mixSeed(seed, 1))
      const lives = 1 + rng.int(2)
      // Some workloads append long stretches without syncing (more pending writes per point).
      const burst = rng.chance(0.3)
      for (let life = 0; life < lives; life++) {
        await d.open()
        const steps = 2 + rng.int(burst ? 20 : 7)
        for (let i = 0; i < steps; i++) {
          const pick = burst ? rng.int(6) : rng.int(10)
          if (pick < 4) d.append(rng.int(200))
          else if (pick < 5) d.batch(2 + rng.int(3), rng.int(100))
          else if (pick < 6) {
            if (rng.chance(0.7)) await d.blob(1 + rng.int(400))
            else await d.writeOut()
          } else if (pick < 7) await d.flush()
          else if (pick < 8) d.flushLater()
          else if (pick < 9) d.makeStableLater()
          else if (pick < 10 && rng.chance(0.5)) await d.truncateBefore((n) => rng.int(n))
          else await d.turns(1 + rng.int(3))
        }
        await d.close()
      }
    },
  }
}

// ---- the file-system model --------------------------------------------------------------

interface DataOp {
  op: number
  /** Completion tick; in-flight writes sort after every completed op. */
  seq: number
  ino: number
  kind: 'write' | 'size'
  position: number
  bytes: Uint8Array
  size: number
}

type DirOp = SimDirOp & { op: number }

type Candidate = { data: DataOp } | { dir: DirOp }

class Image {
  constructor(
    public bytes = new Uint8Array(0),
    public size = 0,
  ) {}

  clone(): Image {
    return new Image(this.bytes.slice(), this.size)
  }

  resize(size: number): void {
    if (size > this.bytes.length) {
      const next = new Uint8Array(Math.max(size, this.bytes.length * 2))
      next.set(this.bytes.subarray(0, this.size))
      this.bytes = next
    } else if (size < this.size) {
      this.bytes.fill(0, size, this.size)
    }
    this.size = size
  }

  apply(d: DataOp): void {
    if (d.kind === 'size') {
      this.resize(d.size)
      return
    }
    const end = d.position + d.bytes.length
    if (end > this.size) this.resize(end)
    this.bytes.set(d.bytes, d.position)
  }

  copy(): Uint8Array {
    return this.bytes.slice(0, this.size)
  }
}

function partsOf(path: string): string[] {
  return path === '' ? [] : path.split('/')
}

/** Replays a trace in completion order: namespace, durable images, pending ops. */
class FsModel {
  dirs: Dirs = new Map([[ROOT_DIR, new Map()]])
  durableDirs: Dirs = new Map([[ROOT_DIR, new Map()]])
  pendingDir: DirOp[] = []
  durable = new Map<number, Image>()
  pendingData = new Map<number, DataOp[]>()
  inoOfOpen = new Map<number, number>()
  /** Bumped whenever something becomes durable. */
  version = 0
  private nextIno = 1
  private nextDir = 1

  constructor(private readonly rec: RecordingStorage) {}

  private dirAt(parts: string[]): number {
    let id = ROOT_DIR
    for (const p of parts) {
      const e = this.dirs.get(id)?.get(p)
      if (e?.type !== 'dir') throw new Error(`crash-explorer model: no folder ${parts.join('/')}`)
      id = e.id
    }
    return id
  }

  private parent(path: string): { dir: number; leaf: string } {
    const parts = partsOf(path)
    return { dir: this.dirAt(parts.slice(0, -1)), leaf: parts[parts.length - 1] as string }
  }

  inoOf(r: TraceRecord): number {
    const open = this.rec.handleOf.get(r.op)
    const ino = open === undefined ? undefined : this.inoOfOpen.get(open)
    if (ino === undefined) throw new Error(`crash-explorer model: no file handle for ${showRecord(r)}`)
    return ino
  }

  dataOp(r: TraceRecord, seq: number): DataOp {
    const ino = this.inoOf(r)
    if (r.kind === 'truncate') {
      return {
        op: r.op,
        seq,
        ino,
        kind: 'size',
        position: 0,
        bytes: new Uint8Array(0),
        size: r.length as number,
      }
    }
    const bytes = this.rec.writeBytes.get(r.op)
    if (bytes === undefined) throw new Error(`crash-explorer model: no bytes for ${showRecord(r)}`)
    return { op: r.op, seq, ino, kind: 'write', position: r.position as number, bytes, size: 0 }
  }

  /**
   * An O_DSYNC write (writeSynced): durable once completed, and only it; the parts of
   * older pending writes it overwrote can no longer reach the disk after it.
   */
  private syncedWrite(d: DataOp): void {
    const lo = d.position
    const hi = d.position + d.bytes.length
    const keep: DataOp[] = []
    for (const p of this.pendingData.get(d.ino) ?? []) {
      const end = p.position + p.bytes.length
      if (p.kind !== 'write' || p.position >= hi || end <= lo) {
        keep.push(p)
        continue
      }
      if (p.position < lo) keep.push({ ...p, bytes: p.bytes.subarray(0, lo - p.position) })
      if (end > hi) keep.push({ ...p, position: hi, bytes: p.bytes.subarray(hi - p.position) })
    }
    this.pendingData.set(d.ino, keep)
    ;(this.durable.get(d.ino) as Image).apply(d)
    this.version++
  }

  apply(r: TraceRecord): void {
    if (!r.ok) return // no fault is injected here; a failed op (ENOENT, EEXIST) changed nothing
    switch (r.kind) {
      case 'open': {
        const { dir, leaf } = this.parent(r.path)
        const entries = this.dirs.get(dir) as Map<string, Entry>
        const e = entries.get(leaf)
        if (e?.type === 'file') {
          this.inoOfOpen.set(r.op, e.ino)
          return
        }
        const ino = this.nextIno++
        this.durable.set(ino, new Image())
        const entry: Entry = { type: 'file', ino }
        entries.set(leaf, entry)
        this.pendingDir.push({ op: r.op, seq: r.end, dir, kind: 'set', name: leaf, entry })
        this.inoOfOpen.set(r.op, ino)
        return
      }
      case 'mkdir': {
        const { dir, leaf } = this.parent(r.path)
        const entries = this.dirs.get(dir) as Map<string, Entry>
        if (entries.get(leaf) !== undefined) return
        const id = this.nextDir++
        this.dirs.set(id, new Map())
        this.durableDirs.set(id, new Map())
        const entry: Entry = { type: 'dir', id }
        entries.set(leaf, entry)
        this.pendingDir.push({ op: r.op, seq: r.end, dir, kind: 'set', name: leaf, entry })
        return
      }
      case 'rename': {
        const to = `${r.path.slice(0, r.path.length - r.name.length)}${r.to as string}`
        const a = this.parent(r.path)
        const b = this.parent(to)
        if (r.path === to) return
        const src = this.dirs.get(a.dir)?.get(a.leaf) as Entry
        this.dirs.get(a.dir)?.delete(a.leaf)
        this.dirs.get(b.dir)?.set(b.leaf, src)
        if (a.dir === b.dir) {
          this.pendingDir.push({
            op: r.op,
            seq: r.end,
            dir: a.dir,
            kind: 'rename',
            from: a.leaf,
            to: b.leaf,
            entry: src,
          })
        } else {
          this.pendingDir.push({ op: r.op, seq: r.end, dir: b.dir, kind: 'set', name: b.leaf, entry: src })
          this.pendingDir.push({ op: r.op, seq: r.end, dir: a.dir, kind: 'delete', name: a.leaf })
        }
        return
      }
      case 'unlink': {
        const { dir, leaf } = this.parent(r.path)
        this.dirs.get(dir)?.delete(leaf)
        this.pendingDir.push({ op: r.op, seq: r.end, dir, kind: 'delete', name: leaf })
        return
      }
      case 'write':
      case 'truncate': {
        const d = this.dataOp(r, r.end)
        if (r.synced === true) {
          this.syncedWrite(d)
          return
        }
        let list = this.pendingData.get(d.ino)
        if (list === undefined) {
          list = []
          this.pendingData.set(d.ino, list)
        }
        list.push(d)
        return
      }
      case 'datasync': {
        const ino = this.inoOf(r)
        const list = this.pendingData.get(ino) ?? []
        const img = this.durable.get(ino) as Image
        const keep: DataOp[] = []
        for (const d of list) {
          if (d.seq < r.start) img.apply(d)
          else keep.push(d)
        }
        if (keep.length !== list.length) this.version++
        this.pendingData.set(ino, keep)
        return
      }
      case 'syncDir': {
        const id = this.dirAt(partsOf(r.path))
        const keep: DirOp[] = []
        for (const op of this.pendingDir) {
          if (op.dir === id && op.seq < r.start) applyDirOp(this.durableDirs, op)
          else keep.push(op)
        }
        if (keep.length !== this.pendingDir.length) this.version++
        this.pendingDir = keep
        return
      }
      default:
        return // read, stat, list, close: no effect on the disk
    }
  }

  /** Inodes some crash outcome could name: durably named, or named by a pending folder op. */
  reachableInodes(): Set<number> {
    const out = new Set<number>()
    for (const entries of this.durableDirs.values())
      for (const e of entries.values()) if (e.type === 'file') out.add(e.ino)
    for (const op of this.pendingDir)
      if (op.kind !== 'delete' && op.entry.type === 'file') out.add(op.entry.ino)
    return out
  }

  /** The files of the disk after a crash that keeps `kept` of the pending ops: path → bytes. */
  image(kept: Candidate[]): Map<string, Uint8Array> {
    const dirs = cloneDirs(this.durableDirs)
    const imgs = new Map<number, Image>()
    for (const c of kept) {
      if ('dir' in c) applyDirOp(dirs, c.dir)
      else {
        let img = imgs.get(c.data.ino)
        if (img === undefined) {
          img = (this.durable.get(c.data.ino) as Image).clone()
          imgs.set(c.data.ino, img)
        }
        img.apply(c.data)
      }
    }
    const files = new Map<string, Uint8Array>()
    const walk = (id: number, prefix: string): void => {
      for (const [name, e] of dirs.get(id) ?? []) {
        const path = prefix === '' ? name : `${prefix}/${name}`
        if (e.type === 'dir') walk(e.id, path)
        else files.set(path, (imgs.get(e.ino) ?? (this.durable.get(e.ino) as Image)).copy())
      }
    }
    walk(ROOT_DIR, '')
    return files
  }
}

// ---- recovery and checks ----------------------------------------------------------------

type Outcome =
  /** Records first..last (seqs) recovered; -1, -1 when none. */
  | { kind: 'ok'; first: number; last: number }
  | { kind: 'phantom' | 'non_prefix' | 'torn_batch' | 'failed_reopen'; detail: string }

export interface ExploreResult {
  crashPoints: number
  states: number
  distinctImages: number
  /** Most pending ops at one crash point, and points where subsets were sampled (> limit). */
  maxPending: number
  sampledPoints: number
  acked_lost: number
  non_prefix: number
  phantom: number
  torn_batches: number
  failed_reopens: number
  /** The first few failing states, described. */
  examples: string[]
}

export function emptyResult(): ExploreResult {
  return {
    crashPoints: 0,
    states: 0,
    distinctImages: 0,
    maxPending: 0,
    sampledPoints: 0,
    acked_lost: 0,
    non_prefix: 0,
    phantom: 0,
    torn_batches: 0,
    failed_reopens: 0,
    examples: [],
  }
}

export function addResults(a: ExploreResult, b: ExploreResult): ExploreResult {
  return {
    crashPoints: a.crashPoints + b.crashPoints,
    states: a.states + b.states,
    distinctImages: a.distinctImages + b.distinctImages,
    maxPending: Math.max(a.maxPending, b.maxPending),
    sampledPoints: a.sampledPoints + b.sampledPoints,
    acked_lost: a.acked_lost + b.acked_lost,
    non_prefix: a.non_prefix + b.non_prefix,
    phantom: a.phantom + b.phantom,
    torn_batches: a.torn_batches + b.torn_batches,
    failed_reopens: a.failed_reopens + b.failed_reopens,
    examples: [...a.examples, ...b.examples].slice(0, 10),
  }
}

export function failures(r: ExploreResult): number {
  return r.acked_lost + r.non_prefix + r.phantom + r.torn_batches + r.failed_reopens
}

/**
 * Consecutive self-checking records from some first seq (0 unless a truncateBefore dropped
 * whole segments, which may also cut a batch at the front), no batch cut at the end.
 */
function classify(records: Uint8Array[]): Outcome {
  let first = -1
  for (let i = 0; i < records.length; i++) {
    const d = decodeRecord(records[i] as Uint8Array)
    if (d === undefined) return { kind: 'phantom', detail: `record ${i} is not a record that was written` }
    if (i === 0) first = d.seq
    if (d.seq !== first + i)
      return { kind: 'non_prefix', detail: `record ${i} has seq ${d.seq}, expected ${first + i}` }
    if (d.indexInBatch === 0 && d.batchSize > 1 && i + d.batchSize > records.length) {
      return { kind: 'torn_batch', detail: `batch at seq ${d.seq} of ${d.batchSize} records is cut` }
    }
    if (i === 0 && d.indexInBatch > 0 && first === 0) {
      return { kind: 'torn_batch', detail: 'the log starts inside a batch' }
    }
  }
  return records.length === 0
    ? { kind: 'ok', first: -1, last: -1 }
    : { kind: 'ok', first, last: first + records.length - 1 }
}

async function recover(files: Map<string, Uint8Array>, segmentBytes: number): Promise<Outcome> {
  const disk = new SimDisk({ seed: 1, latency: false })
  for (const [path, bytes] of files) disk.writeFileRaw(path, bytes)
  let log: Log | undefined
  try {
    log = await Log.open(ROOT, { storage: disk.storage(ROOT), segmentBytes, flushEveryMs: 0 })
    const records: Uint8Array[] = []
    for await (const r of log.iterFrom(0)) records.push(r.data)
    return classify(records)
  } catch (e) {
    const err = e as Error
    return { kind: 'failed_reopen', detail: `${err.name}: ${err.message}` }
  } finally {
    await log?.close().catch(() => {})
  }
}

function imageKey(files: Map<string, Uint8Array>): string {
  const h = createHash('sha1')
  for (const path of [...files.keys()].sort()) {
    const b = files.get(path) as Uint8Array
    h.update(`${path}:${b.length}:`)
    h.update(b)
  }
  return h.digest('hex')
}

export interface ExploreOptions {
  seed: number
  /** Explore all subsets up to this many pending ops. Default 10. */
  exhaustiveLimit?: number
  /** Random subsets above the limit. Default 1,000. */
  samples?: number
}

/** Enumerates the crash states of a recorded run and checks every one. */
export async function exploreTrace(
  trace: readonly TraceRecord[],
  rec: RecordingStorage,
  driver: Driver,
  label: string,
  o: ExploreOptions,
): Promise<ExploreResult> {
  const limit = o.exhaustiveLimit ?? 10
  const samples = o.samples ?? 1000
  const S = driver.segmentBytes
  const result = emptyResult()
  const model = new FsModel(rec)
  const memo = new Map<string, Outcome>()
  const writes = trace.filter((r) => r.kind === 'write' && r.ok)
  let lastSignature = ''
  for (let k = 0; k < trace.length; k++) {
    const r = trace[k] as TraceRecord
    model.apply(r)
    const T = r.end
    const nextEnd = trace[k + 1]?.end ?? Number.POSITIVE_INFINITY
    const reachable = model.reachableInodes()
    const completed: Candidate[] = []
    for (const list of model.pendingData.values())
      for (const d of list) if (reachable.has(d.ino)) completed.push({ data: d })
    for (const d of model.pendingDir) completed.push({ dir: d })
    completed.sort((a, b) => ('data' in a ? a.data.seq : a.dir.seq) - ('data' in b ? b.data.seq : b.dir.seq))
    const inflight: Candidate[] = writes
      .filter((w) => w.start < nextEnd && w.end > T)
      .sort((a, b) => a.start - b.start)
      .map((w) => ({ data: model.dataOp(w, Number.POSITIVE_INFINITY) }))
      .filter((c) => reachable.has(c.data.ino))
    const candidates = [...completed, ...inflight]
    const signature = `${model.version}|${candidates.map((c) => ('data' in c ? c.data.op : `d${c.dir.op}`)).join(',')}`
    if (signature === lastSignature) continue
    lastSignature = signature
    result.crashPoints++
    const acked = driver.acked.reduce((m, a) => (a.clock <= T ? Math.max(m, a.seq) : m), -1)
    const issued = driver.issued.filter((i) => i.clock <= T).length
    const maxFirst = driver.truncations.reduce((m, t) => (t.clock <= T ? Math.max(m, t.seq) : m), 0)
    const n = candidates.length
    result.maxPending = Math.max(result.maxPending, n)
    if (n > limit) result.sampledPoints++
    const masks: boolean[][] = []
    if (n <= limit) {
      for (let m = 0; m < 1 << n; m++) masks.push(candidates.map((_, i) => ((m >> i) & 1) === 1))
    } else {
      const rng = new Prng(mixSeed(o.seed, k))
      masks.push(
        candidates.map(() => false),
        candidates.map(() => true),
      )
      for (let s = 0; s < samples; s++) masks.push(candidates.map(() => rng.chance(0.5)))
    }
    for (const mask of masks) {
      result.states++
      const kept = candidates.filter((_, i) => mask[i])
      const files = model.image(kept)
      const key = imageKey(files)
      let out = memo.get(key)
      if (out === undefined) {
        out = await recover(files, S)
        memo.set(key, out)
        result.distinctImages++
      }
      let problem: string | undefined
      if (out.kind === 'ok') {
        if (out.last < acked) {
          result.acked_lost++
          problem = `acked_lost: records ${out.first}..${out.last} recovered, seq ${acked} was acknowledged`
        } else if (out.last >= issued) {
          result.phantom++
          problem = `phantom: records ${out.first}..${out.last} recovered, only ${issued} issued`
        } else if (out.first > maxFirst) {
          result.non_prefix++
          problem = `non_prefix: the log starts at seq ${out.first}, truncation allowed at most ${maxFirst}`
        }
      } else {
        if (out.kind === 'failed_reopen') result.failed_reopens++
        else if (out.kind === 'phantom') result.phantom++
        else if (out.kind === 'non_prefix') result.non_prefix++
        else result.torn_batches++
        problem = `${out.kind}: ${out.detail}`
      }
      if (problem !== undefined && result.examples.length < 5) {
        const keptOps = kept.map((c) => ('data' in c ? `#${c.data.op}` : `#${c.dir.op}(${c.dir.kind})`))
        const dropped = candidates
          .filter((_, i) => !mask[i])
          .map((c) => ('data' in c ? `#${c.data.op}` : `#${c.dir.op}(${c.dir.kind})`))
        result.examples.push(
          `seed=${o.seed} workload=${label} crash after ${showRecord(r)}: ${problem}; ` +
            `kept [${keptOps.join(' ')}] dropped [${dropped.join(' ')}]`,
        )
      }
    }
  }
  return result
}

/** Runs a workload on a fresh traced disk, then explores its crash states. */
export async function exploreWorkload(
  w: Workload,
  o: ExploreOptions & { unsafeAckBeforeSync?: boolean; skipSyncDir?: readonly string[] },
): Promise<ExploreResult & { ops: number }> {
  const disk = new SimDisk({ seed: o.seed, latency: true, trace: true })
  const rec = new RecordingStorage(disk, disk.storage(ROOT), { skipSyncDir: o.skipSyncDir ?? [] })
  const driver = new Driver(rec, w.segmentBytes, o.unsafeAckBeforeSync === true)
  await w.run(driver)
  const r = await exploreTrace(disk.trace, rec, driver, w.name, o)
  return { ...r, ops: disk.trace.length }
}
