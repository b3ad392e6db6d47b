// One operation's view of the pages: reads go through an overlay of the pages the
// operation has already changed, then pages fetched earlier in the operation, then the
// store's memory (peek). Planning is synchronous; a page not in memory throws NeedPage, the
// runner (forest.ts) awaits store.get() for it and plans again. When planning finishes,
// commit() turns the overlay into store writes in the same synchronous step, so no reader
// ever sees half an operation (docs/DESIGN.md, "Tree: concurrency").

import { CorruptionError, InvariantError } from '../errors.js'
import type { PageStore, PageWrite } from '../pagecache/page-store.js'
import { assert } from '../util/assert.js'
import type { Lsn } from '../util/brand.js'
import type { CopySlab } from '../util/copy-slab.js'
import { encodeLeafDelta, type LeafOp, leafDeltaBytes } from './codec.js'
import { resolveChildren, type TreePage } from './node.js'

/** Thrown by planning code when a page must be read from the store first. */
export class NeedPage {
  constructor(readonly pid: number) {}
}

interface Change {
  /** The page after the operation; null when the operation frees it. */
  page: TreePage | null
  /** The leaf ops since the committed page, while they can be logged as one delta; else null. */
  ops: LeafOp[] | null
}

export interface CommitResult {
  lsn: Lsn | undefined
  /** Real page ids of the placeholders the operation used. */
  allocated: ReadonlyMap<number, number>
}

/** The allocated map of an operation that created no page. */
export const NONE_ALLOCATED: ReadonlyMap<number, number> = new Map()
const NO_LARGE: readonly number[] = []

/** Up to this many changes an operation finds its own by a scan; past it, through a Map. */
const SCAN_MAX = 8

export class OpContext {
  // The changes in the order they were first made (prepare() keeps it), as parallel arrays:
  // a Map per operation was most of a one-key write's allocations, and a write changes one
  // leaf. A batch's many changes get an index.
  private readonly pids: number[] = []
  private readonly changes: Change[] = []
  private index: Map<number, number> | undefined
  private nextPlaceholder = -1

  constructor(
    private readonly store: PageStore<TreePage>,
    private fetched: ReadonlyMap<number, TreePage>,
    /** Where prepare() carves the deltas it encodes (the store copies them as it logs them). */
    private readonly deltaSlab?: CopySlab,
  ) {}

  /**
   * Makes this a fresh context (no changes) for another operation, so a runner can keep one
   * for its operations that run in one synchronous step.
   */
  reset(fetched: ReadonlyMap<number, TreePage>): this {
    if (this.changes.length > 0) {
      this.pids.length = 0
      this.changes.length = 0
    }
    this.index = undefined
    this.nextPlaceholder = -1
    this.fetched = fetched
    return this
  }

  private find(pid: number): Change | undefined {
    if (this.index !== undefined) {
      const i = this.index.get(pid)
      return i === undefined ? undefined : this.changes[i]
    }
    const pids = this.pids
    for (let i = 0; i < pids.length; i++) if (pids[i] === pid) return this.changes[i]
    return undefined
  }

  private add(pid: number, c: Change): void {
    const i = this.pids.length
    this.pids.push(pid)
    this.changes.push(c)
    if (this.index !== undefined) this.index.set(pid, i)
    else if (i + 1 > SCAN_MAX) {
      this.index = new Map()
      for (let j = 0; j <= i; j++) this.index.set(this.pids[j] as number, j)
    }
  }

  private remove(pid: number): void {
    const i = this.pids.indexOf(pid)
    if (i < 0) return
    this.pids.splice(i, 1)
    this.changes.splice(i, 1)
    if (this.index !== undefined) {
      this.index.clear()
      for (let j = 0; j < this.pids.length; j++) this.index.set(this.pids[j] as number, j)
    }
  }

  /** The page as this operation sees it. Throws NeedPage when it must be paged in. */
  page(pid: number): TreePage {
    // Reads never change anything: their lookups skip the overlay.
    const c = this.changes.length === 0 ? undefined : this.find(pid)
    if (c !== undefined) {
      if (c.page === null) throw new InvariantError(`page ${pid} is read after this operation freed it`)
      return c.page
    }
    if (!(pid >= 0)) throw new InvariantError(`placeholder ${pid} read before it was written`)
    const p = this.fetched.get(pid) ?? this.store.peek(pid)
    if (p === undefined) throw new NeedPage(pid)
    return p
  }

  /** Called by the runner when the store has no page at a pid the tree points to. */
  static missing(pid: number): never {
    throw new CorruptionError(`tree page ${pid} is referenced but the page store has no such page`)
  }

  /** A page id for a page this operation creates; a real id is allocated at commit. */
  newPid(): number {
    return this.nextPlaceholder--
  }

  /** Records a leaf change that the log can hold as a delta. */
  setLeaf(pid: number, page: TreePage, op: LeafOp): void {
    const c = this.find(pid)
    if (c === undefined) this.add(pid, { page, ops: pid >= 0 ? [op] : null })
    else {
      c.page = page
      c.ops?.push(op)
    }
  }

