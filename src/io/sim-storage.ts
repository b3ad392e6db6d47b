// A seeded, deterministic simulated disk behind the Storage interface (reliability-regimen
// §5.0 item 1). The model is pessimistic, like SQLite's crash VFS:
//  - a file has a cache image (what reads return now) and a durable image; a completed
//    write or size change stays pending until a datasync that began after it completed;
//    a synced write (writeSynced, O_DSYNC) is durable when it completes, and only it; one
//    made on the calling thread (writeSyncedNow) completes before it returns, so a crash
//    never catches it in flight (an O_DSYNC write interrupted is never acknowledged); a
//    read on the calling thread (readNow) is a read issued and completed in one step, with
//    the same injected faults;
//  - a folder has pending entry ops (create, rename, unlink, mkdir) until a syncDir of that
//    folder; at a crash an entry that never became durable vanishes, synced data or not;
//  - crash() keeps the durable state plus a seeded random subset of pending ops (any
//    subset: that is the reordering), tears kept writes per 512-byte sector (new, old or
//    zero bytes, never outside the write: powersafe overwrite), and may persist a file's new
//    size without its content.
// Three device faults are opt-in (default off; reliability-regimen §5.0 item 1, R3 nightly):
//  - nonPsowOdds: no powersafe overwrite. At a power cut, a sector that an unsynced write
//    covers only in part may read back whole as zeros or junk, previously durable bytes of
//    that sector included;
//  - misdirectOdds: a completed write reaches the durable image at another offset of the
//    same file (a non-zero multiple of misdirectStrideBytes away, inside the file); reads
//    keep returning the right bytes until the power cut, as an OS page cache would;
//  - lostWriteOdds: a completed write never reaches the durable image, although a later
//    datasync covering it succeeds (the file size it reached does).
// Everything random comes from the seed, so any failure replays from the seed it prints.

import {
  DatabaseLockedError,
  InvalidArgumentError,
  IoError,
  NotADatabaseError,
  StorageError,
  wrapIoError,
} from '../errors.js'
import { mixSeed, Prng } from '../util/prng.js'
import { checkIoRange, checkSize, splitName } from './names.js'
import type { OpenMode, Storage, StorageFile, StorageLock } from './storage.js'

export type OpKind =
  | 'open'
  | 'read'
  | 'write'
  | 'datasync'
  | 'truncate'
  | 'rename'
  | 'unlink'
  | 'syncDir'
  | 'mkdir'
  | 'close'
  | 'list'
  /** exists() and size(). */
  | 'stat'

export type FaultCode = 'EIO' | 'ENOSPC' | 'EFBIG'

export interface FailAt {
  /** Index of the op to fail, counting from 0 the ops of `kinds` issued since this was set. */
  op: number
  /** Only these kinds count and fail; all kinds when absent. */
  kinds?: readonly OpKind[]
  code?: FaultCode
  /** Fail every later op of those kinds too. */
  persistent?: boolean
}

export interface SimFaults {
  failAt?: FailAt | undefined
  /** Writes fail with ENOSPC once this many bytes have been written in total. */
  enospcAfterBytes?: number | undefined
  /** The write primitive stores a random prefix; StorageFile.write must loop. */
  shortWrites?: boolean
  /** Each op completes after 0..N setImmediate turns (true: N = 3), so completions reorder. */
  latency?: boolean | number
  /**
   * No powersafe overwrite: at a power cut, each sector an unsynced write covers only in
   * part (its first or last) is, with these odds, read back whole as zeros or junk,
   * previously durable bytes included. Pessimistic: any pending write may have been the
   * one in progress. Default 0 (PSOW holds).
   */
  nonPsowOdds?: number
  /** Odds that a completed write lands at a wrong offset of the same file. Default 0. */
  misdirectOdds?: number
  /** A misdirected write moves by a non-zero multiple of this. Default 512 (a sector). */
  misdirectStrideBytes?: number
  /** Odds that a completed write never reaches the durable image. Default 0. */
  lostWriteOdds?: number
  /**
   * TEST ONLY — a mutation switch: a synced write (writeSynced, writeSyncedNow) stays pending
   * like a plain write, as on a device that ignores O_DSYNC. The power-loss test turns it on
   * to prove it catches acknowledgements that rest on synced writes (the inline path's).
   */
  unsafeIgnoreSyncedWrites?: boolean
}

/** Device faults the opt-in variants injected, over every life of the disk so far. */
export interface InjectedFaults {
  /** Sectors a power cut garbled beyond an unsynced write's own range (and changed). */
  nonPsowSectors: number
  misdirectedWrites: number
  lostWrites: number
}

export interface SimDiskOptions extends SimFaults {
  seed: number
  /** Record every op in `disk.trace`. */
  trace?: boolean
}

export interface CrashOptions {
  /** Decides everything about the crash; derived from the disk's seed when absent. */
  seed?: number
  /** Tear kept writes at sector granularity. Default true. */
  tornWrites?: boolean
  /** Keep any subset of pending ops. false: keep a prefix in completion order. Default true. */
  reorder?: boolean
}

/**
 * One op of the IO trace. The array is in completion order; `op` is the issue number.
 * `start` and `end` are ticks of one logical clock, so "write w completed before datasync s
 * began" is `w.end < s.start`.
 */
export interface TraceRecord {
  op: number
  kind: OpKind
  /** The name as the storage view was given it ('' for its folder). */
  name: string
  /** The path on the simulated disk ('db/log'). */
  path: string
  position?: number
  length?: number
  /** A rename's new name, as the storage view was given it. */
  to?: string
  /** A write made with writeSynced(): durable when it completed, nothing else with it. */
  synced?: boolean
  ok: boolean
  /** errno code of a failed op. */
  code?: string
  start: number
  end: number
}

export type DiskView = 'cache' | 'durable'

const SECTOR_BYTES = 512
const DEFAULT_LATENCY_TURNS = 3
// Per-crash odds of keeping a pending op: extremes included so "everything lost" and
// "everything kept" states come up often, not once in 2^n crashes.
const KEEP_ODDS = [0, 0.2, 0.5, 0.8, 1] as const
const TEAR_ODDS = 0.5
const SIZE_WITHOUT_CONTENT_ODDS = 0.25
// Salts of the variant faults' own random streams, so turning a variant on leaves every
// other decision of the same seed (latencies, which writes a crash keeps) unchanged.
const DEVICE_FAULT_SALT = 0x64657666
const NON_PSOW_SALT = 0x70736f77

const ERRNO: Record<string, number> = {
  EIO: -5,
  ENOSPC: -28,
  EFBIG: -27,
  ENOENT: -2,
  EEXIST: -17,
  ENOTDIR: -20,
  EISDIR: -21,
  EBADF: -9,
  ENOTEMPTY: -39,
  EINVAL: -22,
}

const SYSCALL: Record<OpKind, string> = {
  open: 'open',
  read: 'read',
  write: 'write',
  datasync: 'fdatasync',
  truncate: 'ftruncate',
  rename: 'rename',
  unlink: 'unlink',
  syncDir: 'fsync',
  mkdir: 'mkdir',
  close: 'close',
  list: 'scandir',
  stat: 'stat',
}

