// S5, no uninitialised memory or previous data on disk (reliability regimen §6.1): "after a
// workload with random record sizes, scan every segment. The goal is 0 non-zero bytes
// outside valid records (padding, segment tails, blob slack)."
//
// Two folders on real files, each through the path users take:
//  - db: open() with 8 KiB segments; values of random sizes (1 B to the value limit) that
//    carry a marker are written, overwritten and removed, then overwritten again without
//    the marker; settled as in R14 (close, cleanNow() on the page cache, close);
//  - blobs: the page cache open() builds on, with pages larger than a page (blob files)
//    carrying the marker, overwritten by small pages, then cleaned.
// Then every byte of every file is classified:
//  - log: each slot is a segment (its header passes) or free. In a segment, the header and
//    every valid message (Record, BlobPointer, BatchManifest, Witness, Canceled, and a Cap's
//    header) are "record bytes"; everything else — a Cap's body (the padding), the
//    unwritten tail after the last message, the red zone — must be zero. A free slot must
//    be zero throughout;
//  - blobs/: 32-byte header + exactly the declared content: slack = file size − both = 0;
//  - conf, witness, checkpoint: never hold values, so 0 markers.
// Figures: non-zero bytes outside records (gate 0), blob slack (gate 0), markers in
// unused bytes and in metadata files (gate 0), and — reported, not gated — markers still
// inside dead records of the segments the log keeps: deletion is not secure erase; a
// removed value stays on disk until cleaning drops its segment (docs/RELIABILITY.md, S5).
// Mutation check: a storage that writes 16 stale bytes after each log write must be caught.
// After a crash (third test): byte copies of the db folder taken mid-write are scanned
// before their recovery (reported) and after it (gated as above); the mutation check
// recovers a twin of each copy through the stale-bytes storage.
// One line: `RELIABILITY s5-no-stale-bytes …`. BOBSLED_SEED=<n> replays the workload.

import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { type Db, type OpenOptions, open } from '../../src/db.js'
import { FileStorage, type Storage, type StorageFile } from '../../src/io/index.js'
import {
  decodeSegmentHeader,
  MessageKind,
  RED_ZONE_BYTES,
  readU64,
  SEGMENT_HEADER_BYTES,
} from '../../src/log/format.js'
import { newParsedMessage, Parse, parseMessage } from '../../src/log/reader.js'
import { PageCache, type PageCacheOptions } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { Prng } from '../../src/util/prng.js'
import { ForwardingStorage } from '../helpers/forwarding-storage.js'
import { type ListPage, listCodec } from '../helpers/list-codec.js'
import { copyFolderNow } from '../helpers/temp-dir.js'

const S = 8 * 1024
const SEED = process.env.BOBSLED_SEED !== undefined ? Number(process.env.BOBSLED_SEED) : 5
const MARKER = 'S5-MARKER-'
const BLOB_HEADER_BYTES = 32

const roots: string[] = []
process.on('exit', () => {
  for (const d of roots) rmSync(d, { recursive: true, force: true })
})

function tempFolder(): string {
  const root = mkdtempSync(join(tmpdir(), 'bobsled-s5-'))
  roots.push(root)
  return join(root, 'db')
}

/**
 * Mutation: when the log file is closed, 16 stale bytes land right after the last write
 * (inside the segment's unwritten rest), as a buffer that was not zero-filled
 * would leave them. Done at close so no later write of the log races with them (the next
 * open's recovery zeroes them as a torn tail, so the scan follows a writing session).
 */
class StaleTailStorage extends ForwardingStorage {
  override async openFile(name: string, mode: Parameters<Storage['openFile']>[1]): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (name !== 'log') return f
    const stale = new TextEncoder().encode('STALE-HEAP-BYTES')
    let end = 0
    return {
      name: f.name,
      read: (b, o, l, p) => f.read(b, o, l, p),
      datasync: () => f.datasync(),
      truncate: (s) => f.truncate(s),
      size: () => f.size(),
      write: async (b, o, l, p) => {
        await f.write(b, o, l, p)
        end = p + l
      },
      writeSynced: async (b, o, l, p) => {
        await f.writeSynced(b, o, l, p)
        end = p + l
      },
      close: async () => {
        if (end % S !== 0 && (end % S) + stale.length <= S) await f.write(stale, 0, stale.length, end)
        await f.close()
      },
    }
  }
}

