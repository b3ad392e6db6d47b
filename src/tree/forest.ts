// The trees of one database over one page store: the META page (tree name → root page id),
// the ID-generator page, the writer mutex, and the runners that turn synchronous planning
// (btree.ts over an OpContext) into operations that page in what they need and commit in
// one synchronous step (docs/DESIGN.md, "Tree: concurrency").

import { ClosedError, CorruptionError, InvalidArgumentError, InvariantError, LimitError } from '../errors.js'
import type { PageStore, PageWrite } from '../pagecache/page-store.js'
import { assert } from '../util/assert.js'
import type { Lsn } from '../util/brand.js'
import { CopySlab } from '../util/copy-slab.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { treePids as btreePids, findLeaf, getValueCopy } from './btree.js'
import { encodePage } from './codec.js'
import { type CommitResult, NeedPage, NONE_ALLOCATED, OpContext, type PreparedCommit } from './context.js'
import type { TreeConfig } from './limits.js'
import { Mutex } from './mutex.js'
import { EMPTY_LEAF, type Meta, type TreePage } from './node.js'

/** Reserved page ids, as in sled: the META page and the ID-generator page. */
export const META_PID = 0
export const COUNTER_PID = 1

/**
 * A reader restarts its plan when a write lands while it waits for a page-in. After this
 * many restarts it takes the writer mutex, so it always finishes.
 */
const READ_RESTARTS_MAX = 32

const NOTHING_FETCHED: ReadonlyMap<number, TreePage> = new Map()

/**
 * A writer waiting for the mutex pages in the descent to each key it will change (see
 * Forest.write): at most this many rounds (one tree level each, the leaves last) ...
 */
const PREFETCH_ROUNDS_MAX = 4
/** ... and at most this many pages in all (a batch of MAX_BATCH_OPS keys may miss as many leaves). */
const PREFETCH_PAGES_MAX = 1024

/**
 * The keys a write will change: calls `visit` with each key and the root of its tree.
 * Used only to page in ahead (Forest.write), so it may list a key twice or one too many.
 */
export type WriteKeys = (visit: (root: number, key: Uint8Array) => void) => void

/** Called under the writer mutex, in the step that committed the write. */
export type AfterCommit<R> = (r: R, c: CommitResult) => void

export interface WriteDone<R> {
  value: R
  lsn: Lsn | undefined
}

const asIs = <R>(done: WriteDone<R>): WriteDone<R> => done

/** A write for Forest.run(). */
export interface WriteJob<R, T> {
  /** Plans the write; may run several times (once per page-in), no side effects but ctx. */
  plan(ctx: OpContext): R
  /** Runs under the mutex, in the step that committed. */
  afterCommit?: AfterCommit<R> | undefined
  /** The write's answer, once committed and the mutex released. */
  finish(done: WriteDone<R>): T | PromiseLike<T>
}

/** A tree's identity. Handles share it; dropTree() marks it dropped for all of them. */
export interface TreeRef {
  /** null for the default tree. */
  readonly name: string | null
  readonly root: number
  isDropped: boolean
}

export class Forest {
  readonly mutex = new Mutex()
  /** Where callers' copies of values are carved from (util/copy-slab.ts). */
  readonly copies = new CopySlab()
  /**
   * Where the Db's copies of callers' keys and values are carved from: the tree keeps them
   * (leaf overlays), so they have a slab of their own, apart from what callers keep.
   */
  readonly inputCopies = new CopySlab()
  /** Where writes carve the leaf deltas they log (OpContext.prepare). */
  private readonly deltaSlab = new CopySlab()
  /** The context of every read's first attempt: resident pages only, never changed. */
  private readonly residentView: OpContext
  /** The context of every write planned in one synchronous step (runLocked()). */
  private readonly writeContext: OpContext
  /** Bumped by every commit: a reader's fetched pages are current while it is unchanged. */
  private version = 0
  private readonly refs = new Map<string, TreeRef>()
  readonly defaultTree: TreeRef
  isClosed = false
  /** Reads that restarted because a write landed while they waited for a page-in. */
  readRestarts = 0
  /** Reads that took the writer mutex after READ_RESTARTS_MAX restarts. */
  readsUnderMutex = 0
  /** LSN of the last write (-1: none yet in this session). */
  lastLsn = -1
  private nextId: number
  private idLimit: number
  private extendingIds: Promise<void> | undefined
  /** Page-ins started by writers waiting for the mutex, by page id (see write()). */
  private readonly prefetches = new Map<number, Promise<void>>()
  /** Pages writers read in while they waited for the mutex (the page-ins their turn skipped). */
  pagesPrefetched = 0
  /**
   * Mutation switch for tests: a writer pages in ahead *before* it queues for the mutex, so a
   * write with nothing to page in overtakes an earlier one still reading (call order lost).
   */
  unsafePrefetchBeforeQueue = false

