// One peer's run, in its own process (so its peak RSS is its own): started by run.mjs with
// `node child.mjs <peer> <config JSON>`, prints one progress line per figure and sends the
// figures back over IPC.
//
// Order, all on one database folder:
//   bulk load (bulk setting) → disk after load → random reads → ordered scan → close →
//   reopen at the durable setting (timed: open + first get) → durable writes, 1 writer then
//   64 (overwrites of random loaded keys, so live data stays records × 116 bytes) → close →
//   open (bulk setting) → overwrite every key 3× → sync → disk → close → disk.

import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { loadPeer } from './adapters/index.mjs'
import { fill, KEY_BYTES, pick, Records, VALUE_BYTES } from './data.mjs'
import { diskCeiling } from './disk.mjs'

const OVERWRITE_PASSES = 3
/** PRNG stream ids (see Records.stream): one per purpose. */
const STREAM_READS = 1
const STREAM_WRITERS = 1000
/** Each of the two ways disk.mjs measures, before and after the durable runs. */
const DISK_CEILING_MS = 750

const now = () => performance.now()

function say(peer, what, text) {
  console.log(`  ${peer.padEnd(15)} ${what.padEnd(28)} ${text}`)
}

const int = (v) => Math.round(v).toLocaleString('en-US')

/** Bytes a folder takes: allocated (st_blocks, what `du` counts) and apparent (st_size). */
async function folderBytes(dir) {
  let allocated = 0
  let apparent = 0
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) {
      const sub = await folderBytes(p)
      allocated += sub.allocated
      apparent += sub.apparent
    } else {
      // An engine compacting in the background may delete a file between readdir and stat.
      const st = await fs.stat(p).catch((err) => {
        if (err.code === 'ENOENT') return undefined
        throw err
      })
      if (st === undefined) continue
      allocated += st.blocks * 512
      apparent += st.size
    }
  }
  return { allocated, apparent }
}

async function writeAll(db, data, pass) {
  let records = 0
  for (const { keys, values } of data.batches(pass)) {
    await db.writeBatch(keys, values)
    records += keys.length
  }
  return records
}

/** `reads` gets of random loaded keys, one at a time; `get` is sync or returns a promise. */
async function randomReads(peer, get, isSync, data, reads) {
  const next = data.stream(STREAM_READS)
  const order = new Uint32Array(reads)
  for (let i = 0; i < reads; i++) order[i] = pick(next, data.records)
  let misses = 0
  const t0 = now()
  if (isSync) {
    for (let i = 0; i < reads; i++) {
      const v = get(data.key(order[i]))
      if (v === undefined || v.length !== VALUE_BYTES) misses++
    }
  } else {
    for (let i = 0; i < reads; i++) {
      const v = await get(data.key(order[i]))
      if (v === undefined || v.length !== VALUE_BYTES) misses++
    }
  }
  const ms = now() - t0
  if (misses !== 0) throw new Error(`${peer.name}: ${misses} of ${reads} reads of loaded keys missed`)
  return { opsPerSec: reads / (ms / 1000), ms, reads }
}

async function orderedScan(peer, db, data) {
  const prev = Buffer.alloc(KEY_BYTES)
  let count = 0
  let bytes = 0
  let disorder = 0
  const t0 = now()
  await db.scan((key, value) => {
    if (count > 0 && Buffer.compare(prev, key) >= 0) disorder++
    prev.set(key)
    count++
    bytes += key.length + value.length
  })
  const ms = now() - t0
  if (count !== data.records || disorder !== 0) {
    throw new Error(`${peer.name}: scan saw ${count} of ${data.records} records, ${disorder} out of order`)
  }
  return { recordsPerSec: count / (ms / 1000), ms, bytes }
}

/** `writers` async loops of durable single-record overwrites for `durableMs`. */
async function durableWrites(db, data, writers, durableMs, streamBase) {
  let ops = 0
  const t0 = now()
  const end = t0 + durableMs
  const writer = async (w) => {
    const next = data.stream(streamBase + w)
    while (now() < end) {
      const value = Buffer.alloc(VALUE_BYTES)
      fill(next, value)
      await db.put(data.key(pick(next, data.records)), value)
      ops++
    }
  }
  await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)))
  const ms = now() - t0
  return { opsPerSec: ops / (ms / 1000), ops, ms, writers }
}

