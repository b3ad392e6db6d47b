// Pages on the log (digest §6): the page table maps each page id to its fragments on the
// log (a base and the deltas since), a byte-bounded LRU keeps materialised pages in
// memory, cleaning relocates live pages out of the log's head, and checkpoints of the
// page table keep open time independent of the database's size.
//
// Everything a write changes (page table, LRU, segment accounting) changes in the same
// synchronous step that reserves its log record, so a reader never sees half a write and
// accounting never lags the log. Page-ins are the only awaits on the read path; a page-in
// that raced a write or a relocation is dropped and retried from the page table.

import {
  ClosedError,
  CorruptionError,
  InvalidArgumentError,
  InvariantError,
  isBobsledError,
  LimitError,
  StorageError,
  wrapIoError,
} from '../errors.js'
import { openStorage, type Storage } from '../io/index.js'
import {
  type BlobRef,
  Log,
  type LogOptions,
  type LogRecord,
  MAX_RUN_READ_BYTES,
  messageHeaderBytes,
} from '../log/index.js'
import { SegmentAccountant } from '../segments/index.js'
import type { Lsn } from '../util/brand.js'
import { CopySlab } from '../util/copy-slab.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import { SlowGuard } from '../util/slow-guard.js'
import { ARENA_SLAB_BYTES, type ArenaStats, PageArena, slotBytesFor } from './arena.js'
import {
  type Checkpoint,
  checkpointName,
  dropPage,
  encodeCheckpoint,
  type FoundCheckpoints,
  findCheckpoints,
  listCheckpoints,
  openCheckpoint,
  pageBaseLsn,
  rawPage,
  readPage,
  readWholeFile,
  unlistedIds,
  writeCheckpointFile,
} from './checkpoint.js'
import type { PageCodec, PageId, PageStore, PageWrite, StagedPage } from './page-store.js'
import { PageTable } from './page-table.js'
import { decodePageRecord, encodePageRecord, PageRecordHeads, PageRecordKind } from './records.js'
import { ResidentList } from './resident-list.js'
import { encodeWarmHint, readWarmHint, writeWarmHint } from './warm-hint.js'

export interface PageCacheOptions extends LogOptions {
  /**
   * Bytes of memory for materialised pages (estimated by the codec) and the log's segment
   * buffers (writes in flight and spare buffers), as RocksDB charges memtables to its block
   * cache: pages are evicted to make room for a burst of writes. Default 256 MiB.
   */
  cacheCapacity?: number
  /** Deltas a page may gather before a write consolidates it into a new base. Default 16. */
  consolidateAfter?: number
  /** Log bytes between periodic checkpoints; 0 = only at clean close. Default 64 MiB. */
  checkpointEveryBytes?: number
  /** Clean when the log spans more than this × live data. Default 1.2. */
  cleanAtSpaceRatio?: number
  /** Cleaning stops once the log is back under this × live data. Default 1.12. */
  cleanToSpaceRatio?: number
  /** Relocate live pages out of the log's head (on by default). Tests turn it off. */
  cleaning?: boolean
  /**
   * Page in, in the background after open, the pages that were resident at the last
   * checkpoint or clean close (the `warm-pages` hint), most recently used first, up to the
   * cache's room (docs/DESIGN.md, "Warm-up after open"). false: no warm-up, and checkpoints
   * write no hint (an old one stays, stale, until a checkpoint with it on). Default true.
   */
  warmCache?: boolean
  /**
   * A user's page-in (get(), withPage()) whose fragments are all inline records reads them
   * on the main thread (StorageFile.readNow) and builds the page in the same step: a read
   * the OS serves from its cache costs a copy instead of a trip through the thread pool.
   * Cleaning and the warm-up always read through the pool, and so do user page-ins for a
   * while once reads turn slow (docs/DESIGN.md, "Inline reads"). Default true.
   */
  inlineReads?: boolean
  /**
   * Fill the arena slots of pages the cache drops with POISON_BYTE, and check they are
   * still poison when reused (pagecache/arena.ts): a test mode that turns a use of a page
   * after eviction into wrong bytes or an InvariantError. Default: on when the environment
   * variable BOBSLED_POISON_FREED_PAGES is 1. Only codecs with `arena` use the arena.
   */
  poisonFreedPages?: boolean
  /**
   * TEST ONLY — a mutation switch: get() and peek() lend the arena's memory instead of a
   * copy, so a caller keeps bytes the cache reuses. The arena tests turn it on to prove
   * they catch a page used after eviction. Never use it otherwise.
   */
  unsafeLendFromGet?: boolean
  /**
   * TEST ONLY — a mutation switch: the warm-up installs what it read even when the page
   * changed or was freed meanwhile. The warm-up tests turn it on to prove they catch it.
   */
  unsafeWarmIgnoresVersion?: boolean
  /**
   * TEST ONLY — a mutation switch: the warm-up reads the next run into the buffer whose
   * records it is still building pages from. The warm-up tests turn it on to prove they
   * catch pages built from overwritten bytes.
   */
  unsafeWarmOneScratch?: boolean
  /**
   * TEST ONLY — a mutation switch: a cleaning pass appends all its copies without pacing
   * (CLEAN_ROUND_BYTES). The cleaning tests turn it on to prove they catch a durable writer
   * left behind a whole pass.
   */
  unsafeUnpacedCleaning?: boolean
}

/** PageCache.memoryStats(): bytes held in memory now. */
export interface PageCacheMemory {
  /** The LRU's charge for the resident pages. */
  cacheBytes: number
  residentPages: number
  /** The arena's slabs (pooled ones included) and, of them, the uncarved pool. */
  slabBytes: number
  pooledBytes: number
  /** The log's segment buffers (charged to cacheCapacity). */
  logBufferBytes: number
  /** The per-page columns: the page table's and the LRU's. */
  tableBytes: number
}

export interface PageCacheStats {
  pages: number
  residentPages: number
  cacheBytes: number
  cacheCapacity: number
  liveBytes: number
  liveBlobBytes: number
  /**
   * Bytes of blob files no page names any more, kept until the segment holding their
   * newest pointer leaves the log (cleaning counts them as reclaimable space).
   */
  deadBlobBytes: number
  segments: number
  fileSlots: number
  segmentBytes: number
  firstLsn: number
  stableLsn: number
  pagesRelocated: number
  bytesRelocated: number
  segmentsCleaned: number
  cleaningPasses: number
  /**
   * Passes that found a drained segment still accounted live after moving the pages the
   * page table named, and so tried every page (a bug in that lookup or in accounting; 0).
   */
  cleaningRescans: number
  checkpointsWritten: number
  lastCheckpointLsn: number
  recovery: {
    ms: number
    checkpoint: string | undefined
    skippedCheckpoints: string[]
    replayedRecords: number
    replayFrom: number
  }
  backgroundError: string | undefined
  /**
   * Bytes of the per-page columns, allocated, used or not: the page table's (and its delta
   * pool) and the LRU's links.
   */
  tableBytes: number
  /** The arena of byte-string pages (PageCodec.arena); undefined for other codecs. */
  arena: ArenaStats | undefined
  warmUp: WarmUpStats
  /** User page-ins read on the main thread (options.inlineReads; docs/DESIGN.md, "Inline reads"). */
  inlineReads: InlineReadStats
  /** The log's sync rounds and how their synced writes went (LogMetrics, "Inline synced writes"). */
  logSync: {
    syncs: number
    syncedWrites: number
    inlineWrites: number
    inlineSlowWrites: number
    inlineFallbacks: number
  }
}

/** User page-ins and the inline read path (docs/DESIGN.md, "Inline reads"). */
export interface InlineReadStats {
  /** Page-ins read and built on the main thread. */
  pageIns: number
  /** Of them, those that took over INLINE_READ_SLOW_MS (a few close together trip the guard). */
  slowPageIns: number
  /**
   * User page-ins with inline reads on that went through the pool: the guard had tripped,
   * or a fragment could not be read synchronously (a blob, a file without readNow).
   */
  fallbacks: number
}

/** What the warm-up after open did (docs/DESIGN.md, "Warm-up after open"). */
export interface WarmUpStats {
  /** 'used', 'off' (warmCache: false), or why the hint was ignored ('missing', 'CRC mismatch', ...). */
  hint: string | undefined
  /** Page ids the hint listed. */
  hintPages: number
  /** Pages the warm-up installed. */
  pagesWarmed: number
  /** Pages it dropped: changed, freed or paged in by a user meanwhile, or failed to read or build. */
  pagesSkipped: number
  /** Reads it made (each a run of fragments of one segment). */
  reads: number
  /** Whether it ended: the list done, the cache full, or the cache closing. */
  isDone: boolean
  /** Hints that failed to be written (a checkpoint never fails for its hint). */
  hintWriteErrors: number
}

/** A page being warmed: its fragments' payloads as they arrive. */
interface WarmPage {
  pid: number
  version: number
  parts: Array<Uint8Array | undefined>
  left: number
  isFailed: boolean
}

/** A resident page: the page itself, or for a byte-string codec its arena slot id. */
type Resident<T> = T | number

/** A base from stageLarge(): its blob file, or its record when that still fits inline. */
interface StagedBase extends StagedPage {
  readonly ref: BlobRef | undefined
  readonly record: Uint8Array | undefined
  /** Bytes of the whole page record (kind, page id, base). */
  readonly recordBytes: number
}

const DEFAULT_CACHE_CAPACITY = 256 * 1024 * 1024
const DEFAULT_CONSOLIDATE_AFTER = 16
const DEFAULT_CHECKPOINT_EVERY = 64 * 1024 * 1024
const DEFAULT_WRITE_HIGH_WATER_BYTES = 16 * 1024 * 1024
/**
 * Background cleaning keeps the log between cleanToSpaceRatio and cleanAtSpaceRatio × live
 * data. The band is narrow because the file keeps the log's peak (only its end can be cut),
 * and it costs relocation writes (docs/DESIGN.md, "Segment cleaning"). cleanNow() has no
 * writer to keep up with and cleans down to CLEAN_NOW_SPACE_RATIO.
 */
const DEFAULT_CLEAN_AT_SPACE_RATIO = 1.2
const DEFAULT_CLEAN_TO_SPACE_RATIO = 1.12
const CLEAN_NOW_SPACE_RATIO = 1.1
/**
 * Most bytes of cleaning's copies that a durable round may have to carry (one segment's
 * worth when segments are smaller). Stability is a prefix, so a writer's round writes and
 * syncs every byte appended before its record, and a pass of resident pages used to append
 * its 6-7 MB in one synchronous stretch, then the next round carried all of it. Paced, a
 * pass goes on only once its copies not yet stable are under this (docs/DESIGN.md,
 * "Segment cleaning", "Beside a durable writer").
 */
export const CLEAN_ROUND_BYTES = 1024 * 1024
/**
 * After a slice of half that, a pass lets the event loop turn: a durable writer woken
 * meanwhile logs its record after the slice and its round carries it. Measured against
 * slices of 48 and 128 KiB and a turn after every 1 ms: those cost a durable writer beside
 * cleaning 5-10 % of its throughput, this one nothing measurable (docs/DESIGN.md).
 */
const CLEAN_SLICE_FRACTION = 2
/**
 * Memory of a resident page beyond what the codec reports (a page that is an object has
 * an entry in the resident list's Map; an arena page has no object of its own). Kept at
 * its value from when every resident page had a Map entry, which errs high: the bench's
 * calibration charges the same.
 */
const ENTRY_MEMORY_BYTES = 160
/** LRU pages looked at for a slab to empty for the log (stockLogSpares). */
const EMPTY_SLAB_LOOKAHEAD = 64
/** A page-in retried this often (the page kept moving) is a bug, not bad luck. */
const MAX_PAGE_IN_ATTEMPTS = 64
/**
 * Checkpoints kept. One: an older one would only save replay time in the rare case that
 * the newest is damaged (open then scans the log instead), and each costs space.
 */
const KEEP_CHECKPOINTS = 1
/**
 * The warm-up takes the hint's pages in groups whose fragments take at most this many bytes
 * (an estimate of their memory, checked against the cache's room), and sweeps the log once
 * per group: only the group's deltas are held meanwhile. Hotter groups come first.
 */
const WARM_GROUP_BYTES = 128 * 1024 * 1024
/**
 * Fragments of one segment at most this far apart are read in one read (the gap is read
 * and thrown away): a leaf's base and deltas lie far apart, but a group's fragments lie a
 * few KiB apart. With 256 KiB reads, 64 KiB gaps read the 1M-record peer database's 10,389
 * leaves in 615 reads (16 KiB gaps and 64 KiB reads: 2,278).
 */
const WARM_GAP_BYTES = 64 * 1024
/**
 * Longest read of the warm-up. Every read and its completion is work beside a durable
 * writer's synced write (a pread loop beside one slowed it by 20-75 % here), so fewer,
 * larger reads; the records of a run are checked in one synchronous step, ~0.1-0.2 ms
 * for 256 KiB.
 */
const WARM_READ_BYTES = Math.min(256 * 1024, MAX_RUN_READ_BYTES)
/**
 * The warm-up's longest stretch of main-thread work before it yields. A lone durable
 * writer's write completes while the warm-up works: beside a loop of O_DSYNC writes, 0.1 ms
 * stretches of main-thread work made each write 25-60 % longer, 25 us ones -6 to +20 %
 * (docs/DESIGN.md, "Durable writes right after reopen").
 */
const WARM_SLICE_MS = 0.025
/**
 * Free page ids open will track below the highest page id (the gaps a free left). A
 * JavaScript Set holds at most 2^24 entries, so a database with more could not be opened
 * anyway; an id that far beyond the page count comes from a damaged or crafted record.
 */
const MAX_FREE_PIDS_AT_OPEN = 2 ** 24 - 1
/**
 * The fewest LSNs a page record takes on the log: a message header of at least 8 bytes
 * (CRC, kind, three one-byte varints) and a body of at least 2 (kind, page id varint).
 */
