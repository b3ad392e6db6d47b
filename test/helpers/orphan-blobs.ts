// Counts blob files that no pointer in the log names (orphans): lists the folder's blob files,
// then opens the log alone and collects the blob ids its pointers name. Run after a database
// was reopened and closed, it checks that recovery left no orphan, whatever the crash left.
// The database must be closed (the log takes the folder's lock); this open removes orphans.

import { openStorage, type Storage } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'

export interface BlobCensus {
  /** Blob files in the folder. */
  files: number
  /** Files no pointer in the log names. */
  orphans: number
}

/** The census against an open log (after its recovery): files listed now, pointers it holds. */
export async function blobCensusOf(log: Log, storage: Storage): Promise<BlobCensus> {
  const files = await storage.list('blobs').catch(() => [] as string[])
  const named = await namedBlobs(log)
  return { files: files.length, orphans: files.filter((f) => !named.has(f)).length }
}

async function namedBlobs(log: Log): Promise<Set<string>> {
  const named = new Set<string>()
  for await (const rec of log.iterFrom(log.firstLsn)) {
    if (rec.isBlob) named.add((await log.blobRefAt(rec.lsn)).id.toString(16).padStart(16, '0'))
  }
  return named
}

export async function blobCensus(pathOrStorage: string | Storage): Promise<BlobCensus> {
  const storage = typeof pathOrStorage === 'string' ? openStorage(pathOrStorage) : pathOrStorage
  // Listed before the log opens: its recovery removes orphans.
  const files = await storage.list('blobs').catch(() => [] as string[])
  const log = await Log.open(typeof pathOrStorage === 'string' ? pathOrStorage : 'db', {
    storage,
    flushEveryMs: 0,
  })
  try {
    const named = await namedBlobs(log)
    return { files: files.length, orphans: files.filter((f) => !named.has(f)).length }
  } finally {
    await log.close()
  }
}
