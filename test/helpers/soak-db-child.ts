// Child process of the R15 database soak (test/crash/db-soak.ts): opens the database with
// open(), reads every tree into its model, then writes until the parent kills it with
// SIGKILL: Zipf keys over three trees (test/crash/db-soak-workload.ts), values of 1 B to
// 1 MiB, inserts, removes, applyBatch batches, compare-and-swap (ones that must succeed and
// ones that must fail), up to 4 writes in flight over disjoint keys, some writes with
// `durable: true` (or the whole run in 'sync' mode) and `await db.flush()` for the others.
// Between groups, when nothing is in flight, range scans and gets are checked against the
// model. A small segment size keeps cleaning and checkpoints running all the time.
// Prints, like test/crash/db-writer-child.ts:
//   OPENING / OPEN        before / after open()
//   I <w> <group> <tree>:<key>:<len>,...   before issuing write w (len -1: remove)
//   A <w>                 write w is durable (its own promise resolved, sync or durable)
//   F <w>                 db.flush() resolved: every write up to w is durable
//   E <what>              a call answered what it must not
//   S <counters>          cumulative counts (ranges checked, CAS, ...), now and then
// argv: <dir> <seed> <first write id> <segment bytes> <sync|flush> <mutation: none|ack-applied|short-value>
//   ack-applied: acknowledge each write once applied and never flush (background flush off;
//                values of at most 100 B);
//   short-value: one write in 10 stores a value one byte shorter than it announced.

import { writeSync } from 'node:fs'
import { type Db, open, type Tree } from '../../src/index.js'
import { Prng } from '../../src/util/prng.js'
import {
  SOAK_KEYS_PER_TREE,
  SOAK_TREES,
  soakKeyIndex,
  soakKeyName,
  soakValueBytes,
  soakValueLen,
  soakValueLenDraw,
  soakValueWrite,
  zipfKey,
} from '../crash/db-soak-workload.js'

const [dir, seedArg, firstWArg, segmentArg, durabilityArg, mutationArg] = process.argv.slice(2)
const mutation = mutationArg ?? 'none'
const sync = durabilityArg === 'sync'
const say = (line: string): void => {
  writeSync(1, `${line}\n`)
}

say('OPENING')
const db: Db = await open(dir as string, {
  durability: sync ? 'sync' : 'flush',
  segmentBytes: Number(segmentArg),
  // Small enough that pages are evicted and paged in again all the time.
  cacheCapacity: 256 * 1024,
  flushEveryMs: mutation === 'ack-applied' ? 0 : 20,
  nodeMaxBytes: 2048,
  nodeMaxEntries: 32,
})
say('OPEN')

const rng = new Prng(Number(seedArg))
const trees: Tree[] = [db]
for (const name of SOAK_TREES.slice(1)) trees.push(await db.openTree(name))

/** Key slot `${tree}/${key}` → [write id, value length] of what it holds now. */
const model = new Map<string, [number, number]>()
const wrong = (what: string): void => say(`E ${what}`)
for (const [t, tree] of trees.entries())
  for await (const [k, v] of tree.range()) {
    const key = soakKeyIndex(k)
    const w = soakValueWrite(v)
    if (key < 0 || w < 0) wrong(`startup scan: tree ${t} holds a foreign entry`)
    else model.set(`${t}/${key}`, [w, v.length])
  }

interface Op {
  tree: number
  key: number
  len: number
}
// Under ack-applied, small values only: a blob's own sync or a checkpoint writes the log's
// buffer out, and on a loaded machine the child spends most of its time in those, so a kill
// would seldom find an unflushed acknowledged write to lose.
const valueLen = (): number => (mutation === 'ack-applied' ? 1 + rng.int(100) : soakValueLenDraw(rng))
const counts = {
  groups: 0,
  writes: 0,
  batches: 0,
  cas: 0,
  casRefused: 0,
  ranges: 0,
  rangeEntries: 0,
  gets: 0,
}
let w = Number(firstWArg)

/** Checks one value read back against the model's entry for its slot. */
function checkValue(what: string, slot: string, v: Uint8Array | undefined): void {
  const m = model.get(slot)
  if (v === undefined) {
    if (m !== undefined) wrong(`${what}: ${slot} is missing (holds write ${m[0]})`)
    return
  }
  const got = soakValueWrite(v)
  if (m === undefined || got !== m[0] || v.length !== m[1])
    wrong(`${what}: ${slot} holds write ${got} (${v.length} B), expected ${m?.[0]} (${m?.[1]} B)`)
}

async function rangeCheck(): Promise<void> {
  const t = rng.int(trees.length)
  const a = rng.int(SOAK_KEYS_PER_TREE)
  const b = a + 1 + rng.int(200)
  const reverse = rng.chance(0.3)
  const limit = rng.chance(0.5) ? 1 + rng.int(40) : undefined
  const expect: number[] = []
  for (let k = a; k < Math.min(b, SOAK_KEYS_PER_TREE); k++) if (model.has(`${t}/${k}`)) expect.push(k)
  if (reverse) expect.reverse()
  if (limit !== undefined) expect.splice(limit)
  const got: number[] = []
  const tree = trees[t] as Tree
  for await (const [k, v] of tree.range({
    gte: soakKeyName(a),
    lt: soakKeyName(b),
    reverse,
    ...(limit === undefined ? {} : { limit }),
  })) {
    const key = soakKeyIndex(k)
    got.push(key)
    checkValue('range', `${t}/${key}`, v)
  }
  counts.ranges++
  counts.rangeEntries += got.length
  if (got.join() !== expect.join())
    wrong(
      `range ${t} [${a}, ${b}) reverse=${reverse} limit=${limit}: keys ${got.slice(0, 8)} expected ${expect.slice(0, 8)}`,
    )
}