const MIN_PAGE_MESSAGE_BYTES = 10
/**
 * Read space of a page-in when the codec has no arena: buffers of this size, at most
 * READ_SPACE_KEPT of them kept between page-ins (1 MiB, not charged to the cache, as the
 * warm-up's two read buffers are not). A fragment this long or longer gets an array of its
 * own, as every fragment did: 3-4 arrays of 4-14 KB per page-in of a tree leaf, garbage at
 * once, outside V8's heap (its external memory drives full collections).
 */
const READ_SPACE_BYTES = 32 * 1024
const READ_SPACE_KEPT = 32
/**
 * An inline page-in over this long read from the device, not the OS cache, and blocked the
 * event loop for it. When INLINE_READ_SLOW_TRIP of the last INLINE_READ_SLOW_WINDOW were
 * slow, the next INLINE_READ_BACKOFF_PAGE_INS user page-ins go through the pool (the
 * numbers of the inline writes' guard, docs/DESIGN.md, "Inline reads").
 */
const INLINE_READ_SLOW_MS = 1
const INLINE_READ_SLOW_WINDOW = 16
const INLINE_READ_SLOW_TRIP = 4
const INLINE_READ_BACKOFF_PAGE_INS = 256

export class PageCache<T> implements PageStore<T> {
  readonly maxPageBytes: number
  readonly maxLargePageBytes: number
  /** Page id → fragments on the log, versions and LRU figures (no object per page). */
  private readonly table = new PageTable()
  /** The checkpoint open started from: pages not used since are still encoded in it. */
  private lazy: Checkpoint | undefined
  private pageCount = 0
  private readonly freePids = new Set<number>()
  private nextPid = 0
  /**
   * Resident pages by id, least recently used first (a list in typed-array columns, not a
   * Map). A page in the arena is its slot id: no object per resident page (docs/DESIGN.md,
   * "Peak RSS").
   */
  private readonly lru = new ResidentList<T>()
  /** Record heads for appendWithHead(), reused write after write. */
  private readonly heads = new PageRecordHeads()
  /** Page-in read space for a codec without an arena: free buffers of READ_SPACE_BYTES. */
  private readonly readSpace: Uint8Array[] = []
  private cacheBytes = 0
  /** Counts moves to the young end of the LRU. */
  private lruClock = 0
  private readonly sa: SegmentAccountant
  private readonly S: number
  /** Memory of resident pages when the codec's pages are byte strings (PageCodec.arena). */
  private readonly arena: PageArena | undefined
  /** The arena and the log share whole slabs as segment buffers (stockLogSpares). */
  private readonly sharesSegmentMemory: boolean
  /**
   * Pages with a caller's replaceLarge() in flight: the caller's synchronous writes to them
   * are refused (their LSN would come first). Cleaning never adds a page here.
   */
  private readonly busy = new Set<number>()
  /** The last replaceLarge() called on each busy page: the next one waits for it. */
  private readonly largeWrites = new Map<number, Promise<Lsn>>()
  /** Bases from stageLarge() that no writeBatch() has consumed yet. */
  private readonly stagedBases = new Set<StagedPage>()
  /**
   * The segment bases in-flight page-ins read from, one entry per page-in and base (a base
   * read by two page-ins is here twice): a segment is not dropped under a reader. An array,
   * not a Map counting them: a Map emptied and refilled on every page-in reallocates its
   * table each time, and V8 links each old table to the next, so one table promoted by a
   * scavenge keeps every later one alive until a full GC (DESIGN.md, "Peak RSS").
   */
  private readonly pinnedBases: number[] = []
  private unpinWaiters: Array<() => void> = []
  private cleaningRun: Promise<void> | undefined
  /** True while clean() runs: one run at a time (cleaningRun is the promise of it). */
  private isCleaning = false
  /**
   * Bytes the pass in flight has copied to the tip: they take log space until its drained
   * segments go, and are not writes running ahead of cleaning (isHeldByCleaning).
   */
  private passCopyBytes = 0
  /** Bytes cleaning copied since its last slice ended (pace()). */
  private unpacedBytes = 0
  /** Bytes of cleaning's earlier slices not known to be stable (pace()). */
  private unstableCopyBytes = 0
  /** CLEAN_ROUND_BYTES, or one segment when that is less. */
  private readonly cleanRoundBytes: number
  /** Writers held by whenWritable(), woken when a cleaning pass or the run ends. */
  private cleaningWaiters: Array<() => void> = []
  private checkpointRun: Promise<void> | undefined
  private warming: Promise<void> | undefined
  /** Pages the warm-up dropped because they were written meanwhile. */
  private warmStale: number[] = []
  /**
   * Page-ins in flight outside the warm-up (users', cleaning's): the warm-up holds back
   * meanwhile. An inline page-in is never in flight: it reads and builds in one step, and
   * the warm-up cannot run inside it.
   */
  private userPageIns = 0
  private readonly inlineReadInfo: InlineReadStats = { pageIns: 0, slowPageIns: 0, fallbacks: 0 }
  /** Sends user page-ins to the pool for a while once inline reads turn slow. */
  private readonly inlineReadGuard = new SlowGuard(INLINE_READ_SLOW_WINDOW, INLINE_READ_SLOW_TRIP)
  private userPageInWaiters: Array<() => void> = []
  /** The warm-up's read space: two buffers, runs alternating between them (warmGroup). */
  private warmScratch: [Uint8Array, Uint8Array] | undefined
  /** Set when close begins: the warm-up stops at its next step. */
  private isWarmStopped = false
  private readonly warmInfo: WarmUpStats = {
    hint: undefined,
    hintPages: 0,
    pagesWarmed: 0,
    pagesSkipped: 0,
    reads: 0,
    isDone: false,
    hintWriteErrors: 0,
  }
  private bytesSinceCheckpoint = 0
  private timer: NodeJS.Timeout | undefined
  private closing = false
  private closed = false
  /** Writes wait for this: the open was accepted (acceptOpen(), or at the end of open()). */
  private isAccepted = false
  private accepting: Promise<void> | undefined
  /** Temp files of checkpoints a crash cut short, removed once the open is accepted. */
  private staleTemps: string[] = []
  /**
   * Where writeBatch() carves its short records: the log copies them when it appends, and a
   * bulk load's batches are a thousand records of ~150 B, each a backing store of its own
   * (malloc and external-memory accounting) before.
   */
  private readonly batchRecordSlab = new CopySlab()
  private readonly counters = {
    pagesRelocated: 0,
    bytesRelocated: 0,
    segmentsCleaned: 0,
    cleaningPasses: 0,
    cleaningRescans: 0,
    checkpointsWritten: 0,
    lastCheckpointLsn: -1,
  }
  private backgroundError: unknown
  private readonly recoveryInfo: PageCacheStats['recovery'] = {
    ms: 0,
    checkpoint: undefined,
    skippedCheckpoints: [],
    replayedRecords: 0,
    replayFrom: 0,
  }

  private constructor(
    readonly log: Log,
    private readonly storage: Storage,
    private readonly codec: PageCodec<T>,
    private readonly opts: Required<
      Pick<
        PageCacheOptions,
        | 'cacheCapacity'
        | 'consolidateAfter'
        | 'checkpointEveryBytes'
        | 'cleanAtSpaceRatio'
        | 'cleanToSpaceRatio'
        | 'cleaning'
        | 'flushEveryMs'
        | 'poisonFreedPages'
        | 'unsafeLendFromGet'
        | 'warmCache'
        | 'inlineReads'
        | 'unsafeWarmIgnoresVersion'
        | 'unsafeWarmOneScratch'
        | 'unsafeUnpacedCleaning'
      >
    >,
  ) {
    this.arena =
      codec.arena === undefined ? undefined : new PageArena(opts.cacheCapacity, opts.poisonFreedPages)
    this.sharesSegmentMemory = this.arena !== undefined && log.segmentBytes === ARENA_SLAB_BYTES
    if (this.sharesSegmentMemory) {
      const arena = this.arena as PageArena
      log.shareSegmentMemory({ give: (buf) => void arena.adoptSlab(buf) })
    }
    this.S = log.segmentBytes
    this.cleanRoundBytes = Math.min(CLEAN_ROUND_BYTES, this.S)
    // The largest record body, less the kind byte and the longest page-id varint.
    this.maxPageBytes = log.maxInlineBytes - 9
    this.maxLargePageBytes = Math.max(this.maxPageBytes, log.maxBlobBytes - 9)
    this.sa = new SegmentAccountant(log.segmentBytes, {
      cleanAtSpaceRatio: opts.cleanAtSpaceRatio,
      cleanToSpaceRatio: opts.cleanToSpaceRatio,
      slackSegments: 2,
    })
  }

  static async open<T>(
    path: string,
    codec: PageCodec<T>,
    options: PageCacheOptions = {},
  ): Promise<PageCache<T>> {
    if (options === null || typeof options !== 'object')
      throw new InvalidArgumentError('options must be an object')
    checkCodec(codec)
    const {
      cacheCapacity = DEFAULT_CACHE_CAPACITY,
      consolidateAfter = DEFAULT_CONSOLIDATE_AFTER,
      checkpointEveryBytes = DEFAULT_CHECKPOINT_EVERY,
      cleanAtSpaceRatio = DEFAULT_CLEAN_AT_SPACE_RATIO,
      cleanToSpaceRatio = DEFAULT_CLEAN_TO_SPACE_RATIO,
      cleaning = true,
      poisonFreedPages = process.env.BOBSLED_POISON_FREED_PAGES === '1',
      unsafeLendFromGet,
      warmCache = true,
      inlineReads = true,
      unsafeWarmIgnoresVersion,
      unsafeWarmOneScratch,
      unsafeUnpacedCleaning,
      ...logOptions
    } = options
    checkCount('cacheCapacity', cacheCapacity, 0)
    checkCount('consolidateAfter', consolidateAfter, 0)
    checkCount('checkpointEveryBytes', checkpointEveryBytes, 0)
    if (typeof cleaning !== 'boolean') throw new InvalidArgumentError('cleaning must be a boolean')
    if (typeof warmCache !== 'boolean') throw new InvalidArgumentError('warmCache must be a boolean')
    if (typeof inlineReads !== 'boolean') throw new InvalidArgumentError('inlineReads must be a boolean')
    if (typeof poisonFreedPages !== 'boolean')
      throw new InvalidArgumentError('poisonFreedPages must be a boolean')
    if (
      typeof cleanAtSpaceRatio !== 'number' ||
      typeof cleanToSpaceRatio !== 'number' ||
      !(cleanToSpaceRatio >= 1) ||
      !(cleanAtSpaceRatio >= cleanToSpaceRatio) ||
      !Number.isFinite(cleanAtSpaceRatio)
    ) {
      throw new InvalidArgumentError('cleanAtSpaceRatio ≥ cleanToSpaceRatio ≥ 1 are required')
    }
    const storage = logOptions.storage ?? openStorage(path)
    const t0 = performance.now()
    // The checkpoint, not a walk of the whole log, tells open where pages are.
    // 16 MiB of writes in flight (the log alone allows 64) keeps throughput on this disk
    // and bounds the segment buffers a write burst holds on top of the cache.
    // The log writes nothing until this layer has checked the folder too: a refused open
    // leaves it as found (regimen R8; docs/DESIGN.md, "Accepting an open").
    // The checkpoint is read while the log recovers (it needs the lock, not the log).
    let found: Promise<FoundCheckpoints> | undefined
    const log = await Log.open(path, {
      scanWitnessed: false,
      writeHighWaterBytes: DEFAULT_WRITE_HIGH_WATER_BYTES,
      ...logOptions,
      storage,
      deferAccept: true,
      onLocked: () => {
        logOptions.onLocked?.()
        found = findCheckpoints(storage)
        // Awaited by recover(); a failed log open leaves it behind, settled on its own.
        found.catch(() => {})
      },
    })
    const pc = new PageCache<T>(log, storage, codec, {
      cacheCapacity,
      consolidateAfter,
      checkpointEveryBytes,
      cleanAtSpaceRatio,
      cleanToSpaceRatio,
      cleaning,
      flushEveryMs: logOptions.flushEveryMs ?? 500,
      poisonFreedPages,
      // Only a literal true turns the mutation switch on.
      unsafeLendFromGet: unsafeLendFromGet === true,
      warmCache,
      inlineReads,
      unsafeWarmIgnoresVersion: unsafeWarmIgnoresVersion === true,
      unsafeWarmOneScratch: unsafeWarmOneScratch === true,
      unsafeUnpacedCleaning: unsafeUnpacedCleaning === true,
    })
    try {
      await pc.recover(found)
      pc.recoveryInfo.ms = performance.now() - t0
      if (logOptions.deferAccept !== true) await pc.acceptOpen()
    } catch (e) {
      // Recovery writes nothing: neither may giving up (no witness of a refused log).
      await log.closeRefused().catch(() => {})
      throw wrapIoError(e, `opening the page cache in ${storage.location}`)
    }
    return pc
  }

  /**
   * Accepts an open made with `deferAccept` once the layer above has checked the pages it
   * needs: the log writes its recovery's repairs, stale checkpoint temp files go, and
   * background work starts. Until then every write throws and nothing is written; reads
   * see the recovered state. Idempotent.
   */
  acceptOpen(): Promise<void> {
    this.accepting ??= this.accept()
    return this.accepting
  }

  private async accept(): Promise<void> {
    if (this.closed || this.closing) throw new ClosedError('the page cache is closed')
    const t0 = performance.now()
    await this.log.acceptOpen()
    for (const n of this.staleTemps) {
      await this.storage.unlink(n).catch(() => {})
      if (KILL_ODDS) maybeKill('pagecache.open.temp-unlinked')
    }
    this.staleTemps = []
    this.isAccepted = true
    this.recoveryInfo.ms += performance.now() - t0
    this.startTimer()
    if (this.opts.warmCache) {
      // The warm-up builds pages on the main thread while the pool does the reads and the
      // durable writes; an inline write would hold that thread for a whole disk trip per
      // round (docs/DESIGN.md, "Inline synced writes"). Back on however it ends.
      const resumeInline = this.log.pauseInlineSyncedWrites()
      this.warming = this.runInBackground(() => this.warmUp()).finally(resumeInline)
    } else this.warmInfo.hint = 'off'
  }

  // ---- reading ----

