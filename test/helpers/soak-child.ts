// Child process of `npm run soak` (scripts/soak.mjs, regimen R15): a mixed workload over one
// log until the parent kills it with SIGKILL. Record sizes are skewed (most small, some up to
// 1 MiB through blob files); single appends, batches, reservations (some aborted), unawaited
// and awaited flushes, and truncateBefore to keep the file bounded. Prints:
//   OPEN            the log is open (the parent arms its kill timer from here, or before)
//   ACK <seq>       a flush resolved: every record up to seq is acknowledged
//   TRUNC <seq>     records below seq may be dropped from now on (truncateBefore issued)
// Records are self-checking (test/crash/log-records.ts) and consecutive from <startSeq>.

import { writeSync } from 'node:fs'
import { Log } from '../../src/log/index.js'
import { Prng } from '../../src/util/prng.js'
import { encodeRecord } from '../crash/log-records.js'

const [dir, startArg, seedArg, segmentArg] = process.argv.slice(2)
const rng = new Prng(Number(seedArg))
let seq = Number(startArg)
const KEEP_RECORDS = 2000

/** 1 B to 1 MiB, heavily skewed towards small records (about Zipf on the exponent). */
function size(max: number): number {
  const exp = Math.floor(20 * rng.float() ** 3)
  return Math.min(max, rng.int(2 ** exp) + 1)
}

const log = await Log.open(dir as string, { segmentBytes: Number(segmentArg), flushEveryMs: 20 })
writeSync(1, 'OPEN\n')
// LSN of each recent record start, to pick a truncation point KEEP_RECORDS records back.
const recent: Array<[number, number]> = []
const note = (lsn: number, s: number): void => {
  recent.push([lsn, s])
  if (recent.length > KEEP_RECORDS) recent.shift()
}
for (let op = 0; ; op++) {
  const pick = rng.int(100)
  if (pick < 50) {
    const pad = Math.max(0, size(log.maxInlineBytes) - 12)
    note(log.append(encodeRecord(seq, 0, 1, pad)), seq)
    seq++
  } else if (pick < 70) {
    const n = 2 + rng.int(7)
    log.appendBatch(Array.from({ length: n }, (_, i) => encodeRecord(seq + i, i, n, rng.int(300))))
    seq += n
  } else if (pick < 73) {
    const pad = Math.max(0, size(1024 * 1024) - 12)
    note(await log.appendLarge(encodeRecord(seq, 0, 1, pad)), seq)
    seq++
  } else if (pick < 83) {
    const rec = encodeRecord(seq, 0, 1, rng.int(200))
    const r = log.reserve(rec.length)
    if (rng.int(4) === 0) {
      r.abort()
    } else {
      r.body.set(rec)
      note(r.complete(), seq)
      seq++
    }
  } else if (pick < 98) {
    const upTo = seq - 1
    const p = log.flush().then(() => writeSync(1, `ACK ${upTo}\n`))
    if (rng.int(2) === 0) await p
  } else if (recent.length === KEEP_RECORDS && (recent[0] as [number, number])[0] <= log.stableLsn) {
    const [lsn, s] = recent[0] as [number, number]
    writeSync(1, `TRUNC ${s}\n`)
    await log.truncateBefore(lsn)
  }
  await log.whenWritable()
  // Yield now and then, and pace the writer so a long soak does not only measure the disk.
  if (op % 16 === 0) await new Promise((r) => setTimeout(r, 1))
}
