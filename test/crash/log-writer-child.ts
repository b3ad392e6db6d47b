// Child process for the SIGKILL test: appends numbered records (single, batched and large)
// to a log forever, and after each acknowledged flush prints `ACK <seq>` (the highest
// sequence number it knows is durable). The parent kills it with SIGKILL at random.

import { writeSync } from 'node:fs'
import { Log } from '../../src/log/index.js'
import { encodeRecord } from './log-records.js'

const [dir, startArg, seedArg, segmentArg] = process.argv.slice(2)
let seq = Number(startArg)
let rng = Number(seedArg) >>> 0 || 1
const rand = (n: number): number => {
  rng ^= rng << 13
  rng ^= rng >>> 17
  rng ^= rng << 5
  return (rng >>> 0) % n
}

const log = await Log.open(dir as string, { segmentBytes: Number(segmentArg), flushEveryMs: 5 })
writeSync(1, 'OPEN\n')
for (;;) {
  const pick = rand(10)
  if (pick < 6) {
    log.append(encodeRecord(seq, 0, 1, rand(300)))
    seq++
  } else if (pick < 9) {
    const n = 2 + rand(6)
    const batch: Uint8Array[] = []
    for (let i = 0; i < n; i++) batch.push(encodeRecord(seq + i, i, n, rand(200)))
    log.appendBatch(batch)
    seq += n
  } else {
    // Over a quarter segment: goes to a blob file.
    await log.appendLarge(encodeRecord(seq, 0, 1, log.maxInlineBytes + 1 + rand(2000)))
    seq++
  }
  if (rand(4) === 0) {
    await log.flush()
    writeSync(1, `ACK ${seq - 1}\n`)
  }
  if (rand(8) === 0) await new Promise((r) => setImmediate(r))
}