  /** Whether `pid` holds a page; its row is decoded from the open checkpoint on first use. */
  private exists(pid: number): boolean {
    if (this.table.has(pid)) return true
    if (this.lazy === undefined) return false
    const p = readPage(this.lazy, pid)
    if (p === undefined) return false
    dropPage(this.lazy, pid)
    this.table.load(pid, p.frags, p.blobBytes)
    return true
  }

  allocate(): PageId {
    this.checkWritable()
    for (const pid of this.freePids) {
      this.freePids.delete(pid)
      return pid
    }
    return this.nextPid++
  }

  peek(pid: PageId): T | undefined {
    checkPid(pid)
    const r = this.lru.get(pid)
    if (r === undefined) return undefined
    this.touch(pid)
    return this.handOut(this.pageOf(r))
  }

  get(pid: PageId): Promise<T | undefined> {
    return this.usePage(pid, (page) => this.handOut(page), true)
  }

  /**
   * Calls `use` with the page (paged in if needed) in the same synchronous step that finds
   * it resident, and resolves to what `use` returns; undefined when the id is free. With a
   * byte-string codec (PageCodec.arena) the page is the cache's own memory, lent: it is
   * valid only while `use` runs (the next page-in may evict it and reuse its bytes, and so
   * may a write made inside `use`, whose memory may go to the log), so `use` must neither
   * keep it nor return it nor write to it. get() returns a copy instead.
   */
  withPage<R>(pid: PageId, use: (page: T) => R): Promise<R | undefined> {
    return this.usePage(pid, use, true)
  }

  /** Whether the page is in memory now (no IO, the LRU is not touched). */
  isResident(pid: PageId): boolean {
    checkPid(pid)
    return this.lru.has(pid)
  }

  /**
   * `isUser`: a caller's page-in (get(), withPage()), which may read inline; cleaning's
   * always goes through the pool (a pass pages in hundreds of cold pages, and inline it
   * would never yield: the first writes after an open waited 80-110 ms for it).
   */
  private async usePage<R>(pid: PageId, use: (page: T) => R, isUser: boolean): Promise<R | undefined> {
    this.checkOpen()
    checkPid(pid)
    for (let attempt = 0; attempt < MAX_PAGE_IN_ATTEMPTS; attempt++) {
      const resident = this.lru.get(pid)
      if (resident !== undefined) {
        this.touch(pid)
        return use(this.pageOf(resident))
      }
      if (!this.exists(pid)) return undefined
      // Every write and every free moves the version on (never back): the same version
      // after the await means the fragments read are still the page.
      const version = this.table.version(pid)
      const frags = this.table.fragments(pid)
      if (isUser && this.opts.inlineReads) {
        const now = this.pageInNow(pid, frags)
        if (now !== undefined) {
          // Read and built in this step: nothing could move the page meanwhile.
          if (this.table.version(pid) !== version || this.lru.has(pid))
            throw new InvariantError(`page ${pid} changed during a synchronous page-in`)
          this.install(pid, now, true)
          return use(this.pageOf(this.lru.get(pid) as Resident<T>))
        }
      }
      let page: T
      this.userPageIns++
      try {
        page = await this.pageIn(pid, frags)
      } catch (err) {
        // The page moved (relocated, or rewritten and its old segment dropped): the
        // fragments we read from are gone, so ask the page table again.
        if (this.table.version(pid) !== version) continue
        throw err
      } finally {
        if (--this.userPageIns === 0 && this.userPageInWaiters.length > 0) {
          const w = this.userPageInWaiters
          this.userPageInWaiters = []
          for (const f of w) f()
        }
      }
      if (this.table.version(pid) !== version) {
        this.release(page)
        continue
      }
      const now = this.lru.get(pid)
      if (now === undefined) this.install(pid, page, true)
      else this.release(page)
      // The page was just made the youngest (install never evicts it): still resident.
      return use(this.pageOf(this.lru.get(pid) as Resident<T>))
    }
    throw new InvariantError(`page ${pid} kept moving during ${MAX_PAGE_IN_ATTEMPTS} page-ins`)
  }

  /** Reads and materialises the fragments in parallel; every one must be this page's. */
  private async pageIn(pid: number, frags: readonly number[]): Promise<T> {
    const bases = new Set<number>()
    for (let i = 0; i < frags.length; i += 2) bases.add(this.sa.baseOf(frags[i] as number))
    this.pin(bases)
    // Read space lent to the log from the arena, given back once the page is built.
    const scratch: Uint8Array[] = []
    try {
      const reads: Promise<LogRecord>[] = []
      // Each fragment's size on the log sizes its read: one read into one array of exactly
      // the message, no window to throw away.
      for (let i = 0; i < frags.length; i += 2) {
        const bytes = frags[i + 1] as number
        const space = this.readSpaceFor(bytes)
        if (space !== undefined) scratch.push(space)
        reads.push(this.log.read(frags[i] as number, bytes, space))
      }
      // Every read settles before any fails the page-in: the finally below gives their
      // space back, and a read still in flight would write into the slot's next owner.
      const settled = await Promise.allSettled(reads)
      const records: LogRecord[] = []
      for (const r of settled) {
        if (r.status === 'fulfilled') records.push(r.value)
        else throw fragmentError(pid, r.reason)
      }
      return this.buildPage(pid, records)
    } finally {
      this.freeReadSpace(scratch)
      this.unpin(bases)
    }
  }

  /**
   * pageIn() on the calling thread for a user's page-in (options.inlineReads): every
   * fragment read with Log.readNow() and the page built in the same step, so no segment
   * can be dropped and no write can land meanwhile (no pins, no version to compare).
   * Undefined, with nothing changed, when it must go through pageIn(): the guard is
   * tripped, or a fragment cannot be read synchronously (a blob, a file without readNow).
   */
  private pageInNow(pid: number, frags: readonly number[]): T | undefined {
    const guard = this.inlineReadGuard
    const info = this.inlineReadInfo
    if (this.table.blobBytes(pid) > 0 || guard.isBackingOff()) {
      info.fallbacks++
      return undefined
    }
    const scratch: Uint8Array[] = []
    try {
      const started = performance.now()
      const records: LogRecord[] = []
      for (let i = 0; i < frags.length; i += 2) {
        const bytes = frags[i + 1] as number
        const space = this.readSpaceFor(bytes)
        if (space !== undefined) scratch.push(space)
        let rec: LogRecord | undefined
        try {
          rec = this.log.readNow(frags[i] as number, bytes, space)
        } catch (e) {
          throw fragmentError(pid, e)
        }
        if (rec === undefined) {
          info.fallbacks++
          return undefined
        }
        records.push(rec)
      }
      const isSlow = performance.now() - started > INLINE_READ_SLOW_MS
      info.pageIns++
      if (isSlow) info.slowPageIns++
      guard.note(isSlow, INLINE_READ_BACKOFF_PAGE_INS)
      return this.buildPage(pid, records)
    } finally {
      this.freeReadSpace(scratch)
    }
  }

  /** The page from its fragments' records, base first; every one must be this page's. */
  private buildPage(pid: number, records: readonly LogRecord[]): T {
    let base: Uint8Array | undefined
    const deltas: Uint8Array[] = []
    for (let i = 0; i < records.length; i++) {
      const rec = records[i] as LogRecord
      const r = decodePageRecord(rec.data, rec.lsn)
      const want = i === 0 ? PageRecordKind.Replace : PageRecordKind.Link
      if (r.pid !== pid || r.kind !== want) {
        throw new CorruptionError(`the record at LSN ${rec.lsn} is not fragment ${i} of page ${pid}`, {
          lsn: rec.lsn,
        })
      }
      if (i === 0) base = r.payload
      else deltas.push(r.payload)
    }
    if (this.arena !== undefined) return this.buildInArena(pid, base as Uint8Array, deltas)
    return this.codec.materialize(base as Uint8Array, deltas)
  }

  /** Read space for a fragment of `bytes`: the arena's, or kept space; undefined: none. */
  private readSpaceFor(bytes: number): Uint8Array | undefined {
    return this.arena !== undefined ? this.arena.alloc(bytes) : this.takeReadSpace(bytes)
  }

  /** Gives back a page-in's read space once its page is built. */
  private freeReadSpace(scratch: readonly Uint8Array[]): void {
    // The codec copied what it keeps (PageCodec.materialize()): the space is free again.
    for (const space of scratch) {
      if (this.arena !== undefined) this.arena.free(space)
      else if (this.readSpace.length < READ_SPACE_KEPT) this.readSpace.push(space)
    }
  }

  /** Read space for one fragment of `bytes` when the codec has no arena; undefined: too long. */
  private takeReadSpace(bytes: number): Uint8Array | undefined {
    if (bytes > READ_SPACE_BYTES) return undefined
    return this.readSpace.pop() ?? new Uint8Array(READ_SPACE_BYTES)
  }

  /**
   * Segments being read from: cleaning waits for their pins before it drops one. An array,
   * not a Map of counts: a Map emptied and refilled per page-in reallocates its table, and
   * V8 chains the old tables through its old space (docs/DESIGN.md, "Peak RSS").
   */
  private pin(bases: Iterable<number>): void {
    for (const b of bases) this.pinnedBases.push(b)
  }

  private unpin(bases: Iterable<number>): void {
    const pinned = this.pinnedBases
    for (const b of bases) {
      const at = pinned.lastIndexOf(b)
      if (at < 0) throw new InvariantError(`segment ${b} is unpinned once per page-in that pinned it`)
      pinned[at] = pinned[pinned.length - 1] as number
      pinned.pop()
    }
    if (this.unpinWaiters.length > 0) {
      const w = this.unpinWaiters
      this.unpinWaiters = []
      for (const f of w) f()
    }
  }

  // ---- warm-up after open ----

  /**
   * Pages in the pages the hint lists, most recently used first, while the cache has room,
   * in the background (docs/DESIGN.md, "Warm-up after open"). It only fills the cache: a
   * page is installed only if it is still at the version its fragments were read at and
   * no one paged it in meanwhile, in the synchronous step that checks it, and any failure
   * (a read, a record, a build) drops the page, whose next user pages it in as ever and
   * meets the same error. One read at a time, and a yield to other work after each.
   */
  private async warmUp(): Promise<void> {
    const info = this.warmInfo
    let pids: number[] = []
    try {
      const hint = await readWarmHint(this.storage, this.log.logId)
      pids = hint.pids
      info.hint = hint.why ?? 'used'
    } catch (e) {
      info.hint = `unreadable: ${e instanceof Error ? e.message : String(e)}`
    }
    info.hintPages = pids.length
    let next = 0
    let isFull = false
    let isRetry = false
    const queued = new Set<number>()
    for (;;) {
      if (next >= pids.length && !isRetry && this.warmStale.length > 0) {
        // Pages written while they were being read: one more try, once the list is done.
        pids = this.warmStale
        this.warmStale = []
        next = 0
        isRetry = true
        queued.clear()
      }
      if (next >= pids.length || isFull || this.mustStopWarming()) break
      // One group: the next pages of the list, as many as the cache has room for by the
      // size of their fragments (the estimate; install checks the real charge).
      const group: WarmPage[] = []
      const frags: number[] = [] // [lsn, bytes, page index, fragment index] per fragment
      // Fragment offsets in frags by segment base, built here in slices: a pass over the
      // group's 10^4-10^5 fragments at once held the main thread for milliseconds.
      const bySegment = new Map<number, number[]>()
      let groupBytes = 0
      let room = this.pageBudget() - this.cacheBytes
      let sliceStart = performance.now()
      while (next < pids.length && groupBytes < WARM_GROUP_BYTES) {
        // Finding pages decodes their checkpoint entries: in slices too.
        if (performance.now() - sliceStart > WARM_SLICE_MS) {
          await this.warmYield()
          if (this.mustStopWarming()) break
          sliceStart = performance.now()
        }
        const pid = pids[next] as number
        // A blob base is one large read of its own: nothing to share, left to its user. A
        // page listed twice is taken once (its fragments must not be read twice in a run).
        if (queued.has(pid) || this.lru.has(pid) || !this.exists(pid) || this.table.blobBytes(pid) > 0) {
          next++
          continue
        }
        const f = this.table.fragments(pid)
        let bytes = 0
        for (let i = 1; i < f.length; i += 2) bytes += f[i] as number
        if (bytes > room) {
          isFull = true
          break
        }
        next++
        queued.add(pid)
        room -= bytes
        groupBytes += bytes
        const at = group.length
        group.push({ pid, version: this.table.version(pid), parts: [], left: f.length / 2, isFailed: false })
        for (let i = 0; i < f.length; i += 2) {
          const base = this.sa.baseOf(f[i] as number)
          const list = bySegment.get(base)
          if (list === undefined) bySegment.set(base, [frags.length])
          else list.push(frags.length)
          frags.push(f[i] as number, f[i + 1] as number, at, i / 2)
        }
      }
      if (group.length === 0) continue
      if (!(await this.warmGroup(group, frags, bySegment))) isFull = true
    }
    info.isDone = true
    this.warmScratch = undefined
    this.warmStale = []
  }

