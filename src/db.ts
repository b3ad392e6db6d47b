// The public key-value API: sled's Db and Tree in Node idioms (README "API"). Keys and
// values go in as Uint8Array or string (UTF-8) and come back as fresh Uint8Array copies, so
// neither side can change bytes the tree holds. Every input is checked (type, limits)
// before any state changes; over-limit input is a LimitError, a wrong type an
// InvalidArgumentError.

import { Buffer } from 'node:buffer'
import { InvalidArgumentError, LimitError } from './errors.js'
import type { Storage } from './io/index.js'
import { PageCache, type PageCacheOptions, type PageCacheStats, type PageStore } from './pagecache/index.js'
import {
  type Bound,
  type Chunk,
  clearTree,
  equalBytes,
  Forest,
  getValue,
  MAX_BATCH_OPS,
  MAX_TREE_NAME_BYTES,
  makeTreeConfig,
  type OpContext,
  prefixEnd,
  readChunk,
  type TreeConfig,
  type TreePage,
  type TreeRef,
  treeCodec,
  valueBytesMax,
  type WriteDone,
  type WriteJob,
  type WriteKeys,
  writeKey,
} from './tree/index.js'
import type { CopySlab } from './util/copy-slab.js'
import { crc32 } from './util/crc32.js'
import { KILL_ODDS, maybeKill } from './util/kill-points.js'

/** A key or value as the API accepts it: bytes, or a string stored as UTF-8. */
export type Bytes = Uint8Array | string

export interface OpenOptions {
  /**
   * 'flush' (default): a write is visible at once and durable within flushEveryMs.
   * 'sync': every awaited write resolves only once it is on disk.
   */
  durability?: 'flush' | 'sync'
  /** Background flush period of the log, in ms (0: off). Default 500. */
  flushEveryMs?: number
  /** Bytes of memory for cached pages and the log's segment buffers (default 256 MiB). */
  cacheCapacity?: number
  /**
   * After open, page in in the background the pages that were cached at the last close or
   * checkpoint, most recently used first, up to cacheCapacity (docs/DESIGN.md, "Warm-up
   * after open"). false: no warm-up, and no hint written for the next open. Default true.
   */
  warmCache?: boolean
  /**
   * A durable write (durability 'sync', `{ durable: true }`, flush()) with nothing else in
   * flight and at most 64 KiB to write is one O_DSYNC write on the main thread instead of a
   * trip through the thread pool: faster, but the event loop waits for the disk meanwhile
   * (off during the warm-up, and for a while once the disk turns slow). docs/DESIGN.md,
   * "Inline synced writes". Default true.
   */
  inlineSyncedWrites?: boolean
  /**
   * A get, a scan or a write that must read a page from disk reads its fragments on the
   * main thread instead of through the thread pool: a read the OS serves from its cache is
   * then a copy, but one that misses waits for the disk with the event loop (user page-ins
   * only; cleaning and the warm-up read through the pool, and so does everyone for a
   * while once reads turn slow). docs/DESIGN.md, "Inline reads". Default true.
   */
  inlineReads?: boolean
  /** Segment size of a new log (power of two, 1 KiB..8 MiB). */
  segmentBytes?: number
  /** Storage backend (default: real files in the folder). */
  storage?: Storage
  /** Bytes of unfinished writes above which writers wait (backpressure). */
  writeHighWaterBytes?: number
  /** A node splits above this many encoded bytes. Default 16 KiB. */
  nodeMaxBytes?: number
  /** A node splits above this many entries. Default 1024. */
  nodeMaxEntries?: number
  /** generateId() persists its high-water mark every this many ids. Default 1,000,000. */
  idPersistInterval?: number
}

export interface WriteOptions {
  /** Resolve only once this write is on disk (whatever the database's durability mode). */
  durable?: boolean
}

export interface RangeOptions {
  gt?: Bytes
  gte?: Bytes
  lt?: Bytes
  lte?: Bytes
  /** Descending key order. */
  reverse?: boolean
  /** Most entries to return. */
  limit?: number
}

/** An ordered async iteration of [key, value] pairs, with key-only and value-only views. */
export interface RangeIterable extends AsyncIterable<[Uint8Array, Uint8Array]> {
  keys(): AsyncIterable<Uint8Array>
  values(): AsyncIterable<Uint8Array>
}

export type CasResult = { ok: true } | { ok: false; current: Uint8Array | undefined }

/** The published limits of an open database (README "Limits"). */
export interface Limits {
  maxKeyBytes: number
  maxValueBytes: number
  maxTrees: number
  maxTreeNameBytes: number
  maxBatchOps: number
}