  private constructor(
    readonly store: PageStore<TreePage>,
    readonly config: TreeConfig,
    meta: Meta,
    idLimit: number,
  ) {
    this.residentView = new OpContext(store, NOTHING_FETCHED)
    this.writeContext = new OpContext(store, NOTHING_FETCHED, this.deltaSlab)
    this.defaultTree = { name: null, root: meta.defaultRoot, isDropped: false }
    this.nextId = idLimit
    this.idLimit = idLimit
  }

  /** Opens the trees in `store`, creating the META, counter and default-tree pages when new. */
  static async open(store: PageStore<TreePage>, config: TreeConfig): Promise<Forest> {
    // Both page-ins at once: each is a read of the log, and open time counts them.
    let [meta, counter] = await Promise.all([store.get(META_PID), store.get(COUNTER_PID)])
    if (meta === undefined) {
      const existing = [...store.pageIds()]
      if (existing.length > 0) {
        throw new CorruptionError(`the page store holds ${existing.length} pages but no META page`)
      }
    } else {
      if (meta.kind !== 'meta') throw new CorruptionError(`page ${META_PID} is a ${meta.kind} page, not META`)
      if (counter?.kind !== 'counter')
        throw new CorruptionError(`page ${COUNTER_PID} is not the ID-generator page`)
    }
    // Every check of the open is done: the layers below may write now (their recovery's
    // repairs), and not before, so a refused folder is left as found (docs/DESIGN.md).
    await store.acceptOpen?.()
    if (meta === undefined) {
      const metaPid = store.allocate()
      const counterPid = store.allocate()
      const root = store.allocate()
      if (metaPid !== META_PID || counterPid !== COUNTER_PID) {
        throw new CorruptionError(`a new page store handed out ids ${metaPid} and ${counterPid}, not 0 and 1`)
      }
      meta = { kind: 'meta', defaultRoot: root, trees: new Map() }
      counter = { kind: 'counter', idLimit: 0 }
      const lsn = store.writeBatch([
        { kind: 'replace', pid: META_PID, page: meta },
        { kind: 'replace', pid: COUNTER_PID, page: counter },
        { kind: 'replace', pid: root, page: EMPTY_LEAF },
      ])
      await store.makeStable(lsn)
    }
    assert(meta.kind === 'meta' && counter?.kind === 'counter', 'META and the counter were checked above')
    return new Forest(store, config, meta, counter.idLimit)
  }

  checkOpen(): void {
    if (this.isClosed) throw new ClosedError('the database is closed')
  }

  checkTree(ref: TreeRef): void {
    this.checkOpen()
    if (ref.isDropped) throw new InvalidArgumentError(`tree "${ref.name}" was dropped`)
  }

  /**
   * Runs a read plan until it completes. The plan may run several times and must not have
   * side effects. The first attempt runs at once, on the resident pages: when it needs none
   * paged in (the common case) the result comes back as an already settled promise, with no
   * await and no allocation here. Otherwise `beforeWait` runs (a caller copies inputs the
   * plan keeps across the wait) and the plan runs again after each page-in.
   */
  read<R>(plan: (ctx: OpContext) => R, beforeWait?: () => void): Promise<R> {
    let missing: number
    try {
      this.checkOpen()
      const ctx = this.residentView
      const value = plan(ctx)
      assert(!ctx.hasChanges, 'a read plan changes no page')
      return Promise.resolve(value)
    } catch (e) {
      if (!(e instanceof NeedPage)) return Promise.reject(e)
      missing = e.pid
    }
    beforeWait?.()
    return this.readPagingIn(plan, missing)
  }