  /** Records a whole new page (logged as a consolidated base). */
  put(pid: number, page: TreePage): void {
    const c = this.find(pid)
    if (c === undefined) this.add(pid, { page, ops: null })
    else {
      if (c.page === null) throw new InvariantError(`page ${pid} is written after this operation freed it`)
      c.page = page
      c.ops = null
    }
  }

  free(pid: number): void {
    const c = this.find(pid)
    if (c === undefined) this.add(pid, { page: null, ops: null })
    else if (pid < 0) this.remove(pid)
    else {
      c.page = null
      c.ops = null
    }
  }

  get hasChanges(): boolean {
    return this.changes.length > 0
  }

  /**
   * Turns the operation into store writes (synchronous): allocates real page ids for its new
   * pages and resolves placeholders. Pages too large for an inline page (blob leaves) are
   * listed in `large`: their bases must be staged (store.stageLarge) before finish().
   */
  prepare(): PreparedCommit {
    const { pids, changes } = this
    // Allocated only by an operation that creates pages: most write one leaf in place.
    let allocated: Map<number, number> | undefined
    for (let i = 0; i < pids.length; i++) {
      const pid = pids[i] as number
      if (pid < 0 && (changes[i] as Change).page !== null) {
        allocated ??= new Map()
        allocated.set(pid, this.store.allocate())
      }
    }
    const writes: PageWrite<TreePage>[] = []
    let large: number[] | undefined
    const max = this.store.maxPageBytes
    for (let i = 0; i < pids.length; i++) {
      const pid = pids[i] as number
      const c = changes[i] as Change
      if (c.page === null) {
        if (pid >= 0) writes.push({ kind: 'free', pid })
        continue
      }
      const page = allocated === undefined ? c.page : resolvePlaceholders(c.page, allocated)
      // Never a delta onto or into a page over the inline limit: its base would be a blob
      // kept alive by the delta, or a delta would carry a blob-sized value.
      const committed = pid >= 0 ? (this.fetched.get(pid) ?? this.store.peek(pid)) : undefined
      if (
        c.ops !== null &&
        page.kind === 'leaf' &&
        page.bytes <= max &&
        committed !== undefined &&
        committed.kind === 'leaf' &&
        committed.bytes <= max &&
        leafDeltaBytes(c.ops) <= Math.min(page.bytes, max)
      ) {
        writes.push({ kind: 'link', pid, delta: encodeLeafDelta(c.ops, this.deltaSlab), page })
      } else {
        if ((page.kind === 'leaf' || page.kind === 'index') && page.bytes > max) {
          large ??= []
          large.push(writes.length)
        }
        writes.push({ kind: 'replace', pid: realPid(pid, allocated), page })
      }
    }
    return { writes, large: large ?? NO_LARGE, allocated: allocated ?? NONE_ALLOCATED }
  }

  /**
   * Writes the prepared operation to the store: one link, one replace, or one atomic
   * writeBatch. Synchronous, so the whole operation becomes visible at once. If the store
   * throws, no page changed (writeBatch is all-or-nothing); ids allocated for it stay
   * reserved until a restart.
   */
  finish(p: PreparedCommit): CommitResult {
    const { writes, allocated } = p
    let lsn: Lsn | undefined
    if (writes.length === 1 && p.large.length === 0) {
      const w = writes[0] as PageWrite<TreePage>
      if (w.kind === 'link') lsn = this.store.link(w.pid, w.delta, w.page)
      else if (w.kind === 'replace') lsn = this.store.replace(w.pid, w.page)
      else lsn = this.store.free(w.pid)
    } else if (writes.length > 0) lsn = this.store.writeBatch(writes)
    return { lsn, allocated }
  }

  /** prepare() and finish() in one step, for operations without large pages. */
  commit(): CommitResult {
    const p = this.prepare()
    assert(p.large.length === 0, 'an operation with large pages stages them before it commits')
    return this.finish(p)
  }
}

export interface PreparedCommit {
  writes: PageWrite<TreePage>[]
  /** Indexes in `writes` of replaces whose page needs a staged base (`staged`) first. */
  large: readonly number[]
  allocated: ReadonlyMap<number, number>
}

function realPid(pid: number, allocated: ReadonlyMap<number, number> | undefined): number {
  return pid >= 0 ? pid : (allocated?.get(pid) ?? unresolved(pid))
}

function unresolved(pid: number): never {
  throw new CorruptionError(`placeholder page ${pid} was referenced but never written`)
}

function resolvePlaceholders(page: TreePage, allocated: ReadonlyMap<number, number>): TreePage {
  const real = (pid: number): number => realPid(pid, allocated)
  if (page.kind === 'index' && page.children.some((ch) => ch < 0)) return resolveChildren(page, real)
  if (page.kind === 'meta') {
    let hasPlaceholder = page.defaultRoot < 0
    for (const pid of page.trees.values()) if (pid < 0) hasPlaceholder = true
    if (hasPlaceholder) {
      const trees = new Map<string, number>()
      for (const [name, pid] of page.trees) trees.set(name, real(pid))
      return { kind: 'meta', defaultRoot: real(page.defaultRoot), trees }
    }
  }
  return page
}