/** Bytes plus a size; capacity grows by doubling. Bytes past `size` are always zero. */
class Image {
  constructor(
    public bytes: Uint8Array = new Uint8Array(0),
    public size = 0,
  ) {}

  clone(): Image {
    return new Image(this.bytes.slice(), this.size)
  }

  private reserve(capacity: number): void {
    if (capacity <= this.bytes.length) return
    const next = new Uint8Array(Math.max(capacity, this.bytes.length * 2, 64))
    next.set(this.bytes.subarray(0, this.size))
    this.bytes = next
  }

  resize(size: number): void {
    if (size < this.size) this.bytes.fill(0, size, this.size)
    else this.reserve(size)
    this.size = size
  }

  write(position: number, src: Uint8Array): void {
    const end = position + src.length
    if (end > this.size) this.resize(end)
    this.bytes.set(src, position)
  }

  zero(position: number, length: number): void {
    const end = position + length
    if (end > this.size) this.resize(end)
    this.bytes.fill(0, position, end)
  }

  read(position: number, dst: Uint8Array, offset: number, length: number): number {
    const n = Math.max(0, Math.min(length, this.size - position))
    dst.set(this.bytes.subarray(position, position + n), offset)
    return n
  }

  copy(): Uint8Array {
    return this.bytes.slice(0, this.size)
  }
}

type DataOp =
  /** `growTo`: the file size the write reached when it is not `position + bytes.length` (a misdirected or lost write). */
  | { seq: number; kind: 'write'; position: number; bytes: Uint8Array; growTo?: number }
  | { seq: number; kind: 'size'; size: number }

type WriteOp = Extract<DataOp, { kind: 'write' }>

/** Applies a pending write as it reaches the durable image. */
function applyDataWrite(img: Image, op: { position: number; bytes: Uint8Array; growTo?: number }): void {
  if (op.growTo !== undefined && op.growTo > img.size) img.resize(op.growTo)
  if (op.bytes.length > 0) img.write(op.position, op.bytes)
}

/**
 * An O_DSYNC write reached the disk: Linux writes back the dirty pages of its range, so it
 * lands in the durable image, and the parts of older pending writes that it overwrote can
 * no longer reach the disk after it (they would bring back older bytes). Pending ops
 * elsewhere stay pending: it makes nothing else durable.
 */
function syncRange(inode: Inode, op: WriteOp): void {
  applyDataWrite(inode.durable, op)
  const lo = op.position
  const hi = op.position + op.bytes.length
  if (hi === lo) return
  const kept: DataOp[] = []
  for (const p of inode.pending) {
    if (p.kind !== 'write' || p.position >= hi || p.position + p.bytes.length <= lo) {
      kept.push(p)
      continue
    }
    // The size the older write reached still counts; only its overwritten bytes go.
    const growTo = Math.max(p.growTo ?? 0, p.position + p.bytes.length)
    if (p.position < lo) kept.push({ ...p, bytes: p.bytes.subarray(0, lo - p.position), growTo })
    if (p.position + p.bytes.length > hi) {
      kept.push({ ...p, position: hi, bytes: p.bytes.subarray(hi - p.position), growTo })
    } else if (p.position >= lo) {
      kept.push({ ...p, bytes: new Uint8Array(0), growTo })
    }
  }
  inode.pending = kept
}

interface Inode {
  ino: number
  cache: Image
  durable: Image
  pending: DataOp[]
}

/** A directory entry of the model; exported for the crash-state explorer's own replays. */
export type Entry = { type: 'file'; ino: number } | { type: 'dir'; id: number }

export type DirOp =
  | { seq: number; dir: number; kind: 'set'; name: string; entry: Entry }
  | { seq: number; dir: number; kind: 'delete'; name: string }
  | { seq: number; dir: number; kind: 'rename'; from: string; to: string; entry: Entry }

export type Dirs = Map<number, Map<string, Entry>>

interface InflightWrite {
  ino: number
  position: number
  bytes: Uint8Array
}

interface Handle {
  ino: number
  name: string
  path: string
  isWritable: boolean
  isClosed: boolean
}

interface Range {
  position?: number
  length?: number
  to?: string
  synced?: boolean
}

interface RunOptions<T> {
  range?: Range
  /** Runs when the op is issued, after it is counted; a throw fails the op. */
  issue?: (start: number) => void
  /** The op's effect, applied atomically when it completes; `end` is its tick. */
  complete: (end: number) => T
  /** Runs when an injected fault fails the op. */
  onFault?: () => void
  /** Runs however the op ends. */
  always?: () => void
}

const ROOT_DIR = 0

export function applyDirOp(dirs: Dirs, op: DirOp): void {
  let entries = dirs.get(op.dir)
  if (entries === undefined) {
    entries = new Map()
    dirs.set(op.dir, entries)
  }
  if (op.kind === 'set') entries.set(op.name, op.entry)
  else if (op.kind === 'delete') entries.delete(op.name)
  else {
    entries.delete(op.from)
    entries.set(op.to, op.entry)
  }
}

export function cloneDirs(dirs: Dirs): Dirs {
  const copy: Dirs = new Map()
  for (const [id, entries] of dirs) copy.set(id, new Map(entries))
  return copy
}

/** What one crash decided for one pending op. */
interface Fate {
  keep: boolean
  /** Per sector of a kept write: 0 new bytes, 1 old bytes, 2 zeros. */
  sectors?: Uint8Array
  /** A dropped write whose new file size still reached the disk. */
  isSizeOnly?: boolean
  /** Without PSOW: the write's partly covered edge sectors to garble whole (0 zeros, 1 junk). */
  garbled?: Array<{ sector: number; junk: boolean }>
}

type Candidate =
  | { seq: number; data: DataOp; inode: Inode }
  | { seq: number; dir: DirOp }
  | { seq: number; inflight: InflightWrite }

/** The machine's disk: all state, shared by every Storage view of it. */
class DiskCore {
  rng: Prng
  faults: SimFaults = {}
  isTracing: boolean
  readonly trace: TraceRecord[] = []
  opCount = 0
  isDead = false
  dirs: Dirs = new Map([[ROOT_DIR, new Map()]])
  durableDirs: Dirs = new Map([[ROOT_DIR, new Map()]])
  pendingDirOps: DirOp[] = []
  inodes = new Map<number, Inode>()
  private nextIno = 1
  private nextDirId = 1
  private tick = 0
  private faultCounter = 0
  private bytesWritten = 0
  private crashCount = 0
  private readonly inflight = new Map<number, InflightWrite>()
  /** Draws for misdirected and lost writes (a stream of its own, see DEVICE_FAULT_SALT). */
  faultRng: Prng
  injected: InjectedFaults = { nonPsowSectors: 0, misdirectedWrites: 0, lostWrites: 0 }
  readonly locks = new Set<string>()

  constructor(
    readonly seed: number,
    /** Seeds of the crashes that led here, for replay. */
    readonly crashSeeds: readonly number[],
    isTracing: boolean,
  ) {
    this.rng = new Prng(mixSeed(seed, crashSeeds.length === 0 ? 0 : (crashSeeds.at(-1) as number)))
    this.faultRng = new Prng(mixSeed(this.rng.seed, DEVICE_FAULT_SALT))
    this.isTracing = isTracing
  }