  /**
   * The warm-up's yield: everything ready runs first (a user's reads, a writer's
   * completions), and while a user waits for a page-in the warm-up waits too, so its work
   * fills the time users spend waiting for the disk, not the time they wait for the CPU.
   */
  private async warmYield(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve))
    while (this.userPageIns > 0 && !this.mustStopWarming()) {
      await new Promise<void>((resolve) => this.userPageInWaiters.push(resolve))
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  /** Whether the warm-up must stop: closing, or the log failed. */
  private mustStopWarming(): boolean {
    return this.isWarmStopped || this.closing || this.closed || this.log.failure !== undefined
  }

  /**
   * Reads a group's fragments newest first, nearby ones together in one read. A page's
   * deltas are newer than its base, so when the sweep meets a base every delta of its page
   * has arrived (copied and held: they are small), and the page is built at once from the
   * base where it was read: no base is ever copied or held (they are most of the bytes),
   * and the log is read once. The next run's read is in flight while a run's pages are
   * built, into the other of two scratch buffers: one read at a time left the main thread
   * idle for ~40 % of the warm-up, and a writer meanwhile runs slowly (docs/DESIGN.md,
   * "Warm-up after open"). False once the cache is full.
   */
  private async warmGroup(
    group: WarmPage[],
    frags: number[],
    bySegment: Map<number, number[]>,
  ): Promise<boolean> {
    const runs = this.warmRuns(frags, bySegment)
    const held = new CopySlab()
    let scratch = 0
    let next = runs.next()
    let reading = next.done ? undefined : this.startWarmRead(group, frags, next.value, scratch)
    try {
      while (reading !== undefined) {
        const read = await reading.records
        next = runs.next()
        // Issued before this run is built, and into the other buffer: this run's records
        // are views of its own until the loop comes back to it, two runs on.
        if (!this.opts.unsafeWarmOneScratch) scratch ^= 1
        const current = reading
        reading =
          next.done || this.mustStopWarming()
            ? undefined
            : this.startWarmRead(group, frags, next.value, scratch)
        if (!(await this.warmBuild(group, frags, current.live, read, held))) return false
        await this.warmYield()
        if (this.mustStopWarming()) return false
      }
      return true
    } finally {
      // A read still in flight writes into a scratch buffer: let it land before the
      // buffers go (and before close() can close the file under it).
      if (reading !== undefined) await reading.records
    }
  }

  /**
   * The runs of a group, segment by segment from the newest, each run ascending: fragments
   * each ending within WARM_GAP_BYTES of the start of the one above it, spanning at most
   * WARM_READ_BYTES. `bySegment` lists each segment's fragments (offsets into `frags`); a
   * segment's are sorted when its turn comes: one sort of the whole group (10^5 fragments)
   * held the main thread for tens of ms.
   */
  private *warmRuns(
    frags: number[],
    bySegment: Map<number, number[]>,
  ): Generator<{ run: number[]; base: number }> {
    const bases = [...bySegment.keys()].sort((a, b) => b - a)
    for (const base of bases) {
      const order = bySegment.get(base) as number[]
      order.sort((a, b) => (frags[b] as number) - (frags[a] as number))
      let k = 0
      while (k < order.length) {
        const top = order[k] as number
        const end = (frags[top] as number) + (frags[top + 1] as number)
        const run = [top]
        let start = frags[top] as number
        k++
        while (k < order.length) {
          const j = order[k] as number
          const lsn = frags[j] as number
          if (start - (lsn + (frags[j + 1] as number)) > WARM_GAP_BYTES || end - lsn > WARM_READ_BYTES) break
          run.push(j)
          start = lsn
          k++
        }
        run.reverse()
        yield { run, base }
      }
    }
  }

  /**
   * Starts the read of one run (`run` ascending) into scratch buffer `scratch` (0 or 1),
   * leaving out pages that failed or went stale (their fragments may be gone). The
   * segment stays pinned until the read settles; the records are undefined when it failed.
   */
  private startWarmRead(
    group: WarmPage[],
    frags: number[],
    { run, base }: { run: number[]; base: number },
    scratch: number,
  ): { live: number[]; records: Promise<LogRecord[] | undefined> } {
    const live: number[] = []
    const lsns: number[] = []
    const sizes: number[] = []
    for (const j of run) {
      const p = group[frags[j + 2] as number] as WarmPage
      if (p.isFailed) continue
      if (this.table.version(p.pid) !== p.version && !this.opts.unsafeWarmIgnoresVersion) {
        this.failWarm(p, true)
        continue
      }
      live.push(j)
      lsns.push(frags[j] as number)
      sizes.push(frags[j + 1] as number)
    }
    if (live.length === 0) return { live, records: Promise.resolve(undefined) }
    this.warmScratch ??= [new Uint8Array(WARM_READ_BYTES), new Uint8Array(WARM_READ_BYTES)]
    this.warmInfo.reads++
    this.pin([base])
    const records = this.log.readRun(lsns, sizes, this.warmScratch[scratch]).then(
      (r) => {
        this.unpin([base])
        return r
      },
      // The page moved and its segment went, or the bytes are damaged: its user will page
      // it in and meet (and report) whatever is really there.
      () => {
        this.unpin([base])
        return undefined
      },
    )
    return { live, records }
  }

  /**
   * Takes one run's records newest first: a delta is copied into `held`, a base builds its
   * page. False once the cache is full.
   */
  private async warmBuild(
    group: WarmPage[],
    frags: number[],
    live: number[],
    records: LogRecord[] | undefined,
    held: CopySlab,
  ): Promise<boolean> {
    let sliceStart = performance.now()
    for (let i = live.length - 1; i >= 0; i--) {
      // Building pages is most of the work: in slices, so a user's completion never waits
      // long behind it. The run's bytes are its scratch buffer's, which the next read
      // leaves alone (it uses the other one).
      if (performance.now() - sliceStart > WARM_SLICE_MS) {
        await this.warmYield()
        if (this.mustStopWarming()) return false
        sliceStart = performance.now()
      }
      const j = live[i] as number
      const p = group[frags[j + 2] as number] as WarmPage
      const rec = records?.[i]
      if (p.isFailed) continue
      if (rec === undefined || rec.isBlob) {
        this.failWarm(p)
        continue
      }
      const fragIndex = frags[j + 3] as number
      let payload: Uint8Array
      try {
        const r = decodePageRecord(rec.data, rec.lsn)
        const want = fragIndex === 0 ? PageRecordKind.Replace : PageRecordKind.Link
        if (r.pid !== p.pid || r.kind !== want) {
          this.failWarm(p)
          continue
        }
        payload = r.payload
      } catch {
        this.failWarm(p)
        continue
      }
      p.left--
      if (fragIndex > 0) {
        // The read space is reused two runs on: a delta is kept as a copy.
        p.parts[fragIndex] = held.copy(payload)
        continue
      }
      // The base, met last: every delta arrived before it, or the page already failed.
      p.parts[0] = payload
      if (p.left !== 0) {
        this.failWarm(p)
        continue
      }
      if (!this.finishWarm(p)) return false
    }
    return true
  }

  /** Drops a page from the warm-up; a `isStale` one (written meanwhile) is tried once more. */
  private failWarm(p: WarmPage, isStale = false): void {
    if (p.isFailed) return
    p.isFailed = true
    p.parts = []
    this.warmInfo.pagesSkipped++
    if (isStale) this.warmStale.push(p.pid)
  }

  /** Builds and installs a page whose fragments all arrived; false once the cache is full. */
  private finishWarm(p: WarmPage): boolean {
    const parts = p.parts as Uint8Array[]
    p.parts = []
    if (this.mustStopWarming() || this.lru.has(p.pid)) {
      this.warmInfo.pagesSkipped++
      return true
    }
    if (this.table.version(p.pid) !== p.version && !this.opts.unsafeWarmIgnoresVersion) {
      this.warmInfo.pagesSkipped++
      this.warmStale.push(p.pid)
      return true
    }
    let page: T
    try {
      const base = parts[0] as Uint8Array
      const deltas = parts.slice(1)
      page =
        this.arena !== undefined
          ? this.buildInArena(p.pid, base, deltas)
          : this.codec.materialize(base, deltas)
    } catch {
      this.warmInfo.pagesSkipped++
      return true
    }
    // Never beyond the capacity, and never at the cost of a page someone used.
    if (this.cacheBytes + this.memoryOf(page) > this.pageBudget()) {
      this.release(page)
      this.warmInfo.pagesSkipped++
      return false
    }
    this.install(p.pid, page, true)
    this.warmInfo.pagesWarmed++
    return true
  }

  /** A byte-string page built into a slot of the arena (a plain array when it is full). */
  private buildInArena(pid: number, base: Uint8Array, deltas: readonly Uint8Array[]): T {
    const builder = this.codec.arena as NonNullable<PageCodec<T>['arena']>
    const arena = this.arena as PageArena
    const n = builder.builtBytes(base, deltas)
    if (!Number.isSafeInteger(n) || n < 0 || n > this.maxLargePageBytes) {
      throw new CorruptionError(`page ${pid} would build to ${n} bytes`)
    }
    const out = arena.alloc(n) ?? new Uint8Array(n)
    try {
      builder.build(base, deltas, out)
    } catch (e) {
      arena.free(out)
      throw e
    }
    return out as T
  }

  /** What get() and peek() return: a byte-string page's copy, never the arena's memory. */
  private handOut(page: T): T {
    if (this.arena === undefined || this.opts.unsafeLendFromGet) return page
    return (page as Uint8Array).slice() as T
  }

  /** Gives a dropped page's arena slot back (nothing for other codecs or plain arrays). */
  private release(page: Resident<T>): void {
    if (this.arena === undefined) return
    if (typeof page === 'number') this.arena.freeSlot(page)
    else this.arena.free(page as Uint8Array)
  }

  /** The page a resident entry stands for: an arena slot's page is a new view of it. */
  private pageOf(r: Resident<T>): T {
    return this.arena !== undefined && typeof r === 'number' ? (this.arena.view(r) as T) : (r as T)
  }

  /** Whether `page` is the resident entry `r` (for an arena page: a view of its slot). */
  private isResidentPage(page: T, r: Resident<T> | undefined): boolean {
    if (r === undefined) return false
    if (this.arena !== undefined && typeof r === 'number') return this.arena.slotOf(page as Uint8Array) === r
    return page === r
  }

  /** A byte-string codec's pages must be Uint8Arrays: checked before anything is logged. */
  private checkPage(page: unknown): void {
    if (this.arena !== undefined && !(page instanceof Uint8Array))
      throw new InvalidArgumentError('a page of a codec with `arena` is a Uint8Array')
  }

  // ---- writing ----

  replace(pid: PageId, page: T, bytes?: Uint8Array): Lsn {
    this.checkWritable()
    this.checkWritablePid(pid, true)
    this.checkPage(page)
    return this.writeReplace(pid, page, bytes ?? this.codec.encode(page))
  }

  /** replace() once the page may be written. */
  private writeReplace(pid: number, page: T, body: Uint8Array): Lsn {
    checkBytes(body, this.maxPageBytes, 'page')
    const head = this.heads.encode(PageRecordKind.Replace, pid)
    const len = head.length + body.length
    const lsn = this.log.appendWithHead(head, body)
    this.applyReplace(pid, page, lsn, this.recordBytes(lsn, len), body.length, 0)
    this.afterWrite(len)
    return lsn
  }

  link(pid: PageId, delta: Uint8Array, page: T): Lsn {
    this.checkWritable()
    this.checkWritablePid(pid, false)
    checkBytes(delta, this.maxPageBytes, 'delta')
    this.checkPage(page)
    if (this.shouldConsolidate(pid, delta.length)) {
      // A page too large for an inline base cannot be consolidated here (a blob write is
      // async): it keeps gathering deltas until the caller or cleaning rewrites it whole.
      const body = this.codec.encode(page)
      if (body.length <= this.maxPageBytes) {
        if (KILL_ODDS) maybeKill('pagecache.consolidate')
        return this.replace(pid, page, body)
      }
    }
    const head = this.heads.encode(PageRecordKind.Link, pid)
    const len = head.length + delta.length
    const lsn = this.log.appendWithHead(head, delta)
    this.applyLink(pid, page, lsn, this.recordBytes(lsn, len), delta.length)
    this.afterWrite(len)
    return lsn
  }

  free(pid: PageId): Lsn {
    this.checkWritable()
    this.checkWritablePid(pid, false)
    const rec = encodePageRecord(PageRecordKind.Free, pid)
    const lsn = this.log.append(rec)
    this.applyFree(pid)
    this.afterWrite(rec.length)
    return lsn
  }

  writeBatch(writes: readonly PageWrite<T>[]): Lsn {
    this.checkWritable()
    if (!Array.isArray(writes) || writes.length === 0) {
      throw new InvalidArgumentError('writeBatch() takes a non-empty array of writes')
    }
    // Check everything and encode before the first byte is reserved: invalid input throws
    // with nothing changed. Pages written earlier in the batch count as existing.
    const exists = new Map<number, boolean>()
    const deltasSoFar = new Map<number, number>()
    const items: Array<Uint8Array | BlobRef> = []
    const usedStaged = new Set<StagedBase>()
    const plan: Array<{ kind: PageRecordKind; pid: number; page?: T; payload: number; staged?: StagedBase }> =
      []
    for (const w of writes) {
      if (w === null || typeof w !== 'object')
        throw new InvalidArgumentError('a batch write must be an object')
      checkPid(w.pid)
      if (w.kind !== 'free') this.checkPage(w.page)
      const has = exists.get(w.pid) ?? this.exists(w.pid)
      if (w.kind !== 'replace' && !has) {
        throw new InvalidArgumentError(`page ${w.pid} is free: ${w.kind} needs a written page`)
      }
      if (w.kind === 'replace' && !has) this.checkAllocated(w.pid)
      if (this.busy.has(w.pid))
        throw new InvalidArgumentError(
          `page ${w.pid} has a large write in flight: await its replaceLarge() first`,
        )
      if (w.kind === 'replace' && w.staged !== undefined) {
        const st = this.checkStaged(w.staged, w.pid, usedStaged)
        usedStaged.add(st)
        items.push(st.ref ?? (st.record as Uint8Array))
        plan.push({
          kind: PageRecordKind.Replace,
          pid: w.pid,
          page: w.page,
          payload: st.sizeBytes,
          staged: st,
        })
        exists.set(w.pid, true)
        deltasSoFar.set(w.pid, 0)
      } else if (w.kind === 'replace' || w.kind === 'link') {
        let kind = w.kind === 'replace' ? PageRecordKind.Replace : PageRecordKind.Link
        let body: Uint8Array
        if (w.kind === 'link') {
          checkBytes(w.delta, this.maxPageBytes, 'delta')
          const inTable = this.exists(w.pid)
          const n =
            deltasSoFar.get(w.pid) ??
            (!inTable || exists.has(w.pid) ? 0 : this.table.fragmentCount(w.pid) - 1)
          const consolidate =
            n + 1 > this.opts.consolidateAfter || (inTable && this.shouldConsolidate(w.pid, w.delta.length))
          const whole = consolidate ? this.codec.encode(w.page) : undefined
          // As in link(): a page over maxPageBytes keeps its delta instead.
          if (whole !== undefined && whole.length <= this.maxPageBytes) {
            if (KILL_ODDS) maybeKill('pagecache.consolidate')
            kind = PageRecordKind.Replace
            body = whole
            deltasSoFar.set(w.pid, 0)
          } else {
            body = w.delta
            deltasSoFar.set(w.pid, n + 1)
          }
        } else {
          body = w.bytes ?? this.codec.encode(w.page)
          deltasSoFar.set(w.pid, 0)
        }
        checkBytes(body, this.maxPageBytes, 'page')
        items.push(encodePageRecord(kind, w.pid, body, this.batchRecordSlab))
        plan.push({ kind, pid: w.pid, page: w.page, payload: body.length })
        exists.set(w.pid, true)
      } else if (w.kind === 'free') {
        items.push(encodePageRecord(PageRecordKind.Free, w.pid, undefined, this.batchRecordSlab))
        plan.push({ kind: PageRecordKind.Free, pid: w.pid, payload: 0 })
        exists.set(w.pid, false)
        deltasSoFar.delete(w.pid)
      } else {
        throw new InvalidArgumentError('a batch write kind is replace, link or free')
      }
    }
    const lsns: number[] = []
    const last =
      usedStaged.size === 0
        ? this.log.appendBatch(items as Uint8Array[], 0, lsns)
        : this.log.appendMixedBatch(items, 0, lsns)
    if (KILL_ODDS) maybeKill('pagecache.batch.appended')
    for (const st of usedStaged) this.stagedBases.delete(st)
    let bytes = 0
    for (let i = 0; i < plan.length; i++) {
      const p = plan[i] as (typeof plan)[number]
      const lsn = lsns[i] as number
      const st = p.staged
      if (st?.ref !== undefined) {
        // A pointer record: the base's bytes live in their own file.
        bytes += st.recordBytes
        this.freePids.delete(p.pid)
        this.applyReplace(p.pid, p.page as T, lsn, pointerRecordBytes(lsn, this.S), p.payload, st.recordBytes)
        continue
      }
      const rec = items[i] as Uint8Array
      bytes += rec.length
      if (p.kind === PageRecordKind.Replace) {
        this.freePids.delete(p.pid)
        this.applyReplace(p.pid, p.page as T, lsn, this.recordBytes(lsn, rec.length), p.payload, 0)
      } else if (p.kind === PageRecordKind.Link) {
        this.applyLink(p.pid, p.page as T, lsn, this.recordBytes(lsn, rec.length), p.payload)
      } else {
        this.applyFree(p.pid)
      }
    }
    this.afterWrite(bytes)
    return last
  }

  async stageLarge(pid: PageId, bytes: Uint8Array): Promise<StagedPage> {
    this.checkWritable()
    checkPid(pid)
    checkBytes(bytes, this.maxLargePageBytes, 'page')
    const rec = encodePageRecord(PageRecordKind.Replace, pid, bytes)
    // maxPageBytes allows for the longest page id, so a base just over it may still fit an
    // inline record: it is then logged inline by the batch, as writeLarge() does.
    const ref = rec.length <= this.log.maxInlineBytes ? undefined : await this.log.stageBlob(rec)
    this.checkWritable()
    const st: StagedBase = {
      pid,
      sizeBytes: bytes.length,
      ref,
      record: ref === undefined ? rec : undefined,
      recordBytes: rec.length,
    }
    this.stagedBases.add(st)
    return st
  }

  async dropStaged(staged: StagedPage): Promise<void> {
    if (!this.stagedBases.delete(staged)) return
    const ref = (staged as StagedBase).ref
    if (ref !== undefined && this.log.failure === undefined && !this.closed)
      await this.log.dropStagedBlob(ref)
  }

  /** The StagedBase behind a write's `staged`, checked before anything is logged. */
  private checkStaged(staged: StagedPage, pid: number, used: ReadonlySet<StagedBase>): StagedBase {
    if (!this.stagedBases.has(staged) || used.has(staged as StagedBase)) {
      throw new InvalidArgumentError('a staged write takes a base from stageLarge() not consumed yet')
    }
    if (staged.pid !== pid) {
      throw new InvalidArgumentError(`the base staged for page ${staged.pid} cannot replace page ${pid}`)
    }
    return staged as StagedBase
  }

  /**
   * Writes a base of any size up to the log's blob limit: bases over maxPageBytes go to
   * their own blob file, written and synced before the pointer is logged. Calls on one page
   * are applied one after another in call order (the last call's page wins); until the
   * last settles, the caller's synchronous writes to the page (replace, link, free,
   * writeBatch) are refused, since their LSN would come before the pending base's.
   * Background work (cleaning) never holds a page this way.
   */
  async replaceLarge(pid: PageId, page: T, bytes?: Uint8Array): Promise<Lsn> {
    this.checkWritable()
    checkPid(pid)
    const before = this.largeWrites.get(pid)
    if (before === undefined) this.checkWritablePid(pid, true)
    this.checkPage(page)
    // This write installs the page after an await: a byte-string page is copied now, as
    // the caller may reuse its array (or lend one from withPage(), valid only now).
    if (this.arena !== undefined) page = (page as Uint8Array).slice() as T
    const body = bytes ?? this.codec.encode(page)
    if (!(body instanceof Uint8Array)) throw new InvalidArgumentError('page bytes must be a Uint8Array')
    if (before === undefined && body.length <= this.maxPageBytes) return this.replace(pid, page, body)
    this.busy.add(pid)
    this.freePids.delete(pid)
    const run = this.writeLarge(pid, page, body, before)
    this.largeWrites.set(pid, run)
    try {
      return await run
    } finally {
      if (this.largeWrites.get(pid) === run) {
        this.largeWrites.delete(pid)
        this.busy.delete(pid)
      }
    }
  }

  /** One replaceLarge() of a page, after the ones called before it on the same page. */
  private async writeLarge(
    pid: number,
    page: T,
    body: Uint8Array,
    before: Promise<Lsn> | undefined,
  ): Promise<Lsn> {
    if (before !== undefined) await before.catch(() => {})
    this.checkWritable()
    if (body.length <= this.maxPageBytes) return this.writeReplace(pid, page, body)
    const rec = encodePageRecord(PageRecordKind.Replace, pid, body)
    if (rec.length <= this.log.maxInlineBytes) {
      // maxPageBytes allows for the longest page id: this record still fits inline, and
      // appendLarge() would log it inline too. Accounted as what it is.
      const lsn = this.log.append(rec)
      this.applyReplace(pid, page, lsn, this.recordBytes(lsn, rec.length), body.length, 0)
      this.afterWrite(rec.length)
      return lsn
    }
    // Staged, then linked in the same synchronous step that updates the page table: a
    // checkpoint cut between a logged pointer and its page-table update would lose the
    // write, and accounting would see a blob that no page names and no segment counts.
    const ref = await this.log.stageBlob(rec)
    let lsn: Lsn
    try {
      lsn = this.log.relinkBlob(ref)
    } catch (e) {
      await this.log.dropStagedBlob(ref).catch(() => {})
      throw e
    }
    // A pointer record: the blob's bytes live in their own file.
    this.applyReplace(pid, page, lsn, pointerRecordBytes(lsn, this.S), body.length, rec.length)
    this.afterWrite(rec.length)
    return lsn
  }

  private applyReplace(
    pid: number,
    page: T,
    lsn: number,
    recordBytes: number,
    payloadBytes: number,
    blobBytes: number,
  ): void {
    this.setBase(pid, lsn, recordBytes, payloadBytes, blobBytes, false)
    this.table.bump(pid)
    this.install(pid, page)
  }

  /**
   * Makes the record at `lsn` the page's base: its older fragments die and accounting
   * follows. Shared by writes and by replay at open (`recovering`: any segment may take it).
   * `relinked`: the new base is another pointer to the old base's blob file (cleaning moved
   * it), so that file lives on with the new pointer instead of dying with the old one.
   */
  private setBase(
    pid: number,
    lsn: number,
    recordBytes: number,
    payloadBytes: number,
    blobBytes: number,
    recovering: boolean,
    relinked = false,
  ): void {
    if (this.exists(pid)) {
      this.dropFragments(pid, !relinked)
    } else {
      this.pageCount++
      if (pid >= this.nextPid) this.nextPid = pid + 1
    }
    this.table.setBase(pid, lsn, recordBytes, payloadBytes, blobBytes)
    this.sa.added(lsn, recordBytes, recovering)
    if (blobBytes > 0) this.sa.blobLinked(lsn, blobBytes)
  }

  private applyLink(pid: number, page: T, lsn: number, recordBytes: number, payload: number): void {
    this.table.addDelta(pid, lsn, recordBytes, payload)
    this.table.bump(pid)
    this.sa.added(lsn, recordBytes)
    this.install(pid, page)
  }

  private applyFree(pid: number): void {
    this.dropFragments(pid, true)
    this.uncache(pid)
    // Moves the version on: a page-in in flight finds the page gone.
    this.table.remove(pid)
    this.pageCount--
    this.freePids.add(pid)
  }

  /**
   * The page's fragments die. Its base's blob file dies too (`blobDies`) unless a newer
   * pointer names it; it then stays until its newest pointer's segment leaves the log
   * (docs/DESIGN.md, "Segment cleaning").
   */
  private dropFragments(pid: number, blobDies: boolean): void {
    const t = this.table
    const base = t.baseLsn(pid)
    this.sa.removed(base, t.baseRecordBytesOf(pid))
    for (let d = t.newestDelta(pid); d !== 0; d = t.olderDelta(d))
      this.sa.removed(t.deltaLsn(d), t.deltaRecordBytes(d))
    const blobBytes = t.blobBytes(pid)
    if (blobBytes > 0) this.sa.blobUnlinked(base, blobBytes, blobDies)
  }

  private shouldConsolidate(pid: number, deltaBytes: number): boolean {
    const t = this.table
    const deltas = t.fragmentCount(pid) - 1
    // Also when the deltas outweigh the base: a page-in would read more than a base.
    return (
      deltas + 1 > this.opts.consolidateAfter ||
      t.deltaPayloadBytes(pid) + deltaBytes > Math.max(t.basePayloadBytes(pid), 512)
    )
  }

  private recordBytes(lsn: number, bodyBytes: number): number {
    return messageHeaderBytes(bodyBytes, Math.floor(lsn / this.S), 0) + bodyBytes
  }

  // ---- the LRU ----

  /**
   * Makes `page` the resident page. A byte-string page is copied into the arena unless it
   * is there already (`isArenaPage`: a page-in built it there, or it is the resident page
   * itself, as a relocation writes it); the one it replaces gives its slot back, after
   * the copy (the caller may have passed a lent view of it).
   */
  private install(pid: number, page: T, isArenaPage = false): void {
    const old = this.lru.get(pid)
    const isSame = this.isResidentPage(page, old)
    // A byte-string page goes into an arena slot (a copy, made before the slot it replaces
    // is freed: the caller may have passed a lent view of it), named by its id.
    let slot = -1
    if (this.arena !== undefined) {
      const bytes = page as Uint8Array
      if (isArenaPage || isSame) slot = this.arena.slotOf(bytes)
      else {
        slot = this.arena.allocSlot(bytes.length)
        // Copied by id, through the slab's own view: a view per write was garbage.
        if (slot >= 0) this.arena.write(slot, bytes)
        else {
          // A plain copy when the arena has no slot (not slice(): a Buffer's is a view).
          const copy = new Uint8Array(bytes.length)
          copy.set(bytes)
          page = copy as T
        }
      }
    }
    if (old !== undefined) {
      this.cacheBytes -= this.table.mem(pid)
      if (!isSame) this.release(old)
      this.lru.delete(pid)
    }
    const mem = this.memoryOf(page, slot >= 0)
    this.table.setMem(pid, mem)
    this.cacheBytes += mem
    if (slot >= 0) this.arena?.setOwner(slot, pid)
    this.lru.push(pid, slot < 0 ? page : slot)
    this.table.setStamp(pid, ++this.lruClock)
    if (this.cacheBytes > this.pageBudget()) this.evict(pid)
  }

  /**
   * What the pages may take: the capacity less the log's segment buffers, which a write
   * burst grows by up to writeHighWaterBytes (docs/DESIGN.md, "Peak RSS"). Below zero when
   * the buffers alone exceed a small capacity: then only the page in use stays. The
   * arena's uncarved slabs (buffers the log let go of) are not charged: they are memory
   * the log's charge already made room for, and the pages carve them as the budget the
   * log gave back lets them grow; charged, they sat idle (12 MiB at the end of one bench
   * run) and cost as many resident pages. The arena as a whole stays within maxSlabBytes.
   */
  private pageBudget(): number {
    return this.opts.cacheCapacity - this.log.segmentBufferBytes
  }

  /**
   * Moves a page to the young end of the LRU, unless it is still in the young half: a hot
   * page read in a loop would otherwise be relinked on every read (when the LRU was a Map,
   * two Map operations: 7 % of a random-get profile) for no change in what gets evicted.
   */
  private touch(pid: number): void {
    if (this.lruClock - this.table.stamp(pid) <= this.lru.size >> 1) return
    this.lru.moveToNewest(pid)
    this.table.setStamp(pid, ++this.lruClock)
  }

  /**
   * The LRU's charge: the codec's estimate, the entry, and a slot's bytes beyond the page
   * (`isInArena`: the page is, or is copied into, an arena slot).
   */
  private memoryOf(page: T, isInArena = this.arena?.owns(page as Uint8Array) ?? false): number {
    let n = this.codec.memoryBytes(page) + ENTRY_MEMORY_BYTES
    const bytes = page as Uint8Array
    if (isInArena) n += slotBytesFor(bytes.length) - bytes.length
    return n
  }

  private uncache(pid: number): void {
    const page = this.lru.get(pid)
    if (page === undefined) return
    this.release(page)
    this.cacheBytes -= this.table.mem(pid)
    this.table.setMem(pid, 0)
    this.lru.delete(pid)
  }

  /** Drops least recently used pages until the cache fits, never the one just used. */
  private evict(keep: number): void {
    const budget = this.pageBudget()
    for (let pid = this.lru.oldest(); pid >= 0 && this.cacheBytes > budget; ) {
      const newer = this.lru.newerThan(pid)
      if (pid !== keep) this.uncache(pid)
      pid = newer
    }
  }

  /**
   * Gives the log empty whole slabs of the arena as spare segment buffers. When none is
   * empty and the pages fill their budget (so a spare, charged to the capacity, would
   * evict pages anyway), the slab of an old page is emptied (its pages evicted together),
   * so a write burst's segment buffers are memory the pages gave up rather than new memory
   * beside the slabs (docs/DESIGN.md, "Peak RSS"); below the budget the log allocates its
   * own. After a write, never inside one: nothing holds a view of a page then (a
   * relocation's lent page is written before this runs).
   */
  private stockLogSpares(): void {
    const arena = this.arena as PageArena
    while (this.log.spareSegmentBuffersWanted > 0) {
      let buf = arena.takeEmptySlab()
      if (buf === undefined && this.cacheBytes > this.pageBudget() - ARENA_SLAB_BYTES && this.emptyOldSlab())
        buf = arena.takeEmptySlab()
      if (buf === undefined) return
      if (!this.log.addSpareSegmentBuffer(buf)) {
        arena.adoptSlab(buf)
        return
      }
    }
  }

  /**
   * Evicts every page of the whole slab holding the oldest of the first few LRU pages that
   * are in one (a slab with read space in use cannot be emptied). False: none found.
   */
  private emptyOldSlab(): boolean {
    const arena = this.arena as PageArena
    let looked = 0
    for (let pid = this.lru.oldest(); pid >= 0; pid = this.lru.newerThan(pid)) {
      if (++looked > EMPTY_SLAB_LOOKAHEAD) return false
      const r = this.lru.get(pid)
      if (typeof r !== 'number') continue
      const i = arena.lendableSlabOf(r)
      if (i < 0) continue
      for (const owner of arena.ownersOf(i)) this.uncache(owner)
      return true
    }
    return false
  }

  // ---- durability ----

  flush(): Promise<Lsn> {
    this.checkOpen()
    return this.log.flush()
  }

  makeStable(lsn: number): Promise<void> {
    return this.log.makeStable(lsn)
  }

  /**
   * Backpressure: waits for the log's write queue and, when writes have run ahead of
   * cleaning (two segments past the trigger), for a cleaning pass. Without the second
   * wait a burst of writes grows the file to a peak that it keeps after cleaning, since
   * only free slots at its end can be cut off.
   */
  async whenWritable(): Promise<void> {
    await this.log.whenWritable()
    if (!this.opts.cleaning || !this.isHeldByCleaning()) return
    if (this.cleaningRun === undefined) this.startCleaning()
    const run = this.cleaningRun
    // Held pass by pass, not for the whole run: a run goes on while the space is over the
    // trigger, two segments under the level that holds writers, so a writer held for all of
    // it waited a pass (a whole MAX_PICK segments' page-ins and relocations) longer than
    // needed (docs/DESIGN.md, "Segment cleaning"). Still at most one run: a run that
    // cannot bring the space back lets the writer go when it ends.
    while (this.cleaningRun === run && this.isHeldByCleaning()) {
      await new Promise<void>((resolve) => this.cleaningWaiters.push(resolve))
    }
  }

  /**
   * Writes have run ahead of cleaning: two segments past the trigger, not counting the
   * copies of the pass in flight. Those are cleaning's own (they stay live at the tip, and
   * its drained segments go when it ends); counted, a pass that moved more than two
   * segments' worth held a durable writer until its end, truncation included: 140-190 ms
   * right after reopening a bulk-loaded store (docs/DESIGN.md, "Segment cleaning"). Space
   * counts whole segments: the copies take the segments their bytes fill, plus the one they
   * end in (record heads and segment-end padding are not in passCopyBytes).
   */
  private isHeldByCleaning(): boolean {
    const copies = this.passCopyBytes === 0 ? 0 : Math.ceil(this.passCopyBytes / this.S) + 1
    return this.sa.overBudget(this.opts.cleanAtSpaceRatio, 2 + copies)
  }

  /** Lets the writers held by whenWritable() look again (a pass or a run ended). */
  private wakeCleaningWaiters(): void {
    if (this.cleaningWaiters.length === 0) return
    const waiters = this.cleaningWaiters
    this.cleaningWaiters = []
    for (const wake of waiters) wake()
  }

  get stableLsn(): Lsn {
    return this.log.stableLsn
  }

  *pageIds(): Iterable<PageId> {
    for (let pid = 0; pid < this.nextPid; pid++) if (this.exists(pid)) yield pid
  }

  /** The fragments of a page as [lsn, bytes, ...] (for tools and tests). */
  fragmentsOf(pid: PageId): readonly number[] | undefined {
    checkPid(pid)
    return this.exists(pid) ? this.table.fragments(pid) : undefined
  }

  /** Bytes of the blob file a page's base names (0: inline), undefined for a free page (tools, tests). */
  blobBytesOf(pid: PageId): number | undefined {
    checkPid(pid)
    return this.exists(pid) ? this.table.blobBytes(pid) : undefined
  }

  // ---- background work: cleaning and checkpoints ----

  private afterWrite(bytes: number): void {
    if (this.sharesSegmentMemory && this.log.spareSegmentBuffersWanted > 0 && this.arena?.hasWholeSlabs)
      this.stockLogSpares()
    this.bytesSinceCheckpoint += bytes
    if (this.opts.cleaning && this.cleaningRun === undefined && this.sa.overBudget()) this.startCleaning()
    if (
      this.opts.checkpointEveryBytes > 0 &&
      this.checkpointRun === undefined &&
      this.bytesSinceCheckpoint >= this.opts.checkpointEveryBytes
    ) {
      this.checkpoint().catch((e) => {
        if (!this.closed) this.backgroundError = e
      })
    }
  }

  private startCleaning(): void {
    this.cleaningRun = this.runInBackground(() => this.clean()).finally(() => {
      this.cleaningRun = undefined
      this.wakeCleaningWaiters()
    })
  }

  /** Background work never throws into nowhere: a failure is kept for stats() and tests. */
  private runInBackground(task: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => setImmediate(resolve)).then(task).catch((e) => {
      if (!this.closed) this.backgroundError = e
    })
  }

  private startTimer(): void {
    if (this.opts.flushEveryMs <= 0) return
    this.timer = setInterval(() => this.afterWrite(0), this.opts.flushEveryMs)
    this.timer.unref()
  }

  /**
   * Cleans now down to CLEAN_NOW_SPACE_RATIO (or cleanToSpaceRatio if lower), below the
   * level a background pass stops at, then compacts the file (tools, tests, idle time):
   * resolves when the log is within it or the head cannot move.
   */
  async cleanNow(): Promise<void> {
    this.checkWritable()
    while (this.cleaningRun !== undefined) await this.cleaningRun
    const ratio = Math.min(CLEAN_NOW_SPACE_RATIO, this.opts.cleanToSpaceRatio)
    // The run is in cleaningRun before clean() starts: its first relocation can log before
    // clean() first awaits, and that write's afterWrite() would otherwise find no run and
    // start a second one, draining the same segments beside it (seen once the drain stopped
    // reading its segments first: the bench's space-amp went 1.29 -> 1.46).
    this.cleaningRun = Promise.resolve()
      .then(() => this.clean(ratio, ratio, true))
      .finally(() => {
        this.cleaningRun = undefined
        this.wakeCleaningWaiters()
      })
    await this.cleaningRun
  }

  /**
   * Relocates the live pages of the oldest segments to the tip, makes the copies durable,
   * then drops the emptied segments. Frees only from the head (segments/accountant.ts says
   * why), as many segments per pass as bring the log back under its space budget.
   */
  private async clean(
    trigger = this.opts.cleanAtSpaceRatio,
    stop = this.opts.cleanToSpaceRatio,
    compact = false,
  ): Promise<void> {
    // Two runs would pick the same Draining segments and relocate their pages twice.
    if (this.isCleaning) throw new InvariantError('a cleaning run started while another was in flight')
    this.isCleaning = true
    try {
      await this.cleanRun(trigger, stop, compact)
    } finally {
      this.isCleaning = false
      this.passCopyBytes = 0
    }
  }

  private async cleanRun(trigger: number, stop: number, compact: boolean): Promise<void> {
    // Compacting relocates at most the whole log once: each pass drops the head.
    let compactPasses = compact ? this.sa.segmentCount : 0
    // A run ends even when writers keep the log over its budget (a writer on every turn
    // could otherwise keep cleanNow() from ever resolving while the file grows): each pass
    // frees at least one segment, so twice the segments there were at the start is room
    // enough to settle a quiet log; the next write or timer tick starts another run.
    let passesLeft = 2 * this.sa.segmentCount + 8
    let budgetStuck = false
    while (!this.closing && this.log.failure === undefined && passesLeft-- > 0) {
      this.trackLogSegments()
      if (!budgetStuck && this.sa.needsSeal(trigger, stop)) {
        // Dead blob files whose newest pointer is in the segment being written (or one not
        // yet stable) go only with that segment: end it and make it stable, so this pass can
        // drain up to it.
        this.log.sealSegment()
        await this.log.flush()
        if (this.closing) return
        this.trackLogSegments()
      }
      let picked = budgetStuck ? [] : this.sa.pickForCleaning(trigger, stop)
      const fromBudget = picked.length > 0
      if (!fromBudget && compactPasses > 0 && this.usesTopSlots()) {
        compactPasses--
        picked = this.sa.pickHead()
      }
      if (picked.length === 0) {
        // Free slots at the end of the file (left by a power cut inside a truncation) are
        // cut without moving anything: truncateBefore at the log's start drops nothing.
        if (compact && this.log.fileSlots > this.usedSlots()) await this.log.truncateBefore(this.log.firstLsn)
        return
      }
      this.counters.cleaningPasses++
      this.passCopyBytes = 0
      this.unpacedBytes = 0
      this.unstableCopyBytes = 0
      const end = (picked[picked.length - 1]?.base as number) + this.S
      const before = this.sa.spaceBytes
      await this.drain(end)
      if (this.closing) return
      // A safety net: anything still accounted to a drained segment (the page table cannot
      // miss a fragment, but accounting is what decides that the slot may go).
      if (picked.some((s) => (this.sa.get(s.base)?.liveFragments ?? 0) > 0)) {
        this.counters.cleaningRescans++
        for (let pid = 0; pid < this.nextPid && !this.closing; pid++) {
          await this.relocate(pid, end)
          await this.pace()
        }
      }
      if (this.closing) return
      if (KILL_ODDS) maybeKill('pagecache.clean.drained')
      // The copies must be durable before the originals can go.
      await this.log.flush()
      if (KILL_ODDS) maybeKill('pagecache.clean.copies-stable')
      await this.waitUnpinned(end)
      await this.log.truncateBefore(end)
      if (KILL_ODDS) maybeKill('pagecache.clean.truncated')
      this.passCopyBytes = 0
      this.trackLogSegments()
      let freed = 0
      for (const s of picked) if (this.sa.get(s.base) === undefined) freed++
      this.counters.segmentsCleaned += freed
      this.wakeCleaningWaiters()
      // The head could not be dropped yet (e.g. it is the segment being written), or the
      // head was so live that moving it gained nothing: stop rather than spin; the next
      // write or timer tick tries again. Compacting moves live pages without shrinking the
      // log by design, so only a stuck head ends it.
      if (freed === 0) return
      if (fromBudget && this.sa.spaceBytes >= before) {
        if (compactPasses === 0) return
        budgetStuck = true
      }
    }
  }

  /**
   * Relocates every page that still has a fragment below `end` (the end of the segments a
   * pass drains). A page's fragments all lie at or after its base (deltas are logged after
   * it, carry() logs the base first; relocate() relies on this too), and everything below
   * the head is gone, so those pages are exactly the ones whose base lies below `end`: the
   * page table names them without reading the segments back. Reading, checking and parsing
   * every record of every drained segment was 7 % of a bulk load's CPU (docs/DESIGN.md,
   * "Segment cleaning").
   */
  private async drain(end: number): Promise<void> {
    const t = this.table
    const lazy = this.lazy
    const below: number[] = []
    for (let pid = 0; pid < this.nextPid; pid++) {
      const base = t.has(pid) ? t.baseLsn(pid) : lazy === undefined ? -1 : pageBaseLsn(lazy, pid)
      if (base >= 0 && base < end) below.push(pid)
    }
    // Oldest first, as a scan of the segments met them: pages written together move together.
    below.sort((a, b) => this.baseLsnOf(a) - this.baseLsnOf(b))
    for (const pid of below) {
      if (this.closing) return
      await this.relocate(pid, end)
      await this.pace()
    }
  }

  /**
   * Paces a pass beside durable writers. A resident page relocates without a single wait,
   * so a pass used to append all its copies (6-7 MB at 1 MiB segments) as one stretch of
   * microtasks (12 ms), and the next durable round, stability being a prefix, had to write
   * and sync all of it. Now after every slice (half of cleanRoundBytes, ~1 ms of resident
   * relocations) the event loop turns: a writer woken meanwhile logs after the slice and its
   * round carries it. When the copies not yet stable would pass cleanRoundBytes with the
   * next slice and someone waits for stability, the pass makes them stable first (a round
   * of its own if no writer's round took them). A durable writer's round thus carries at
   * most cleanRoundBytes of copies (its first may carry what the pass copied before anyone
   * waited). With nobody waiting (a bulk load, overwrites without
   * durability, close) nobody is behind the copies, and a round per cleanRoundBytes cost
   * bench:pagecache's overwrites 10-15 % (docs/DESIGN.md, "Segment cleaning", "Beside a durable writer").
   */
  private async pace(): Promise<void> {
    if (this.opts.unsafeUnpacedCleaning || this.closing || this.log.failure !== undefined) return
    const slice = this.cleanRoundBytes / CLEAN_SLICE_FRACTION
    if (this.unpacedBytes < slice) return
    this.unstableCopyBytes += this.unpacedBytes
    this.unpacedBytes = 0
    const mark = this.log.maxReservedLsn
    await new Promise<void>((resolve) => setImmediate(resolve))
    if (this.log.stableLsn >= mark) this.unstableCopyBytes = 0
    else if (this.unstableCopyBytes + slice > this.cleanRoundBytes && this.log.isStabilityAwaited) {
      await this.log.makeStable(mark)
      this.unstableCopyBytes = 0
    }
  }

  private baseLsnOf(pid: number): number {
    return this.exists(pid) ? this.table.baseLsn(pid) : -1
  }

  /**
   * Moves page `pid` to the tip if any fragment of it lies below `end`. Never holds the page
   * against the caller's writes: everything it read is checked against the page's version
   * in the synchronous step that logs the copy, and a page written meanwhile is looked at
   * again. A page that fits an inline base is consolidated. A page whose base is a blob
   * keeps its blob file: only the pointer moves (relinkBlob()), with its deltas in the same
   * atomic batch; once it has gathered consolidateAfter deltas it is rewritten whole into a
   * new blob instead (what link() cannot do for it), unless the caller writes it meanwhile.
   */
  private async relocate(pid: number, end: number): Promise<void> {
    let mayRewrite = true
    let mayLend = this.arena !== undefined
    // Fragments already read, by LSN: a retry after the caller linked the page reads only
    // the new delta (from memory, as it is not written yet), so a page written on every
    // turn still moves.
    const read = new Map<number, LogRecord | BlobRef>()
    const t = this.table
    for (let attempt = 0; attempt < MAX_PAGE_IN_ATTEMPTS; attempt++) {
      if (!this.exists(pid) || t.baseLsn(pid) >= end) return
      const version = t.version(pid)
      const isBlob = t.blobBytes(pid) > 0
      const rewrite =
        isBlob && mayRewrite && t.fragmentCount(pid) - 1 >= Math.max(1, this.opts.consolidateAfter)
      const was = this.lru.get(pid)
      let page = was === undefined ? undefined : this.pageOf(was)
      if (page === undefined && (!isBlob || rewrite)) {
        // An arena page is lent, not copied: it is still this page's only while it is the
        // resident page (checked below), else the next attempt takes a copy.
        page = await this.usePage(pid, mayLend ? (p) => p : (p) => this.handOut(p), false)
      }
      if (this.closing || this.log.failure !== undefined) return
      if (t.version(pid) !== version) continue
      const resident = this.lru.get(pid)
      const isResident = page !== undefined && this.isResidentPage(page, resident)
      if (this.arena !== undefined && page !== undefined && !isResident && mayLend) {
        mayLend = false
        continue
      }
      const bytes = page === undefined ? undefined : this.codec.encode(page)
      if (page !== undefined && bytes !== undefined) {
        if (bytes.length <= this.maxPageBytes) {
          this.writeReplace(pid, page, bytes)
          this.counted(bytes.length)
          if (KILL_ODDS) maybeKill('pagecache.clean.relocated')
          return
        }
        if (rewrite) {
          // One try: a page the caller keeps writing is carried instead.
          mayRewrite = false
          // The resident page's arena slot may be evicted and reused during the blob write.
          const kept = this.arena !== undefined && isResident ? this.handOut(page) : page
          if (await this.rewriteLarge(pid, version, kept, bytes)) {
            this.counted(bytes.length)
            return
          }
          continue
        }
      }
      // Too large for an inline base: carry its fragments over as they are.
      const frags = t.fragments(pid)
      const moved = await this.readFragments(pid, frags, isBlob, read)
      if (this.closing || this.log.failure !== undefined) return
      if (t.version(pid) !== version) continue
      this.carry(pid, moved)
      this.counted(moved.bytes)
      if (KILL_ODDS) maybeKill('pagecache.clean.relocated')
      return
    }
    throw new InvariantError(`page ${pid} could not be relocated`)
  }

  private counted(bytes: number): void {
    this.counters.pagesRelocated++
    this.counters.bytesRelocated += bytes
    this.passCopyBytes += bytes
    this.unpacedBytes += bytes
  }

  /**
   * Writes a large page whole as a new base for cleaning: the blob is staged, and its
   * pointer logged only if the page is still at `version` once the blob is durable (in the
   * same synchronous step), else the blob is dropped. False: dropped, look again.
   */
  private async rewriteLarge(pid: number, version: number, page: T, bytes: Uint8Array): Promise<boolean> {
    const rec = encodePageRecord(PageRecordKind.Replace, pid, bytes)
    if (rec.length <= this.log.maxInlineBytes) {
      const lsn = this.log.append(rec)
      this.applyReplace(pid, page, lsn, this.recordBytes(lsn, rec.length), bytes.length, 0)
      this.afterWrite(rec.length)
      return true
    }
    const ref = await this.log.stageBlob(rec)
    if (KILL_ODDS) maybeKill('pagecache.clean.blob-staged')
    if (this.closing || this.log.failure !== undefined || this.table.version(pid) !== version) {
      await this.log.dropStagedBlob(ref)
      return false
    }
    const lsn = this.log.relinkBlob(ref)
    this.applyReplace(pid, page, lsn, pointerRecordBytes(lsn, this.S), bytes.length, rec.length)
    this.afterWrite(rec.length)
    return true
  }

  /**
   * The records of a page's fragments as logged (the base's blob ref when it is a blob);
   * `read` keeps what earlier calls read.
   */
  private async readFragments(
    pid: number,
    frags: readonly number[],
    blobBase: boolean,
    read: Map<number, LogRecord | BlobRef>,
  ): Promise<{ ref: BlobRef | undefined; records: Uint8Array[]; bytes: number }> {
    const want: Array<Promise<unknown>> = []
    for (let i = 0; i < frags.length; i += 2) {
      const lsn = frags[i] as number
      if (read.has(lsn)) continue
      const p =
        i === 0 && blobBase
          ? this.log.blobRefAt(lsn).then((ref) => read.set(lsn, ref))
          : this.log.read(lsn).then((rec) => read.set(lsn, rec))
      want.push(p)
    }
    await Promise.all(want)
    const ref = blobBase ? (read.get(frags[0] as number) as BlobRef) : undefined
    let bytes = 0
    const out: Uint8Array[] = []
    for (let i = blobBase ? 2 : 0; i < frags.length; i += 2) {
      const rec = read.get(frags[i] as number) as LogRecord
      const r = decodePageRecord(rec.data, rec.lsn)
      const kind = i === 0 ? PageRecordKind.Replace : PageRecordKind.Link
      if (r.pid !== pid || r.kind !== kind || rec.isBlob) {
        throw new CorruptionError(`the record at LSN ${rec.lsn} is not a fragment of page ${pid}`, {
          lsn: rec.lsn,
        })
      }
      bytes += rec.data.length
      out.push(rec.data)
    }
    return { ref, records: out, bytes }
  }

  /**
   * Logs the fragments read by readFragments() again, in one atomic step, and points the
   * page table at the copies. Called in the same synchronous step as the version check.
   */
  private carry(pid: number, moved: { ref: BlobRef | undefined; records: Uint8Array[] }): void {
    const lsns: number[] = []
    let baseLsn: number
    let baseBytes: number
    let deltas: Uint8Array[]
    if (moved.ref !== undefined) {
      baseLsn = this.log.relinkBlob(moved.ref, 0, moved.records, lsns)
      baseBytes = pointerRecordBytes(baseLsn, this.S)
      deltas = moved.records
    } else {
      this.log.appendBatch(moved.records, 0, lsns)
      baseLsn = lsns.shift() as number
      baseBytes = this.recordBytes(baseLsn, (moved.records[0] as Uint8Array).length)
      deltas = moved.records.slice(1)
    }
    const t = this.table
    const deltaBytes = t.deltaPayloadBytes(pid)
    const payload = t.basePayloadBytes(pid)
    this.setBase(pid, baseLsn, baseBytes, payload, t.blobBytes(pid), false, moved.ref !== undefined)
    let written = baseBytes
    for (let i = 0; i < deltas.length; i++) {
      const lsn = lsns[i] as number
      const size = this.recordBytes(lsn, (deltas[i] as Uint8Array).length)
      t.addDelta(pid, lsn, size, 0)
      this.sa.added(lsn, size)
      written += size
    }
    t.setDeltaPayloadBytes(pid, deltaBytes)
    // The page is unchanged; a page-in of the old fragments in flight reads again.
    t.bump(pid)
    this.afterWrite(written)
  }

  /**
   * True when the file has free slots below used ones: it can only be cut at its end, and
   * the log reuses the lowest free slot first, so once the head has moved past every
   * segment in a high slot (its pages relocated into low ones) the end can go.
   */
  private usesTopSlots(): boolean {
    const bases = this.log.segmentBases()
    const keep = bases.length + 1
    if (this.log.fileSlots <= keep) return false
    for (const b of bases) {
      const at = this.log.positionOf(b)
      if (at !== undefined && at / this.S >= keep) return true
    }
    return false
  }

  /** Slots of the log file up to the highest one a segment uses. */
  private usedSlots(): number {
    let n = 0
    for (const b of this.log.segmentBases()) {
      const at = this.log.positionOf(b)
      if (at !== undefined) n = Math.max(n, at / this.S + 1)
    }
    return n
  }

  /** Keeps the accountant's segment list equal to the log's, and states current. */
  private trackLogSegments(): void {
    const bases = this.log.segmentBases()
    const current = bases[bases.length - 1] ?? -1
    const inLog = new Set(bases)
    for (const s of this.sa.segments()) if (!inLog.has(s.base)) this.sa.freed(s.base)
    for (const b of bases) this.sa.track(b, 'active')
    this.sa.stabilize(this.log.stableLsn, current)
  }

  private waitUnpinned(below: number): Promise<void> {
    const pinnedBelow = (): boolean => {
      for (const b of this.pinnedBases) if (b < below) return true
      return false
    }
    if (!pinnedBelow()) return Promise.resolve()
    return new Promise((resolve) => {
      const check = (): void => {
        if (pinnedBelow()) this.unpinWaiters.push(check)
        else resolve()
      }
      this.unpinWaiters.push(check)
    })
  }

  /**
   * Writes a checkpoint of the page table as of now. The table is encoded in one
   * synchronous step (a consistent cut at `replayFrom`), then written once every record
   * below the cut is durable.
   */
  checkpoint(): Promise<void> {
    this.checkOpen()
    if (!this.isAccepted) {
      return Promise.reject(
        new InvalidArgumentError('the page cache is written only once its open is accepted (acceptOpen())'),
      )
    }
    if (this.checkpointRun !== undefined) return this.checkpointRun
    const replayFrom = this.log.maxReservedLsn + 1
    const summary: number[] = []
    for (const seg of this.sa.segments()) {
      summary.push(seg.base, seg.liveBytes, seg.liveFragments, seg.liveBlobBytes)
    }
    const lazy = this.lazy
    const t = this.table
    // One holder for every page: the encoder reads it before asking for the next.
    const row = { frags: [] as number[], blobBytes: 0 }
    const bytes = encodeCheckpoint(
      this.log.logId,
      replayFrom,
      this.nextPid,
      {
        page: (pid) => {
          if (!t.has(pid)) return undefined
          t.fragmentsInto(pid, row.frags)
          row.blobBytes = t.blobBytes(pid)
          return row
        },
        raw: (pid) => (lazy !== undefined && !t.has(pid) ? rawPage(lazy, pid) : undefined),
      },
      summary,
      this.sa.liveBlobBytes,
    )
    this.bytesSinceCheckpoint = 0
    // The resident pages as of the cut, most recently used first (the LRU's young end).
    // warmCache: false is the whole feature off: no hint is written either.
    const hot = this.opts.warmCache ? this.lru.newestFirst() : undefined
    const run = async (): Promise<void> => {
      if (replayFrom > 0) await this.log.makeStable(replayFrom - 1)
      const name = checkpointName(replayFrom)
      await writeCheckpointFile(this.storage, name, bytes)
      this.counters.checkpointsWritten++
      this.counters.lastCheckpointLsn = replayFrom
      const old = (await listCheckpoints(this.storage)).slice(KEEP_CHECKPOINTS)
      for (const n of old) await this.storage.unlink(n)
      if (KILL_ODDS && old.length > 0) maybeKill('pagecache.checkpoint.old-unlinked')
      if (old.length > 0) await this.storage.syncDir('')
      // Only a hint: a checkpoint never fails for it, and its failure is counted.
      if (hot !== undefined) {
        await writeWarmHint(this.storage, encodeWarmHint(this.log.logId, hot)).catch(() => {
          this.warmInfo.hintWriteErrors++
        })
      }
    }
    this.checkpointRun = run().finally(() => {
      this.checkpointRun = undefined
    })
    return this.checkpointRun
  }

  // ---- recovery ----

  /**
   * Rebuilds the page table: the newest usable checkpoint, then the log from its cut (or
   * from the log's start). Writes nothing, so recovering twice gives the same state.
   */
  private async recover(early: Promise<FoundCheckpoints> | undefined): Promise<void> {
    const found = await (early ?? findCheckpoints(this.storage))
    this.staleTemps = found.temps
    for (const [i, name] of found.names.entries()) {
      let ck: Checkpoint | string
      try {
        const read = i === 0 ? found.newest : undefined
        ck = openCheckpoint(await (read ?? readWholeFile(this.storage, name)), this.log.logId, name)
      } catch (e) {
        if (!(e instanceof StorageError)) throw e
        ck = `unreadable: ${e.message}`
      }
      if (typeof ck !== 'string') ck = this.checkAgainstLog(ck)
      if (typeof ck === 'string') {
        this.recoveryInfo.skippedCheckpoints.push(`${name}: ${ck}`)
        continue
      }
      await this.replay(ck)
      this.recoveryInfo.checkpoint = name
      return
    }
    await this.replay(undefined)
  }

  /** A checkpoint the log contradicts is skipped like a damaged one. */
  private checkAgainstLog(ck: Checkpoint): Checkpoint | string {
    if (ck.replayFrom > this.log.maxReservedLsn + 1) return 'cut lies beyond the end of the log'
    const first = this.log.firstLsn
    const bases = new Set(this.log.segmentBases())
    const s = ck.summary
    for (let i = 0; i < s.length; i += 4) {
      const base = s[i] as number
      if ((s[i + 2] as number) > 0 && base >= first && !bases.has(base)) {
        return `names fragments in segment ${base}, which the log does not hold`
      }
    }
    return ck
  }

  /**
   * Accounting starts from the checkpoint's per-segment summary, so its pages stay encoded
   * until used; the log after the cut is then applied with full accounting.
   */
  private async replay(ck: Checkpoint | undefined): Promise<void> {
    const first = this.log.firstLsn
    // Only the segment being written takes new fragments; stabilize() catches the others
    // up once the log says they are durable.
    const order = this.log.segmentBases()
    for (const b of order) this.sa.track(b, b === order[order.length - 1] ? 'active' : 'inactive')
    if (ck !== undefined) {
      this.lazy = ck
      this.nextPid = ck.nextPid
      this.pageCount = ck.pageCount
      const s = ck.summary
      let namesDropped = false
      for (let i = 0; i < s.length; i += 4) {
        const base = s[i] as number
        if ((s[i + 2] as number) === 0) continue
        if (base >= first) this.sa.credit(base, s[i + 1] as number, s[i + 2] as number, s[i + 3] as number)
        else namesDropped = true
      }
      // A version-2 checkpoint has no blob bytes per segment: decode the entries once to
      // find them (only when it names blobs at all). The next checkpoint is version 3.
      if (!ck.hasSegmentBlobBytes && ck.liveBlobBytes > 0) {
        for (let pid = 0; pid < ck.nextPid; pid++) {
          const p = readPage(ck, pid)
          const base = p?.frags[0] as number
          if (p !== undefined && p.blobBytes > 0 && base >= first) this.sa.blobLinked(base, p.blobBytes)
        }
      }
      // Cleaning after the cut dropped segments the checkpoint still names. A page whose base
      // lies down there was either relocated later in the log (replay brings its new base
      // back) or freed, its Free record gone with the head (cleaning relocates every live
      // page before it drops a segment). Either way it leaves the table here. Rare after a
      // clean close, which checkpoints after its last cleaning pass.
      if (namesDropped) {
        const t = this.table
        for (let pid = 0; pid < ck.nextPid; pid++) {
          if (this.exists(pid) && t.baseLsn(pid) < first) {
            // Its later deltas may lie in kept segments, whose summary counted them.
            for (let d = t.newestDelta(pid); d !== 0; d = t.olderDelta(d)) {
              const lsn = t.deltaLsn(d)
              if (lsn >= first) this.sa.removed(lsn, t.deltaRecordBytes(d))
            }
            t.remove(pid)
            this.pageCount--
          }
        }
      }
    }
    const from = Math.max(ck?.replayFrom ?? 0, first)
    this.recoveryInfo.replayFrom = from
    const lastLsn = this.log.maxReservedLsn
    for await (const rec of this.log.iterFrom(from)) {
      this.recoveryInfo.replayedRecords++
      const r = decodePageRecord(rec.data, rec.lsn)
      const size = rec.isBlob
        ? pointerRecordBytes(rec.lsn, this.S)
        : this.recordBytes(rec.lsn, rec.data.length)
      // The check after the loop, made early: each record left adds at most one page and
      // takes at least MIN_PAGE_MESSAGE_BYTES of LSNs, so a page id this far beyond the
      // pages there can be is damage (and a page table row for it would be an allocation
      // of its size, not an error).
      const recordsLeft = Math.floor((lastLsn - rec.lsn) / MIN_PAGE_MESSAGE_BYTES)
      if (r.pid - (this.pageCount + recordsLeft) > MAX_FREE_PIDS_AT_OPEN)
        throw tooManyFreeIds(r.pid + 1, this.pageCount)
      if (r.pid >= this.nextPid) this.nextPid = r.pid + 1
      if (!this.table.hasRow(r.pid)) growTableForReplay(this.table, r.pid, rec.lsn)
      const has = this.exists(r.pid)
      if (r.kind === PageRecordKind.Replace) {
        this.setBase(r.pid, rec.lsn, size, r.payload.length, rec.isBlob ? rec.data.length : 0, true)
      } else if (r.kind === PageRecordKind.Link) {
        // A delta whose base was dropped with the log's head belongs to a page that was
        // relocated later in the log; the relocated base ahead supersedes it.
        if (has) {
          this.table.addDelta(r.pid, rec.lsn, size, r.payload.length)
          this.sa.added(rec.lsn, size, true)
        }
      } else if (has) {
        this.dropFragments(r.pid, true)
        this.table.remove(r.pid)
        this.pageCount--
      }
    }
    // Every id below nextPid that holds no page becomes a free id: a record naming a huge
    // page id (crafted, or written by something else) would make that loop endless.
    if (this.nextPid - this.pageCount > MAX_FREE_PIDS_AT_OPEN)
      throw tooManyFreeIds(this.nextPid, this.pageCount)
    // Ids the checkpoint lists hold a page (and no row yet); of the rest, those with no page
    // in the table are free. Ascending, as allocate() hands them out in insertion order.
    // (A walk of every id, each asking the table and the checkpoint, took 1–2 ms at open
    // on 10^4 pages; the checkpoint's unlisted ids come from a native scan of its index.)
    const lazy = this.lazy
    const listedBelow = lazy === undefined ? 0 : Math.min(lazy.nextPid, this.nextPid)
    if (lazy !== undefined) {
      for (const pid of unlistedIds(lazy)) {
        if (pid >= listedBelow) break
        if (!this.table.has(pid)) this.freePids.add(pid)
      }
    }
    for (let pid = listedBelow; pid < this.nextPid; pid++) {
      if (!this.table.has(pid)) this.freePids.add(pid)
    }
    this.trackLogSegments()
    // Replay cannot tell a relinked pointer from a new blob (both are a new base): the log's
    // own record of which segment keeps which blob file decides what is dead.
    // A segment whose live blobs exceed what its pointers keep can only come from missing
    // blob files (the log then had none to walk for): reading such a page is the
    // CorruptionError; the open itself does not fail for it.
    this.sa.settleDeadBlobs(this.log.blobBytesBySegment())
  }

  // ---- lifecycle ----

  /**
   * What the page cache holds in memory now, in bytes: cheaper than stats() (no walk of the
   * log's segments), for sampling while a workload runs (bench:pagecache's peak RSS).
   */
  memoryStats(): PageCacheMemory {
    return {
      cacheBytes: this.cacheBytes,
      residentPages: this.lru.size,
      slabBytes: this.arena?.slabBytesNow ?? 0,
      pooledBytes: this.arena?.pooledBytes ?? 0,
      logBufferBytes: this.log.segmentBufferBytes,
      tableBytes: this.table.bytes + this.lru.bytes,
    }
  }

  stats(): PageCacheStats {
    // A truncation that finished since the last write took segments (and their dead blob
    // files) with it: report what the log holds now.
    this.trackLogSegments()
    return {
      pages: this.pageCount,
      residentPages: this.lru.size,
      cacheBytes: this.cacheBytes,
      cacheCapacity: this.opts.cacheCapacity,
      liveBytes: this.sa.liveBytes,
      liveBlobBytes: this.sa.liveBlobBytes,
      deadBlobBytes: this.sa.deadBlobBytes,
      segments: this.sa.segmentCount,
      fileSlots: this.log.fileSlots,
      segmentBytes: this.S,
      firstLsn: this.log.firstLsn,
      stableLsn: this.log.stableLsn,
      ...this.counters,
      recovery: structuredClone(this.recoveryInfo),
      backgroundError: this.backgroundError === undefined ? undefined : String(this.backgroundError),
      tableBytes: this.table.bytes + this.lru.bytes,
      arena: this.arena?.stats(),
      warmUp: { ...this.warmInfo },
      inlineReads: { ...this.inlineReadInfo },
      logSync: this.logSyncStats(),
    }
  }

  private logSyncStats(): PageCacheStats['logSync'] {
    const m = this.log.metrics()
    return {
      syncs: m.syncs,
      syncedWrites: m.syncedWrites,
      inlineWrites: m.inlineWrites,
      inlineSlowWrites: m.inlineSlowWrites,
      inlineFallbacks: m.inlineFallbacks,
    }
  }

  /** Segment states, live bytes and blob bytes, oldest first (for tools and the invariant monitor). */
  segments(): Array<{
    base: number
    state: string
    liveBytes: number
    liveFragments: number
    liveBlobBytes: number
    deadBlobBytes: number
  }> {
    this.trackLogSegments()
    return this.sa.segments().map((s) => ({ ...s }))
  }

  /** Bytes of every file of the database: log, blobs, checkpoints. */
  async sizeOnDisk(): Promise<number> {
    this.checkOpen()
    let total = 0
    const sizeOf = async (name: string): Promise<number> => {
      const f = await this.storage.openFile(name, 'read')
      try {
        return await f.size()
      } finally {
        await f.close()
      }
    }
    for (const n of await this.storage.list('')) {
      if (n === 'blobs' || n === 'LOCK') continue
      total += await sizeOf(n).catch(() => 0)
    }
    for (const n of await this.storage.list('blobs').catch(() => [] as string[])) {
      total += await sizeOf(`blobs/${n}`).catch(() => 0)
    }
    return total
  }

  /**
   * Finishes cleaning (down to the space budget), writes a checkpoint, closes the log and
   * releases the folder.
   */
  async close(): Promise<void> {
    if (this.closed || this.closing) return
    this.isWarmStopped = true
    // An open never accepted writes nothing, not even a checkpoint.
    if (this.accepting === undefined) return this.closeRefused()
    try {
      await this.settleSpace()
      await this.stopBackgroundWork()
      if (this.log.failure === undefined) await this.checkpoint()
    } finally {
      this.closed = true
      await this.log.close()
    }
  }

  /**
   * Closes without writing anything, for an open refused by the layer above (the tree
   * found its pages damaged): the folder's lock is released, and neither a checkpoint of
   * the refused table nor a witness is written (a refused database stays as found).
   */
  async closeRefused(): Promise<void> {
    if (this.closed || this.closing) return
    try {
      await this.stopBackgroundWork()
    } finally {
      this.closed = true
      await this.log.closeRefused()
    }
  }

  /**
   * Runs cleaning to its end before close stops it: a run stops at once when closing, so a
   * database closed right after a burst of writes reopened over its budget, and its first
   * writer was held while cleaning caught up (160-190 ms for 300k records after a bulk
   * load; docs/DESIGN.md, "Segment cleaning"). Bounded as any run is.
   */
  private async settleSpace(): Promise<void> {
    if (!this.opts.cleaning || !this.isAccepted) return
    while (this.cleaningRun !== undefined) await this.cleaningRun
    if (this.log.failure !== undefined || !this.sa.overBudget()) return
    this.startCleaning()
    await this.cleaningRun
  }

  /** Stops the timer and waits for a cleaning run and a checkpoint in flight. */
  private async stopBackgroundWork(): Promise<void> {
    this.closing = true
    this.isWarmStopped = true
    await this.accepting?.catch(() => {})
    if (this.timer !== undefined) clearInterval(this.timer)
    await this.cleaningRun
    await this.checkpointRun?.catch(() => {})
    await this.warming
  }

  // ---- checks ----

  private checkOpen(): void {
    if (this.closed) throw new ClosedError('the page cache is closed')
  }

  private checkWritable(): void {
    if (this.closed || this.closing) throw new ClosedError('the page cache is closed')
    if (!this.isAccepted) {
      throw new InvalidArgumentError(
        'the page cache is written only once its open is accepted (acceptOpen())',
      )
    }
    const f = this.log.failure
    if (f !== undefined) throw f
  }

  private checkAllocated(pid: number): void {
    if (pid >= this.nextPid || this.freePids.has(pid)) {
      throw new InvalidArgumentError(`page ${pid} was not allocated`)
    }
  }

  private checkWritablePid(pid: number, mayBeNew: boolean): void {
    checkPid(pid)
    if (this.busy.has(pid))
      throw new InvalidArgumentError(
        `page ${pid} has a large write in flight: await its replaceLarge() first`,
      )
    if (!this.exists(pid)) {
      if (!mayBeNew) throw new InvalidArgumentError(`page ${pid} is free`)
      this.checkAllocated(pid)
    }
  }
}

