// The io layer's public face: the Storage interface and its two backends. Other layers
// import from here only.

import { FileStorage, type FileStorageOptions } from './file-storage.js'
import type { Storage } from './storage.js'

export { FileStorage, type FileStorageOptions } from './file-storage.js'
export { LOCK_FILE_NAME, type LockRecord } from './folder-lock.js'
export {
  type CrashOptions,
  type DiskView,
  type FailAt,
  type FaultCode,
  type InjectedFaults,
  type OpKind,
  SimDisk,
  type SimDiskOptions,
  type SimFaults,
  type TraceRecord,
} from './sim-storage.js'
export type { OpenMode, Storage, StorageFile, StorageLock } from './storage.js'
export { readNowUpTo } from './storage.js'

/** Real-file storage for the database folder at `path` (relative paths resolve against cwd). */
export function openStorage(path: string, options?: FileStorageOptions): Storage {
  return new FileStorage(path, options)
}