  describe(): string {
    return this.crashSeeds.length === 0
      ? `seed=${this.seed}`
      : `seed=${this.seed} crashSeeds=${this.crashSeeds.join(',')}`
  }

  setFaults(faults: SimFaults): void {
    if ('failAt' in faults) this.faultCounter = 0
    const op = faults.failAt?.op
    if (op !== undefined && (!Number.isSafeInteger(op) || op < 0)) {
      throw new InvalidArgumentError(`failAt.op must be a non-negative integer, got ${op}`)
    }
    const f = faults.enospcAfterBytes
    if (f !== undefined && (!Number.isSafeInteger(f) || f < 0)) {
      throw new InvalidArgumentError(`enospcAfterBytes must be a non-negative integer, got ${f}`)
    }
    for (const name of ['nonPsowOdds', 'misdirectOdds', 'lostWriteOdds'] as const) {
      const odds = faults[name]
      if (odds !== undefined && !(typeof odds === 'number' && odds >= 0 && odds <= 1)) {
        throw new InvalidArgumentError(`${name} must be a number in [0, 1], got ${odds}`)
      }
    }
    const stride = faults.misdirectStrideBytes
    if (stride !== undefined && (!Number.isSafeInteger(stride) || stride < 1)) {
      throw new InvalidArgumentError(`misdirectStrideBytes must be a positive integer, got ${stride}`)
    }
    this.faults = { ...this.faults, ...faults }
  }

  nodeError(code: string, kind: OpKind, path: string, detail: string): Error {
    const syscall = SYSCALL[kind]
    return Object.assign(new Error(`${code}: ${detail}, ${syscall} '${path}'`), {
      code,
      errno: ERRNO[code] ?? -5,
      syscall,
      path,
    })
  }

  deadError(kind: OpKind, name: string): IoError {
    const cause = this.nodeError('EIO', kind, name, 'the simulated machine lost power')
    return new IoError(
      `${kind} (${name}) failed: the simulated disk crashed; use the disk crash() returned [${this.describe()}]`,
      {
        file: name,
        cause,
      },
    )
  }

  private latencyTurns(): number {
    const l = this.faults.latency ?? true
    if (l === false) return 0
    const max = l === true ? DEFAULT_LATENCY_TURNS : Math.max(0, Math.floor(l))
    return max === 0 ? 0 : this.rng.int(max + 1)
  }

  private injectedFault(kind: OpKind): string | undefined {
    const f = this.faults.failAt
    if (f === undefined) return undefined
    if (f.kinds !== undefined && !f.kinds.includes(kind)) return undefined
    const index = this.faultCounter++
    if (index === f.op || (f.persistent === true && index > f.op)) return f.code ?? 'EIO'
    return undefined
  }

  private record(
    op: number,
    kind: OpKind,
    name: string,
    path: string,
    range: Range | undefined,
    ok: boolean,
    code: string | undefined,
    start: number,
    end: number,
  ): void {
    if (!this.isTracing) return
    const r: TraceRecord = { op, kind, name, path, ok, start, end }
    if (range?.position !== undefined) r.position = range.position
    if (range?.length !== undefined) r.length = range.length
    if (range?.to !== undefined) r.to = range.to
    if (range?.synced === true) r.synced = true
    if (code !== undefined) r.code = code
    this.trace.push(r)
  }

