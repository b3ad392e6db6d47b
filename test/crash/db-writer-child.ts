// Child process for the Db SIGKILL test: opens the database in the folder, prints OPEN,
// then runs the key-level workload (test/crash/db-workload.ts) forever. Before issuing a
// write it prints `I <w> <group> <tree>:<key>:<len>,...`; after the promise that makes it
// durable resolved, `A <w>` ('sync': that write) or `F <w>` ('flush': every write up to w).
// The parent kills it with SIGKILL at random. A sixth argument `blobs` writes values over
// the blob threshold of its 16 KiB segments (a quarter segment) 40% of the time.

import { writeSync } from 'node:fs'
import { open } from '../../src/index.js'
import { Prng } from '../../src/util/prng.js'
import { blobValueLen, runWorkload } from './db-workload.js'

const [dir, seedArg, firstWArg, durabilityArg, ackEarlyArg, valuesArg] = process.argv.slice(2)
const durability = durabilityArg === 'sync' ? 'sync' : 'flush'
const db = await open(dir as string, {
  durability,
  segmentBytes: 16 * 1024,
  cacheCapacity: 32 * 1024,
  flushEveryMs: 20,
  nodeMaxBytes: 512,
  nodeMaxEntries: 16,
})
writeSync(1, 'OPEN\n')
const rng = new Prng(Number(seedArg))
let w = Number(firstWArg)
for (;;) {
  w = await runWorkload(
    db,
    rng,
    w,
    1000,
    {
      intent: (i) =>
        writeSync(1, `I ${i.w} ${i.group} ${i.ops.map((o) => `${o.tree}:${o.key}:${o.len}`).join(',')}\n`),
      ack: (upTo, prefix) => writeSync(1, `${prefix ? 'F' : 'A'} ${upTo}\n`),
    },
    {
      durability,
      ackEarly: ackEarlyArg === '1',
      ...(valuesArg === 'blobs' ? { valueLen: blobValueLen } : {}),
    },
  )
}
