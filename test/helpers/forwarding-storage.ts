// A Storage that hands every call to another one. Test probes extend it and override only
// the calls they watch.

import type { OpenMode, Storage, StorageFile, StorageLock } from '../../src/io/index.js'

export class ForwardingStorage implements Storage {
  constructor(protected readonly inner: Storage) {}

  get location(): string {
    return this.inner.location
  }

  ensureRoot(): Promise<void> {
    return this.inner.ensureRoot()
  }

  openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    return this.inner.openFile(name, mode)
  }

  exists(name: string): Promise<boolean> {
    return this.inner.exists(name)
  }

  list(dir: string): Promise<string[]> {
    return this.inner.list(dir)
  }

  mkdir(name: string): Promise<void> {
    return this.inner.mkdir(name)
  }

  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to)
  }

  unlink(name: string): Promise<void> {
    return this.inner.unlink(name)
  }

  syncDir(dir: string): Promise<void> {
    return this.inner.syncDir(dir)
  }

  lock(): Promise<StorageLock> {
    return this.inner.lock()
  }
}

/**
 * A StorageFile that hands the required calls to `f`, with `overrides` in their place or
 * beside them. The optional main-thread calls (readNow, writeSyncedNow) are not forwarded
 * unless an override gives them: a probe that watches the asynchronous path must not let
 * the caller go around it.
 */
export function forwardFile(f: StorageFile, overrides: Partial<StorageFile> = {}): StorageFile {
  return {
    name: f.name,
    read: (b, o, l, p) => f.read(b, o, l, p),
    write: (b, o, l, p) => f.write(b, o, l, p),
    writeSynced: (b, o, l, p) => f.writeSynced(b, o, l, p),
    datasync: () => f.datasync(),
    truncate: (n) => f.truncate(n),
    size: () => f.size(),
    close: () => f.close(),
    ...overrides,
  }
}