  /** Every simulated op: counted and checked for faults at issue, applied at completion. */
  async run<T>(kind: OpKind, name: string, path: string, o: RunOptions<T>): Promise<T> {
    if (this.isDead) throw this.deadError(kind, name)
    const op = this.opCount++
    const start = this.tick++
    const what = `${kind} [op ${op}, ${this.describe()}]`
    const fault = this.injectedFault(kind)
    const turns = this.latencyTurns()
    try {
      let issueError: unknown
      try {
        o.issue?.(start)
      } catch (e) {
        issueError = e
      }
      for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve))
      if (this.isDead) throw this.deadError(kind, name)
      return this.settle(op, kind, name, path, o, start, fault, issueError, what)
    } finally {
      o.always?.()
    }
  }

  /**
   * run() for an op done on the calling thread (writeSyncedNow, readNow): issued and completed in
   * one step, with the same fault injection, so no crash can catch it in flight and no
   * latency reorders it.
   */
  runNow<T>(kind: OpKind, name: string, path: string, o: RunOptions<T>): T {
    if (this.isDead) throw this.deadError(kind, name)
    const op = this.opCount++
    const start = this.tick++
    const what = `${kind} [op ${op}, ${this.describe()}]`
    const fault = this.injectedFault(kind)
    try {
      let issueError: unknown
      try {
        o.issue?.(start)
      } catch (e) {
        issueError = e
      }
      return this.settle(op, kind, name, path, o, start, fault, issueError, what)
    } finally {
      o.always?.()
    }
  }

  /** The completion of an issued op: its injected fault, its issue error, or its effect. */
  private settle<T>(
    op: number,
    kind: OpKind,
    name: string,
    path: string,
    o: RunOptions<T>,
    start: number,
    fault: string | undefined,
    issueError: unknown,
    what: string,
  ): T {
    if (fault !== undefined && issueError === undefined) {
      o.onFault?.()
      this.record(op, kind, name, path, o.range, false, fault, start, this.tick++)
      throw wrapIoError(this.nodeError(fault, kind, path, 'simulated fault'), what, name)
    }
    try {
      if (issueError !== undefined) throw issueError
      const result = o.complete(this.tick)
      this.record(op, kind, name, path, o.range, true, undefined, start, this.tick++)
      return result
    } catch (e) {
      const code = (e as { code?: unknown }).code
      this.record(
        op,
        kind,
        name,
        path,
        o.range,
        false,
        typeof code === 'string' ? code : undefined,
        start,
        this.tick++,
      )
      if (e instanceof StorageError || e instanceof InvalidArgumentError) throw e
      throw wrapIoError(e, what, name)
    }
  }

  // ---- namespace ----------------------------------------------------------------------

  /** The folder id at `parts`, all of which must be folders. */
  dirAt(dirs: Dirs, parts: readonly string[], kind: OpKind, path: string): number {
    let id = ROOT_DIR
    for (const part of parts) {
      const e = dirs.get(id)?.get(part)
      if (e === undefined) throw this.nodeError('ENOENT', kind, path, 'no such file or directory')
      if (e.type !== 'dir') throw this.nodeError('ENOTDIR', kind, path, 'not a directory')
      id = e.id
    }
    return id
  }

  /** The parent folder's id and the last part of `parts`. */
  parentOf(parts: readonly string[], kind: OpKind, path: string): { dir: number; leaf: string } {
    const leaf = parts.at(-1)
    if (leaf === undefined) throw this.nodeError('EINVAL', kind, path, 'invalid argument')
    return { dir: this.dirAt(this.dirs, parts.slice(0, -1), kind, path), leaf }
  }

  entries(dir: number): Map<string, Entry> {
    const m = this.dirs.get(dir)
    if (m === undefined) throw new IoError(`simulated folder ${dir} is missing [${this.describe()}]`)
    return m
  }

  lookup(dirs: Dirs, parts: readonly string[]): Entry | undefined {
    let entry: Entry = { type: 'dir', id: ROOT_DIR }
    for (const part of parts) {
      if (entry.type !== 'dir') return undefined
      const next: Entry | undefined = dirs.get(entry.id)?.get(part)
      if (next === undefined) return undefined
      entry = next
    }
    return entry
  }

  newInode(): Inode {
    const inode: Inode = { ino: this.nextIno++, cache: new Image(), durable: new Image(), pending: [] }
    this.inodes.set(inode.ino, inode)
    return inode
  }

  inode(ino: number): Inode {
    const inode = this.inodes.get(ino)
    if (inode === undefined) throw new IoError(`simulated inode ${ino} is missing [${this.describe()}]`)
    return inode
  }

  newDir(): number {
    const id = this.nextDirId++
    this.dirs.set(id, new Map())
    this.durableDirs.set(id, new Map())
    return id
  }

  // ---- ops ----------------------------------------------------------------------------

  open(parts: string[], name: string, mode: OpenMode): Promise<Handle> {
    const path = parts.join('/')
    return this.run('open', name, path, {
      complete: (end) => {
        const { dir, leaf } = this.parentOf(parts, 'open', path)
        const entries = this.entries(dir)
        const e = entries.get(leaf)
        if (e?.type === 'dir')
          throw this.nodeError('EISDIR', 'open', path, 'illegal operation on a directory')
        const isNew = mode === 'create' || (mode === 'createOrOpen' && e === undefined)
        if (!isNew) {
          if (e === undefined) throw this.nodeError('ENOENT', 'open', path, 'no such file or directory')
          return { ino: e.ino, name, path, isWritable: mode !== 'read', isClosed: false }
        }
        if (e !== undefined) throw this.nodeError('EEXIST', 'open', path, 'file already exists')
        const inode = this.newInode()
        const entry: Entry = { type: 'file', ino: inode.ino }
        entries.set(leaf, entry)
        this.pendingDirOps.push({ seq: end, dir, kind: 'set', name: leaf, entry })
        return { ino: inode.ino, name, path, isWritable: true, isClosed: false }
      },
    })
  }

  private checkHandle(h: Handle, kind: OpKind, needsWrite: boolean): void {
    if (h.isClosed) throw this.nodeError('EBADF', kind, h.path, 'bad file descriptor (file is closed)')
    if (needsWrite && !h.isWritable)
      throw this.nodeError('EBADF', kind, h.path, 'bad file descriptor (opened for reading)')
  }

  read(h: Handle, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.run('read', h.name, h.path, this.readOp(h, buffer, offset, length, position))
  }

  /** read() on the calling thread (StorageFile.readNow): the same op, faults and trace. */
  readNow(h: Handle, buffer: Uint8Array, offset: number, length: number, position: number): number {
    return this.runNow('read', h.name, h.path, this.readOp(h, buffer, offset, length, position))
  }

  private readOp(
    h: Handle,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): RunOptions<number> {
    const range = { position, length }
    return {
      range,
      issue: () => this.checkHandle(h, 'read', false),
      complete: () => {
        const n = this.inode(h.ino).cache.read(position, buffer, offset, length)
        range.length = n
        return n
      },
    }
  }

  /**
   * The write primitive: may store only a prefix, like pwrite. Returns the count stored.
   * `synced` (an O_DSYNC write): what it stored is durable when it completes.
   */
  pwrite(
    h: Handle,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
    synced = false,
  ): Promise<number> {
    return this.run('write', h.name, h.path, this.pwriteOp(h, buffer, offset, length, position, synced))
  }

  /** pwrite() on the calling thread, synced (StorageFile.writeSyncedNow). */
  pwriteNow(h: Handle, buffer: Uint8Array, offset: number, length: number, position: number): number {
    return this.runNow('write', h.name, h.path, this.pwriteOp(h, buffer, offset, length, position, true))
  }

  private pwriteOp(
    h: Handle,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
    synced: boolean,
  ): RunOptions<number> {
    const range: Range = synced ? { position, length, synced } : { position, length }
    // A copy, taken now, as a real pwrite() takes it: Buffer's slice() would be a view, and
    // a caller may reuse its memory once the write settles (the log reuses segment buffers).
    const bytes = Uint8Array.prototype.slice.call(buffer, offset, offset + length)
    let issued = -1
    return {
      range,
      issue: (start) => {
        this.checkHandle(h, 'write', true)
        // Until it completes, a crash may catch any part of it on disk.
        issued = start
        this.inflight.set(start, { ino: h.ino, position, bytes })
      },
      complete: (end) => {
        let n = length
        const limit = this.faults.enospcAfterBytes
        if (limit !== undefined) {
          const room = limit - this.bytesWritten
          if (room <= 0) throw this.nodeError('ENOSPC', 'write', h.path, 'no space left on device')
          n = Math.min(n, room)
        }
        if (this.faults.shortWrites === true && n > 1) n = 1 + this.rng.int(n)
        const stored = n === length ? bytes : bytes.slice(0, n)
        const inode = this.inode(h.ino)
        const sizeBefore = inode.cache.size
        inode.cache.write(position, stored)
        const fate = this.durableFate(end, position, stored, sizeBefore, inode.cache.size)
        if (synced && this.faults.unsafeIgnoreSyncedWrites !== true) syncRange(inode, fate)
        else inode.pending.push(fate)
        this.bytesWritten += n
        range.length = n
        return n
      },
      always: () => {
        if (issued >= 0) this.inflight.delete(issued)
      },
    }
  }

  /**
   * The pending op a completed write leaves for the durable image: itself, or with the
   * variant faults on, the same bytes at a wrong offset, or nothing but the size it reached.
   */
  private durableFate(
    seq: number,
    position: number,
    bytes: Uint8Array,
    sizeBefore: number,
    sizeAfter: number,
  ): WriteOp {
    const op: WriteOp = { seq, kind: 'write', position, bytes }
    const lost = this.faults.lostWriteOdds ?? 0
    if (lost > 0 && this.faultRng.chance(lost)) {
      this.injected.lostWrites++
      return {
        seq,
        kind: 'write',
        position,
        bytes: new Uint8Array(0),
        growTo: Math.max(sizeBefore, sizeAfter),
      }
    }
    const misdirect = this.faults.misdirectOdds ?? 0
    if (misdirect > 0 && bytes.length > 0 && this.faultRng.chance(misdirect)) {
      // Somewhere else inside the file as it is after this write: k strides away, k ≠ 0.
      const stride = this.faults.misdirectStrideBytes ?? SECTOR_BYTES
      const lowK = -Math.floor(position / stride)
      const highK = Math.floor((sizeAfter - bytes.length - position) / stride)
      const choices = highK - lowK // the range without 0
      if (choices > 0) {
        let k = lowK + this.faultRng.int(choices)
        if (k >= 0) k++
        this.injected.misdirectedWrites++
        return { seq, kind: 'write', position: position + k * stride, bytes, growTo: sizeAfter }
      }
    }
    return op
  }

  datasync(h: Handle): Promise<void> {
    let barrier = 0
    // Only writes that completed before the sync began are covered (sled-digest §10.2).
    const covered = (op: DataOp) => op.seq < barrier
    return this.run('datasync', h.name, h.path, {
      issue: (start) => {
        barrier = start
        this.checkHandle(h, 'datasync', false)
      },
      complete: () => {
        const inode = this.inode(h.ino)
        for (const op of inode.pending) {
          if (!covered(op)) continue
          if (op.kind === 'write') applyDataWrite(inode.durable, op)
          else inode.durable.resize(op.size)
        }
        inode.pending = inode.pending.filter((op) => !covered(op))
      },
      // The fsync-failure page-cache model (ATC '20, ext4/XFS): the kernel marks the pages
      // clean, so they never reach the disk, while reads keep returning the new bytes.
      onFault: () => {
        const inode = this.inodes.get(h.ino)
        if (inode !== undefined) inode.pending = inode.pending.filter((op) => !covered(op))
      },
    })
  }

  truncate(h: Handle, size: number): Promise<void> {
    return this.run('truncate', h.name, h.path, {
      range: { length: size },
      issue: () => this.checkHandle(h, 'truncate', true),
      complete: (end) => {
        const inode = this.inode(h.ino)
        inode.cache.resize(size)
        inode.pending.push({ seq: end, kind: 'size', size })
      },
    })
  }

  size(h: Handle): Promise<number> {
    return this.run('stat', h.name, h.path, {
      issue: () => this.checkHandle(h, 'stat', false),
      complete: () => this.inode(h.ino).cache.size,
    })
  }

  close(h: Handle): Promise<void> {
    return this.run('close', h.name, h.path, {
      // Closed from the moment it is issued, even if the close fails (as close(2) does).
      issue: () => {
        h.isClosed = true
      },
      complete: () => {},
    })
  }

  exists(parts: string[], name: string): Promise<boolean> {
    const path = parts.join('/')
    return this.run('stat', name, path, {
      complete: () => this.lookup(this.dirs, parts) !== undefined,
    })
  }

  list(parts: string[], name: string): Promise<string[]> {
    const path = parts.join('/')
    return this.run('list', name, path, {
      complete: () => [...this.entries(this.dirAt(this.dirs, parts, 'list', path)).keys()].sort(),
    })
  }

  mkdir(parts: string[], name: string): Promise<void> {
    const path = parts.join('/')
    return this.run('mkdir', name, path, {
      complete: (end) => {
        const { dir, leaf } = this.parentOf(parts, 'mkdir', path)
        const entries = this.entries(dir)
        const e = entries.get(leaf)
        if (e?.type === 'dir') return
        if (e !== undefined) throw this.nodeError('EEXIST', 'mkdir', path, 'file already exists')
        const entry: Entry = { type: 'dir', id: this.newDir() }
        entries.set(leaf, entry)
        this.pendingDirOps.push({ seq: end, dir, kind: 'set', name: leaf, entry })
      },
    })
  }

  rename(fromParts: string[], toParts: string[], from: string, to: string): Promise<void> {
    const path = fromParts.join('/')
    const toPath = toParts.join('/')
    return this.run('rename', from, path, {
      range: { to },
      complete: (end) => {
        const a = this.parentOf(fromParts, 'rename', path)
        const b = this.parentOf(toParts, 'rename', toPath)
        const src = this.entries(a.dir).get(a.leaf)
        if (src === undefined) throw this.nodeError('ENOENT', 'rename', path, 'no such file or directory')
        if (path === toPath) return
        const dst = this.entries(b.dir).get(b.leaf)
        if (src.type === 'dir') {
          if (toPath.startsWith(path + '/')) {
            throw this.nodeError('EINVAL', 'rename', path, 'cannot move a folder into itself')
          }
          if (dst?.type === 'file') throw this.nodeError('ENOTDIR', 'rename', toPath, 'not a directory')
          if (dst?.type === 'dir' && this.entries(dst.id).size > 0) {
            throw this.nodeError('ENOTEMPTY', 'rename', toPath, 'directory not empty')
          }
        } else if (dst?.type === 'dir') {
          throw this.nodeError('EISDIR', 'rename', toPath, 'illegal operation on a directory')
        }
        if (a.dir === b.dir) {
          const entries = this.entries(a.dir)
          entries.delete(a.leaf)
          entries.set(b.leaf, src)
          this.pendingDirOps.push({
            seq: end,
            dir: a.dir,
            kind: 'rename',
            from: a.leaf,
            to: b.leaf,
            entry: src,
          })
        } else {
          // Across folders each side becomes durable with its own folder's sync, so a crash
          // may keep either, both or neither.
          this.entries(b.dir).set(b.leaf, src)
          this.entries(a.dir).delete(a.leaf)
          this.pendingDirOps.push({ seq: end, dir: b.dir, kind: 'set', name: b.leaf, entry: src })
          this.pendingDirOps.push({ seq: end, dir: a.dir, kind: 'delete', name: a.leaf })
        }
      },
    })
  }

  unlink(parts: string[], name: string): Promise<void> {
    const path = parts.join('/')
    return this.run('unlink', name, path, {
      complete: (end) => {
        const { dir, leaf } = this.parentOf(parts, 'unlink', path)
        const entries = this.entries(dir)
        const e = entries.get(leaf)
        if (e === undefined) throw this.nodeError('ENOENT', 'unlink', path, 'no such file or directory')
        if (e.type === 'dir')
          throw this.nodeError('EISDIR', 'unlink', path, 'illegal operation on a directory')
        entries.delete(leaf)
        this.pendingDirOps.push({ seq: end, dir, kind: 'delete', name: leaf })
      },
    })
  }

  syncDir(parts: string[], name: string): Promise<void> {
    const path = parts.join('/')
    let barrier = 0
    return this.run('syncDir', name, path, {
      issue: (start) => {
        barrier = start
      },
      complete: () => {
        const id = this.dirAt(this.dirs, parts, 'syncDir', path)
        const keep: DirOp[] = []
        for (const op of this.pendingDirOps) {
          if (op.dir === id && op.seq < barrier) applyDirOp(this.durableDirs, op)
          else keep.push(op)
        }
        this.pendingDirOps = keep
      },
    })
  }

  async ensureRoot(rootParts: string[], location: string): Promise<void> {
    const rootPath = rootParts.join('/')
    const existing = await this.run('stat', '', rootPath, {
      complete: () => this.lookup(this.dirs, rootParts),
    })
    if (existing !== undefined) {
      if (existing.type === 'file') {
        throw new NotADatabaseError(`${location} exists and is not a folder [${this.describe()}]`, {
          file: rootPath,
        })
      }
      return
    }
    let firstCreated = -1
    for (let i = 1; i <= rootParts.length; i++) {
      const prefix = rootParts.slice(0, i)
      const e = this.lookup(this.dirs, prefix)
      if (e?.type === 'dir') continue
      if (firstCreated < 0) firstCreated = i
      await this.mkdir(prefix, '')
    }
    if (firstCreated < 0) return
    for (let i = firstCreated; i <= rootParts.length; i++) await this.syncDir(rootParts.slice(0, i - 1), '')
  }

  // ---- crash --------------------------------------------------------------------------

  /** All pending ops (and writes still in flight, last) in completion order. */
  private candidates(): Candidate[] {
    const list: Candidate[] = []
    for (const inode of this.inodes.values()) {
      for (const data of inode.pending) list.push({ seq: data.seq, data, inode })
    }
    for (const dir of this.pendingDirOps) list.push({ seq: dir.seq, dir })
    list.sort((x, y) => x.seq - y.seq)
    for (const [issued, w] of [...this.inflight].sort((x, y) => x[0] - y[0])) {
      list.push({ seq: this.tick + issued, inflight: w })
    }
    return list
  }

  private tearing(rng: Prng, position: number, length: number): Uint8Array {
    const first = Math.floor(position / SECTOR_BYTES)
    const last = Math.floor((position + length - 1) / SECTOR_BYTES)
    const sectors = new Uint8Array(Math.max(0, last - first + 1))
    for (let i = 0; i < sectors.length; i++) sectors[i] = rng.int(3)
    return sectors
  }

  private decide(rng: Prng | undefined, list: Candidate[], isTorn: boolean, isReordered: boolean): Fate[] {
    if (rng === undefined) return list.map(() => ({ keep: false }))
    const isWrite = (c: Candidate) => 'inflight' in c || ('data' in c && c.data.kind === 'write')
    const span = (c: Candidate) => {
      const w = 'inflight' in c ? c.inflight : 'data' in c && c.data.kind === 'write' ? c.data : undefined
      return w === undefined ? { position: 0, length: 0 } : { position: w.position, length: w.bytes.length }
    }
    if (!isReordered) {
      // A prefix in completion order; only the last kept write can be half done.
      const cut = rng.int(list.length + 1)
      return list.map((c, i) => {
        const fate: Fate = { keep: i < cut }
        if (i === cut - 1 && isTorn && isWrite(c) && span(c).length > 0 && rng.chance(TEAR_ODDS)) {
          const s = span(c)
          fate.sectors = this.tearing(rng, s.position, s.length)
        }
        return fate
      })
    }
    const keepOdds = rng.pick(KEEP_ODDS)
    return list.map((c) => {
      const fate: Fate = { keep: rng.chance(keepOdds) }
      if (!isWrite(c)) return fate
      const s = span(c)
      if (fate.keep && isTorn && s.length > 0 && rng.chance(TEAR_ODDS)) {
        fate.sectors = this.tearing(rng, s.position, s.length)
      } else if (!fate.keep && rng.chance(SIZE_WITHOUT_CONTENT_ODDS)) {
        fate.isSizeOnly = true
      }
      return fate
    })
  }

  /**
   * Without PSOW: picks, for each write's partly covered first and last sector, whether
   * the power cut garbles it whole. Its own stream (`rng`), so the rest of the crash is
   * the one the same seed gives with PSOW.
   */
  private garbling(rng: Prng, list: Candidate[], fates: Fate[]): void {
    const odds = this.faults.nonPsowOdds ?? 0
    if (odds <= 0) return
    list.forEach((c, i) => {
      const w = 'inflight' in c ? c.inflight : 'data' in c && c.data.kind === 'write' ? c.data : undefined
      if (w === undefined || w.bytes.length === 0) return
      const end = w.position + w.bytes.length
      const first = Math.floor(w.position / SECTOR_BYTES)
      const last = Math.floor((end - 1) / SECTOR_BYTES)
      const edges = new Set<number>()
      if (w.position % SECTOR_BYTES !== 0) edges.add(first)
      if (end % SECTOR_BYTES !== 0) edges.add(last)
      for (const sector of edges) {
        if (!rng.chance(odds)) continue
        const fate = fates[i] as Fate
        fate.garbled ??= []
        fate.garbled.push({ sector, junk: rng.chance(0.5) })
      }
    })
  }

  /** Garbles whole sectors of `img` (inside its size); returns how many changed. */
  private static garble(img: Image, garbled: Fate['garbled'], rng: Prng): number {
    let changed = 0
    for (const g of garbled ?? []) {
      const from = g.sector * SECTOR_BYTES
      const to = Math.min(img.size, from + SECTOR_BYTES)
      if (to <= from) continue
      const junk = new Uint8Array(to - from)
      if (g.junk) for (let k = 0; k < junk.length; k++) junk[k] = rng.int(256)
      const before = img.bytes.subarray(from, to)
      if (before.every((b, k) => b === junk[k])) continue
      img.write(from, junk)
      changed++
    }
    return changed
  }

  private static applyWrite(
    img: Image,
    op: { position: number; bytes: Uint8Array; growTo?: number },
    fate: Fate,
  ): void {
    const { position, bytes } = op
    const end = position + bytes.length
    const reach = Math.max(end, op.growTo ?? 0)
    if (fate.isSizeOnly === true) {
      img.resize(Math.max(img.size, reach))
      return
    }
    if (fate.sectors === undefined) {
      applyDataWrite(img, op)
      return
    }
    img.resize(Math.max(img.size, reach))
    const first = Math.floor(position / SECTOR_BYTES)
    fate.sectors.forEach((choice, i) => {
      const from = Math.max(position, (first + i) * SECTOR_BYTES)
      const to = Math.min(end, (first + i + 1) * SECTOR_BYTES)
      if (choice === 0) img.write(from, bytes.subarray(from - position, to - position))
      else if (choice === 2) img.zero(from, to - from)
    })
  }

  /**
   * The machine after power loss and reboot: the durable state plus what `rng` lets
   * through. With no rng nothing pending survives.
   */
  afterPowerLoss(rng: Prng | undefined, crashSeed: number | undefined, o: CrashOptions): DiskCore {
    const list = this.candidates()
    const fates = this.decide(rng, list, o.tornWrites ?? true, o.reorder ?? true)
    const psowRng = rng === undefined ? undefined : new Prng(mixSeed(crashSeed ?? rng.seed, NON_PSOW_SALT))
    if (psowRng !== undefined) this.garbling(psowRng, list, fates)
    const injected = { ...this.injected }
    const dirs = cloneDirs(this.durableDirs)
    const images = new Map<number, Image>()
    const imageOf = (ino: number) => {
      let img = images.get(ino)
      if (img === undefined) {
        img = this.inode(ino).durable.clone()
        images.set(ino, img)
      }
      return img
    }
    list.forEach((c, i) => {
      const fate = fates[i] as Fate
      if ('dir' in c) {
        if (fate.keep) applyDirOp(dirs, c.dir)
        return
      }
      const ino = 'inflight' in c ? c.inflight.ino : c.inode.ino
      if (fate.keep || fate.isSizeOnly === true) {
        if ('inflight' in c) DiskCore.applyWrite(imageOf(ino), c.inflight, fate)
        else if (c.data.kind === 'write') DiskCore.applyWrite(imageOf(ino), c.data, fate)
        else imageOf(ino).resize(c.data.size)
      }
      // A sector in the middle of being written: whatever the write itself did.
      if (fate.garbled !== undefined && psowRng !== undefined) {
        injected.nonPsowSectors += DiskCore.garble(imageOf(ino), fate.garbled, psowRng)
      }
    })
    const seeds = crashSeed === undefined ? this.crashSeeds : [...this.crashSeeds, crashSeed]
    const next = new DiskCore(this.seed, seeds, this.isTracing)
    // Faults of the device itself outlive the reboot; injected failures do not.
    next.faults = {
      latency: this.faults.latency ?? true,
      shortWrites: this.faults.shortWrites ?? false,
      nonPsowOdds: this.faults.nonPsowOdds,
      misdirectOdds: this.faults.misdirectOdds,
      misdirectStrideBytes: this.faults.misdirectStrideBytes,
      lostWriteOdds: this.faults.lostWriteOdds,
    }
    next.injected = injected
    next.adopt(dirs, (ino) => imageOf(ino))
    return next
  }

  /** Takes the folders reachable from the root; an entry nothing reaches is lost. */
  private adopt(dirs: Dirs, image: (ino: number) => Image): void {
    this.dirs = new Map()
    this.durableDirs = new Map()
    this.inodes = new Map()
    let maxIno = 0
    let maxDir = 0
    const visit = (id: number) => {
      if (this.dirs.has(id)) return
      const entries = new Map(dirs.get(id) ?? [])
      this.dirs.set(id, entries)
      this.durableDirs.set(id, new Map(entries))
      maxDir = Math.max(maxDir, id)
      for (const e of entries.values()) {
        if (e.type === 'dir') visit(e.id)
        else if (!this.inodes.has(e.ino)) {
          const img = image(e.ino)
          this.inodes.set(e.ino, { ino: e.ino, cache: img.clone(), durable: img.clone(), pending: [] })
          maxIno = Math.max(maxIno, e.ino)
        }
      }
    }
    visit(ROOT_DIR)
    this.nextIno = maxIno + 1
    this.nextDirId = maxDir + 1
  }

  crash(o: CrashOptions): DiskCore {
    if (this.isDead) throw new IoError(`crash() of a disk that already crashed [${this.describe()}]`)
    const crashSeed = o.seed ?? mixSeed(this.seed, 0x63726173 + this.crashCount++)
    const next = this.afterPowerLoss(new Prng(crashSeed), crashSeed, o)
    this.isDead = true
    this.locks.clear()
    return next
  }

  clone(): DiskCore {
    const c = new DiskCore(this.seed, this.crashSeeds, this.isTracing)
    c.faults = { ...this.faults }
    c.opCount = this.opCount
    c.tick = this.tick
    c.bytesWritten = this.bytesWritten
    c.faultCounter = this.faultCounter
    c.crashCount = this.crashCount
    c.injected = { ...this.injected }
    c.dirs = cloneDirs(this.dirs)
    c.durableDirs = cloneDirs(this.durableDirs)
    c.pendingDirOps = [...this.pendingDirOps]
    for (const [ino, n] of this.inodes) {
      c.inodes.set(ino, { ino, cache: n.cache.clone(), durable: n.durable.clone(), pending: [...n.pending] })
    }
    c.nextIno = this.nextIno
    c.nextDirId = this.nextDirId
    c.rng = this.rng.clone()
    c.faultRng = this.faultRng.clone()
    return c
  }

  // ---- test helpers -------------------------------------------------------------------

  plant(parts: string[], bytes: Uint8Array): void {
    let dir = ROOT_DIR
    for (const part of parts.slice(0, -1)) {
      const e = this.dirs.get(dir)?.get(part)
      if (e?.type === 'file')
        throw new IoError(`cannot plant ${parts.join('/')}: ${part} is a file [${this.describe()}]`)
      if (e?.type === 'dir') {
        dir = e.id
        continue
      }
      const entry: Entry = { type: 'dir', id: this.newDir() }
      this.entries(dir).set(part, entry)
      this.durableDirs.get(dir)?.set(part, entry)
      dir = entry.id
    }
    const leaf = parts.at(-1) as string
    if (this.dirs.get(dir)?.get(leaf)?.type === 'dir') {
      throw new IoError(`cannot plant ${parts.join('/')}: it is a folder [${this.describe()}]`)
    }
    const inode = this.newInode()
    inode.cache.write(0, bytes)
    inode.durable.write(0, bytes)
    const entry: Entry = { type: 'file', ino: inode.ino }
    this.entries(dir).set(leaf, entry)
    this.durableDirs.get(dir)?.set(leaf, entry)
  }

  fileAt(parts: string[], view: DiskView): Inode | undefined {
    const e = this.lookup(view === 'cache' ? this.dirs : this.durableDirs, parts)
    return e?.type === 'file' ? this.inodes.get(e.ino) : undefined
  }
}

