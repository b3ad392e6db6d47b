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
import { makeIndex, type TreePage } from './node.js'

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
  allocated: Map<number, number>
}

export class OpContext {
  private readonly changes = new Map<number, Change>()
  private nextPlaceholder = -1

  constructor(
    private readonly store: PageStore<TreePage>,
    private readonly fetched: ReadonlyMap<number, TreePage>,
    /** Where prepare() carves the deltas it encodes (the store copies them as it logs them). */
    private readonly deltaSlab?: CopySlab,
  ) {}

  /** The page as this operation sees it. Throws NeedPage when it must be paged in. */
  page(pid: number): TreePage {
    // Reads never change anything: their lookups skip the overlay.
    const c = this.changes.size === 0 ? undefined : this.changes.get(pid)
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
    const c = this.changes.get(pid)
    if (c === undefined) this.changes.set(pid, { page, ops: pid >= 0 ? [op] : null })
    else {
      c.page = page
      c.ops?.push(op)
    }
  }

  /** Records a whole new page (logged as a consolidated base). */
  put(pid: number, page: TreePage): void {
    const c = this.changes.get(pid)
    if (c === undefined) this.changes.set(pid, { page, ops: null })
    else {
      if (c.page === null) throw new InvariantError(`page ${pid} is written after this operation freed it`)
      c.page = page
      c.ops = null
    }
  }

  free(pid: number): void {
    const c = this.changes.get(pid)
    if (c === undefined) this.changes.set(pid, { page: null, ops: null })
    else if (pid < 0) this.changes.delete(pid)
    else {
      c.page = null
      c.ops = null
    }
  }

  get hasChanges(): boolean {
    return this.changes.size > 0
  }

  /**
   * Turns the operation into store writes (synchronous): allocates real page ids for its new
   * pages and resolves placeholders. Pages too large for an inline page (blob leaves) are
   * listed in `large`: their bases must be staged (store.stageLarge) before finish().
   */
  prepare(): PreparedCommit {
    const allocated = new Map<number, number>()
    for (const [pid, c] of this.changes)
      if (pid < 0 && c.page !== null) allocated.set(pid, this.store.allocate())
    const real = (pid: number): number => (pid < 0 ? (allocated.get(pid) ?? unresolved(pid)) : pid)
    const writes: PageWrite<TreePage>[] = []
    const large: number[] = []
    const max = this.store.maxPageBytes
    for (const [pid, c] of this.changes) {
      if (c.page === null) {
        if (pid >= 0) writes.push({ kind: 'free', pid })
        continue
      }
      const page = resolvePlaceholders(c.page, real)
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
        if ((page.kind === 'leaf' || page.kind === 'index') && page.bytes > max) large.push(writes.length)
        writes.push({ kind: 'replace', pid: real(pid), page })
      }
    }
    return { writes, large, allocated }
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
  large: number[]
  allocated: Map<number, number>
}

function unresolved(pid: number): never {
  throw new CorruptionError(`placeholder page ${pid} was referenced but never written`)
}

function resolvePlaceholders(page: TreePage, real: (pid: number) => number): TreePage {
  if (page.kind === 'index' && page.children.some((ch) => ch < 0))
    return makeIndex(page.keys, page.children.map(real))
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
