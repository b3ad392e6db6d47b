// `bobsled stats`: where the bytes on disk and in memory go, and how many entries each tree holds.

import { type CommonOptions, emit, fmt, mib, openExisting, pickTrees } from './common.js'

// The page cache's figures as db.stats() reports them under `store` (README "API").
interface StoreStats {
  pages?: number
  residentPages?: number
  cacheBytes?: number
  cacheCapacity?: number
  liveBytes?: number
  liveBlobBytes?: number
  deadBlobBytes?: number
  segments?: number
  fileSlots?: number
  segmentBytes?: number
  checkpointsWritten?: number
  recovery?: { ms?: number; checkpoint?: string; replayedRecords?: number }
}

export async function runStats(o: CommonOptions & { tree: string | undefined }): Promise<void> {
  const db = await openExisting(o.dir)
  try {
    const stats = (await db.stats()) as { lastLsn?: number; stableLsn?: number; store?: StoreStats }
    const sizeOnDisk = await db.sizeOnDisk()
    const trees: Array<{ name: string; entries: number; keyBytes: number; valueBytes: number }> = []
    for (const t of await pickTrees(db, o.tree)) {
      let entries = 0
      let keyBytes = 0
      let valueBytes = 0
      for await (const [k, v] of t.range()) {
        entries++
        keyBytes += k.length
        valueBytes += v.length
      }
      trees.push({ name: t.name, entries, keyBytes, valueBytes })
    }
    const s = stats.store ?? {}
    const userBytes = trees.reduce((a, t) => a + t.keyBytes + t.valueBytes, 0)
    const liveBytes = (s.liveBytes ?? 0) + (s.liveBlobBytes ?? 0)
    const logBytes = (s.fileSlots ?? 0) * (s.segmentBytes ?? 0)
    const deadBlobBytes = s.deadBlobBytes ?? 0
    const space = {
      sizeOnDisk,
      logFileBytes: logBytes,
      liveBytes,
      // Blob files of overwritten pages, kept until cleaning drops the segment of their pointer.
      deadBlobBytes,
      // Everything on disk that is not a live page: old page versions, checkpoints, headers.
      notLiveBytes: Math.max(0, sizeOnDisk - liveBytes),
      userBytes,
      // Disk bytes per byte of keys and values: the cost of the log structure and old versions.
      spaceAmplification: userBytes === 0 ? null : Number((sizeOnDisk / userBytes).toFixed(2)),
    }
    const memory = {
      cacheBytes: s.cacheBytes ?? 0,
      cacheCapacity: s.cacheCapacity ?? 0,
      pages: s.pages ?? 0,
      residentPages: s.residentPages ?? 0,
      rssBytes: process.memoryUsage().rss,
    }
    const doc = { dir: o.dir, trees, space, memory, db: stats }
    emit(o, doc, () => {
      const lines = [`database      ${o.dir}`, 'trees']
      for (const t of trees) {
        const name = t.name === '' ? '(default)' : t.name
        lines.push(
          `  ${name.padEnd(20)} ${fmt(t.entries).padStart(12)} entries  ${mib(t.keyBytes)} keys  ${mib(t.valueBytes)} values`,
        )
      }
      lines.push(
        'space',
        `  on disk       ${mib(sizeOnDisk)}  (log, blobs, checkpoints)`,
        `  log segments  ${fmt(s.fileSlots ?? 0)} × ${mib(s.segmentBytes ?? 0)}  (capacity ${mib(logBytes)}; the last one fills as it is written)`,
        `  live pages    ${mib(liveBytes)}  (the current version of every tree page)`,
        `  not live      ${mib(space.notLiveBytes)}  (old page versions, checkpoints, headers; cleaning reclaims old versions)`,
        ...(deadBlobBytes > 0
          ? [
              `    dead blobs  ${mib(deadBlobBytes)}  (blob files of overwritten pages, freed with their pointer's segment)`,
            ]
          : []),
        `  keys + values ${mib(userBytes)}  → space amplification ${space.spaceAmplification ?? 'n/a'}x`,
        'memory',
        `  page cache    ${mib(memory.cacheBytes)} of ${mib(memory.cacheCapacity)}  (${fmt(memory.residentPages)} of ${fmt(memory.pages)} pages resident)`,
        `  process RSS   ${mib(memory.rssBytes)}  (this CLI process, after reading every tree)`,
        'log',
        `  stable LSN    ${stats.stableLsn ?? 'n/a'}`,
        `  recovery      ${Math.round(s.recovery?.ms ?? 0)} ms from ${s.recovery?.checkpoint ?? 'no checkpoint'}, ${fmt(s.recovery?.replayedRecords ?? 0)} records replayed`,
      )
      return lines.join('\n')
    })
  } finally {
    await db.close()
  }
}