// Hands a ready core to the SimDisk constructor without putting DiskCore in the public API.
let adoptedCore: DiskCore | undefined

function diskOf(core: DiskCore): SimDisk {
  adoptedCore = core
  try {
    return new SimDisk({ seed: core.seed })
  } finally {
    adoptedCore = undefined
  }
}

/** A simulated machine's disk. One SimDisk per machine life: crash() returns the next. */
export class SimDisk {
  private readonly core: DiskCore

  constructor(options: SimDiskOptions) {
    if (adoptedCore !== undefined) {
      this.core = adoptedCore
      adoptedCore = undefined
      return
    }
    if (!Number.isFinite(options.seed))
      throw new InvalidArgumentError(`SimDisk needs a numeric seed, got ${options.seed}`)
    this.core = new DiskCore(options.seed, [], options.trace === true)
    const { seed: _seed, trace: _trace, ...faults } = options
    this.core.setFaults(faults)
  }

  get seed(): number {
    return this.core.seed
  }

  /** The seeds of the crashes that produced this disk, oldest first. */
  get crashSeeds(): readonly number[] {
    return this.core.crashSeeds
  }

  /** `seed=… crashSeeds=…`, for failure messages. */
  describe(): string {
    return this.core.describe()
  }

  /** Ops issued so far (all kinds). */
  get opCount(): number {
    return this.core.opCount
  }