  /**
   * The value of `key` in tree `ref` as the caller's own copy (copies.ts), or undefined: read()
   * for one get, without its closures. A get of resident pages (the common case) allocates
   * the settled promise and the copy, nothing else. A get that must wait copies the key first
   * (the caller may reuse its array meanwhile) and goes on as read() does.
   */
  get(ref: TreeRef, key: Uint8Array): Promise<Uint8Array | undefined> {
    let missing: number
    try {
      this.checkTree(ref)
      return Promise.resolve(getValueCopy(this.residentView, ref.root, key, this.copies))
    } catch (e) {
      if (!(e instanceof NeedPage)) return Promise.reject(e)
      missing = e.pid
    }
    const k = key.slice()
    return this.readPagingIn((ctx) => {
      this.checkTree(ref)
      return getValueCopy(ctx, ref.root, k, this.copies)
    }, missing)
  }

  /** read() after its first attempt found page `missing` not resident. */
  private async readPagingIn<R>(plan: (ctx: OpContext) => R, missing: number): Promise<R> {
    // The first attempt ran synchronously just before: no write has landed since.
    let version = this.version
    let fetched: Map<number, TreePage> | undefined
    for (let pageIns = 0; pageIns < READ_RESTARTS_MAX; pageIns++) {
      const page = await this.store.get(missing)
      if (version !== this.version) {
        // Pages fetched before the write may be stale: start over from the root.
        this.readRestarts++
        fetched = undefined
        version = this.version
      } else {
        if (page === undefined) OpContext.missing(missing)
        fetched ??= new Map()
        fetched.set(missing, page)
      }
      this.checkOpen()
      try {
        return plan(new OpContext(this.store, fetched ?? NOTHING_FETCHED))
      } catch (e) {
        if (!(e instanceof NeedPage)) throw e
        missing = e.pid
      }
    }
    // Writes kept landing: take the writer mutex so that nothing changes under the plan.
    this.readsUnderMutex++
    return this.write((ctx) => plan(ctx)).then((r) => r.value)
  }

  /**
   * Runs a write plan under the writer mutex and commits it in the same synchronous step as
   * its last (successful) planning attempt. The plan may run several times (once per page-in)
   * and must not have side effects besides the context.
   *
   * A writer that finds the mutex free takes it in the calling step and, once the store is
   * writable, plans and commits in one synchronous step on the forest's one reused context:
   * one promise here besides the store's whenWritable(), where the general path (an async
   * function awaiting a lock, a Map of fetched pages and a context per attempt) made five
   * and ~3 KB per write (docs/DESIGN.md, "Tree: write path"). A plan that needs a page-in or
   * a commit with large pages goes on in the general path, still holding the mutex.
   */
  write<R>(
    plan: (ctx: OpContext) => R,
    afterCommit?: AfterCommit<R>,
    keys?: WriteKeys,
  ): Promise<WriteDone<R>> {
    return this.run({ plan, afterCommit, finish: asIs }, keys)
  }

  /**
   * write() of a job: its plan, what runs under the mutex after the commit, and `finish`,
   * which answers the write once the mutex is released, in the step that committed when the
   * commit needed no page-in. A caller with a job object of its own (Tree.insert) makes no
   * closure per write, and its continuation (settling) costs no promise of its own.
   */
  run<R, T>(job: WriteJob<R, T>, keys?: WriteKeys): Promise<T> {
    if (this.isClosed || this.unsafePrefetchBeforeQueue || !this.mutex.tryLock())
      return this.writeQueued(job, keys)
    // The mutex is ours from this step on: writes still commit in call order.
    return this.store.whenWritable().then(() => {
      const done = this.runLocked(job)
      return done instanceof Promise ? done.then((d) => job.finish(d)) : job.finish(done)
    }, this.unlockAndThrow)
  }

  /** The mutex taken by run() goes back when the store refuses to become writable. */
  private readonly unlockAndThrow = (e: unknown): never => {
    this.mutex.unlock()
    throw e
  }

