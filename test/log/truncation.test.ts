// truncateBefore(): one datasync for all zeroed slots, the new start durable before any
// slot is zeroed, free slots at the end of the file cut off (and the file growing again
// afterwards), and a crash anywhere in a multi-segment truncation — the shrink included —
// losing nothing above the new start and never failing the reopen.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { IoError } from '../../src/errors.js'
import { FileStorage, SimDisk, type Storage, type StorageFile } from '../../src/io/index.js'
import { Failpoints, Log, type LogRecord } from '../../src/log/index.js'
import type { Lsn } from '../../src/util/brand.js'
import { ForwardingStorage } from '../helpers/forwarding-storage.js'

const S = 1024
const RECORD_BYTES = 100

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function all(log: Log): Promise<LogRecord[]> {
  const out: LogRecord[] = []
  for await (const r of log.iterFrom()) out.push(r)
  return out
}

/** Slots a file of `size` bytes spans: its last slot may be written only partly (recovery.ts). */
const slotsOfSize = (size: number): number => Math.floor(size / S) + (size % S > 0 ? 1 : 0)

const recordOf = (i: number): Uint8Array => new Uint8Array(RECORD_BYTES).fill(i & 0xff)

/** One log-file op as the truncation issues it. */
interface Op {
  kind: 'write' | 'zero write' | 'datasync' | 'truncate'
  position?: number
}

/** Watches the ops on the `log` file and can run a hook (a crash) before op number `at`. */
class OpWatch extends ForwardingStorage {
  ops: Op[] = []
  isCounting = false
  crashAt = -1
  onCrash: () => void = () => {}

  constructor(inner: Storage) {
    super(inner)
  }

  private before(op: Op): void {
    if (!this.isCounting) return
    if (this.ops.length === this.crashAt) this.onCrash()
    this.ops.push(op)
  }

  override async openFile(name: string, mode: Parameters<Storage['openFile']>[1]): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (name !== 'log') return f
    return {
      name: f.name,
      read: (b, o, l, p) => f.read(b, o, l, p),
      write: (b, o, l, p) => {
        this.before({
          kind: b.subarray(o, o + l).every((x) => x === 0) ? 'zero write' : 'write',
          position: p,
        })
        return f.write(b, o, l, p)
      },
      writeSynced: (b, o, l, p) => {
        this.before({
          kind: b.subarray(o, o + l).every((x) => x === 0) ? 'zero write' : 'write',
          position: p,
        })
        return f.writeSynced(b, o, l, p)
      },
      datasync: () => {
        this.before({ kind: 'datasync' })
        return f.datasync()
      },
      truncate: (n) => {
        this.before({ kind: 'truncate', position: n })
        return f.truncate(n)
      },
      size: () => f.size(),
      close: () => f.close(),
    }
  }
}

/**
 * Lays out a log whose truncation drops several segments and frees the end of the file:
 * ten segments in slots 0..9, the first five dropped, three new segments reusing slots
 * 0..2. Returns the LSN of the first new segment: truncating before it drops the old
 * segments in slots 5..9 (and the roll in step 1 takes slot 3), so the file can shrink.
 */
async function layOut(log: Log): Promise<{ cut: number; next: number }> {
  let i = 0
  while (log.segmentBases().length < 11) log.append(recordOf(i++), i)
  await log.flush()
  await log.truncateBefore(log.segmentBases()[5] as number)
  const oldLast = log.segmentBases().at(-1) as number
  while ((log.segmentBases().at(-1) as number) < oldLast + 3 * S) log.append(recordOf(i++), i)
  await log.flush()
  const cut = log.segmentBases().find((b) => b > oldLast) as number
  return { cut, next: i }
}