function pointerRecordBytes(lsn: number, S: number): number {
  // A blob pointer body is 20 bytes (docs/FORMAT.md).
  return messageHeaderBytes(20, Math.floor(lsn / S), 0) + 20
}

/**
 * A fragment's read failed. The LSNs come from the page table, not from a caller: one the
 * log refuses (no record starts there) was read from a damaged or foreign checkpoint.
 */
function fragmentError(pid: number, e: unknown): unknown {
  if (e instanceof InvalidArgumentError)
    return new CorruptionError(`page ${pid} names a fragment the log does not hold: ${e.message}`, {
      cause: e,
    })
  return e
}

function checkPid(pid: unknown): asserts pid is number {
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 0) {
    throw new InvalidArgumentError('a page id is a non-negative safe integer')
  }
}

function checkBytes(b: unknown, max: number, what: string): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new InvalidArgumentError(`${what} bytes must be a Uint8Array`)
  if (b.byteLength > max) throw new LimitError(`${what} size`, max, b.byteLength)
}

function checkCount(name: string, v: unknown, min: number): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`)
  }
}

function checkCodec(c: unknown): void {
  const codec = c as Partial<PageCodec<unknown>> | null
  if (
    codec === null ||
    typeof codec !== 'object' ||
    typeof codec.materialize !== 'function' ||
    typeof codec.encode !== 'function' ||
    typeof codec.memoryBytes !== 'function'
  ) {
    throw new InvalidArgumentError('a page codec needs materialize, encode and memoryBytes')
  }
}

/**
 * A page id within replay's bound can still need more page table than this process can
 * allocate (a crafted id early in a very large log): that is the file's damage, reported as
 * such, not V8's RangeError.
 */
function growTableForReplay(table: PageTable, pid: number, lsn: number): void {
  try {
    table.grow(pid)
  } catch (e) {
    if (!(e instanceof RangeError) || isBobsledError(e)) throw e
    throw new CorruptionError(
      `the record at LSN ${lsn} names page ${pid}: no page table of that size can be allocated`,
      {
        lsn,
        cause: e,
      },
    )
  }
}

function tooManyFreeIds(nextPid: number, pageCount: number): CorruptionError {
  return new CorruptionError(
    `the log names page ${nextPid - 1} but holds ${pageCount} pages: more free page ids than a page table can hold`,
  )
}
