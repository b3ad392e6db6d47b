// Child process for the Db SIGKILL tests: prints OPENING, opens the database in the folder,
// prints OPEN, then runs the key-level workload (test/crash/db-workload.ts, the scenario
// named by its sixth argument) forever. Before issuing a write it prints
// `I <w> <group> <tree>:<key>:<len>,...`; after the promise that makes it durable resolved,
// `A <w>` ('sync': that write) or `F <w>` ('flush': every write up to w); `E <what>` when a
// call answered what it must not; `S <n>` now and then, its inline writes so far. The parent
// kills it with SIGKILL at random.
// 'churn' (the kill-point test, test/crash/db-kill-points.test.ts) reaches the rare paths
// too: checkpoints every 32 KiB of log, and between rounds of 40 writes a scratch tree
// filled past a split and dropped, generateId() (persisting its counter every 8 ids; each
// id printed as `G <id>` once returned, the parent checks they only grow) and now and then
// close() and open() again (the closing checkpoint and witness file).
// argv: <dir> <seed> <first write id> <sync|flush>
//       <mutation: none|ack-early|ack-applied|split-batches> <scenario: mixed|overwrite-256|batches-8>
//       [values: blobs (over the blob threshold of its 16 KiB segments, a quarter segment, 40%
//        of the time) | some-blobs (5%) | - (mostly small)] [churn]

import { writeSync } from 'node:fs'
import { type Db, type OpenOptions, open, openOn } from '../../src/db.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { KILL_ODDS, KILL_SEED } from '../../src/util/kill-points.js'
import { Prng } from '../../src/util/prng.js'
import { blobValueLen, runWorkload, type Scenario, someBlobsValueLen } from './db-workload.js'

const [dir, seedArg, firstWArg, durabilityArg, mutationArg, scenarioArg, valuesArg, shapeArg] =
  process.argv.slice(2)
const scenario = (scenarioArg ?? 'mixed') as Scenario
const durability = durabilityArg === 'sync' ? 'sync' : 'flush'
const churn = shapeArg === 'churn'
const options: OpenOptions = {
  durability,
  segmentBytes: 16 * 1024,
  cacheCapacity: 32 * 1024,
  // The ack-applied mutation must not be rescued by the background flush.
  flushEveryMs: mutationArg === 'ack-applied' ? 0 : 20,
  nodeMaxBytes: 512,
  nodeMaxEntries: 16,
  ...(churn ? { idPersistInterval: 8 } : {}),
}
const valueLen =
  valuesArg === 'blobs' ? blobValueLen : valuesArg === 'some-blobs' ? someBlobsValueLen : undefined

/** open(), or for churn the same page cache with frequent checkpoints (not an open() option). */
async function openDb(): Promise<Db> {
  if (!churn) return open(dir as string, options)
  const store = await PageCache.open<TreePage>(dir as string, treeCodec, {
    segmentBytes: options.segmentBytes,
    cacheCapacity: options.cacheCapacity,
    flushEveryMs: options.flushEveryMs,
    checkpointEveryBytes: 32 * 1024,
  })
  return openOn(store, options)
}

if (KILL_ODDS) writeSync(1, `KILLPOINTS odds=1/${KILL_ODDS} seed=${KILL_SEED}\n`)
// The parent's kill armed before open counts from here (test/helpers/kill-child.ts).
writeSync(1, 'OPENING\n')
let db = await openDb()
writeSync(1, 'OPEN\n')
// `S <n>`: the lone durable rounds this instance wrote inline so far (docs/DESIGN.md, "Inline
// synced writes"), so the parent can tell that the kills landed on that path too.
setInterval(() => {
  db.stats().then(
    (s) =>
      writeSync(
        1,
        `S ${(s as { store: { logSync: { inlineWrites: number } } }).store.logSync.inlineWrites}\n`,
      ),
    () => {},
  )
}, 10).unref()
const rng = new Prng(Number(seedArg))
let w = Number(firstWArg)
for (;;) {
  w = await runWorkload(
    db,
    rng,
    w,
    churn ? 40 : 1000,
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
      ...(valueLen !== undefined ? { valueLen } : {}),
    },
  )
  if (churn) await churnRound()
}

/** The rare paths, on keys and trees the checker does not read (db-workload.ts reads '' and 't'). */
async function churnRound(): Promise<void> {
  if (rng.chance(0.5)) {
    const scratch = await db.openTree('scratch')
    // 40 keys over 16-entry nodes: splits; the drop frees every page of the tree.
    await db.applyBatch((b) => {
      for (let k = 0; k < 40; k++) b.insert(`s${k}`, 'x'.repeat(rng.int(40)), scratch)
    })
    for (let k = 0; k < 40; k += 3) await scratch.remove(`s${k}`)
    await db.dropTree('scratch')
  }
  for (let n = rng.int(12); n > 0; n--) writeSync(1, `G ${await db.generateId()}\n`)
  if (rng.chance(0.25)) {
    await db.close()
    db = await openDb()
  }
}