  /** run() for a writer that must queue for the mutex (or meets a closed forest). */
  private async writeQueued<R, T>(job: WriteJob<R, T>, keys: WriteKeys | undefined): Promise<T> {
    this.checkOpen()
    // Queue for the mutex before any await: writes commit in call order. Waiting for
    // backpressure first let a later call overtake an earlier one whose wait took a turn
    // longer (db.insert(k, 1); db.insert(k, 2) could end with 1).
    if (this.unsafePrefetchBeforeQueue && keys !== undefined) await this.prefetch(keys)
    const isQueued = this.mutex.isLocked
    const turn = this.mutex.lock()
    // A writer that must wait reads its pages in meanwhile. Paged in under the mutex, one
    // cold leaf per writer made every writer behind it wait a disk read: 64 concurrent
    // writers on a freshly opened database got 6-16 writes per datasync instead of ~50
    // (docs/DESIGN.md, "Tree: write path").
    if (keys !== undefined && isQueued) void this.prefetch(keys)
    await turn
    try {
      await this.store.whenWritable()
    } catch (e) {
      this.mutex.unlock()
      throw e
    }
    return job.finish(await this.runLocked(job))
  }

  /**
   * Plans and commits under the mutex, which it releases: synchronously when the plan needs
   * no page-in and the commit no staged large page (the common case), else when its promise
   * settles.
   */
  private runLocked<R>(job: WriteJob<R, unknown>): WriteDone<R> | Promise<WriteDone<R>> {
    let isHandedOn = false
    try {
      this.checkOpen()
      const ctx = this.writeContext.reset(NOTHING_FETCHED)
      let value: R
      try {
        value = job.plan(ctx)
      } catch (e) {
        if (!(e instanceof NeedPage)) throw e
        isHandedOn = true
        return this.runPagingIn(job, e.pid)
      }
      const prepared = this.prepareCommit(ctx)
      if (prepared !== undefined && prepared.large.length > 0) {
        isHandedOn = true
        return this.commitLarge(ctx, prepared, value, job)
      }
      return this.land(ctx, prepared, value, job)
    } finally {
      if (!isHandedOn) {
        // Drops the operation's pages: a freed blob leaf is not kept alive until the next write.
        this.writeContext.reset(NOTHING_FETCHED)
        this.mutex.unlock()
      }
    }
  }

  /** runLocked() after its plan met page `missing` not resident; releases the mutex. */
  private async runPagingIn<R>(job: WriteJob<R, unknown>, missing: number): Promise<WriteDone<R>> {
    let isHandedOn = false
    try {
      const fetched = new Map<number, TreePage>()
      let joined = -1
      for (;;) {
        const ahead = this.prefetches.get(missing)
        if (ahead !== undefined && joined !== missing) {
          // Its page-in started before our turn: a write may have landed after it read,
          // so its page is not ours to keep. It warms the cache; the plan peeks again.
          joined = missing
          await ahead
        } else {
          // Only writers change pages and we hold the mutex: what we fetch stays current.
          const page = await this.store.get(missing)
          if (page === undefined) OpContext.missing(missing)
          fetched.set(missing, page)
        }
        this.checkOpen()
        const ctx = new OpContext(this.store, fetched, this.deltaSlab)
        let value: R
        try {
          value = job.plan(ctx)
        } catch (e) {
          if (!(e instanceof NeedPage)) throw e
          missing = e.pid
          continue
        }
        const prepared = this.prepareCommit(ctx)
        isHandedOn = true
        if (prepared !== undefined && prepared.large.length > 0)
          return await this.commitLarge(ctx, prepared, value, job)
        try {
          return this.land(ctx, prepared, value, job)
        } finally {
          this.mutex.unlock()
        }
      }
    } finally {
      if (!isHandedOn) this.mutex.unlock()
    }
  }

  /** The operation's store writes; undefined when it changed nothing. */
  private prepareCommit(ctx: OpContext): PreparedCommit | undefined {
    return ctx.hasChanges ? ctx.prepare() : undefined
  }

  /** Stages an operation's large pages, then lands it; releases the mutex. */
  private async commitLarge<R>(
    ctx: OpContext,
    prepared: PreparedCommit,
    value: R,
    job: WriteJob<R, unknown>,
  ): Promise<WriteDone<R>> {
    try {
      await this.stageLarge(prepared)
      if (KILL_ODDS) maybeKill('tree.commit.large-staged')
      try {
        return this.land(ctx, prepared, value, job)
      } catch (e) {
        await this.dropStaged(prepared)
        throw e
      }
    } finally {
      this.mutex.unlock()
    }
  }

