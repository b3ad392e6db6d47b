// The storage backend: the only door between bobsled and the disk. Two implementations
// share this interface: real files (file-storage.ts) and a seeded simulated disk
// (sim-storage.ts) that can lose, tear and reorder unsynced writes.
//
// Every name is relative to the database folder and uses '/' separators ("log",
// "blobs/42"). Implementations reject names that escape the folder.
// Errors: operations reject with the typed errors of ../errors.ts (IoError, DiskFullError,
// PermissionError, ...) carrying the OS error as `cause`; never with a bare string.

/** What the caller wants from openFile. */
export type OpenMode =
  /** Existing file, read only. ENOENT → rejects with IoError whose syscallCode is 'ENOENT'. */
  | 'read'
  /** Existing file, read and write. */
  | 'readwrite'
  /** New file only (O_CREAT|O_EXCL, mode 0600 unless the storage was given another mode). */
  | 'create'
  /** Create if missing, else open read-write. */
  | 'createOrOpen'

export interface StorageFile {
  readonly name: string
  /** Reads up to `length` bytes at `position`; returns the count (short only at end of file). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>
  /**
   * read() done on the calling thread: same contract (the count, short only at end of
   * file; typed errors thrown; a closed file is an error). It saves the thread-pool hop of
   * a small read the OS serves from its cache (docs/DESIGN.md, "Inline reads"), and blocks
   * the event loop for a device read when the OS cache misses: a caller must keep it for
   * small reads and stop using it when reads turn slow. Optional: a file that cannot read
   * synchronously (a wrapper over asynchronous views) leaves it out, and the caller reads().
   */
  readNow?(buffer: Uint8Array, offset: number, length: number, position: number): number
  /** Writes all `length` bytes at `position`, looping on short writes. */
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void>
  /**
   * write() whose bytes, and the file size they reach, are durable when it resolves: one
   * O_DSYNC write, a single trip to the disk instead of a write and then a datasync. It
   * need not make anything else durable (Linux syncs only the range of an O_DSYNC write),
   * so a caller that needs an earlier write durable too must datasync() for it.
   */
  writeSynced(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void>
  /**
   * writeSynced() done on the calling thread, blocking it until the bytes are durable: true
   * when it wrote them (same contract: all `length` bytes, durable on return, typed errors
   * thrown), false when it cannot now and wrote nothing (no O_DSYNC descriptor yet, or
   * none on this platform): the caller uses writeSynced(). It saves the thread-pool hop
   * and the promise of a small durable write (docs/DESIGN.md, "Inline synced writes"); a
   * caller must keep it for small writes, since the event loop waits for the disk.
   * Optional: a wrapper that cannot forward it synchronously leaves it out.
   */
  writeSyncedNow?(buffer: Uint8Array, offset: number, length: number, position: number): boolean
  /** fdatasync: every write that completed before this call began is durable when it resolves. */
  datasync(): Promise<void>
  /** Sets the size; bytes past the old end read as zeros. Not durable until datasync. */
  truncate(sizeBytes: number): Promise<void>
  size(): Promise<number>
  close(): Promise<void>
}

/** Held while a database is open; release() lets the next opener in. */
export interface StorageLock {
  /**
   * Settles once the lock's own bookkeeping is durable (it is held already: no other opener
   * can take it meanwhile); rejects if that failed, and the lock is then let go. An opener
   * awaits it before it returns, and may read the folder meanwhile. Absent: nothing to wait for.
   */
  readonly ready?: Promise<void>
  release(): Promise<void>
}

export interface Storage {
  /** Human-readable location, for error messages. */
  readonly location: string
  /** Creates the database folder (0700) if missing and syncs its parent. Idempotent. */
  ensureRoot(): Promise<void>
  openFile(name: string, mode: OpenMode): Promise<StorageFile>
  exists(name: string): Promise<boolean>
  /** Names of the entries of a folder ('' is the database folder), sorted. */
  list(dir: string): Promise<string[]>
  /** Creates a sub-folder (0700); no error if it exists. Not durable until syncDir(parent). */
  mkdir(name: string): Promise<void>
  /** Atomic replace. Not durable until syncDir of the folder. */
  rename(from: string, to: string): Promise<void>
  /** Not durable until syncDir of the folder. */
  unlink(name: string): Promise<void>
  /** Makes creates, renames and unlinks inside the folder durable ('' = database folder). */
  syncDir(dir: string): Promise<void>
  /**
   * Takes the exclusive lock on the database folder, or rejects with DatabaseLockedError
   * (holder in this process or another). A holder killed with SIGKILL never blocks this.
   */
  lock(): Promise<StorageLock>
}

/**
 * Reads into `buffer[offset, offset + length)` from `position` with `file.readNow`, looping
 * on short reads until the range is full or the file ends; returns the bytes read. The
 * caller checked that the file has readNow.
 */
export function readNowUpTo(
  file: StorageFile,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
): number {
  const readNow = file.readNow as NonNullable<StorageFile['readNow']>
  let got = 0
  while (got < length) {
    const n = readNow.call(file, buffer, offset + got, length - got, position + got)
    if (n === 0) break
    got += n
  }
  return got
}
