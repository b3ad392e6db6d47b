// Log.relinkBlob(): another pointer to a blob file already on disk (how the page cache's
// cleaning moves a page stored as a blob without rewriting it). The blob file lives until the
// segment holding its newest pointer is truncated; the pointer and the records logged with
// it recover together; a version-1 log is upgraded when it is opened (docs/FORMAT.md).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isBobsledError } from '../../src/errors.js'
import { FileStorage, SimDisk, type Storage } from '../../src/io/index.js'
import { decodeSegmentHeader, encodeSegmentHeader } from '../../src/log/format.js'
import { FORMAT_VERSION, Log, type LogOptions } from '../../src/log/index.js'
import { crc32 } from '../../src/util/crc32.js'
import { tempDir } from '../helpers/temp-dir.js'

const S = 1024
const big = (tag: string): Buffer => Buffer.from(tag.repeat(700).slice(0, 700))
const blobFile = (id: number): string => `blobs/${id.toString(16).padStart(16, '0')}`

async function fillTo(log: Log, lsn: number): Promise<void> {
  for (let i = 0; log.maxReservedLsn < lsn; i++) log.append(Buffer.from(`filler ${i}`.padEnd(100, '.')))
  await log.flush()
}

async function records(log: Log): Promise<Array<{ lsn: number; text: string; isBlob: boolean }>> {
  const out: Array<{ lsn: number; text: string; isBlob: boolean }> = []
  for await (const r of log.iterFrom(0))
    out.push({ lsn: r.lsn, text: Buffer.from(r.data).toString(), isBlob: r.isBlob })
  return out
}