/** What db.stats() reports (README "API"; `bobsled stats` explains the space and memory figures). */
export interface DbStats {
  /** Named trees (the default tree is not counted). */
  trees: number
  /** LSN of the last write of this session (-1: none yet). */
  lastLsn: number
  /** Every write up to this LSN is on disk. */
  stableLsn: number
  durability: 'flush' | 'sync'
  /** Reads that restarted because a write landed while they waited for a page-in. */
  readRestarts: number
  /** Reads that took the writer mutex after too many restarts. */
  readsUnderMutex: number
  /** Pages writers read in while they waited for the writer mutex. */
  pagesPrefetched: number
  nodeMaxBytes: number
  nodeMaxEntries: number
  limits: Limits
  /** The page cache's figures: pages, cache bytes, space, cleaning, recovery, warm-up, syncs. */
  store: PageCacheStats | undefined
}

/** A page store the Db can run on; the page cache adds sizeOnDisk() and stats(). */
export type DbStore = PageStore<TreePage> & {
  sizeOnDisk?(): Promise<number>
  stats?(): object
  /** Closes without writing anything (no checkpoint, no witness): the open was refused above the store. */
  closeRefused?(): Promise<void>
}

const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder()

function describe(x: unknown): string {
  if (x === null) return 'null'
  if (typeof x === 'object') return (x as object).constructor?.name ?? 'object'
  return typeof x
}

function toBytes(x: unknown, what: string, copies?: CopySlab): Uint8Array {
  if (typeof x === 'string') return utf8.encode(x)
  // A copy: the caller may reuse its buffer; the tree keeps these bytes. Carved from a slab
  // when there is one: a backing store of its own per key and per value was two mallocs and
  // two external-memory charges per record, a visible share of a bulk load's GC time.
  if (x instanceof Uint8Array) return copies === undefined ? new Uint8Array(x) : copies.copy(x)
  throw new InvalidArgumentError(`${what} must be a Uint8Array or a string, got ${describe(x)}`)
}

/**
 * The bytes of a key that is only looked up, not stored: the caller's own array when it is a
 * plain Uint8Array or Buffer (no copy on the read path), else a copy as toBytes() makes (a
 * subclass may lie about its length).
 */
function lookupBytes(x: unknown, what: string): Uint8Array {
  if (x instanceof Uint8Array) {
    const proto = Object.getPrototypeOf(x)
    if (proto === Uint8Array.prototype || proto === Buffer.prototype) return x
  }
  return toBytes(x, what)
}

function copy(b: Uint8Array): Uint8Array {
  return new Uint8Array(b)
}

function checkWriteOptions(o: unknown): WriteOptions | undefined {
  if (o === undefined) return undefined
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('write options must be an object')
  const d = (o as WriteOptions).durable
  if (d !== undefined && typeof d !== 'boolean')
    throw new InvalidArgumentError('options.durable must be a boolean')
  return o as WriteOptions
}

interface TreeCore {
  forest: Forest
  ref: TreeRef
  config: TreeConfig
  isSync: boolean
}

// Reaches a handle's core from Db and Batch without making it public.
let coreOf: (t: Tree) => TreeCore

/** An ordered key-value tree. Get one from db.openTree(name); the Db is the default tree. */
export class Tree {
  readonly #core: TreeCore

  static {
    coreOf = (t) => t.#core
  }

  /** @internal Use db.openTree(). */
  constructor(core: TreeCore) {
    this.#core = core
  }

  /** The tree's name; '' for the default tree. */
  get name(): string {
    return this.#core.ref.name ?? ''
  }