describe('truncateBefore: one datasync, then the file shrinks', () => {
  test('zeroes every dropped slot, syncs once, cuts the free end off; a new segment grows the file again (real files)', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'bobsled-trunc-'))
    dirs.push(parent)
    const dir = join(parent, 'db')
    const watch = new OpWatch(new FileStorage(dir))
    let log = await Log.open(dir, { storage: watch, segmentBytes: S, flushEveryMs: 0 })
    const { cut } = await layOut(log)
    const sizeOf = (): number => statSync(join(dir, 'log')).size
    const slotsBefore = log.fileSlots
    assert.equal(slotsOfSize(sizeOf()), slotsBefore)
    const kept = (await all(log)).filter((r) => r.lsn >= cut)

    watch.isCounting = true
    await log.truncateBefore(cut)
    watch.isCounting = false
    const firstZero = watch.ops.findIndex((o) => o.kind === 'zero write')
    const shape = watch.ops.slice(firstZero).map((o) => o.kind)
    const dropped = shape.filter((k) => k === 'zero write').length
    assert.ok(dropped >= 5, `zeroed ${dropped} slots`)
    assert.deepEqual(shape, [...Array(dropped).fill('zero write'), 'datasync', 'truncate', 'datasync'])
    assert.ok(log.fileSlots < slotsBefore, `fileSlots ${slotsBefore} → ${log.fileSlots}`)
    assert.equal(sizeOf(), log.fileSlots * S, 'the file is cut to fileSlots (its last slot is whole)')
    assert.equal(log.firstLsn, cut)
    assert.deepEqual(
      (await all(log)).map((r) => r.lsn),
      kept.map((r) => r.lsn),
    )

    // A segment beyond the cut grows the file again; the free-slot list stayed consistent.
    const shrunk = log.fileSlots
    let i = 0
    while (log.fileSlots === shrunk) log.append(recordOf(i++), 7)
    await log.flush()
    assert.equal(log.fileSlots, shrunk + 1)
    assert.equal(slotsOfSize(sizeOf()), log.fileSlots)
    const expected = (await all(log)).map((r) => r.lsn)
    await log.close()
    log = await Log.open(dir, { segmentBytes: S, flushEveryMs: 0 })
    assert.deepEqual(
      (await all(log)).map((r) => r.lsn),
      expected,
    )
    assert.equal(slotsOfSize(sizeOf()), log.fileSlots)
    await log.close()
  })

  test('a log with no free end keeps its size', async () => {
    const disk = new SimDisk({ seed: 3, latency: false })
    const log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
    let i = 0
    while (log.segmentBases().length < 6) log.append(recordOf(i++), i)
    await log.flush()
    const slots = log.fileSlots
    await log.truncateBefore(log.segmentBases()[3] as number)
    // The dropped segments sit at the front of the file: nothing to cut (the roll to a new
    // segment that records the new start may even add a slot).
    assert.ok(log.fileSlots >= slots)
    assert.equal(slotsOfSize(disk.readFileSync('db/log').length), log.fileSlots)
    await log.close()
  })
})

describe('truncateBefore with appends running', () => {
  test('segments opened while the file is cut are written after the cut, never erased by it', async () => {
    let fenced = 0
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const disk = new SimDisk({ seed, latency: true })
      let log = await Log.open('db', { storage: disk.storage(), segmentBytes: S, flushEveryMs: 0 })
      const { cut } = await layOut(log)
      const slotsBefore = log.fileSlots
      let settled = false
      const truncating = log.truncateBefore(cut).finally(() => {
        settled = true
      })
      const lsns: number[] = []
      // Wait for the moment the file is cut (fileSlots drops at once, the truncate is still
      // in flight), then open segments past the cut: their writes must wait for it.
      while (!settled && log.fileSlots >= slotsBefore) await new Promise((r) => setImmediate(r))
      const cutTo = log.fileSlots
      for (let i = 0; i < 30; i++) lsns.push(log.append(recordOf(i), 9))
      if (!settled && cutTo < slotsBefore && log.fileSlots > cutTo) fenced++
      await truncating
      await log.flush()
      const expected = (await all(log)).map((r) => r.lsn)
      assert.ok(
        lsns.every((l) => expected.includes(l as Lsn)),
        `seed ${seed}: an append made during the truncation is missing`,
      )
      await log.close()
      log = await Log.open('db', { storage: disk.crash({ seed }).storage(), flushEveryMs: 0 })
      assert.deepEqual(
        (await all(log)).map((r) => r.lsn),
        expected,
        `seed ${seed}: after a power loss following close`,
      )
      await log.close()
    }
    assert.ok(fenced > 0, 'no run opened a segment above the cut while the file was cut')
  })
})