  get trace(): readonly TraceRecord[] {
    return this.core.trace
  }

  get isDead(): boolean {
    return this.core.isDead
  }

  setFaults(faults: SimFaults): void {
    this.core.setFaults(faults)
  }

  /** Device faults the opt-in variants (nonPsowOdds, misdirectOdds, lostWriteOdds) injected so far, over every life. */
  get injected(): InjectedFaults {
    return { ...this.core.injected }
  }

  setTracing(isTracing: boolean): void {
    this.core.isTracing = isTracing
  }

  /** A Storage view of the folder `root` of this disk. */
  storage(root = 'db'): Storage {
    return new SimStorage(this.core, root)
  }

  /**
   * Power loss and reboot. Returns the next machine's disk; this one is dead from now on
   * (every op on it and on its open files rejects with IoError). Locks are released.
   * Faults are not carried over except `latency`, `shortWrites` and the device's own
   * (`nonPsowOdds`, `misdirectOdds`, `misdirectStrideBytes`, `lostWriteOdds`).
   */
  crash(options: CrashOptions = {}): SimDisk {
    return diskOf(this.core.crash(options))
  }

  /** A live disk holding only what is durable now; this disk stays alive. */
  snapshotDurable(): SimDisk {
    return diskOf(this.core.afterPowerLoss(undefined, undefined, {}))
  }