async function relinkScenario(storage: () => Storage, opts: LogOptions): Promise<void> {
  const open = (): Promise<Log> =>
    Log.open('db', { ...opts, storage: storage(), segmentBytes: S, flushEveryMs: 0 })
  let log = await open()
  const a = await log.appendLarge(big('a'))
  await fillTo(log, 2 * S + 100)
  const ref = await log.blobRefAt(a)
  assert.equal(ref.sizeBytes, 700)
  const b = log.relinkBlob(ref)
  assert.ok(Math.floor(b / S) >= 2, 'the new pointer lies past the segments about to go')
  assert.equal(log.metrics().blobsRelinked, 1)
  assert.deepEqual(Buffer.from((await log.read(b)).data), big('a'))
  await log.flush()
  await log.truncateBefore(2 * S)
  assert.ok(log.firstLsn >= 2 * S)
  assert.ok(await storage().exists(blobFile(ref.id)), 'the blob file stays while a pointer names it')
  assert.deepEqual(Buffer.from((await log.read(b)).data), big('a'))
  await log.close()

  log = await open()
  const got = (await records(log)).filter((r) => r.isBlob)
  assert.deepEqual(got, [{ lsn: b, text: big('a').toString(), isBlob: true }])
  assert.ok(await storage().exists(blobFile(ref.id)), 'not an orphan at open')
  // Past the newest pointer: the file goes with its segment.
  await fillTo(log, Math.floor(b / S) * S + 2 * S + 100)
  await log.truncateBefore(Math.floor(b / S) * S + S)
  assert.equal(await storage().exists(blobFile(ref.id)), false, 'the blob file went with its last pointer')
  await assert.rejects(
    async () => log.relinkBlob(ref),
    (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT',
  )
  await log.close()
}

test('relinkBlob() on the simulated disk: the blob lives while its newest pointer does', async () => {
  const disk = new SimDisk({ seed: 3, latency: true })
  await relinkScenario(() => disk.storage('db'), {})
})

test('relinkBlob() on real files', async () => {
  const dir = await tempDir('relink')
  try {
    await relinkScenario(() => new FileStorage(dir.path), {})
  } finally {
    await dir.remove()
  }
})

test('relinkBlob() with records: one atomic batch; blobRefAt() of a record is refused', async () => {
  const disk = new SimDisk({ seed: 4, latency: true })
  const open = (d: SimDisk, inlineSyncedWrites = true): Promise<Log> =>
    Log.open('db', { storage: d.storage('db'), segmentBytes: S, flushEveryMs: 0, inlineSyncedWrites })
  const log = await open(disk)
  const a = await log.appendLarge(big('x'))
  const r = log.append(Buffer.from('small'))
  await assert.rejects(
    log.blobRefAt(r),
    (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT',
  )
  // A ref must match what the log's pointers say, or the new pointer would be corrupt.
  const good = await log.blobRefAt(a)
  const refused = (e: unknown): boolean => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT'
  const before = log.maxReservedLsn
  for (const bad of [
    { ...good, crc: (good.crc + 1) >>> 0 },
    { ...good, sizeBytes: good.sizeBytes + 1 },
    { ...good, id: good.id + 1 },
    { id: good.id, sizeBytes: good.sizeBytes },
    null,
    Object.defineProperty({}, 'id', {
      get() {
        throw new Error('getter')
      },
    }),
  ]) {
    assert.throws(() => log.relinkBlob(bad as never), refused)
  }
  assert.equal(log.maxReservedLsn, before, 'a refused relink logs nothing')
  const lsns: number[] = []
  const p = log.relinkBlob(good, 0, [Buffer.from('d1'), Buffer.from('d2')], lsns)
  assert.equal(lsns.length, 2)
  assert.ok(p < (lsns[0] as number) && (lsns[0] as number) < (lsns[1] as number))
  assert.equal(log.metrics().batches, 1)
  await log.flush()
  // Power cut after the flush: everything is there.
  const after = await open(disk.crash({ seed: 9 }))
  const texts = (await records(after)).map((x) => x.text)
  assert.deepEqual(texts, [big('x').toString(), 'small', big('x').toString(), 'd1', 'd2'])
  await after.close()
  // Power cuts before any flush: the relinked batch is all there or not at all. A lone
  // round written inline is durable before the cut can come, so odd seeds use the pool,
  // whose write may still be in flight at the cut.
  const seen = new Set<number>()
  for (let seed = 0; seed < 40; seed++) {
    const d = new SimDisk({ seed, latency: true })
    const l = await open(d, seed % 2 === 0)
    const a2 = await l.appendLarge(big('y'))
    await l.flush()
    l.relinkBlob(await l.blobRefAt(a2), 0, [Buffer.from('e1'), Buffer.from('e2')])
    l.flush().catch(() => {})
    await new Promise((res) => setImmediate(res))
    const re = await open(d.crash({ seed }))
    const t = (await records(re)).map((x) => x.text)
    assert.ok(
      t.length === 1 || (t.length === 4 && t[1] === big('y').toString() && t[3] === 'e2'),
      `seed ${seed}: ${t.length} records`,
    )
    seen.add(t.length)
    await re.close()
  }
  assert.deepEqual([...seen].sort(), [1, 4], 'the cuts kept the batch in some runs and lost it in others')
})

/** Rewrites a log made by this build as version 1 (conf and every segment header). */
async function downgrade(storage: Storage): Promise<void> {
  const conf = await storage.openFile('conf', 'read')
  const c = new Uint8Array(64)
  await conf.read(c, 0, 64, 0)
  await conf.close()
  c[8] = 1
  new DataView(c.buffer).setUint32(60, crc32(c, 0, 60), true)
  const cw = await storage.openFile('conf', 'createOrOpen')
  await cw.write(c, 0, 64, 0)
  await cw.datasync()
  await cw.close()
  const f = await storage.openFile('log', 'createOrOpen')
  const size = await f.size()
  for (let slot = 0; slot * S < size; slot++) {
    const h = new Uint8Array(48)
    await f.read(h, 0, 48, slot * S)
    const d = decodeSegmentHeader(h, 0)
    if (!d.ok) continue
    encodeSegmentHeader(h, 0, { ...d.header, formatVersion: 1 })
    await f.write(h, 0, 48, slot * S)
  }
  await f.datasync()
  await f.close()
}

async function confVersion(storage: Storage): Promise<number> {
  const f = await storage.openFile('conf', 'read')
  const c = new Uint8Array(64)
  await f.read(c, 0, 64, 0)
  await f.close()
  return c[8] as number
}

test('a version-1 log opens, keeps its records and is upgraded to the current version', async () => {
  assert.equal(FORMAT_VERSION, 2)
  const disk = new SimDisk({ seed: 5 })
  const open = (): Promise<Log> =>
    Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  let log = await open()
  await log.appendLarge(big('v'))
  await fillTo(log, 2 * S + 100)
  const before = await records(log)
  await log.close()
  await downgrade(disk.storage('db'))
  assert.equal(await confVersion(disk.storage('db')), 1)
  log = await open()
  assert.equal(await confVersion(disk.storage('db')), FORMAT_VERSION, 'upgraded at open')
  assert.deepEqual(await records(log), before)
  await fillTo(log, 4 * S + 100)
  const after = await records(log)
  await log.close()
  log = await open()
  assert.deepEqual(await records(log), after, 'version 1 and version 2 segment headers side by side')
  await log.close()
})

test('a version-1 conf with a version-2 segment header is a mixed log: CorruptionError', async () => {
  const disk = new SimDisk({ seed: 6 })
  const log = await Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  await fillTo(log, S + 100)
  await log.close()
  const st = disk.storage('db')
  await downgrade(st)
  // Put one header back to version 2.
  const f = await st.openFile('log', 'createOrOpen')
  const h = new Uint8Array(48)
  await f.read(h, 0, 48, S)
  const d = decodeSegmentHeader(h, 0)
  assert.ok(d.ok)
  encodeSegmentHeader(h, 0, { ...d.header, formatVersion: 2 })
  await f.write(h, 0, 48, S)
  await f.datasync()
  await f.close()
  await assert.rejects(
    Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 }),
    (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_CORRUPTION',
  )
  assert.equal(await confVersion(st), 1, 'a refused open does not upgrade')
})

test('stageBlob(): durable without a pointer; relinkBlob() logs its first pointer, dropStagedBlob() removes it, an orphan goes at open', async () => {
  const disk = new SimDisk({ seed: 7, latency: true })
  const open = (): Promise<Log> =>
    Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  const log = await open()
  await assert.rejects(
    log.stageBlob(Buffer.from('tiny')),
    (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT',
  )
  const kept = await log.stageBlob(big('k'))
  const dropped = await log.stageBlob(big('d'))
  const orphan = await log.stageBlob(big('o'))
  const st = disk.storage('db')
  for (const r of [kept, dropped, orphan]) assert.ok(await st.exists(blobFile(r.id)))
  const lsn = log.relinkBlob(kept)
  assert.equal(log.metrics().blobsRelinked, 0, 'a staged blob is not a relink')
  await log.dropStagedBlob(dropped)
  assert.equal(await st.exists(blobFile(dropped.id)), false)
  await assert.rejects(
    log.dropStagedBlob(kept),
    (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT',
  )
  assert.deepEqual(Buffer.from((await log.read(lsn)).data), big('k'))
  await log.close()
  const again = await open()
  assert.ok(await st.exists(blobFile(kept.id)))
  assert.equal(await st.exists(blobFile(orphan.id)), false, 'a staged blob never linked is an orphan')
  assert.deepEqual(
    (await records(again)).map((r) => r.text),
    [big('k').toString()],
  )
  await again.close()
})

test('appendMixedBatch(): several blob pointers among records in one atomic batch; a power cut keeps all or none', async () => {
  let kept = 0
  for (let seed = 1; seed <= 16; seed++) {
    let disk = new SimDisk({ seed, latency: true })
    const open = (): Promise<Log> =>
      Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
    const log = await open()
    log.append(Buffer.from('before'))
    await log.flush()
    const x = await log.stageBlob(big('x'))
    const y = await log.stageBlob(big('y'))
    const lsns: number[] = []
    const before = log.maxReservedLsn
    assert.throws(
      () => log.appendMixedBatch([Buffer.from('r'), x, x]),
      (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT',
      'one staged blob twice',
    )
    assert.throws(
      () => log.appendMixedBatch([{ id: 999, sizeBytes: 700, crc: 1 }]),
      (e: unknown) => isBobsledError(e) && e.code === 'BOBSLED_INVALID_ARGUMENT',
      'an unknown blob',
    )
    assert.equal(log.maxReservedLsn, before, 'a refused batch logs nothing')
    const last = log.appendMixedBatch([Buffer.from('r1'), x, Buffer.from('r2'), y], 0, lsns)
    assert.equal(lsns.length, 4)
    assert.equal(last, lsns[3])
    assert.deepEqual(Buffer.from((await log.read(lsns[1] as number)).data), big('x'))
    // Flush in flight or not, then the power goes.
    if (seed % 2 === 0) log.flush().catch(() => {})
    else await log.flush()
    disk = disk.crash({ seed: 100 + seed })
    await log.close().catch(() => {})
    const again = await open()
    const texts = (await records(again)).map((r) => r.text)
    const want = ['before', 'r1', big('x').toString(), 'r2', big('y').toString()]
    assert.ok(
      JSON.stringify(texts) === JSON.stringify(want) || JSON.stringify(texts) === JSON.stringify(['before']),
      `seed ${seed}: all or nothing, got ${texts.length} records`,
    )
    if (texts.length > 1) kept++
    await again.close()
  }
  assert.ok(kept >= 8, 'the awaited flushes kept their batch')
})

test('blobBytesBySegment(): each blob counts for the segment of its newest pointer, also after a reopen', async () => {
  const disk = new SimDisk({ seed: 11 })
  const open = (): Promise<Log> =>
    Log.open('db', { storage: disk.storage('db'), segmentBytes: S, flushEveryMs: 0 })
  let log = await open()
  const a = await log.appendLarge(big('a'))
  const b = await log.appendLarge(big('b'))
  assert.deepEqual([...log.blobBytesBySegment()], [[0, 1400]])
  await fillTo(log, S + 100)
  const moved = log.relinkBlob(await log.blobRefAt(a))
  const base = Math.floor(moved / S) * S
  assert.deepEqual(
    [...log.blobBytesBySegment()].sort((x, y) => x[0] - y[0]),
    [
      [0, 700],
      [base, 700],
    ],
  )
  await log.close()
  log = await open()
  assert.deepEqual(
    [...log.blobBytesBySegment()].sort((x, y) => x[0] - y[0]),
    [
      [0, 700],
      [base, 700],
    ],
    'rebuilt by recovery',
  )
  assert.ok(b < S)
  await log.close()
})

test('sealSegment() ends the segment being written; on an empty one it does nothing', async () => {
  const log = await Log.open('db', {
    storage: new SimDisk({ seed: 12 }).storage('db'),
    segmentBytes: S,
    flushEveryMs: 0,
  })
  log.append(Buffer.from('first'))
  assert.deepEqual(log.segmentBases(), [0])
  log.sealSegment()
  assert.deepEqual(log.segmentBases(), [0, S])
  log.sealSegment()
  assert.deepEqual(log.segmentBases(), [0, S], 'nothing was written to the new segment yet')
  const next = log.append(Buffer.from('second'))
  assert.ok(next >= S)
  await log.flush()
  // Once stable, the sealed segment lies wholly below the tip and may be truncated.
  await log.truncateBefore(S)
  assert.equal(log.firstLsn, S)
  await log.close()
})