interface Scan {
  files: number
  segments: number
  freeSlots: number
  recordBytes: number
  zeroBytes: number
  /** Non-zero bytes outside valid records: the gate. */
  strayBytes: number
  strayAt: string[]
  capBodyBytes: number
  blobFiles: number
  blobSlackBytes: number
  markersInUnused: number
  markersInMeta: number
  markersInDeadRecords: number
}

const emptyScan = (): Scan => ({
  files: 0,
  segments: 0,
  freeSlots: 0,
  recordBytes: 0,
  zeroBytes: 0,
  strayBytes: 0,
  strayAt: [],
  capBodyBytes: 0,
  blobFiles: 0,
  blobSlackBytes: 0,
  markersInUnused: 0,
  markersInMeta: 0,
  markersInDeadRecords: 0,
})

const markerBytes = new TextEncoder().encode(MARKER)

function countMarkers(b: Uint8Array, from = 0, to = b.length): number {
  let n = 0
  const m = markerBytes
  outer: for (let i = from; i + m.length <= to; i++) {
    for (let j = 0; j < m.length; j++) if (b[i + j] !== m[j]) continue outer
    n++
  }
  return n
}

/** Counts the bytes of [from, to) that are not zero as stray, and where. */
function mustBeZero(scan: Scan, b: Uint8Array, from: number, to: number, what: string): void {
  let stray = 0
  for (let i = from; i < to; i++) if (b[i] !== 0) stray++
  scan.zeroBytes += to - from - stray
  scan.strayBytes += stray
  scan.markersInUnused += countMarkers(b, from, to)
  if (stray > 0 && scan.strayAt.length < 5) scan.strayAt.push(`${what} [${from}, ${to}): ${stray} non-zero`)
}

function scanLog(scan: Scan, file: Uint8Array): void {
  const msg = newParsedMessage()
  for (let slot = 0; slot * S < file.length; slot++) {
    const seg = file.subarray(slot * S, Math.min(file.length, (slot + 1) * S))
    const where = `log slot ${slot}`
    const h = seg.length >= SEGMENT_HEADER_BYTES ? decodeSegmentHeader(seg, 0) : { ok: false as const }
    if (!h.ok) {
      scan.freeSlots++
      mustBeZero(scan, seg, 0, seg.length, `${where} (free)`)
      continue
    }
    scan.segments++
    scan.recordBytes += SEGMENT_HEADER_BYTES
    const segmentNumber = h.header.baseLsn / S
    let at = SEGMENT_HEADER_BYTES
    for (;;) {
      const r = parseMessage(seg, at, seg.length, S, segmentNumber, msg, true)
      if (r === Parse.Ok) {
        scan.recordBytes += msg.totalBytes
        // Every value the workload still holds is marker-free: a marker in a record is a
        // dead record the log keeps (a removed or overwritten value).
        if (msg.kind === MessageKind.Record || msg.kind === MessageKind.Canceled)
          scan.markersInDeadRecords += countMarkers(seg, at, at + msg.totalBytes)
        at += msg.totalBytes
        continue
      }
      if (r === Parse.EndOfSegment && at <= S - RED_ZONE_BYTES - 1 && msg.kind === MessageKind.Cap) {
        // A Cap: its header is a record, its body the padding.
        scan.recordBytes += msg.headerBytes
        scan.capBodyBytes += msg.bodyBytes
        mustBeZero(scan, seg, at + msg.headerBytes, seg.length, `${where} cap padding`)
      } else {
        // The red zone, or the unwritten rest after the last message.
        mustBeZero(scan, seg, at, seg.length, `${where} tail at ${at}`)
      }
      break
    }
  }
}