  /** Writes the prepared operation to the store (synchronous), under the mutex. */
  private land<R>(
    ctx: OpContext,
    prepared: PreparedCommit | undefined,
    value: R,
    job: WriteJob<R, unknown>,
  ): WriteDone<R> {
    if (prepared === undefined) {
      job.afterCommit?.(value, { lsn: undefined, allocated: NONE_ALLOCATED })
      return { value, lsn: undefined }
    }
    const c = ctx.finish(prepared)
    this.version++
    if (c.lsn !== undefined) this.lastLsn = c.lsn
    if (KILL_ODDS) maybeKill('tree.commit.appended')
    job.afterCommit?.(value, c)
    return { value, lsn: c.lsn }
  }

  /**
   * Pages in the descent to each of `keys`, for a writer waiting for the mutex, all misses
   * of a round at once. Only warms the cache: the writer's plan, under the mutex, reads
   * every page again and pages in for itself whatever is missing then, so a failed or stale
   * page-in here costs time, never correctness; errors are left for that plan to meet and
   * report.
   */
  private async prefetch(keys: WriteKeys): Promise<void> {
    let budget = PREFETCH_PAGES_MAX
    const missing = new Set<number>()
    const visit = (root: number, key: Uint8Array): void => {
      try {
        findLeaf(this.residentView, root, key)
      } catch (e) {
        if (e instanceof NeedPage) missing.add(e.pid)
      }
    }
    for (let round = 0; round < PREFETCH_ROUNDS_MAX && budget > 0 && !this.isClosed; round++) {
      missing.clear()
      keys(visit)
      if (missing.size === 0) return
      const reads: Promise<void>[] = []
      for (const pid of missing) {
        if (budget-- <= 0) break
        reads.push(this.pageInAhead(pid))
      }
      await Promise.all(reads)
    }
  }

  /** A page-in for prefetch(), shared by every writer that misses the same page meanwhile. */
  private pageInAhead(pid: number): Promise<void> {
    const known = this.prefetches.get(pid)
    if (known !== undefined) return known
    this.pagesPrefetched++
    const done = (): void => {
      if (this.prefetches.get(pid) === p) this.prefetches.delete(pid)
    }
    const p: Promise<void> = this.store.get(pid).then(done, done)
    this.prefetches.set(pid, p)
    return p
  }

  /**
   * Writes the bases of an operation's large pages (blob leaves) durably before its commit,
   * which then links them in its one synchronous step. Runs under the writer mutex: the
   * plan's pages cannot change meanwhile (readers go on, seeing the state before it).
   */
  private async stageLarge(p: PreparedCommit): Promise<void> {
    try {
      // One at a time: each holds a copy of its page until its blob is written.
      for (const i of p.large) {
        const w = p.writes[i] as PageWrite<TreePage> & { kind: 'replace' }
        const staged = await this.store.stageLarge(w.pid, encodePage(w.page))
        p.writes[i] = { ...w, staged }
      }
    } catch (e) {
      await this.dropStaged(p)
      throw e
    }
  }

  /** Drops what stageLarge() staged for an operation that did not commit (best effort). */
  private async dropStaged(p: PreparedCommit): Promise<void> {
    for (const i of p.large) {
      const w = p.writes[i]
      if (w?.kind === 'replace' && w.staged !== undefined)
        await this.store.dropStaged(w.staged).catch(() => {})
    }
  }

  meta(ctx: OpContext): Meta {
    const m = ctx.page(META_PID)
    assert(m.kind === 'meta', 'page 0 is the META page')
    return m
  }