  protected key(k: unknown, what = 'key'): Uint8Array {
    const b = toBytes(k, what, this.#core.forest.inputCopies)
    const max = this.#core.config.keyBytesMax
    if (b.length > max) throw new LimitError(`${what} bytes`, max, b.length)
    return b
  }

  protected value(v: unknown, what = 'value'): Uint8Array {
    const b = toBytes(v, what, this.#core.forest.inputCopies)
    const max = valueBytesMax(this.#core.config)
    if (b.length > max) throw new LimitError(`${what} bytes`, max, b.length)
    return b
  }

  /** A key to look up (lookupBytes()), checked as key() checks it. */
  private lookupKey(k: unknown): Uint8Array {
    const b = lookupBytes(k, 'key')
    const max = this.#core.config.keyBytesMax
    if (b.length > max) throw new LimitError('key bytes', max, b.length)
    return b
  }

  private optionalValue(v: unknown, what: string): Uint8Array | undefined {
    return v === undefined ? undefined : this.value(v, what)
  }

  /** Runs a read plan; every error, input checks' included, comes back as a rejection. */
  private read<R>(plan: (root: number, ctx: OpContext) => R, beforeWait?: () => void): Promise<R> {
    const { forest, ref } = this.#core
    return forest.read((ctx) => {
      forest.checkTree(ref)
      return plan(ref.root, ctx)
    }, beforeWait)
  }

  /**
   * Runs a write plan; `key`, when given, is the one key it changes (paged in ahead). Not
   * async, and one continuation for settling: each async layer of a write was a promise and
   * a frame more (docs/DESIGN.md, "Tree: write path"). Every error still comes back as a
   * rejection.
   */
  private write<R>(
    plan: (root: number, ctx: OpContext) => R,
    opts: WriteOptions | undefined,
    key?: Uint8Array,
  ): Promise<R>
  private write<R, T>(
    plan: (root: number, ctx: OpContext) => R,
    opts: WriteOptions | undefined,
    key: Uint8Array | undefined,
    answer: (r: R) => T,
  ): Promise<T>
  private write<R, T>(
    plan: (root: number, ctx: OpContext) => R,
    opts: WriteOptions | undefined,
    key?: Uint8Array,
    answer?: (r: R) => T,
  ): Promise<R | T> {
    const core = this.#core
    const { forest, ref } = core
    try {
      forest.checkTree(ref)
    } catch (e) {
      return Promise.reject(e)
    }
    return forest.run(
      {
        plan: (ctx) => {
          forest.checkTree(ref)
          return plan(ref.root, ctx)
        },
        finish: (done): R | T | Promise<R | T> => settleThen<R, R | T>(core, done, opts, answer ?? asIs),
      },
      key === undefined ? undefined : aheadOf(forest, ref, key),
    )
  }

  /**
   * A write of one key (insert() and remove()), answering a copy of its previous value: one
   * job object, no closures (docs/DESIGN.md, "Tree: write path").
   */
  private writeOne(
    k: Uint8Array,
    v: Uint8Array | undefined,
    opts: WriteOptions | undefined,
  ): Promise<Uint8Array | undefined> {
    const core = this.#core
    try {
      core.forest.checkTree(core.ref)
    } catch (e) {
      return Promise.reject(e)
    }
    return core.forest.run(new KeyWrite(core, k, v, opts), aheadOf(core.forest, core.ref, k))
  }

  /** The value of key, or undefined. */
  get(key: Bytes): Promise<Uint8Array | undefined> {
    // Not async: a read of resident pages returns a settled promise, the only one per get
    // (docs/DESIGN.md, "Tree: read path").
    let k: Uint8Array
    try {
      k = this.lookupKey(key)
    } catch (e) {
      return Promise.reject(e)
    }
    const { forest, ref } = this.#core
    return forest.get(ref, k)
  }

  /** The value of key decoded as UTF-8, or undefined. */
  async getString(key: Bytes): Promise<string | undefined> {
    const v = await this.get(key)
    return v === undefined ? undefined : utf8Decoder.decode(v)
  }

  /** The value of key parsed as JSON (stored as UTF-8 text), or undefined. */
  async getJSON<T = unknown>(key: Bytes): Promise<T | undefined> {
    const s = await this.getString(key)
    return s === undefined ? undefined : (JSON.parse(s) as T)
  }

  /** Sets key to value; returns the previous value. */
  insert(key: Bytes, value: Bytes, opts?: WriteOptions): Promise<Uint8Array | undefined> {
    let k: Uint8Array
    let v: Uint8Array
    let o: WriteOptions | undefined
    try {
      k = this.key(key)
      v = this.value(value)
      o = checkWriteOptions(opts)
    } catch (e) {
      return Promise.reject(e)
    }
    return this.writeOne(k, v, o)
  }

  /** Stores JSON.stringify(value) as UTF-8; returns the previous value. */
  async insertJSON(key: Bytes, value: unknown, opts?: WriteOptions): Promise<Uint8Array | undefined> {
    let text: string | undefined
    try {
      text = JSON.stringify(value)
    } catch (e) {
      // A BigInt, a cycle or a throwing toJSON(): wrongly typed input, so a typed error.
      throw new InvalidArgumentError(`value has no JSON form: ${(e as Error)?.message ?? String(e)}`)
    }
    if (text === undefined) throw new InvalidArgumentError('value has no JSON form')
    return this.insert(key, text, opts)
  }

  /** Removes key; returns the value it had. */
  remove(key: Bytes, opts?: WriteOptions): Promise<Uint8Array | undefined> {
    let k: Uint8Array
    let o: WriteOptions | undefined
    try {
      k = this.key(key)
      o = checkWriteOptions(opts)
    } catch (e) {
      return Promise.reject(e)
    }
    return this.writeOne(k, undefined, o)
  }

  async containsKey(key: Bytes): Promise<boolean> {
    const k = this.key(key)
    return (await this.read((root, ctx) => getValue(ctx, root, k))) !== undefined
  }

  private one(lower: Bound | undefined, upper: Bound | undefined, reverse: boolean) {
    // readChunk's entries are fresh copies.
    return this.read((root, ctx) => readChunk(ctx, root, lower, upper, reverse, 1).entries[0])
  }

  /** The entry with the greatest key below key. */
  getLt(key: Bytes): Promise<[Uint8Array, Uint8Array] | undefined> {
    try {
      return this.one(undefined, { key: this.key(key), inclusive: false }, true)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** The entry with the least key above key. */
  getGt(key: Bytes): Promise<[Uint8Array, Uint8Array] | undefined> {
    try {
      return this.one({ key: this.key(key), inclusive: false }, undefined, false)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  first(): Promise<[Uint8Array, Uint8Array] | undefined> {
    return this.one(undefined, undefined, false)
  }

  last(): Promise<[Uint8Array, Uint8Array] | undefined> {
    return this.one(undefined, undefined, true)
  }

  private pop(reverse: boolean, opts?: WriteOptions): Promise<[Uint8Array, Uint8Array] | undefined> {
    let o: WriteOptions | undefined
    try {
      o = checkWriteOptions(opts)
    } catch (e) {
      return Promise.reject(e)
    }
    const { config } = this.#core
    return this.write((root, ctx) => {
      const e = readChunk(ctx, root, undefined, undefined, reverse, 1).entries[0]
      if (e === undefined) return undefined
      writeKey(ctx, config, root, e[0], undefined)
      return e
    }, o)
  }

  /** Removes and returns the entry with the least key. */
  popMin(opts?: WriteOptions): Promise<[Uint8Array, Uint8Array] | undefined> {
    return this.pop(false, opts)
  }

  /** Removes and returns the entry with the greatest key. */
  popMax(opts?: WriteOptions): Promise<[Uint8Array, Uint8Array] | undefined> {
    return this.pop(true, opts)
  }

  /** Number of entries. Counts them: O(n), like sled. */
  async len(): Promise<number> {
    let n = 0
    for await (const _ of this.range().keys()) n++
    return n
  }

  async isEmpty(): Promise<boolean> {
    return (await this.first()) === undefined
  }

  /** Removes every entry (one atomic write; the tree's pages are freed). */
  async clear(opts?: WriteOptions): Promise<void> {
    const o = checkWriteOptions(opts)
    await this.write((root, ctx) => clearTree(ctx, root), o)
  }

  /**
   * Entries with keys in the given bounds, in key order (descending with reverse). The
   * iteration is live, not a snapshot: it never skips or repeats a key that exists
   * throughout it, and keys always come in order, while writes go on.
   */
  range(opts: RangeOptions = {}): RangeIterable {
    if (opts === null || typeof opts !== 'object')
      throw new InvalidArgumentError('range options must be an object')
    const { gt, gte, lt, lte, reverse = false, limit = Number.POSITIVE_INFINITY } = opts
    if (gt !== undefined && gte !== undefined)
      throw new InvalidArgumentError('range: give gt or gte, not both')
    if (lt !== undefined && lte !== undefined)
      throw new InvalidArgumentError('range: give lt or lte, not both')
    if (typeof reverse !== 'boolean') throw new InvalidArgumentError('range: reverse must be a boolean')
    if (limit !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new InvalidArgumentError('range: limit must be an integer ≥ 0')
    }
    const lower: Bound | undefined =
      gt !== undefined
        ? { key: this.key(gt, 'range.gt'), inclusive: false }
        : gte !== undefined
          ? { key: this.key(gte, 'range.gte'), inclusive: true }
          : undefined
    const upper: Bound | undefined =
      lt !== undefined
        ? { key: this.key(lt, 'range.lt'), inclusive: false }
        : lte !== undefined
          ? { key: this.key(lte, 'range.lte'), inclusive: true }
          : undefined
    return this.iterate(lower, upper, reverse, limit)
  }

  /** Entries whose key starts with prefix, in key order. */
  scanPrefix(prefix: Bytes, opts: { reverse?: boolean; limit?: number } = {}): RangeIterable {
    if (opts === null || typeof opts !== 'object')
      throw new InvalidArgumentError('scanPrefix options must be an object')
    const p = this.key(prefix, 'prefix')
    const end = prefixEnd(p)
    const lower: Bound = { key: p, inclusive: true }
    const upper: Bound | undefined = end === undefined ? undefined : { key: end, inclusive: false }
    const { reverse = false, limit = Number.POSITIVE_INFINITY } = opts
    if (typeof reverse !== 'boolean') throw new InvalidArgumentError('scanPrefix: reverse must be a boolean')
    if (limit !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new InvalidArgumentError('scanPrefix: limit must be an integer ≥ 0')
    }
    return this.iterate(lower, upper, reverse, limit)
  }

  private iterate(
    lower: Bound | undefined,
    upper: Bound | undefined,
    reverse: boolean,
    limit: number,
  ): RangeIterable {
    const readChunkAt = (lo: Bound | undefined, hi: Bound | undefined, most: number): Promise<Chunk> =>
      this.read((root, ctx) => readChunk(ctx, root, lo, hi, reverse, most))
    const from = <T>(pick: (c: Chunk, i: number) => T): RangeIterator<T> =>
      new RangeIterator(readChunkAt, lower, upper, reverse, limit, pick)
    return {
      [Symbol.asyncIterator]: () => from((c, i): [Uint8Array, Uint8Array] => [c.key(i), c.value(i)]),
      keys: () => from((c, i) => c.key(i)),
      values: () => from((c, i) => c.value(i)),
    }
  }

  /**
   * Sets key to next (undefined: removes it) only if its value equals expected (undefined:
   * absent). Atomic with respect to every other write.
   */
  async compareAndSwap(
    key: Bytes,
    expected: Bytes | undefined,
    next: Bytes | undefined,
    opts?: WriteOptions,
  ): Promise<CasResult> {
    const k = this.key(key)
    const want = this.optionalValue(expected, 'expected')
    const v = this.optionalValue(next, 'next')
    const o = checkWriteOptions(opts)
    const { config } = this.#core
    return this.write(
      (root, ctx): CasResult => {
        const cur = getValue(ctx, root, k)
        const same = cur === undefined || want === undefined ? cur === want : equalBytes(cur, want)
        if (!same) return { ok: false, current: cur === undefined ? undefined : copy(cur) }
        writeKey(ctx, config, root, k, v)
        return { ok: true }
      },
      o,
      k,
    )
  }

  /** Replaces the value of key by f(old) atomically (undefined removes); returns the new value. */
  async updateAndFetch(
    key: Bytes,
    f: (old: Uint8Array | undefined) => Bytes | undefined,
    opts?: WriteOptions,
  ): Promise<Uint8Array | undefined> {
    const [, next] = await this.update(key, f, opts)
    return next === undefined ? undefined : copy(next)
  }

  /** Replaces the value of key by f(old) atomically (undefined removes); returns the old value. */
  async fetchAndUpdate(
    key: Bytes,
    f: (old: Uint8Array | undefined) => Bytes | undefined,
    opts?: WriteOptions,
  ): Promise<Uint8Array | undefined> {
    const [old] = await this.update(key, f, opts)
    return old === undefined ? undefined : copy(old)
  }

  private update(
    key: Bytes,
    f: (old: Uint8Array | undefined) => Bytes | undefined,
    opts: WriteOptions | undefined,
  ): Promise<[Uint8Array | undefined, Uint8Array | undefined]> {
    const k = this.key(key)
    if (typeof f !== 'function') throw new InvalidArgumentError('the update must be a function')
    const o = checkWriteOptions(opts)
    const { config } = this.#core
    // The plan can run again after a page-in; f runs once. Under the writer mutex the old
    // value cannot change between attempts, so its first answer stays right.
    let computed: { next: Uint8Array | undefined } | undefined
    return this.write(
      (root, ctx): [Uint8Array | undefined, Uint8Array | undefined] => {
        const old = getValue(ctx, root, k)
        computed ??= {
          next: this.optionalValue(f(old === undefined ? undefined : copy(old)), 'updated value'),
        }
        writeKey(ctx, config, root, k, computed.next)
        return [old, computed.next]
      },
      o,
      k,
    )
  }
}

/**
 * One iteration of range(): one leaf's chunk at a time, its entries handed out from memory.
 * Each chunk is one synchronous read of a leaf as it is at that moment, and the next chunk
 * re-seeks from the bound past the last one (so the iteration never skips or repeats a key
 * that exists throughout, whatever writes land between chunks). Written by hand, not as an
 * async generator: a generator costs several promise jobs per entry, this costs one settled
 * promise per entry and a read per leaf (docs/DESIGN.md, "Tree: read path").
 */
class RangeIterator<T> implements AsyncIterableIterator<T> {
  #chunk: Chunk | undefined
  /** Next entry of #chunk to hand out. */
  #at = 0
  /** Entries handed out so far. */
  #count = 0
  #isDone = false
  /** The read of the next chunk while it is in flight; next() calls made meanwhile wait for it. */
  #reading: Promise<void> | undefined

  constructor(
    private readonly readChunkAt: (
      lo: Bound | undefined,
      hi: Bound | undefined,
      most: number,
    ) => Promise<Chunk>,
    private lower: Bound | undefined,
    private upper: Bound | undefined,
    private readonly reverse: boolean,
    private readonly limit: number,
    private readonly pick: (c: Chunk, i: number) => T,
  ) {}

  [Symbol.asyncIterator](): this {
    return this
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#reading !== undefined) {
      const again = (): Promise<IteratorResult<T>> => this.next()
      return this.#reading.then(again, again)
    }
    if (this.#isDone || this.#count >= this.limit) return this.finish()
    const c = this.#chunk
    if (c !== undefined && this.#at < c.count) {
      this.#count++
      return Promise.resolve({ value: this.pick(c, this.#at++), done: false })
    }
    if (c !== undefined) {
      if (c.resume === undefined) return this.finish()
      if (this.reverse) this.upper = c.resume
      else this.lower = c.resume
    }
    const reading = this.readChunkAt(this.lower, this.upper, this.limit - this.#count).then(
      (chunk) => {
        this.#reading = undefined
        this.#chunk = chunk
        this.#at = 0
      },
      (e: unknown) => {
        this.#reading = undefined
        this.#isDone = true
        this.#chunk = undefined
        throw e
      },
    )
    this.#reading = reading
    return reading.then(() => this.next())
  }

  return(): Promise<IteratorResult<T>> {
    return this.finish()
  }

  private finish(): Promise<IteratorResult<T>> {
    this.#isDone = true
    this.#chunk = undefined
    return Promise.resolve({ value: undefined, done: true })
  }
}

/**
 * The prefetch of a one-key write (Forest.write's `keys`), made only for a writer that will
 * queue: run() takes a free mutex in the same step, and such a writer pages in nothing ahead.
 */
function aheadOf(forest: Forest, ref: TreeRef, key: Uint8Array): WriteKeys | undefined {
  if (!(forest.mutex.isLocked || forest.unsafePrefetchBeforeQueue)) return undefined
  return (visit) => visit(ref.root, key)
}

/** insert() or remove() of one key as a Forest.run() job: its plan and answer are methods. */
class KeyWrite implements WriteJob<Uint8Array | undefined, Uint8Array | undefined> {
  constructor(
    private readonly core: TreeCore,
    private readonly key: Uint8Array,
    private readonly value: Uint8Array | undefined,
    private readonly opts: WriteOptions | undefined,
  ) {}

  plan(ctx: OpContext): Uint8Array | undefined {
    const { forest, ref, config } = this.core
    forest.checkTree(ref)
    return writeKey(ctx, config, ref.root, this.key, this.value)
  }

  finish(done: WriteDone<Uint8Array | undefined>): Uint8Array | undefined | Promise<Uint8Array | undefined> {
    return settleThen(this.core, done, this.opts, copyOut)
  }
}

const asIs = <R>(value: R): R => value

/**
 * The previous value insert()/remove() answer, from the slab get() copies into: a backing
 * store per returned value was a malloc per write. A module function, not a closure per write.
 */
const copyOut = (old: Uint8Array | undefined, core: TreeCore): Uint8Array | undefined =>
  old === undefined ? undefined : core.forest.copies.copy(old)

/**
 * A committed write's answer, once it is durable if the mode or the call asks for that: the
 * value itself when there is nothing to wait for (no promise made for a write that does not
 * wait), else a promise of it.
 */
function settleThen<R, T>(
  core: TreeCore,
  done: WriteDone<R>,
  opts: WriteOptions | undefined,
  answer: (value: R, core: TreeCore) => T,
): T | Promise<T> {
  const stable = settle(core, done.lsn, opts)
  return stable === undefined ? answer(done.value, core) : stable.then(() => answer(done.value, core))
}

/**
 * Waits for durability when the mode or the call asks for it: the promise to wait for, or
 * undefined when there is nothing to wait for (no promise made for a write that does not wait).
 */
function settle(
  core: TreeCore,
  lsn: number | undefined,
  opts: WriteOptions | undefined,
): Promise<void> | undefined {
  if (!(core.isSync || opts?.durable === true)) return undefined
  // A write that changed nothing still waits for the writes whose state it observed.
  const target = lsn ?? core.forest.lastLsn
  const stable = target >= 0 ? core.forest.store.makeStable(target) : undefined
  if (KILL_ODDS) return (stable ?? Promise.resolve()).then(() => maybeKill('db.write.stable-unacked'))
  return stable
}

interface BatchOp {
  ref: TreeRef
  key: Uint8Array
  value: Uint8Array | undefined
}

/** The writes of one applyBatch(); all of them land atomically, across trees. */
export class Batch {
  readonly #db: Db
  readonly #ops: BatchOp[]

  /** @internal */
  constructor(db: Db, ops: BatchOp[]) {
    this.#db = db
    this.#ops = ops
  }

  #tree(tree: Tree | undefined): TreeCore {
    const t = tree ?? this.#db
    if (!(t instanceof Tree)) throw new InvalidArgumentError(`batch: tree must be a Tree, got ${describe(t)}`)
    const core = coreOf(t)
    if (core.forest !== coreOf(this.#db).forest)
      throw new InvalidArgumentError('batch: the tree belongs to another database')
    if (this.#ops.length >= MAX_BATCH_OPS)
      throw new LimitError('batch operations', MAX_BATCH_OPS, this.#ops.length + 1)
    return core
  }

  insert(key: Bytes, value: Bytes, tree?: Tree): this {
    const core = this.#tree(tree)
    const t = tree ?? this.#db
    this.#ops.push({ ref: core.ref, key: keyBytesOf(t, key), value: valueBytesOf(t, value) })
    return this
  }

  remove(key: Bytes, tree?: Tree): this {
    const core = this.#tree(tree)
    this.#ops.push({ ref: core.ref, key: keyBytesOf(tree ?? this.#db, key), value: undefined })
    return this
  }
}

// The protected checks of a handle, for Batch.
let keyBytesOf: (t: Tree, k: unknown) => Uint8Array
let valueBytesOf: (t: Tree, v: unknown) => Uint8Array

/** A database: the default tree plus named trees, on one page store. */
export class Db extends Tree {
  static {
    keyBytesOf = (t, k) => (t as Db).key(k)
    valueBytesOf = (t, v) => (t as Db).value(v)
  }

  /** @internal Use open(). */
  constructor(core: TreeCore) {
    super(core)
  }

  get #c(): TreeCore {
    return coreOf(this)
  }

  /** The published limits of this database. */
  get limits(): Limits {
    return {
      maxKeyBytes: this.#c.config.keyBytesMax,
      maxValueBytes: valueBytesMax(this.#c.config),
      maxTrees: this.#c.config.treesMax,
      maxTreeNameBytes: MAX_TREE_NAME_BYTES,
      maxBatchOps: MAX_BATCH_OPS,
    }
  }

  /** LSN of the last write of this session (-1: none yet). Await durable(lsn) for it. */
  get lastLsn(): number {
    return this.#c.forest.lastLsn
  }

  private treeName(name: unknown): string {
    if (typeof name !== 'string')
      throw new InvalidArgumentError(`a tree name must be a string, got ${describe(name)}`)
    const n = utf8.encode(name).length
    if (n === 0) throw new InvalidArgumentError('a tree name must not be empty')
    if (n > MAX_TREE_NAME_BYTES) throw new LimitError('tree name bytes', MAX_TREE_NAME_BYTES, n)
    return name
  }

  /** The named tree, created (durably, with the next flush) if it does not exist. */
  async openTree(name: string): Promise<Tree> {
    const n = this.treeName(name)
    const c = this.#c
    const ref = await c.forest.openTree(n)
    await settle(c, undefined, undefined)
    return new Tree({ ...c, ref })
  }

  /** Removes a named tree and all its entries; false when there is no such tree. */
  async dropTree(name: string, opts?: WriteOptions): Promise<boolean> {
    const n = this.treeName(name)
    const o = checkWriteOptions(opts)
    const dropped = await this.#c.forest.dropTree(n)
    if (dropped) await settle(this.#c, undefined, o)
    return dropped
  }

  /** Names of the named trees, sorted (the default tree is not listed). */
  async treeNames(): Promise<string[]> {
    this.#c.forest.checkOpen()
    return this.#c.forest.treeNames()
  }

  /**
   * Applies every insert and remove that build() queues, across trees, atomically: after
   * any crash either all of them are there or none. build() runs before anything is
   * written; if it or any queued input throws, nothing is written.
   */
  async applyBatch(build: (b: Batch) => void, opts?: WriteOptions): Promise<void> {
    if (typeof build !== 'function') throw new InvalidArgumentError('applyBatch needs a function')
    const o = checkWriteOptions(opts)
    const ops: BatchOp[] = []
    build(new Batch(this, ops))
    if (ops.length === 0) return
    const c = this.#c
    for (const op of ops) c.forest.checkTree(op.ref)
    const { lsn } = await c.forest.write(
      (ctx) => {
        for (const op of ops) {
          c.forest.checkTree(op.ref)
          writeKey(ctx, c.config, op.ref.root, op.key, op.value)
        }
      },
      undefined,
      (visit) => {
        for (const op of ops) visit(op.ref.root, op.key)
      },
    )
    if (KILL_ODDS) maybeKill('db.batch.appended')
    await settle(c, lsn, o)
  }

  /** Resolves when everything written before the call is on disk. */
  async flush(): Promise<void> {
    this.#c.forest.checkOpen()
    await this.#c.forest.store.flush()
  }

  /** Resolves when every write up to lsn (e.g. db.lastLsn) is on disk. */
  async durable(lsn: number): Promise<void> {
    if (typeof lsn !== 'number' || !Number.isSafeInteger(lsn))
      throw new InvalidArgumentError('lsn must be a safe integer')
    this.#c.forest.checkOpen()
    if (lsn >= 0) await this.#c.forest.store.makeStable(lsn)
  }

  /** Bytes the database takes on disk. */
  async sizeOnDisk(): Promise<number> {
    this.#c.forest.checkOpen()
    const s = this.#c.forest.store as DbStore
    return s.sizeOnDisk === undefined ? 0 : s.sizeOnDisk()
  }

  /**
   * CRC-32 over every tree's name and entries in order: equal contents give equal checksums
   * (for tests and tools; it reads the whole database).
   */
  async checksum(): Promise<number> {
    let crc = 0
    const frame = new Uint8Array(4)
    const feed = (b: Uint8Array): void => {
      new DataView(frame.buffer).setUint32(0, b.length)
      crc = crc32(frame, 0, 4, crc)
      crc = crc32(b, 0, b.length, crc)
    }
    const c = this.#c
    const trees: Tree[] = [this]
    for (const name of await this.treeNames()) {
      const ref = await c.forest.findTree(name)
      if (ref !== undefined) trees.push(new Tree({ ...c, ref }))
    }
    for (const t of trees) {
      feed(utf8.encode(t.name))
      for await (const [k, v] of t.range()) {
        feed(k)
        feed(v)
      }
    }
    return crc >>> 0
  }

  /** A monotone id, unique across restarts and crashes. */
  generateId(): Promise<number> {
    return this.#c.forest.generateId()
  }

  /** Space, memory and activity figures (DbStats). */
  async stats(): Promise<DbStats> {
    const c = this.#c
    c.forest.checkOpen()
    const s = c.forest.store as DbStore
    return {
      trees: (await c.forest.treeNames()).length,
      lastLsn: c.forest.lastLsn,
      stableLsn: s.stableLsn,
      durability: c.isSync ? 'sync' : 'flush',
      readRestarts: c.forest.readRestarts,
      readsUnderMutex: c.forest.readsUnderMutex,
      pagesPrefetched: c.forest.pagesPrefetched,
      nodeMaxBytes: c.config.nodeMaxBytes,
      nodeMaxEntries: c.config.nodeMaxEntries,
      limits: this.limits,
      // open() always runs on the page cache; openOn()'s test stores report their own shape.
      store: s.stats?.() as PageCacheStats | undefined,
    }
  }

  /**
   * Waits for running writes, flushes, lets cleaning bring the files back within their
   * space budget (so the next open starts clean), checkpoints and closes. Later calls
   * reject with ClosedError.
   */
  close(): Promise<void> {
    return this.#c.forest.close()
  }
}

function checkOpenOptions(o: unknown): OpenOptions {
  if (o === undefined) return {}
  if (o === null || typeof o !== 'object') throw new InvalidArgumentError('open options must be an object')
  const opts = o as OpenOptions
  if (opts.durability !== undefined && opts.durability !== 'flush' && opts.durability !== 'sync') {
    throw new InvalidArgumentError(`durability must be 'flush' or 'sync', got ${String(opts.durability)}`)
  }
  for (const name of ['flushEveryMs', 'cacheCapacity', 'segmentBytes', 'writeHighWaterBytes'] as const) {
    const v = opts[name]
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new InvalidArgumentError(`${name} must be an integer ≥ 0`)
    }
  }
  // The tree's own options, checked here as makeTreeConfig() checks them (bar nodeMaxBytes'
  // upper bound, the page size, known only once the store is open): a refused open must not
  // have created the folder and its log first.
  const intOption = (
    name: 'nodeMaxBytes' | 'nodeMaxEntries' | 'idPersistInterval',
    min: number,
    max?: number,
  ) => {
    const v = opts[name]
    if (v === undefined) return
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || (max !== undefined && v > max)) {
      const range = max === undefined ? `≥ ${min}` : `in ${min}..${max}`
      throw new InvalidArgumentError(`${name} must be an integer ${range}, got ${String(v)}`)
    }
  }
  intOption('nodeMaxBytes', 16)
  intOption('nodeMaxEntries', 4, 1 << 20)
  intOption('idPersistInterval', 1)
  for (const name of ['warmCache', 'inlineSyncedWrites', 'inlineReads'] as const) {
    const v = opts[name]
    if (v !== undefined && typeof v !== 'boolean') throw new InvalidArgumentError(`${name} must be a boolean`)
  }
  return opts
}

/**
 * Opens a database over a page store (tests use an in-memory one; open() uses the page
 * cache). The store is owned by the Db from here on: db.close() closes it.
 */
export async function openOn(store: DbStore, options?: OpenOptions): Promise<Db> {
  const o = checkOpenOptions(options)
  try {
    const config = makeTreeConfig(store.maxPageBytes, {
      maxLargePageBytes: store.maxLargePageBytes,
      nodeMaxBytes: o.nodeMaxBytes,
      nodeMaxEntries: o.nodeMaxEntries,
      idPersistInterval: o.idPersistInterval,
    })
    const forest = await Forest.open(store, config)
    return new Db({ forest, ref: forest.defaultTree, config, isSync: o.durability === 'sync' })
  } catch (e) {
    // The store holds the folder's lock: a refused open must let it go (a retry in this
    // process would find the folder locked), and write nothing on the way out.
    await (store.closeRefused?.() ?? store.close()).catch(() => {})
    throw e
  }
}

/** Opens (creating if needed) the database in the folder at path. */
export async function open(path: string, options?: OpenOptions): Promise<Db> {
  if (typeof path !== 'string' || path.length === 0)
    throw new InvalidArgumentError('path must be a non-empty string')
  const o = checkOpenOptions(options)
  return openOn(await openPageStore(path, o), o)
}

/** The embedded default: the tree's pages on the page cache, in the folder at `path`. */
async function openPageStore(path: string, o: OpenOptions): Promise<DbStore> {
  // Forest.open() accepts the open once the tree's own pages check out.
  const options: PageCacheOptions = { deferAccept: true }
  if (o.storage !== undefined) options.storage = o.storage
  if (o.segmentBytes !== undefined) options.segmentBytes = o.segmentBytes
  if (o.flushEveryMs !== undefined) options.flushEveryMs = o.flushEveryMs
  if (o.writeHighWaterBytes !== undefined) options.writeHighWaterBytes = o.writeHighWaterBytes
  if (o.cacheCapacity !== undefined) options.cacheCapacity = o.cacheCapacity
  if (o.warmCache !== undefined) options.warmCache = o.warmCache
  if (o.inlineSyncedWrites !== undefined) options.inlineSyncedWrites = o.inlineSyncedWrites
  if (o.inlineReads !== undefined) options.inlineReads = o.inlineReads
  return PageCache.open<TreePage>(path, treeCodec, options)
}