function scanFolder(dir: string, scan: Scan = emptyScan()): Scan {
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`
      if (e.isDirectory()) {
        walk(join(d, e.name), r)
        continue
      }
      if (e.name === 'LOCK') continue
      const bytes = readFileSync(join(d, e.name))
      scan.files++
      if (r === 'log') scanLog(scan, bytes)
      else if (r.startsWith('blobs/')) {
        scan.blobFiles++
        const declared = bytes.length >= BLOB_HEADER_BYTES ? readU64(bytes, 24) : 0
        scan.blobSlackBytes += Math.max(0, bytes.length - BLOB_HEADER_BYTES - declared)
        scan.recordBytes += Math.min(bytes.length, BLOB_HEADER_BYTES + declared)
        // A blob holds one page; a marker in it is that page's (live or dead) content.
        scan.markersInDeadRecords += countMarkers(bytes)
      } else scan.markersInMeta += countMarkers(bytes)
    }
  }
  walk(dir, '')
  return scan
}

const dbOptions = (storage?: Storage): OpenOptions => ({
  ...(storage !== undefined ? { storage } : {}),
  segmentBytes: S,
  cacheCapacity: 32 * 1024,
  flushEveryMs: 0,
})

async function settle(dir: string, storage?: Storage): Promise<void> {
  const o: PageCacheOptions = { segmentBytes: S, flushEveryMs: 0 }
  if (storage !== undefined) o.storage = storage
  const pc = await PageCache.open<TreePage>(dir, treeCodec, o)
  await pc.cleanNow()
  await pc.close()
}

/** Marker values of random sizes, overwritten and removed, then marker-free values. */
async function dbWorkload(
  dir: string,
  seed: number,
  storage?: Storage,
  afterWrite?: (n: number) => void,
): Promise<{ live: number; markersBeforeCleaning: number }> {
  const rng = new Prng(seed)
  let writes = 0
  const wrote = (): void => afterWrite?.(writes++)
  let db: Db = await open(dir, dbOptions(storage))
  // Values that fit an inline page (the limit before large values): the scan looks for
  // markers in the log's records; values stored as blobs have files of their own.
  const max = Math.min(db.limits.maxValueBytes, S / 4 - 105 - db.limits.maxKeyBytes)
  const keys = 64
  const sizeOf = (): number => (rng.chance(0.2) ? 1 + rng.int(max) : 1 + rng.int(200))
  for (let round = 0; round < 6; round++) {
    for (let k = 0; k < keys; k++) {
      const v = `${MARKER}${round}-${k}|`.padEnd(MARKER.length + 8 + sizeOf(), 'm').slice(0, max)
      if (rng.chance(0.2)) await db.remove(`key-${k}`)
      else await db.insert(`key-${k}`, v)
      wrote()
    }
    await db.flush()
  }
  // Every marker value goes: removed, or overwritten without the marker.
  for (let k = 0; k < keys; k++) {
    if (rng.chance(0.3)) await db.remove(`key-${k}`)
    else await db.insert(`key-${k}`, `plain-${k}|`.padEnd(1 + rng.int(300), 'p'))
  }
  // Removed and overwritten values are still in the log until cleaning drops their segments.
  await db.flush()
  const markersBeforeCleaning = scanFolder(dir).markersInDeadRecords
  // More churn, so cleaning has something to move past the marker records.
  for (let i = 0; i < 2000; i++) {
    await db.insert(`churn-${i % 16}`, `c${i}`.padEnd(1 + rng.int(400), 'c'))
    wrote()
  }
  await db.close()
  await settle(dir, storage)
  db = await open(dir, dbOptions(storage))
  let live = 0
  for await (const [, v] of db.range()) {
    assert.equal(countMarkers(v), 0, 'no live value holds the marker')
    live++
  }
  await db.close()
  return { live, markersBeforeCleaning }
}

/** Blob pages holding the marker, replaced by small pages, then cleaned. */
async function blobWorkload(dir: string, seed: number): Promise<void> {
  const rng = new Prng(seed)
  const o: PageCacheOptions = { segmentBytes: S, flushEveryMs: 0 }
  const pc = await PageCache.open<ListPage>(dir, listCodec, o)
  const pids = Array.from({ length: 6 }, () => pc.allocate())
  for (let round = 0; round < 4; round++) {
    for (const pid of pids) {
      const big = `${MARKER}${round}-${pid}|`.padEnd(pc.maxPageBytes + 1 + rng.int(3 * S), 'B')
      await pc.replaceLarge(pid, { items: [big] })
    }
    await pc.flush()
  }
  // Two pages stay blobs (without the marker), so live blob files are scanned for slack.
  for (const [i, pid] of pids.entries()) {
    if (i < 2) {
      await pc.replaceLarge(pid, {
        items: [`plain-${pid}|`.padEnd(pc.maxPageBytes + 1 + rng.int(3 * S), 'L')],
      })
      continue
    }
    await pc.whenWritable()
    pc.replace(pid, { items: [`plain-${pid}`.padEnd(1 + rng.int(300), 'p')] })
  }
  const churn = pc.allocate()
  for (let i = 0; i < 600; i++) {
    await pc.whenWritable()
    pc.replace(churn, { items: [`c${i}`.padEnd(1 + rng.int(400), 'c')] })
  }
  await pc.flush()
  await pc.cleanNow()
  await pc.close()
}

const show = (s: Scan): string =>
  `files=${s.files} segments=${s.segments} free_slots=${s.freeSlots} record_bytes=${s.recordBytes} ` +
  `zero_bytes=${s.zeroBytes} cap_padding_bytes=${s.capBodyBytes} nonzero_outside_records=${s.strayBytes} ` +
  `blob_files=${s.blobFiles} blob_slack_bytes=${s.blobSlackBytes} markers_in_unused=${s.markersInUnused} ` +
  `markers_in_meta=${s.markersInMeta} markers_in_dead_records=${s.markersInDeadRecords}`

test('S5: no byte outside a valid record is non-zero, no blob slack, no value in metadata files', async () => {
  const dbDir = tempFolder()
  const { live, markersBeforeCleaning } = await dbWorkload(dbDir, SEED)
  const db = scanFolder(dbDir)
  const blobDir = tempFolder()
  await blobWorkload(blobDir, SEED)
  const blobs = scanFolder(blobDir)
  console.log(
    `s5 db: ${show(db)} live_keys=${live} markers_in_dead_records_before_cleaning=${markersBeforeCleaning}`,
  )
  console.log(`s5 blobs: ${show(blobs)}`)
  const sum = (k: keyof Scan): number => (db[k] as number) + (blobs[k] as number)
  console.log(
    `RELIABILITY s5-no-stale-bytes folders=2 files=${sum('files')} segments=${sum('segments')} free_slots=${sum('freeSlots')} ` +
      `bytes_scanned=${sum('recordBytes') + sum('zeroBytes') + sum('strayBytes')} nonzero_outside_records=${sum('strayBytes')} ` +
      `cap_padding_bytes=${sum('capBodyBytes')} blob_files=${sum('blobFiles')} blob_slack_bytes=${sum('blobSlackBytes')} ` +
      `markers_in_unused=${sum('markersInUnused')} markers_in_meta=${sum('markersInMeta')} ` +
      `markers_in_dead_records=${sum('markersInDeadRecords')} markers_in_dead_records_before_cleaning=${markersBeforeCleaning} seed=${SEED}`,
  )
  for (const [name, s] of [
    ['db', db],
    ['blobs', blobs],
  ] as const) {
    assert.equal(s.strayBytes, 0, `${name}: ${s.strayAt.join('; ')} (replay: BOBSLED_SEED=${SEED})`)
    assert.equal(s.blobSlackBytes, 0, `${name}: blob slack`)
    assert.equal(s.markersInUnused, 0, `${name}: markers in unused bytes`)
    assert.equal(s.markersInMeta, 0, `${name}: markers in conf, witness or checkpoint`)
    assert.ok(s.segments > 0 && s.zeroBytes > 0, `${name}: the scan saw segments and unused bytes`)
  }
  assert.ok(db.capBodyBytes > 0, 'random sizes sealed segments with padding')
  // The marker count sees removed values while the log still holds them (not secure erase).
  assert.ok(markersBeforeCleaning > 0, 'the scan never saw a marker')
  assert.ok(blobs.blobFiles > 0, 'blob files were scanned')
})

test('S5 mutation check: stale bytes written after each log write are caught', async () => {
  const dir = tempFolder()
  const storage = new StaleTailStorage(new FileStorage(dir))
  await dbWorkload(dir, SEED, storage)
  const db = await open(dir, dbOptions(storage))
  await db.insert('last', 'write')
  await db.close()
  const s = scanFolder(dir)
  console.log(`RELIABILITY s5-no-stale-bytes-mutation nonzero_outside_records=${s.strayBytes} seed=${SEED}`)
  assert.ok(s.strayBytes > 0, 'the scan missed stale bytes after the records')
})

/**
 * S5 after a crash: byte copies of the db folder taken at a few instants while the
 * workload writes (as a SIGKILL leaves it: completed writes, the one in flight in part),
 * each scanned before its recovery and after it (open() and close() on the copy). Before
 * recovery, bytes of a write in flight may lie past the last whole message: they are
 * reported (`nonzero_outside_records_before_recovery`), not gated, but conf, witness and
 * checkpoints must hold no marker and blob files no slack. Recovery must leave what a
 * clean close leaves: 0 non-zero bytes outside records, 0 markers in unused bytes.
 */
async function crashCopies(seed: number): Promise<{
  before: Scan
  after: Scan
  afterMutant: Scan
  copies: number
  logBytes: number[]
}> {
  const dir = tempFolder()
  const rng = new Prng(seed ^ 0xc0b1)
  // Copies at seeded write counts over the whole run (≈ 2,450 writes), taken while the
  // write's log flush is still on its way (the Db acknowledges before it lands).
  const at = new Set(
    Array.from({ length: COPIES }, (_, k) => Math.floor(((k + rng.float()) * 2400) / COPIES)),
  )
  const copies: string[] = []
  const running = dbWorkload(dir, seed, undefined, (n) => {
    if (!at.has(n)) return
    const to = `${tempFolder()}-copy-${copies.length}`
    copyFolderNow(dir, to)
    copies.push(to)
  })
  await running
  const before = emptyScan()
  const after = emptyScan()
  const afterMutant = emptyScan()
  const logBytes: number[] = []
  for (const c of copies) {
    logBytes.push(existsSync(join(c, 'log')) ? readFileSync(join(c, 'log')).length : 0)
    scanFolder(c, before)
    // The mutation check recovers a second copy through a storage that leaves stale bytes.
    const m = `${c}-mutant`
    copyFolderNow(c, m)
    const db = await open(c, dbOptions())
    await db.close()
    scanFolder(c, after)
    const mdb = await open(m, dbOptions(new StaleTailStorage(new FileStorage(m))))
    // Its stale bytes land after the log's last write: give it one.
    await mdb.insert('after-recovery', 'x')
    await mdb.close()
    scanFolder(m, afterMutant)
  }
  return { before, after, afterMutant, copies: copies.length, logBytes }
}

const COPIES = 5
let crashRun: ReturnType<typeof crashCopies> | undefined
const crashResults = (): ReturnType<typeof crashCopies> => {
  crashRun ??= crashCopies(SEED)
  return crashRun
}

test('S5 after a crash: a folder copied mid-write, scanned before its recovery and after it', async () => {
  const { before, after, copies, logBytes } = await crashResults()
  console.log(
    `RELIABILITY s5-no-stale-bytes-crash copies=${copies} log_bytes=${logBytes.join('/')} nonzero_outside_records_before_recovery=${before.strayBytes} ` +
      `markers_in_unused_before_recovery=${before.markersInUnused} markers_in_meta_before_recovery=${before.markersInMeta} ` +
      `blob_slack_bytes_before_recovery=${before.blobSlackBytes} files=${after.files} segments=${after.segments} ` +
      `free_slots=${after.freeSlots} bytes_scanned=${after.recordBytes + after.zeroBytes + after.strayBytes} ` +
      `nonzero_outside_records=${after.strayBytes} markers_in_unused=${after.markersInUnused} ` +
      `markers_in_meta=${after.markersInMeta} seed=${SEED}`,
  )
  if (before.strayBytes > 0) console.log(`s5 crash copies before recovery: ${before.strayAt.join('; ')}`)
  assert.ok(copies > 0, 'the workload ran long enough to be copied')
  assert.equal(before.markersInMeta, 0, 'markers in conf, witness or checkpoint of a crashed folder')
  assert.equal(before.blobSlackBytes, 0, 'blob slack in a crashed folder')
  assert.equal(
    after.strayBytes,
    0,
    `after recovery: ${after.strayAt.join('; ')} (replay: BOBSLED_SEED=${SEED})`,
  )
  assert.equal(after.markersInUnused, 0, 'after recovery: markers in unused bytes')
  assert.equal(after.markersInMeta, 0, 'after recovery: markers in conf, witness or checkpoint')
})

test('S5 after a crash, mutation check: a recovering open that leaves stale bytes is caught', async () => {
  const { afterMutant } = await crashResults()
  console.log(
    `RELIABILITY s5-no-stale-bytes-crash-mutation nonzero_outside_records=${afterMutant.strayBytes} seed=${SEED}`,
  )
  assert.ok(afterMutant.strayBytes > 0, 'the scan after recovery missed stale bytes')
})
