// `bobsled demo`, the README's main job: write records into a real database, flush, close,
// reopen (running recovery), read every record back and check it, and say how fast.

import { InvalidArgumentError } from '../index.js'
import { type CommonOptions, emit, fmt, mib, openOrCreate, perSec, progress } from './common.js'

export interface DemoOptions extends CommonOptions {
  records: number
  sizeBytes: number
  progress: boolean
}

/** The tree the demo owns; it is cleared at the start of every run. */
const DEMO_TREE = 'demo'
const BATCH_OPS = 1000

const keyOf = (i: number): string => `record:${String(i).padStart(10, '0')}`

/** A value that carries its index, so the read-back can tell every record apart. */
function recordValue(i: number, into: Uint8Array): Uint8Array {
  into.fill(0x2e)
  new DataView(into.buffer, into.byteOffset, into.byteLength).setUint32(0, i)
  return into
}

export async function runDemo(o: DemoOptions): Promise<void> {
  if (o.sizeBytes < 4)
    throw new InvalidArgumentError('--size must be at least 4 bytes (each value carries its index)')
  let db = await openOrCreate(o.dir)
  let tree = await db.openTree(DEMO_TREE)
  await tree.clear()
  const buf = new Uint8Array(o.sizeBytes)
  const bar = progress(o, 'inserting', o.records)
  const t0 = performance.now()
  for (let i = 0; i < o.records; i += BATCH_OPS) {
    const end = Math.min(o.records, i + BATCH_OPS)
    await db.applyBatch((b) => {
      // insert copies the bytes, so one buffer serves every record.
      for (let j = i; j < end; j++) b.insert(keyOf(j), recordValue(j, buf), tree)
    })
    bar.update(end)
  }
  const insertMs = performance.now() - t0
  await db.flush()
  const insertAndFlushMs = performance.now() - t0
  bar.stop()
  await db.close()

  const t1 = performance.now()
  db = await openOrCreate(o.dir)
  const reopenMs = performance.now() - t1
  tree = await db.openTree(DEMO_TREE)
  const t2 = performance.now()
  let readBack = 0
  let wrong = 0
  for await (const [k, v] of tree.range()) {
    const i = readBack
    const ok =
      Buffer.from(k).toString() === keyOf(i) &&
      v.length === o.sizeBytes &&
      new DataView(v.buffer, v.byteOffset).getUint32(0) === i
    if (!ok) wrong++
    readBack++
  }
  const scanMs = performance.now() - t2
  const sizeOnDisk = await db.sizeOnDisk()
  const stats = (await db.stats()) as {
    store?: { recovery?: { checkpoint?: string; replayedRecords?: number } }
  }
  await db.close()

  const summary = {
    dir: o.dir,
    tree: DEMO_TREE,
    inserted: o.records,
    valueBytes: o.sizeBytes,
    insertMs: Math.round(insertMs),
    insertAndFlushMs: Math.round(insertAndFlushMs),
    insertsPerSec: perSec(o.records, insertAndFlushMs),
    reopenMs: Math.round(reopenMs),
    recoveredFrom: stats.store?.recovery?.checkpoint ?? null,
    replayedRecords: stats.store?.recovery?.replayedRecords ?? 0,
    readBack,
    wrong,
    scanMs: Math.round(scanMs),
    scanPerSec: perSec(readBack, scanMs),
    sizeOnDisk,
  }
  emit(o, summary, () =>
    [
      `folder         ${o.dir} (tree "${DEMO_TREE}")`,
      `inserted       ${fmt(o.records)} records (${o.sizeBytes} B values) in batches of ${BATCH_OPS}`,
      `insert + flush ${summary.insertAndFlushMs} ms  (${fmt(summary.insertsPerSec)} records/s, durable at the end)`,
      `reopened       in ${summary.reopenMs} ms (recovery from ${summary.recoveredFrom ?? 'the log start'}, ${fmt(summary.replayedRecords)} log records replayed)`,
      `read back      ${fmt(readBack)} records in key order in ${summary.scanMs} ms (${fmt(summary.scanPerSec)} records/s), ${wrong === 0 ? 'every one intact' : `${fmt(wrong)} WRONG`}`,
      `size on disk   ${mib(sizeOnDisk)}`,
    ].join('\n'),
  )
  if (readBack !== o.records || wrong !== 0) {
    process.stderr.write(`bobsled: read back ${readBack} records (${wrong} wrong), expected ${o.records}\n`)
    process.exitCode = 1
  }
}