  /** A live, independent copy of everything, pending ops included (no open files or locks). */
  clone(): SimDisk {
    return diskOf(this.core.clone())
  }

  /** The bytes of the file at disk path `path` ('db/log'); works on a dead disk too. */
  readFileSync(path: string, view: DiskView = 'cache'): Uint8Array {
    const inode = this.core.fileAt(splitName(path), view)
    if (inode === undefined) {
      throw new IoError(`no file ${path} in the ${view} view [${this.describe()}]`, { file: path })
    }
    return (view === 'cache' ? inode.cache : inode.durable).copy()
  }

  /** The size of the file at disk path `path`, without copying its bytes (tests sample it often). */
  sizeSync(path: string, view: DiskView = 'cache'): number {
    const inode = this.core.fileAt(splitName(path), view)
    if (inode === undefined) {
      throw new IoError(`no file ${path} in the ${view} view [${this.describe()}]`, { file: path })
    }
    return (view === 'cache' ? inode.cache : inode.durable).size
  }

  existsSync(path: string, view: DiskView = 'cache'): boolean {
    const parts = splitName(path, true)
    return this.core.lookup(view === 'cache' ? this.core.dirs : this.core.durableDirs, parts) !== undefined
  }

  listSync(dir: string, view: DiskView = 'cache'): string[] {
    const dirs = view === 'cache' ? this.core.dirs : this.core.durableDirs
    const e = this.core.lookup(dirs, splitName(dir, true))
    if (e?.type !== 'dir') throw new IoError(`no folder ${dir} in the ${view} view [${this.describe()}]`)
    return [...(dirs.get(e.id)?.keys() ?? [])].sort()
  }

