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
