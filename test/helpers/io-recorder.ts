// A thin Storage proxy over a traced SimDisk, shared by the protocol monitor and the
// crash-state explorer (reliability regimen §5.0 items 2 and 3). The SimDisk trace stays the
// ground truth for what happened and when; this proxy adds what the trace lacks:
//  - the bytes of every write (by SimDisk op number), so a checker can tell which write
//    carried a segment header, a blob pointer or a zeroed slot, and the explorer can build
//    disk images;
//  - which open file handle every file op used (by the op number of the open that made it),
//    so a write or datasync is tied to an inode even after a rename;
//  - a logical clock readable from JS (`clock()`: the `end` tick of the last completed op),
//    to timestamp acknowledgements on the same clock as the trace;
//  - mutation switches that silently skip an fsync of a folder.
// Op numbers come from `disk.opCount` read just before a call that issues exactly one op
// synchronously; the proxy checks that and throws if the SimDisk ever stops doing so.

import type { OpenMode, SimDisk, Storage, StorageFile, TraceRecord } from '../../src/io/index.js'

export interface RecorderOptions {
  /** Mutation switch: syncDir of these folders resolves without doing anything. */
  skipSyncDir?: readonly string[]
}

import { ForwardingStorage } from './forwarding-storage.js'

export class RecordingStorage extends ForwardingStorage {
  /** The bytes each write op stored, by SimDisk op number. */
  readonly writeBytes = new Map<number, Uint8Array>()
  /** For each file op (write, datasync, truncate, read, close), the op number of its open. */
  readonly handleOf = new Map<number, number>()
  /** syncDir calls the mutation switch swallowed. */
  skippedSyncDirs = 0

  constructor(
    readonly disk: SimDisk,
    inner: Storage,
    private readonly options: RecorderOptions = {},
  ) {
    super(inner)
  }

  /** The logical clock now: the end tick of the last completed op (-1 before any). */
  clock(): number {
    const t = this.disk.trace
    return t.length === 0 ? -1 : (t[t.length - 1] as TraceRecord).end
  }

  /** Calls `issue`, which must issue exactly one SimDisk op synchronously; returns its number. */
  private oneOp<T>(what: string, issue: () => Promise<T>): { op: number; result: Promise<T> } {
    const op = this.disk.opCount
    const result = issue()
    const issued = this.disk.opCount - op
    if (issued !== 1) {
      result.catch(() => {})
      throw new Error(`io-recorder: ${what} issued ${issued} ops synchronously, expected 1`)
    }
    return { op, result }
  }

  override async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const { op, result } = this.oneOp(`open ${name}`, () => this.inner.openFile(name, mode))
    return this.wrap(await result, op)
  }

  override syncDir(dir: string): Promise<void> {
    if (this.options.skipSyncDir?.includes(dir) === true) {
      this.skippedSyncDirs++
      return Promise.resolve()
    }
    return this.inner.syncDir(dir)
  }

  private wrap(f: StorageFile, openOp: number): StorageFile {
    const tag = <T>(what: string, issue: () => Promise<T>): Promise<T> => {
      const { op, result } = this.oneOp(`${what} ${f.name}`, issue)
      this.handleOf.set(op, openOp)
      return result
    }
    return {
      name: f.name,
      read: (b, o, l, p) => tag('read', () => f.read(b, o, l, p)),
      write: (b, o, l, p) => {
        // An empty write issues no op on the SimDisk.
        if (l === 0) return f.write(b, o, l, p)
        // A copy (Buffer's slice() is a view): the log reuses segment buffers once a write settles.
        const bytes = Uint8Array.prototype.slice.call(b, o, o + l)
        const { op, result } = this.oneOp(`write ${f.name}`, () => f.write(b, o, l, p))
        this.handleOf.set(op, openOp)
        this.writeBytes.set(op, bytes)
        return result
      },
      writeSynced: (b, o, l, p) => {
        if (l === 0) return f.writeSynced(b, o, l, p)
        const bytes = Uint8Array.prototype.slice.call(b, o, o + l)
        const { op, result } = this.oneOp(`write ${f.name}`, () => f.writeSynced(b, o, l, p))
        this.handleOf.set(op, openOp)
        this.writeBytes.set(op, bytes)
        return result
      },
      // No writeSyncedNow: the explorer enumerates crash states of writes in flight, and
      // an inline write is never in flight; lone rounds here go through writeSynced.
      datasync: () => tag('datasync', () => f.datasync()),
      truncate: (s) => tag('truncate', () => f.truncate(s)),
      size: () => tag('size', () => f.size()),
      // A second close issues no op (SimFile makes it a no-op), so it is not tagged.
      close: () => f.close(),
    }
  }
}

/** Seeds to run: BOBSLED_SEED replays one, else `count` seeds from `first`. */
export function seedList(count: number, first: number): number[] {
  const only = process.env.BOBSLED_SEED
  if (only !== undefined && only !== '') return [Number(only)]
  return Array.from({ length: count }, (_, i) => first + i)
}

export const isSoak = process.env.BOBSLED_SOAK === '1'

/** One trace record as a short line, for failure messages. */
export function showRecord(r: TraceRecord): string {
  const range = r.position !== undefined ? ` @${r.position}+${r.length ?? 0}` : ''
  const to = r.to !== undefined ? ` -> ${r.to}` : ''
  return `#${r.op} ${r.kind} ${r.path}${range}${to} ${r.ok ? 'ok' : `FAILED ${r.code ?? ''}`} [${r.start}..${r.end}]`
}