  /** The ref for a named tree, creating the tree if it does not exist. */
  async openTree(name: string): Promise<TreeRef> {
    this.checkOpen()
    const known = this.refs.get(name)
    if (known !== undefined && !known.isDropped) return known
    let opened: TreeRef | undefined
    await this.write(
      (ctx) => {
        const meta = this.meta(ctx)
        const root = meta.trees.get(name)
        if (root !== undefined) return root
        const most = this.config.treesMax
        if (meta.trees.size >= most) throw new LimitError('trees', most, meta.trees.size + 1)
        const pid = ctx.newPid()
        ctx.put(pid, EMPTY_LEAF)
        const trees = new Map(meta.trees)
        trees.set(name, pid)
        const next: Meta = { kind: 'meta', defaultRoot: meta.defaultRoot, trees }
        // Placeholder ids encode at their widest, so the real page is no larger than this.
        const size = encodePage({
          ...next,
          trees: new Map([...trees].map(([n, p]) => [n, p < 0 ? 2 ** 52 : p])),
        }).length
        if (size > this.store.maxPageBytes)
          throw new LimitError('META page bytes', this.store.maxPageBytes, size)
        ctx.put(META_PID, next)
        return pid
      },
      // Runs under the mutex in the step that read META: no drop can come in between.
      (pid, c) => {
        const known = this.refs.get(name)
        opened =
          known !== undefined && !known.isDropped
            ? known
            : { name, root: pid < 0 ? (c.allocated.get(pid) as number) : pid, isDropped: false }
        this.refs.set(name, opened)
      },
    )
    // A dropTree() right after our write may have dropped it again: the ref then says so.
    if (opened === undefined) throw new InvariantError(`tree "${name}" has a ref once opened`)
    return opened
  }

  /** The ref of an existing named tree, or undefined; never creates one. */
  async findTree(name: string): Promise<TreeRef | undefined> {
    const known = this.refs.get(name)
    if (known !== undefined && !known.isDropped) return known
    // Under the mutex, in the step that reads META: no drop can come in between.
    let found: TreeRef | undefined
    await this.write(
      (ctx) => this.meta(ctx).trees.get(name),
      (root) => {
        if (root === undefined) return
        const now = this.refs.get(name)
        found = now !== undefined && !now.isDropped ? now : { name, root, isDropped: false }
        this.refs.set(name, found)
      },
    )
    return found
  }

  /** Names of the named trees, sorted. */
  async treeNames(): Promise<string[]> {
    return this.read((ctx) => [...this.meta(ctx).trees.keys()].sort())
  }

  /** Removes a named tree and frees its pages. False when there is no such tree. */
  async dropTree(name: string): Promise<boolean> {
    const { value } = await this.write(
      (ctx) => {
        const meta = this.meta(ctx)
        const root = meta.trees.get(name)
        if (root === undefined) return false
        for (const pid of btreePids(ctx, root)) ctx.free(pid)
        const trees = new Map(meta.trees)
        trees.delete(name)
        ctx.put(META_PID, { kind: 'meta', defaultRoot: meta.defaultRoot, trees })
        return true
      },
      (dropped) => {
        const ref = this.refs.get(name)
        if (dropped && ref !== undefined) {
          ref.isDropped = true
          this.refs.delete(name)
        }
        if (KILL_ODDS && dropped) maybeKill('tree.drop.appended')
      },
    )
    return value
  }

  /** A crash-safe, monotone id: every id handed out is below the durable limit. */
  async generateId(): Promise<number> {
    for (;;) {
      this.checkOpen()
      if (this.nextId < this.idLimit) return this.nextId++
      this.extendingIds ??= this.extendIdLimit().finally(() => {
        this.extendingIds = undefined
      })
      await this.extendingIds
    }
  }

  private async extendIdLimit(): Promise<void> {
    const limit = Math.max(this.idLimit, this.nextId) + this.config.idPersistInterval
    // The counter page is not a tree page: it needs neither the writer mutex nor a version bump.
    const lsn = this.store.replace(COUNTER_PID, { kind: 'counter', idLimit: limit })
    this.lastLsn = Math.max(this.lastLsn, lsn)
    if (KILL_ODDS) maybeKill('tree.id.counter-appended')
    await this.store.makeStable(lsn)
    if (KILL_ODDS) maybeKill('tree.id.counter-stable')
    this.idLimit = limit
  }

  async close(): Promise<void> {
    if (this.isClosed) return
    await this.mutex.lock()
    try {
      if (this.isClosed) return
      this.isClosed = true
      await this.store.close()
    } finally {
      this.mutex.unlock()
    }
  }
}
