// Shared helpers of the log fault-injection and corruption tests: a probing Storage wrapper
// that watches every write and datasync of one Log instance, a checker for recovered
// record sequences that may start above 0 (after truncateBefore), and a timeout wrapper.

import { isBobsledError } from '../../src/errors.js'
import type { Storage, StorageFile } from '../../src/io/index.js'
import { mixSeed } from '../../src/util/prng.js'
import { decodeRecord } from '../crash/log-records.js'

/** The seed of a run: BOBSLED_SEED replays one, else the given default. */
export function baseSeed(fallback: number): number {
  const s = process.env.BOBSLED_SEED
  return s === undefined ? fallback : Number(s)
}

export { mixSeed }

export class TimeoutError extends Error {}

/** Rejects with TimeoutError when `p` has not settled within `ms` (a hang). */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer after ${ms} ms (hang)`)), ms)
  })
  return Promise.race([p, t]).finally(() => clearTimeout(timer))
}

/** Lets `n` turns of the event loop pass (stray simulated IO completes meanwhile). */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r))
}

export function describeError(e: unknown): string {
  if (isBobsledError(e)) return `${e.name}(${e.code}): ${e.message}`
  return e instanceof Error ? `UNTYPED ${e.name}: ${e.message}\n${e.stack}` : `UNTYPED ${String(e)}`
}

/** One write or datasync seen by a ProbeStorage, in the order the promises settled. */
export interface ProbeEvent {
  kind: 'write' | 'datasync' | 'close' | 'syncDir'
  file: string
  ok: boolean
  /** Issue order inside this probe. */
  issued: number
}

/**
 * Wraps the Storage one Log instance runs on. Counts, per instance:
 *  - `syncAfterFailedSync`: datasyncs of a file issued after a datasync of that file failed
 *    in this instance (a retry, which fsyncgate forbids);
 *  - `logIoAfterFailure`: writes or datasyncs of `log` issued after `markPoisoned()` (the
 *    test calls it when the log poisons itself: from then on nothing is written or synced).
 *    Counted from the poisoning, not from the failed op: until the log's own callback has
 *    seen a failure it cannot know of it (and a sync issued then cannot advance stability).
 * `onFailure` runs synchronously when a write or datasync fails, before the log sees it.
 */ import { ForwardingStorage } from './forwarding-storage.js'

export class ProbeStorage extends ForwardingStorage {
  readonly events: ProbeEvent[] = []
  syncAfterFailedSync = 0
  /**
   * Datasyncs of another file after a failed one: a blob write already under way when the
   * log's sync failed finishes with its own sync. Not a retry; counted for the report.
   */
  otherSyncsAfterFailedSync = 0
  logIoAfterFailure = 0
  syncs = 0
  /** What was issued after a failure, for messages. */
  readonly afterFailure: string[] = []
  private issued = 0

  /** The log instance poisoned itself. */
  markPoisoned(): void {
    this.failedLogIo = true
  }

  private failedSync = false
  private readonly failedSyncFiles = new Set<string>()
  private failedLogIo = false

  constructor(
    inner: Storage,
    private readonly onFailure: (kind: string, file: string) => void = () => {},
  ) {
    super(inner)
  }

  override async openFile(name: string, mode: Parameters<Storage['openFile']>[1]): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    return this.wrap(f, name)
  }

  override syncDir(dir: string): Promise<void> {
    return this.watch('syncDir', dir || '.', () => this.inner.syncDir(dir))
  }

  private watch<T>(kind: ProbeEvent['kind'], file: string, run: () => Promise<T>): Promise<T> {
    const issued = this.beforeIssue(kind, file)
    return run().then(
      (v) => {
        this.settled(kind, file, issued, true)
        return v
      },
      (e) => {
        this.settled(kind, file, issued, false)
        throw e
      },
    )
  }

  /** watch() of an op done on the calling thread (writeSyncedNow). */
  private watchNow<T>(kind: ProbeEvent['kind'], file: string, run: () => T): T {
    const issued = this.beforeIssue(kind, file)
    let v: T
    try {
      v = run()
    } catch (e) {
      this.settled(kind, file, issued, false)
      throw e
    }
    this.settled(kind, file, issued, true)
    return v
  }

  private settled(kind: ProbeEvent['kind'], file: string, issued: number, ok: boolean): void {
    this.events.push({ kind, file, ok, issued })
    if (ok) return
    if (kind === 'datasync') {
      this.failedSync = true
      this.failedSyncFiles.add(file)
    }
    if (kind === 'write' || kind === 'datasync') this.onFailure(kind, file)
  }

  private beforeIssue(kind: ProbeEvent['kind'], file: string): number {
    const issued = this.issued++
    const isLog = file === 'log'
    if (kind === 'datasync') {
      this.syncs++
      if (this.failedSyncFiles.has(file)) {
        this.syncAfterFailedSync++
        this.afterFailure.push(`datasync of ${file} retried after it failed`)
      } else if (this.failedSync) {
        this.otherSyncsAfterFailedSync++
      }
    }
    if (isLog && (kind === 'write' || kind === 'datasync') && this.failedLogIo) {
      this.logIoAfterFailure++
      this.afterFailure.push(`${kind} of log issued after the log was poisoned`)
    }
    return issued
  }

  private wrap(f: StorageFile, name: string): StorageFile {
    const now = f.writeSyncedNow?.bind(f)
    const readNow = f.readNow?.bind(f)
    return {
      name: f.name,
      read: (b, o, l, p) => f.read(b, o, l, p),
      // Forwarded, so the fault tests cover the page cache's inline page-ins too.
      ...(readNow === undefined ? {} : { readNow }),
      write: (b, o, l, p) => this.watch('write', name, () => f.write(b, o, l, p)),
      // A write and a sync in one: failing, it poisons as a failed datasync does.
      writeSynced: (b, o, l, p) => this.watch('write', name, () => f.writeSynced(b, o, l, p)),
      // Forwarded, so the fault tests cover the inline path of a lone round too.
      ...(now === undefined
        ? {}
        : { writeSyncedNow: (b, o, l, p) => this.watchNow('write', name, () => now(b, o, l, p)) }),
      datasync: () => this.watch('datasync', name, () => f.datasync()),
      truncate: (s) => f.truncate(s),
      size: () => f.size(),
      close: () => this.watch('close', name, () => f.close()),
    }
  }
}

/**
 * Checks recovered records (self-checking, from crash/log-records.ts): consecutive seqs
 * from some first seq ≤ `maxFirst` (0 unless a truncateBefore may have dropped a prefix),
 * no phantom or torn record, batches whole (a batch cut at the front only by truncation).
 * Returns the first and the last seq (-1 when empty) or the first violation.
 */
export function checkRun(
  records: Uint8Array[],
  maxFirst: number,
): { first: number; last: number } | { violation: string } {
  if (records.length === 0) return { first: -1, last: -1 }
  let first = -1
  let expect = -1
  for (let i = 0; i < records.length; i++) {
    const d = decodeRecord(records[i] as Uint8Array)
    if (d === undefined)
      return { violation: `record ${i} is not a record that was written (phantom or torn)` }
    if (i === 0) {
      first = d.seq
      expect = d.seq
      if (first > maxFirst) return { violation: `the log starts at seq ${first}, above ${maxFirst}` }
      if (d.indexInBatch > 0 && first === 0) return { violation: 'the log starts inside a batch' }
    }
    if (d.seq !== expect)
      return { violation: `record ${i} has seq ${d.seq}, expected ${expect} (not consecutive)` }
    if (d.indexInBatch === 0 && d.batchSize > 1 && i + d.batchSize > records.length) {
      return { violation: `batch at seq ${d.seq} of ${d.batchSize} records is torn` }
    }
    expect++
  }
  return { first, last: expect - 1 }
}
