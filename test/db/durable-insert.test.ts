// What one awaited insert costs under durability 'sync', counted on the simulated disk: one
// log record in one durable round of the log (one O_DSYNC write; or, once per segment the
// inserts fill, a write, the zeros that pre-extend the segment and one datasync: DESIGN
// "Small durable rounds"), no read when its leaf is resident and
// only a page-in of that leaf when it is not, and nothing else (no counter or META record,
// no checkpoint, no second sync). The durable-1 figure of bench:peers is this path; what it
// costs per insert is in docs/DESIGN.md, "Durable writes, one writer". Each insert that
// resolved is then on disk: a power cut keeps it.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Db, openOn } from '../../src/db.js'
import { SimDisk, type TraceRecord } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'

const enc = (s: string): Uint8Array => new TextEncoder().encode(s)
const dec = (b: Uint8Array | undefined): string | undefined =>
  b === undefined ? undefined : new TextDecoder().decode(b)
const keyOf = (i: number): string => `key-${String(i).padStart(5, '0')}`
const KEYS = 2000

async function openSync(disk: SimDisk): Promise<{ db: Db; store: PageCache<TreePage> }> {
  // As open() opens it (src/db.ts), with the flush timer off so that nothing but the
  // inserts writes.
  const store = await PageCache.open<TreePage>('db', treeCodec, {
    storage: disk.storage('db'),
    deferAccept: true,
    flushEveryMs: 0,
  })
  return { db: await openOn(store, { durability: 'sync', flushEveryMs: 0 }), store }
}

/** A lone durable round: one synced write. */
const SYNCED_ROUND = ['write log synced']
/** The round that pre-extends its segment: the record, the zeros, one datasync. */
const EXTENDING_ROUND = ['write log', 'write log', 'datasync log']

/** Checks `ops` is one durable round; says whether it was the pre-extending one. */
function oneRound(ops: readonly string[], what: string): boolean {
  const extending = ops.length === EXTENDING_ROUND.length
  assert.deepEqual(ops, extending ? EXTENDING_ROUND : SYNCED_ROUND, `${what}: one durable round`)
  return extending
}

/** The ops of the traced window, as `kind name` strings. */
function opsOf(trace: readonly TraceRecord[]): string[] {
  return trace.map((r) => `${r.kind} ${r.name}${r.synced === true ? ' synced' : ''}`)
}

/** Traces `insert` and counts the records the log appended for it. */
async function traced(
  disk: SimDisk,
  store: PageCache<TreePage>,
  insert: () => Promise<unknown>,
): Promise<{ ops: string[]; records: number }> {
  const before = store.log.metrics().recordsAppended
  disk.setTracing(true)
  const from = disk.trace.length
  await insert()
  const ops = opsOf(disk.trace.slice(from))
  disk.setTracing(false)
  return { ops, records: store.log.metrics().recordsAppended - before }
}

test('a durable insert into a resident leaf is one log record in one durable round', async () => {
  const disk = new SimDisk({ seed: 41, latency: false })
  const { db, store } = await openSync(disk)
  await db.applyBatch((b) => {
    for (let i = 0; i < KEYS; i++) b.insert(keyOf(i), `v0-${i}`)
  })
  // Every leaf resident now: an overwrite of any key needs no read.
  for (let i = 0; i < KEYS; i += 97) assert.equal(dec(await db.get(keyOf(i))), `v0-${i}`)
  let extending = 0
  for (let i = 0; i < KEYS; i += 97) {
    const { ops, records } = await traced(disk, store, () => db.insert(keyOf(i), `v1-${i}`))
    assert.equal(records, 1, `insert ${i}: log records appended`)
    if (oneRound(ops, `insert ${i}`)) extending++
  }
  // 21 small rounds fill far less than a segment: at most one of them extends it.
  assert.ok(extending <= 1, `${extending} rounds pre-extended the segment`)
  // A resolved insert is on disk: the power cut right after it keeps it.
  const after = disk.crash({ seed: 7 })
  const again = await openSync(after)
  for (let i = 0; i < KEYS; i += 97) assert.equal(dec(await again.db.get(keyOf(i))), `v1-${i}`)
  await again.db.close()
})

test('a durable insert into a leaf not resident pages in that leaf only, then one durable round', async () => {
  const disk = new SimDisk({ seed: 42, latency: false })
  let { db, store } = await openSync(disk)
  for (let i = 0; i < KEYS; i++) await db.insert(keyOf(i), `v0-${i}`)
  await db.close()
  ;({ db, store } = await openSync(disk))
  // The path down to the leaf first (an awaited get pages in root and inner nodes), then
  // a key of another leaf: its insert finds every inner node resident.
  assert.equal(dec(await db.get(keyOf(0))), 'v0-0')
  const i = KEYS - 1
  const resident = store.stats().residentPages
  const { ops, records } = await traced(disk, store, () => db.insert(keyOf(i), enc(`v1-${i}`)))
  assert.equal(records, 1, 'log records appended')
  const reads = ops.filter((o) => o === 'read log').length
  assert.ok(reads >= 1, `the leaf was paged in: ${ops.join(', ')}`)
  assert.equal(store.stats().residentPages - resident, 1, 'one page paged in: the leaf')
  oneRound(
    ops.filter((o) => o !== 'read log'),
    'besides the page-in',
  )
  await db.close()
})
