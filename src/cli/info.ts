import { Log } from '../index.js'
import { checkExists } from './common.js'

export async function runInfo(o: { dir: string; json: boolean }): Promise<void> {
  // Log.open creates a missing log: a command that only reports must never make one.
  checkExists(o.dir)
  const log = await Log.open(o.dir, { flushEveryMs: 0 })
  try {
    const m = log.metrics()
    let records = 0
    let bytes = 0
    let blobs = 0
    let firstLsn: number | undefined
    let lastLsn: number | undefined
    for await (const r of log.iterFrom(0)) {
      records++
      bytes += r.data.length
      if (r.isBlob) blobs++
      firstLsn ??= r.lsn
      lastLsn = r.lsn
    }
    const info = {
      dir: o.dir,
      segmentBytes: log.segmentBytes,
      records,
      recordBytes: bytes,
      blobs,
      firstLsn: firstLsn ?? null,
      lastLsn: lastLsn ?? null,
      stableLsn: log.stableLsn,
      recoveryMs: Math.round(m.recoveryMs),
    }
    if (o.json) process.stdout.write(`${JSON.stringify(info)}\n`)
    else for (const [k, v] of Object.entries(info)) process.stdout.write(`${k.padEnd(14)} ${v}\n`)
  } finally {
    await log.close()
  }
}
