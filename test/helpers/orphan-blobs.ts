// Counts blob files that no pointer in the recovered log names (orphans), by opening the log
// alone: recovery must have removed every one, whatever the crash left. The database must be
// closed (the log takes the folder's lock).

import { openStorage, type Storage } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'

export interface BlobCensus {
  /** Blob files in the folder. */
  files: number
  /** Files no pointer in the log names. */
  orphans: number
}

export async function blobCensus(pathOrStorage: string | Storage): Promise<BlobCensus> {
  const storage = typeof pathOrStorage === 'string' ? openStorage(pathOrStorage) : pathOrStorage
  const log = await Log.open(typeof pathOrStorage === 'string' ? pathOrStorage : 'db', {
    storage,
    flushEveryMs: 0,
  })
  try {
    const named = new Set<string>()
    for await (const rec of log.iterFrom(log.firstLsn)) {
      if (rec.isBlob) named.add((await log.blobRefAt(rec.lsn)).id.toString(16).padStart(16, '0'))
    }
    const files = await storage.list('blobs').catch(() => [] as string[])
    return { files: files.length, orphans: files.filter((f) => !named.has(f)).length }
  } finally {
    await log.close()
  }
}
