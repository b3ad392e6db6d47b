// The log file as recovery decided it should be, before a byte of that decision is written.
// An open that a layer above may still refuse must leave the folder as found (regimen R8),
// so recovery only plans its repairs (repairs.ts) and reads through this view meanwhile: a
// tail journal's extents read as if replayed, ranges to be zeroed read as zeros, and the
// size is the size after the planned truncation. Nothing can be written through it.

import { InvariantError } from '../errors.js'
import { readNowUpTo, type StorageFile } from '../io/index.js'

/** `length` bytes at log offset `position` that read from `journal` at `at`, or as zeros. */
interface Patch {
  position: number
  length: number
  /** Offset in the journal file; -1 for zeros. */
  at: number
}

export class RepairedFile implements StorageFile {
  private readonly patches: Patch[] = []

  /**
   * `base` is the log file (undefined when it does not exist yet: it reads as empty);
   * `journal` the open tail journal whose extents are laid over it.
   */
  constructor(
    private readonly base: StorageFile | undefined,
    private sizeBytes: number,
    private readonly journal: StorageFile | undefined,
  ) {
    const canReadNow = (f: StorageFile | undefined) => f === undefined || f.readNow !== undefined
    this.readNow = canReadNow(base) && canReadNow(journal) ? this.readRepairedNow.bind(this) : undefined
  }

  get name(): string {
    return this.base?.name ?? 'log'
  }

  /** Bytes at `position` read from the journal at `at` (a replayed extent). */
  fromJournal(position: number, length: number, at: number): void {
    this.patches.push({ position, length, at })
    this.sizeBytes = Math.max(this.sizeBytes, position + length)
  }

  /** Bytes at `position` read as zeros (a range recovery zeroes). */
  zero(position: number, length: number): void {
    this.patches.push({ position, length, at: -1 })
  }

  /** The file ends at `sizeBytes` (a truncation recovery makes). */
  cut(sizeBytes: number): void {
    this.sizeBytes = Math.min(this.sizeBytes, sizeBytes)
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const n = Math.max(0, Math.min(length, this.sizeBytes - position))
    let got = 0
    while (this.base !== undefined && got < n) {
      const r = await this.base.read(buffer, offset + got, n - got, position + got)
      if (r === 0) break
      got += r
    }
    for (const [into, at] of this.overlay(buffer, offset, position, n, got)) {
      await readFully(this.journal as StorageFile, into, at)
    }
    return n
  }

  /**
   * read() on the calling thread, when the log file and the journal both can (set once, in
   * the constructor): the first page-ins after open come through this view until the open
   * is accepted, and without it each fell back to the pool (stats().store.inlineReads.fallbacks).
   */
  readonly readNow: StorageFile['readNow']

  private readRepairedNow(buffer: Uint8Array, offset: number, length: number, position: number): number {
    const n = Math.max(0, Math.min(length, this.sizeBytes - position))
    const got = this.base === undefined ? 0 : readNowUpTo(this.base, buffer, offset, n, position)
    for (const [into, at] of this.overlay(buffer, offset, position, n, got)) {
      if (readNowUpTo(this.journal as StorageFile, into, 0, into.length, at) < into.length) {
        throw new InvariantError(`the tail journal ended inside an extent checked at open`)
      }
    }
    return n
  }

  /**
   * Lays the planned repairs over `n` bytes read at `position` (`got` of them from the base):
   * zeros past the base's end and for zeroed ranges; for each replayed extent, yields where
   * in `buffer` its bytes go and where they lie in the journal, for the caller to read.
   */
  private *overlay(
    buffer: Uint8Array,
    offset: number,
    position: number,
    n: number,
    got: number,
  ): Generator<[Uint8Array, number]> {
    // Past the base's end, up to a replayed extent's end: zeros, as a write there would leave.
    buffer.fill(0, offset + got, offset + n)
    // In order: a later patch wins, as a later write would.
    for (const p of this.patches) {
      const lo = Math.max(p.position, position)
      const hi = Math.min(p.position + p.length, position + n)
      if (lo >= hi) continue
      const into = buffer.subarray(offset + lo - position, offset + hi - position)
      if (p.at < 0) into.fill(0)
      else yield [into, p.at + lo - p.position]
    }
  }

  write(): Promise<void> {
    return Promise.reject(new InvariantError('the log is written only once its open is accepted'))
  }

  writeSynced(): Promise<void> {
    return this.write()
  }

  // No writeSyncedNow: nothing is written through this view, and without it a write that
  // came here by mistake still meets write()'s InvariantError.

  datasync(): Promise<void> {
    return Promise.reject(new InvariantError('the log is synced only once its open is accepted'))
  }

  truncate(): Promise<void> {
    return Promise.reject(new InvariantError('the log is truncated only once its open is accepted'))
  }

  async size(): Promise<number> {
    return this.sizeBytes
  }

  /** The base and the journal stay open: their owner (repairs.ts, the Log) closes them. */
  async close(): Promise<void> {}
}

async function readFully(f: StorageFile, into: Uint8Array, position: number): Promise<void> {
  let got = 0
  while (got < into.length) {
    const n = await f.read(into, got, into.length - got, position + got)
    if (n === 0) throw new InvariantError(`the tail journal ended inside an extent checked at open`)
    got += n
  }
}
