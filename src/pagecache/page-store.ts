// The contract between the page cache and the layers above it (tree/). The tree codes
// against this interface only, so it can be tested over an in-memory store and run over
// the real page cache unchanged.
//
// Model: a page is a base plus delta fragments on the log. In memory a page is always
// materialised (the codec applies deltas at page-in), never a chain. Every write is
// synchronous: it updates the in-memory page and the page table and reserves its log
// record in one step, so a reader never sees half an operation. The returned LSN can be
// awaited with makeStable() for durability.

import type { Lsn } from '../util/brand.js'

/** A page id: a safe integer ≥ 0. Ids are dense; freed ids are reused. */
export type PageId = number

/** How the page cache turns log bytes into the upper layer's in-memory page and back. */
export interface PageCodec<T> {
  /**
   * Builds the in-memory page from its base bytes and its deltas in LSN order. They are
   * views valid for this call only: the warm-up after open reads many pages' bases into
   * one buffer it reuses (docs/DESIGN.md, "Warm-up after open"), so a codec copies what it
   * keeps (the tree's codec and every test codec build pages of their own).
   */
  materialize(base: Uint8Array, deltas: readonly Uint8Array[]): T
  /** The bytes of a consolidated base for `page` (used to consolidate and to relocate). */
  encode(page: T): Uint8Array
  /** Approximate bytes of memory `page` holds, for the byte-bounded LRU. */
  memoryBytes(page: T): number
  /**
   * Present when pages are byte strings (T is Uint8Array) that the page cache keeps in its
   * own arena (pagecache/arena.ts), so that writes and page-ins make no garbage. The page
   * cache then keeps a copy of every page it is given (the caller may reuse its array),
   * builds paged-in pages straight into arena space with build() (materialize() is not
   * called), and get()/peek() return copies; PageCache.withPage() lends the resident bytes
   * themselves, valid only while its callback runs.
   */
  readonly arena?: ArenaPageBuilder
}

/** How a byte-string page is built from its base and deltas in arena space. */
export interface ArenaPageBuilder {
  /** Bytes of the page that `base` and `deltas` make. */
  builtBytes(base: Uint8Array, deltas: readonly Uint8Array[]): number
  /**
   * Writes that page into `out` (exactly builtBytes() long). `base` and `deltas` are views
   * into read space the page cache reuses once this returns: keep nothing of them.
   */
  build(base: Uint8Array, deltas: readonly Uint8Array[], out: Uint8Array): void
}

/**
 * A base too large for an inline page, already durable (a blob file) but not yet part of
 * any page: stageLarge() makes it, a writeBatch() replace of the same page id consumes it.
 */
export interface StagedPage {
  readonly pid: PageId
  /** Bytes of the staged base. */
  readonly sizeBytes: number
}

/** One write of an atomic batch. `staged` replaces the page by a base from stageLarge(). */
export type PageWrite<T> =
  | { kind: 'replace'; pid: PageId; page: T; bytes?: Uint8Array; staged?: StagedPage }
  | { kind: 'link'; pid: PageId; delta: Uint8Array; page: T }
  | { kind: 'free'; pid: PageId }

export interface PageStore<T> {
  /**
   * Reserves a page id (a freed one first). Nothing is logged until the first replace();
   * an id allocated but never written is free again after a restart.
   */
  allocate(): PageId
  /** The page, paged in from the log if needed; undefined when the id is free. */
  get(pid: PageId): Promise<T | undefined>
  /** The page if it is in memory now (no IO), else undefined. */
  peek(pid: PageId): T | undefined
  /**
   * Writes a consolidated base. `bytes` defaults to codec.encode(page). The page must fit
   * inline: at most `maxPageBytes` encoded bytes, else LimitError before any change.
   */
  replace(pid: PageId, page: T, bytes?: Uint8Array): Lsn
  /**
   * Appends a delta; `page` is the in-memory page with the delta applied. The store may
   * consolidate instead (write a base) when the page's delta chain is long.
   */
  link(pid: PageId, delta: Uint8Array, page: T): Lsn
  /** Frees the page; its id can be allocated again. */
  free(pid: PageId): Lsn
  /**
   * Applies every write or none, also after any crash. Returns the batch's last LSN.
   * Invalid writes throw before any change.
   */
  writeBatch(writes: readonly PageWrite<T>[]): Lsn
  /** Largest encoded page or delta a single write accepts. */
  readonly maxPageBytes: number
  /** Largest base stageLarge() accepts (≥ maxPageBytes). */
  readonly maxLargePageBytes: number
  /**
   * Writes `bytes` (over maxPageBytes, at most maxLargePageBytes) as a base of page `pid`
   * and makes it durable, without changing the page: a later writeBatch() replace with
   * `staged` makes it the page's base in its synchronous step, atomically with the batch's
   * other writes. Lets a caller commit pages of any size in one synchronous step. A staged
   * base never consumed is dropped with dropStaged() or, after a crash, at the next open.
   */
  stageLarge(pid: PageId, bytes: Uint8Array): Promise<StagedPage>
  /** Discards a staged base that no write consumed (best effort). */
  dropStaged(staged: StagedPage): Promise<void>
  /** Everything written before the call is on disk when this resolves. */
  flush(): Promise<Lsn>
  /** Resolves when every byte up to `lsn` is on disk. */
  makeStable(lsn: number): Promise<void>
  /** Backpressure: resolves when the write queue is below its high-water mark. */
  whenWritable(): Promise<void>
  /** Highest LSN known to be on disk (-1: none). */
  readonly stableLsn: Lsn
  /** Ids that hold a page now (for verification tools and tests). */
  pageIds(): Iterable<PageId>
  /** Flushes, checkpoints, releases the folder. */
  close(): Promise<void>
  /**
   * For a store opened with its acceptance deferred (the page cache's `deferAccept`): the
   * layer above has checked what it needs and accepts the open, so the layers below may
   * now write the repairs their recovery decided. Nothing is written before; writes throw.
   * A store without the notion leaves it out.
   */
  acceptOpen?(): Promise<void>
}
