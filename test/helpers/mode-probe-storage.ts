// A Storage over real files that records the permission bits of everything the log creates,
// right after it is created: files opened with 'create' or 'createOrOpen', folders made
// with mkdir, and the LOCK file once the lock is taken. Short-lived files (conf.tmp,
// witness.tmp, a tail journal) are seen too, not only what is left at the end.

import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import type { OpenMode, Storage, StorageFile, StorageLock } from '../../src/io/index.js'
import { FileStorage, LOCK_FILE_NAME } from '../../src/io/index.js'

export interface CreatedEntry {
  name: string
  kind: 'file' | 'dir'
  mode: number
}

export class ModeProbeStorage implements Storage {
  readonly created: CreatedEntry[] = []
  private readonly inner: FileStorage

  constructor(readonly rootPath: string) {
    this.inner = new FileStorage(rootPath)
  }

  get location(): string {
    return this.inner.location
  }

  private async note(name: string, kind: 'file' | 'dir'): Promise<void> {
    const st = await fs.lstat(path.join(await fs.realpath(this.inner.location), name))
    this.created.push({ name, kind, mode: st.mode & 0o7777 })
  }

  async ensureRoot(): Promise<void> {
    await this.inner.ensureRoot()
    await this.note('.', 'dir')
  }

  async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (mode === 'create' || mode === 'createOrOpen') await this.note(name, 'file')
    return f
  }

  exists(name: string): Promise<boolean> {
    return this.inner.exists(name)
  }

  list(dir: string): Promise<string[]> {
    return this.inner.list(dir)
  }

  async mkdir(name: string): Promise<void> {
    await this.inner.mkdir(name)
    await this.note(name, 'dir')
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

  async lock(): Promise<StorageLock> {
    const lock = await this.inner.lock()
    await this.note(LOCK_FILE_NAME, 'file')
    return lock
  }
}