async function run(name, config) {
  const peer = await loadPeer(name)
  const data = new Records(config.seed, config.records)
  const dir = config.dir
  const liveBytes = data.records * (KEY_BYTES + VALUE_BYTES)
  const result = { name, label: peer.label, settings: settingsOf(peer), liveBytes }

  let db = await peer.open(dir, 'bulk')
  let t0 = now()
  const loaded = await writeAll(db, data, 0)
  await db.sync()
  let ms = now() - t0
  result.bulk = { recordsPerSec: loaded / (ms / 1000), ms, records: loaded }
  say(name, 'bulk load', `${int(result.bulk.recordsPerSec)} rec/s (${(ms / 1000).toFixed(2)} s)`)

  result.diskAfterLoad = await folderBytes(dir)
  if (db.sizeOnDisk) result.diskAfterLoad.engine = await db.sizeOnDisk()
  say(name, 'disk after load', `${(result.diskAfterLoad.allocated / 1e6).toFixed(1)} MB`)

  result.reads = await randomReads(peer, db.get, peer.isGetSync, data, config.reads)
  say(name, `random reads (${int(config.reads)})`, `${int(result.reads.opsPerSec)} ops/s`)
  // The same reads through an awaited get(), for peers that have one (bobsled's only get is).
  if (db.getAwaited) {
    result.readsAwaited = await randomReads(peer, db.getAwaited, false, data, config.reads)
    say(name, 'random reads, awaited get()', `${int(result.readsAwaited.opsPerSec)} ops/s`)
  } else if (!peer.isGetSync) {
    result.readsAwaited = result.reads
  }

  result.scan = await orderedScan(peer, db, data)
  say(name, 'ordered scan', `${int(result.scan.recordsPerSec)} rec/s (${result.scan.ms.toFixed(0)} ms)`)

  await db.close()
  t0 = now()
  db = await peer.open(dir, 'durable')
  const first = await db.get(data.key(0))
  ms = now() - t0
  if (first === undefined) throw new Error(`${name}: first get after reopen missed`)
  result.reopen = { ms }
  say(name, 'reopen (open + first get)', `${ms.toFixed(1)} ms`)

  // The disk's ceiling for one durable write at a time, just before and just after this peer's
  // durable runs (the flush rate drifts over minutes on a shared machine): disk.mjs.
  const ceilingBefore = diskCeiling(path.dirname(dir), DISK_CEILING_MS)
  result.durable1 = await durableWrites(db, data, 1, config.durableMs, STREAM_WRITERS)
  say(name, 'durable writes, 1 writer', `${int(result.durable1.opsPerSec)} ops/s`)
  result.durable64 = await durableWrites(db, data, config.writers, config.durableMs, STREAM_WRITERS + 100)
  say(name, `durable writes, ${config.writers} writers`, `${int(result.durable64.opsPerSec)} ops/s`)
  const ceilingAfter = diskCeiling(path.dirname(dir), DISK_CEILING_MS)
  result.diskCeiling = {
    dsync: (ceilingBefore.dsync + ceilingAfter.dsync) / 2,
    fdatasync: (ceilingBefore.fdatasync + ceilingAfter.fdatasync) / 2,
    before: ceilingBefore,
    after: ceilingAfter,
  }
  say(
    name,
    'disk ceiling, 1 writer',
    `O_DSYNC ${int(ceilingBefore.dsync)} / ${int(ceilingAfter.dsync)}, ` +
      `write+fdatasync ${int(ceilingBefore.fdatasync)} / ${int(ceilingAfter.fdatasync)} ops/s (before / after)`,
  )
  await db.close()

  db = await peer.open(dir, 'bulk')
  t0 = now()
  let overwritten = 0
  for (let pass = 1; pass <= OVERWRITE_PASSES; pass++) overwritten += await writeAll(db, data, pass)
  await db.sync()
  ms = now() - t0
  result.overwrite = { recordsPerSec: overwritten / (ms / 1000), ms, records: overwritten }
  result.diskAfterOverwrite = await folderBytes(dir)
  if (db.sizeOnDisk) result.diskAfterOverwrite.engine = await db.sizeOnDisk()
  await db.close()
  result.diskAfterOverwriteClosed = await folderBytes(dir)
  say(
    name,
    `disk after ${OVERWRITE_PASSES}x overwrite`,
    `${(result.diskAfterOverwrite.allocated / 1e6).toFixed(1)} MB open, ` +
      `${(result.diskAfterOverwriteClosed.allocated / 1e6).toFixed(1)} MB closed ` +
      `(live ${(liveBytes / 1e6).toFixed(1)} MB)`,
  )

  // maxRSS is in KiB on Linux.
  result.peakRssBytes = process.resourceUsage().maxRSS * 1024
  say(name, 'peak RSS', `${(result.peakRssBytes / 1e6).toFixed(0)} MB`)
  return result
}

function settingsOf(peer) {
  return { bulk: peer.bulkSetting, durable: peer.durableSetting, concurrency: peer.concurrency }
}

async function main() {
  const [name, configJson] = process.argv.slice(2)
  const config = JSON.parse(configJson)
  if (name === 'bobsled') {
    const { load } = await import('./adapters/bobsled.mjs')
    const { missing } = await load()
    if (missing !== undefined) {
      console.log(`  bobsled: ${missing}`)
      process.send({ name, skipped: missing })
      return
    }
  }
  try {
    process.send({ name, result: await run(name, config) })
  } catch (err) {
    console.error(`  ${name}: FAILED: ${err.stack ?? err}`)
    process.send({ name, error: String(err.message ?? err) })
    process.exitCode = 1
  }
}

await main()