describe('truncateBefore under power loss', () => {
  /** Opens a fresh laid-out log on `seed`'s disk; returns it ready for the truncation. */
  async function prepare(seed: number, failpoints?: Failpoints) {
    const disk = new SimDisk({ seed, latency: false })
    const watch = new OpWatch(disk.storage())
    const log = await Log.open('db', {
      storage: watch,
      segmentBytes: S,
      flushEveryMs: 0,
      ...(failpoints === undefined ? {} : { failpoints }),
    })
    const { cut } = await layOut(log)
    const before = await all(log)
    return { disk, watch, log, cut, before }
  }

  async function checkReopen(disk: SimDisk, before: LogRecord[], cut: number, what: string): Promise<void> {
    let log: Log
    try {
      log = await Log.open('db', { storage: disk.storage(), flushEveryMs: 0 })
    } catch (e) {
      assert.fail(`${what}: reopen failed: ${e}`)
    }
    try {
      const got = await all(log)
      // A suffix of what was there, holding every record at or above the new start.
      const first = before.findIndex((r) => r.lsn === got[0]?.lsn)
      assert.ok(first >= 0, `${what}: the first record after reopen was there before`)
      assert.deepEqual(
        got.map((r) => [r.lsn, r.id, Buffer.from(r.data).toString('hex')]),
        before.slice(first).map((r) => [r.lsn, r.id, Buffer.from(r.data).toString('hex')]),
        `${what}: the log after reopen is a suffix of the log before`,
      )
      const firstKept = before.findIndex((r) => r.lsn >= cut)
      assert.ok(firstKept > 0 && first <= firstKept, `${what}: a record at or above ${cut} lost`)
      assert.equal(
        slotsOfSize(disk.readFileSync('db/log').length),
        log.fileSlots,
        `${what}: file size and fileSlots`,
      )
      // The reopened log goes on: a few segments, another reopen, all there.
      const lsns = got.map((r) => r.lsn)
      for (let i = 0; i < 30; i++) lsns.push(log.append(recordOf(i), 1))
      await log.close()
      log = await Log.open('db', { storage: disk.storage(), flushEveryMs: 0 })
      assert.deepEqual(
        (await all(log)).map((r) => r.lsn),
        lsns,
        `${what}: appends after the reopen`,
      )
    } finally {
      await log.close()
    }
  }

  test('a crash before any op of a multi-segment truncation, the shrink included, loses nothing above the new start', async () => {
    // Learn the op sequence from a run without a crash.
    const dry = await prepare(1)
    dry.watch.isCounting = true
    await dry.log.truncateBefore(dry.cut)
    dry.watch.isCounting = false
    const total = dry.watch.ops.length
    assert.ok(
      dry.watch.ops.some((o) => o.kind === 'truncate'),
      'the dry run shrinks the file',
    )
    await dry.log.close()

    let cases = 0
    for (let at = 0; at <= total; at++) {
      for (const crashSeed of [1, 2, 3]) {
        const p = await prepare(1)
        let next: SimDisk | undefined
        p.watch.crashAt = at
        p.watch.onCrash = () => {
          next = p.disk.crash({ seed: crashSeed * 1000 + at })
        }
        p.watch.isCounting = true
        const r = await p.log.truncateBefore(p.cut).then(
          () => undefined,
          (e: unknown) => e,
        )
        p.watch.isCounting = false
        if (next === undefined) {
          // Crash point past the last op: the truncation finished; crash after it.
          assert.equal(r, undefined)
          next = p.disk.crash({ seed: crashSeed })
        } else {
          assert.ok(r === undefined || r instanceof IoError, `op ${at}: ${r}`)
        }
        await p.log.close().catch(() => {})
        await checkReopen(
          next,
          p.before,
          p.cut,
          `crash before op ${at} (${p.watch.ops[at]?.kind}) seed ${crashSeed}`,
        )
        cases++
      }
    }
    assert.ok(cases > 10)
  })

  test('a failed shrink poisons the instance; the reopen has every record above the new start', async () => {
    const failpoints = new Failpoints()
    const p = await prepare(5, failpoints)
    failpoints.set('segment shrink')
    await assert.rejects(
      p.log.truncateBefore(p.cut),
      (e) => e instanceof IoError || (e as { code?: string }).code === 'BOBSLED_FAILPOINT',
    )
    assert.ok(p.log.failure !== undefined)
    await p.log.close().catch(() => {})
    await checkReopen(p.disk.crash({ seed: 9 }), p.before, p.cut, 'failed shrink')
  })
})
