// Group commit: one datasync in flight, covering every write that completed before it
// began; only then does the stable LSN move and do its waiters resolve (docs/DESIGN.md,
// "Stability and group commit"). A sync starts when someone waits for stability, or in the
// background once `syncEveryBytes` of written bytes are unsynced (bounded dirty data, so a
// later flush or the kernel's own writeback does not meet one large burst).

import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import type { LogContext } from './log-context.js'
import { bump } from './metrics.js'
import { StabilityIntervals } from './stability.js'
import { LsnWaiters } from './waiters.js'

const MAX_SYNC_DEFERRALS = 4

export class GroupCommit {
  /** Synced bytes; its published LSN is the public stable LSN. */
  readonly synced: StabilityIntervals
  readonly stableWaiters = new LsnWaiters()
  /** True while a datasync is in flight. */
  syncInFlight = false
  /** Set for two event-loop turns after a sync released several writers (see kick). */
  syncHold = false
  /** Written ranges not yet covered by a datasync, as [lo, hi] pairs. */
  private unsynced: number[] = []
  /** Bytes of the ranges in `unsynced`. */
  private unsyncedBytes = 0
  /** Syncs put off in a row because writes were still finishing (see kick). */
  private syncDeferrals = 0

  constructor(
    private readonly ctx: LogContext,
    stableLsn: number,
    /** Mutation switch: acknowledge without a datasync (and write rounds without O_DSYNC). */
    readonly unsafeAckBeforeSync: boolean,
    /** Issued writes of the log not yet finished. */
    private readonly writesInFlight: () => number,
    /** Unsynced written bytes that start a sync with nobody waiting; 0 = only on demand. */
    private readonly syncEveryBytes: number,
  ) {
    this.synced = new StabilityIntervals(stableLsn)
  }

  get stableLsn(): number {
    return this.synced.publishedLsn
  }

  /** A write of [lo, hi] finished: the next datasync covers it. */
  noteWritten(lo: number, hi: number): void {
    this.unsynced.push(lo, hi)
    this.unsyncedBytes += hi - lo + 1
    this.kick()
  }

  wait(lsn: number): Promise<void> {
    return this.stableWaiters.wait(lsn)
  }

  /** Starts a datasync when someone waits, none is in flight and written bytes are unsynced. */
  kick(): void {
    const ctx = this.ctx
    if (ctx.poisonError !== undefined || this.syncInFlight || this.syncHold || this.unsynced.length === 0)
      return
    if (
      this.stableWaiters.size === 0 &&
      (this.syncEveryBytes === 0 || this.unsyncedBytes < this.syncEveryBytes)
    )
      return
    // A sync covers only writes already finished. While others are about to finish (a
    // group split over two segments, say) wait for them, a few times at most, rather than
    // spend a whole sync on part of the group: each finishing write calls kick again.
    if (this.writesInFlight() > 0 && this.syncDeferrals < MAX_SYNC_DEFERRALS) {
      this.syncDeferrals++
      return
    }
    this.syncDeferrals = 0
    const ranges = this.unsynced
    this.unsynced = []
    this.unsyncedBytes = 0
    this.syncInFlight = true
    const t0 = performance.now()
    let sync: Promise<void>
    try {
      ctx.failpoints.hit('datasync')
      if (KILL_ODDS) maybeKill('log.sync.before')
      sync = this.unsafeAckBeforeSync ? Promise.resolve() : ctx.file.datasync()
    } catch (e) {
      sync = Promise.reject(e)
    }
    sync.then(
      () => this.roundSynced(ranges, t0),
      (e) => this.syncFailed(e),
    )
  }

  /**
   * True when a write ending at `hi` may be its own sync round (Storage.writeSynced): no
   * sync is in flight, every byte below its start is written (the caller checked) and every
   * written byte is synced, so making only this write's range durable — all an O_DSYNC
   * write does — leaves nothing below it unsynced; and someone waits for a byte of it.
   */
  canSyncAlone(hi: number): boolean {
    return (
      !this.syncInFlight &&
      this.unsynced.length === 0 &&
      this.ctx.poisonError === undefined &&
      this.stableWaiters.minLsn <= hi
    )
  }

  /** A written range whose stability someone waits for (pre-extension's trigger). */
  isAwaited(hi: number): boolean {
    return this.stableWaiters.minLsn <= hi
  }

  /**
   * Starts a round made of one synced write (canSyncAlone was true): it is the one sync in
   * flight until syncedWriteDone or syncFailed. Throws what the datasync failpoint throws.
   * Returns the start time for the metrics.
   */
  beginSyncedWrite(): number {
    this.ctx.failpoints.hit('datasync')
    this.syncInFlight = true
    return performance.now()
  }

  /** The synced write of [lo, hi] completed: its bytes are durable. */
  syncedWriteDone(lo: number, hi: number, t0: number): void {
    this.ctx.stats.syncedWrites++
    this.roundSynced([lo, hi], t0)
  }

  syncFailed(e: unknown, what = 'syncing the log'): void {
    this.syncInFlight = false
    this.ctx.poison(e, what)
  }

  /** A sync round covering `ranges` succeeded: the stable LSN moves and its waiters go. */
  private roundSynced(ranges: number[], t0: number): void {
    const ctx = this.ctx
    this.syncInFlight = false
    if (ctx.poisonError !== undefined) return
    if (KILL_ODDS) maybeKill('log.sync.done.unpublished')
    const stats = ctx.stats
    const ms = performance.now() - t0
    stats.syncs++
    stats.syncMsTotal += ms
    stats.syncMsMax = Math.max(stats.syncMsMax, ms)
    let bytes = 0
    let stable = this.synced.publishedLsn
    for (let i = 0; i < ranges.length; i += 2) {
      const lo = ranges[i] as number
      const hi = ranges[i + 1] as number
      bytes += hi - lo + 1
      stable = this.synced.markDone(lo, hi)
    }
    bump(stats.bytesPerSync, bytes)
    const released = this.stableWaiters.releaseUpTo(stable)
    bump(stats.waitersPerSync, released)
    if (KILL_ODDS) maybeKill('log.sync.done.published')
    if (released > 1) {
      // Several writers just woke and will append again within a few promise hops.
      // Hold the next seal and sync for two turns of the event loop so they all join
      // one write and one sync, instead of splitting into two half-size groups that
      // then alternate forever.
      this.syncHold = true
      setImmediate(() =>
        setImmediate(() => {
          this.syncHold = false
          this.kick()
        }),
      )
    } else {
      this.kick()
    }
  }
}
