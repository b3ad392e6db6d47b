// A Storage over real files that records the permission bits of everything the log creates,
// right after it is created: files opened with 'create' or 'createOrOpen', folders made
// with mkdir, and the LOCK file once the lock is taken. Short-lived files (conf.tmp,
// witness.tmp, a tail journal) are seen too, not only what is left at the end.

import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import type { OpenMode, StorageFile, StorageLock } from '../../src/io/index.js'
import { FileStorage, LOCK_FILE_NAME } from '../../src/io/index.js'

export interface CreatedEntry {
  name: string
  kind: 'file' | 'dir'
  mode: number
}

import { ForwardingStorage } from './forwarding-storage.js'

export class ModeProbeStorage extends ForwardingStorage {
  readonly created: CreatedEntry[] = []

  constructor(readonly rootPath: string) {
    super(new FileStorage(rootPath))
  }

  private async note(name: string, kind: 'file' | 'dir'): Promise<void> {
    const st = await fs.lstat(path.join(await fs.realpath(this.inner.location), name))
    this.created.push({ name, kind, mode: st.mode & 0o7777 })
  }

  override async ensureRoot(): Promise<void> {
    await this.inner.ensureRoot()
    await this.note('.', 'dir')
  }

  override async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (mode === 'create' || mode === 'createOrOpen') await this.note(name, 'file')
    return f
  }

  override async mkdir(name: string): Promise<void> {
    await this.inner.mkdir(name)
    await this.note(name, 'dir')
  }

  override async lock(): Promise<StorageLock> {
    const lock = await this.inner.lock()
    await this.note(LOCK_FILE_NAME, 'file')
    return lock
  }
}
