// Child process for the Db SIGKILL tests: prints OPENING, opens the database in the folder,
// prints OPEN, then runs the key-level workload (test/crash/db-workload.ts, the scenario
// named by its sixth argument) forever. Before issuing a write it prints
// `I <w> <group> <tree>:<key>:<len>,...`; after the promise that makes it durable resolved,
// `A <w>` ('sync': that write) or `F <w>` ('flush': every write up to w); `E <what>` when a
// call answered what it must not. The parent kills it with SIGKILL at random.
// argv: <dir> <seed> <first write id> <sync|flush>
//       <mutation: none|ack-early|ack-applied|split-batches> <scenario: mixed|overwrite-256|batches-8>
//       [blobs: values over the blob threshold of its 16 KiB segments (a quarter segment) 40% of the time]

import { writeSync } from 'node:fs'
import { open } from '../../src/index.js'
import { Prng } from '../../src/util/prng.js'
import { blobValueLen, runWorkload, type Scenario } from './db-workload.js'

const [dir, seedArg, firstWArg, durabilityArg, mutationArg, scenarioArg, valuesArg] = process.argv.slice(2)
const scenario = (scenarioArg ?? 'mixed') as Scenario
const durability = durabilityArg === 'sync' ? 'sync' : 'flush'
// The parent's kill armed before open counts from here (test/helpers/kill-child.ts).
writeSync(1, 'OPENING\n')
const db = await open(dir as string, {
  durability,
  segmentBytes: 16 * 1024,
  cacheCapacity: 32 * 1024,
  // The ack-applied mutation must not be rescued by the background flush.
  flushEveryMs: mutationArg === 'ack-applied' ? 0 : 20,
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
      wrongAnswer: (what) => writeSync(1, `E ${what}\n`),
    },
    {
      durability,
      ackEarly: mutationArg === 'ack-early',
      splitBatches: mutationArg === 'split-batches',
      ackApplied: mutationArg === 'ack-applied',
      scenario,
      moreKinds: true,
      ...(valuesArg === 'blobs' ? { valueLen: blobValueLen } : {}),
    },
  )
}