/** A compare-and-swap whose expected value is wrong must be refused with the current value. */
async function casRefusedCheck(): Promise<void> {
  const t = rng.int(trees.length)
  const key = zipfKey(rng)
  const slot = `${t}/${key}`
  const m = model.get(slot)
  const stale = soakValueBytes(w + 1_000_000_000, 8)
  const r = await (trees[t] as Tree).compareAndSwap(soakKeyName(key), stale, soakValueBytes(w, 8))
  counts.casRefused++
  if (r.ok) wrong(`compareAndSwap of ${slot} against a value it never held succeeded`)
  else if (m !== undefined || r.current !== undefined) checkValue('refused cas', slot, r.current)
}

function issue(id: number, ops: Op[], kind: 'plain' | 'cas', durable: boolean): Promise<void> {
  const value = (o: Op): Buffer => {
    const v = soakValueBytes(id, o.len)
    return mutation === 'short-value' && id % 10 === 0 ? v.subarray(0, v.length - 1) : v
  }
  const opts = durable ? { durable: true } : undefined
  const done = (): void => {
    for (const o of ops) {
      if (o.len < 0) model.delete(`${o.tree}/${o.key}`)
      else model.set(`${o.tree}/${o.key}`, [id, soakValueLen(id, o.len)])
    }
    if (sync || durable || mutation === 'ack-applied') say(`A ${id}`)
  }
  if (kind === 'cas') {
    const o = ops[0] as Op
    const t = trees[o.tree] as Tree
    const cur = model.get(`${o.tree}/${o.key}`)
    const expected = cur === undefined ? undefined : soakValueBytes(cur[0], cur[1])
    counts.cas++
    return t.compareAndSwap(soakKeyName(o.key), expected, value(o), opts).then((r) => {
      // Nothing else writes this key meanwhile: a refusal is a wrong answer, and nothing was written.
      if (!r.ok) {
        wrong(`compareAndSwap of ${o.tree}/${o.key} against the model's value was refused`)
        return
      }
      done()
    })
  }
  if (ops.length > 1) {
    counts.batches++
    return db
      .applyBatch((b) => {
        for (const o of ops) {
          if (o.len < 0) b.remove(soakKeyName(o.key), trees[o.tree])
          else b.insert(soakKeyName(o.key), value(o), trees[o.tree])
        }
      }, opts)
      .then(done)
  }
  const o = ops[0] as Op
  const t = trees[o.tree] as Tree
  return (o.len < 0 ? t.remove(soakKeyName(o.key), opts) : t.insert(soakKeyName(o.key), value(o), opts)).then(
    done,
  )
}

for (;;) {
  // A group: up to 4 writes issued together over disjoint keys (their order is the Db's).
  const g = w
  const n = rng.chance(0.3) ? 2 + rng.int(3) : 1
  const used = new Set<string>()
  const running: Promise<void>[] = []
  for (let i = 0; i < n; i++) {
    const kind = n === 1 && rng.chance(0.1) ? 'cas' : 'plain'
    const width = kind === 'plain' && rng.chance(0.25) ? 2 + rng.int(7) : 1
    const ops: Op[] = []
    for (let j = 0; j < width; j++) {
      const o = { tree: rng.int(trees.length), key: zipfKey(rng), len: 0 }
      if (used.has(`${o.tree}/${o.key}`)) continue
      used.add(`${o.tree}/${o.key}`)
      o.len = kind === 'plain' && rng.chance(0.15) ? -1 : valueLen()
      ops.push(o)
    }
    if (ops.length === 0) continue
    const id = w++
    say(
      `I ${id} ${g} ${ops.map((o) => `${o.tree}:${o.key}:${o.len < 0 ? -1 : soakValueLen(id, o.len)}`).join(',')}`,
    )
    counts.writes++
    running.push(issue(id, ops, kind, !sync && mutation !== 'ack-applied' && rng.chance(0.1)))
  }
  await Promise.all(running)
  counts.groups++
  if (!sync && mutation !== 'ack-applied' && rng.chance(0.25)) {
    const upTo = w - 1
    await db.flush()
    say(`F ${upTo}`)
  }
  if (rng.chance(0.05)) await rangeCheck()
  if (rng.chance(0.05)) {
    const t = rng.int(trees.length)
    const key = zipfKey(rng)
    counts.gets++
    checkValue('get', `${t}/${key}`, await (trees[t] as Tree).get(soakKeyName(key)))
  }
  if (rng.chance(0.01)) await casRefusedCheck()
  if (counts.groups % 10 === 0)
    say(
      `S ${Object.entries(counts)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    )
  // Garbage the size of a large value now and then, so the collector works under load too.
  if (rng.chance(0.02)) Buffer.alloc(256 * 1024).fill(rng.int(256))
}