  /** Plants a file (foreign or corrupt bytes), durable at once, creating folders on the way. */
  writeFileRaw(path: string, bytes: Uint8Array): void {
    this.core.plant(splitName(path), bytes)
  }

  /** How many ops a crash could still lose: pending writes and size changes, folder ops. */
  pendingCount(): { data: number; dir: number } {
    let data = 0
    for (const inode of this.core.inodes.values()) data += inode.pending.length
    return { data, dir: this.core.pendingDirOps.length }
  }
}

class SimStorage implements Storage {
  readonly location: string
  private readonly rootParts: string[]

  constructor(
    private readonly core: DiskCore,
    root: string,
  ) {
    this.rootParts = splitName(root)
    this.location = `simdisk:${root} (${core.describe()})`
  }

  private parts(name: string, allowRoot = false): string[] {
    return [...this.rootParts, ...splitName(name, allowRoot)]
  }

  ensureRoot(): Promise<void> {
    return this.core.ensureRoot(this.rootParts, this.location)
  }

  async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const parts = this.parts(name)
    if (mode !== 'read' && mode !== 'readwrite' && mode !== 'create' && mode !== 'createOrOpen') {
      throw new InvalidArgumentError(`unknown open mode ${JSON.stringify(mode)}`)
    }
    return new SimFile(this.core, await this.core.open(parts, name, mode))
  }

  async exists(name: string): Promise<boolean> {
    return this.core.exists(this.parts(name), name)
  }

  async list(dir: string): Promise<string[]> {
    return this.core.list(this.parts(dir, true), dir)
  }

  async mkdir(name: string): Promise<void> {
    return this.core.mkdir(this.parts(name), name)
  }

  async rename(from: string, to: string): Promise<void> {
    return this.core.rename(this.parts(from), this.parts(to), from, to)
  }

  async unlink(name: string): Promise<void> {
    return this.core.unlink(this.parts(name), name)
  }

  async syncDir(dir: string): Promise<void> {
    return this.core.syncDir(this.parts(dir, true), dir)
  }

  async lock(): Promise<StorageLock> {
    const core = this.core
    const key = this.rootParts.join('/')
    if (core.isDead) throw core.deadError('open', 'LOCK')
    if (core.lookup(core.dirs, this.rootParts)?.type !== 'dir') {
      throw new IoError(`cannot lock ${this.location}: the folder does not exist`, {
        file: key,
        cause: core.nodeError('ENOENT', 'open', key, 'no such file or directory'),
      })
    }
    if (core.locks.has(key)) {
      throw new DatabaseLockedError(
        `database folder ${this.location} is locked: already open on this machine`,
        {
          path: this.location,
        },
      )
    }
    core.locks.add(key)
    let isReleased = false
    return {
      release: async () => {
        if (core.isDead) throw core.deadError('close', 'LOCK')
        if (isReleased) return
        isReleased = true
        core.locks.delete(key)
      },
    }
  }
}

class SimFile implements StorageFile {
  constructor(
    private readonly core: DiskCore,
    private readonly handle: Handle,
  ) {}

  get name(): string {
    return this.handle.name
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    checkIoRange(buffer, offset, length, position)
    return this.core.read(this.handle, buffer, offset, length, position)
  }

  readNow(buffer: Uint8Array, offset: number, length: number, position: number): number {
    checkIoRange(buffer, offset, length, position)
    return this.core.readNow(this.handle, buffer, offset, length, position)
  }

  private async writeLoop(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
    synced: boolean,
  ): Promise<void> {
    checkIoRange(buffer, offset, length, position)
    let done = 0
    while (done < length) {
      const n = await this.core.pwrite(
        this.handle,
        buffer,
        offset + done,
        length - done,
        position + done,
        synced,
      )
      if (n === 0) {
        throw new IoError(
          `write (${this.name}) stored 0 of ${length - done} bytes [${this.core.describe()}]`,
          {
            file: this.name,
          },
        )
      }
      done += n
    }
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    return this.writeLoop(buffer, offset, length, position, false)
  }

  writeSynced(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    return this.writeLoop(buffer, offset, length, position, true)
  }

  writeSyncedNow(buffer: Uint8Array, offset: number, length: number, position: number): boolean {
    checkIoRange(buffer, offset, length, position)
    let done = 0
    while (done < length) {
      const n = this.core.pwriteNow(this.handle, buffer, offset + done, length - done, position + done)
      if (n === 0) {
        throw new IoError(
          `write (${this.name}) stored 0 of ${length - done} bytes [${this.core.describe()}]`,
          { file: this.name },
        )
      }
      done += n
    }
    return true
  }

  datasync(): Promise<void> {
    return this.core.datasync(this.handle)
  }

  async truncate(sizeBytes: number): Promise<void> {
    checkSize(sizeBytes)
    return this.core.truncate(this.handle, sizeBytes)
  }

  size(): Promise<number> {
    return this.core.size(this.handle)
  }

  async close(): Promise<void> {
    // A second close is a no-op, as with FileStorage.
    if (this.handle.isClosed) return
    return this.core.close(this.handle)
  }
}
