// The IO-trace protocol monitor (R12, test/helpers/protocol-monitor.ts) over the page
// cache with cleaning and checkpoints running. The page cache's Log instance is wrapped so
// every record, batch and blob pointer it appends (user writes, relocations,
// consolidations) becomes an extent of the monitor's facts, and three kinds of
// acknowledgement are checked by I1 (written, then datasynced, then acknowledged):
// resolved flush()es, samples of the public stableLsn (no stable LSN advance before its
// datasync), and each checkpoint's rename (its cut must be durable first). I2–I5 apply
// unchanged (I3: no blob pointer written before its blob file and folder are durable;
// I5: no slot reused before it is zeroed and synced). Added here:
//  I6 head witness. Before truncation zeroes a slot that held segment B, a segment
//     header naming a first LSN above B was written and datasynced (otherwise a crash
//     leaves a log whose start lies in a zeroed slot).
//  A1 accounting. After every step: no background error, segment live bytes sum to
//     stats().liveBytes, which equals the page table's fragments.
// Mutation checks: acknowledging before the datasync trips I1; a syncDir('blobs') that
// does nothing trips I3. BOBSLED_SEED=<n> replays a seed; BOBSLED_SOAK=1 runs more.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { BLOB_POINTER_BODY_BYTES, decodeSegmentHeader, messageHeaderBytes } from '../../src/log/format.js'
import type { Log } from '../../src/log/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { Prng } from '../../src/util/prng.js'
import { isSoak, RecordingStorage, seedList, showRecord } from '../helpers/io-recorder.js'
import { deltaOf, type ListPage, listCodec } from '../helpers/list-codec.js'
import { turns } from '../helpers/log-faults.js'
import { accountingProblem } from '../helpers/page-history.js'
import {
  checkProtocol,
  type Extent,
  type Facts,
  INVARIANTS,
  type MonitorReport,
} from '../helpers/protocol-monitor.js'

const SEEDS = isSoak ? 3000 : 120

interface Options {
  unsafeAckBeforeSync?: boolean
  skipBlobDirSync?: boolean
}

interface Report extends MonitorReport {
  i6: number
  i6Checked: number
  a1: number
  a1Messages: string[]
}

/** Wraps the Log's append methods so every extent the page cache writes is a fact. */
function instrument(log: Log, facts: Facts, life: number, rec: RecordingStorage, S: number): void {
  const extentOf = (kind: Extent['kind'], lo: number, hi: number, clock: number): void => {
    const pieces: Extent['pieces'] = []
    for (let base = Math.floor(lo / S) * S; base <= hi; base += S) {
      const a = Math.max(lo, base)
      const b = Math.min(hi, base + S - 1)
      const pos = log.positionOf(a)
      if (pos === undefined) throw new Error(`positionOf(${a}) is undefined right after append`)
      pieces.push({ pos, len: b - a + 1 })
    }
    facts.extents.push({ instance: life, kind, lo, hi, pieces, clock })
  }
  const append = log.append.bind(log)
  const appendWithHead = log.appendWithHead.bind(log)
  const appendBatch = log.appendBatch.bind(log)
  const appendLarge = log.appendLarge.bind(log)
  const relinkBlob = log.relinkBlob.bind(log)
  const l = log as unknown as Record<string, unknown>
  l.append = (data: Uint8Array, ...rest: unknown[]) => {
    const clock = rec.clock()
    const lsn = (append as (...a: unknown[]) => number)(data, ...rest)
    extentOf(
      'record',
      lsn,
      lsn + messageHeaderBytes(data.length, Math.floor(lsn / S), 0) + data.length - 1,
      clock,
    )
    return lsn
  }
  // replace() and link() log through appendWithHead() (head and page, one record).
  l.appendWithHead = (head: Uint8Array, body: Uint8Array, ...rest: unknown[]) => {
    const clock = rec.clock()
    const lsn = (appendWithHead as (...a: unknown[]) => number)(head, body, ...rest)
    const len = head.length + body.length
    extentOf('record', lsn, lsn + messageHeaderBytes(len, Math.floor(lsn / S), 0) + len - 1, clock)
    return lsn
  }
  l.appendBatch = (...args: unknown[]) => {
    const clock = rec.clock()
    const before = log.maxReservedLsn
    const last = (appendBatch as (...a: unknown[]) => number)(...args)
    extentOf('batch', before + 1, log.maxReservedLsn, clock)
    return last
  }
  l.appendLarge = async (...args: unknown[]) => {
    const clock = rec.clock()
    const lsn = await (appendLarge as (...a: unknown[]) => Promise<number>)(...args)
    const len = messageHeaderBytes(BLOB_POINTER_BODY_BYTES, Math.floor(lsn / S), 0)
    extentOf('blob', lsn, lsn + len + BLOB_POINTER_BODY_BYTES - 1, clock)
    return lsn
  }
  // Relocation moves a blob page's pointer (and its deltas, as a batch): the pointer is a
  // blob extent for I3, the whole batch an extent for I1.
  l.relinkBlob = (...args: unknown[]) => {
    const clock = rec.clock()
    const before = log.maxReservedLsn
    const lsn = (relinkBlob as (...a: unknown[]) => number)(...args)
    const len = messageHeaderBytes(BLOB_POINTER_BODY_BYTES, Math.floor(lsn / S), 0)
    extentOf('blob', lsn, lsn + len + BLOB_POINTER_BODY_BYTES - 1, clock)
    if (log.maxReservedLsn > lsn + len + BLOB_POINTER_BODY_BYTES - 1)
      extentOf('batch', before + 1, log.maxReservedLsn, clock)
    relinks++
    return lsn
  }
}

let relinks = 0

async function runSeed(seed: number, o: Options = {}): Promise<Report> {
  const rng = new Prng(seed)
  const S = rng.pick([1024, 2048, 4096] as const)
  const disk = new SimDisk({ seed, latency: true, trace: true })
  const rec = new RecordingStorage(disk, disk.storage('db'), {
    skipSyncDir: o.skipBlobDirSync === true ? ['blobs'] : [],
  })
  const facts: Facts = { seed, segmentBytes: S, extents: [], acks: [], lifetimes: [] }
  let a1 = 0
  const a1Messages: string[] = []
  const lives = 1 + rng.int(3)
  for (let life = 0; life < lives; life++) {
    const openClock = rec.clock()
    const pc = await PageCache.open('db', listCodec, {
      storage: rec,
      segmentBytes: S,
      flushEveryMs: 0,
      cacheCapacity: 2000,
      consolidateAfter: 3,
      checkpointEveryBytes: 2 * S,
      unsafeAckBeforeSync: o.unsafeAckBeforeSync === true,
    })
    instrument(pc.log, facts, life, rec, S)
    const pending: Promise<unknown>[] = []
    // A sample acknowledges the extents wholly at or below the stable LSN (a batch that
    // rolled to the next segment starts its extent in the sealed segment's padding, which
    // can be stable before the batch is).
    const sample = (what: string): void => {
      const stable = pc.stableLsn
      let lsn = -1
      for (let k = facts.extents.length - 1; k >= 0; k--) {
        const e = facts.extents[k] as Extent
        if (e.instance !== life) break
        if (e.hi <= stable) lsn = Math.max(lsn, e.hi)
      }
      if (lsn >= 0) facts.acks.push({ instance: life, lsn, clock: rec.clock(), stable, what })
    }
    const live = (): number[] => [...pc.pageIds()]
    for (let i = 0, steps = 80 + rng.int(200); i < steps; i++) {
      const pick = rng.int(100)
      const pids = live()
      if (pick < 15 || pids.length === 0) {
        pc.replace(pc.allocate(), { items: [`${i}`.padEnd(1 + rng.int(50), '.')] })
      } else if (pick < 50) {
        pc.replace(rng.pick(pids), { items: [`${i}`.padEnd(1 + rng.int(60), '.')] })
      } else if (pick < 65) {
        const pid = rng.pick(pids)
        const page = (await pc.get(pid)) as ListPage
        pc.link(pid, deltaOf(`${i}`), { items: [...page.items, `${i}`] })
      } else if (pick < 70) {
        pc.free(rng.pick(pids))
      } else if (pick < 76) {
        const a = rng.pick(pids)
        const b = rng.pick(pids)
        pc.writeBatch([
          { kind: 'replace', pid: a, page: { items: [`a${i}`] } },
          { kind: 'replace', pid: b, page: { items: [`b${i}`] } },
        ])
      } else if (pick < 80) {
        await pc.replaceLarge(rng.pick(pids), {
          items: [`${i}`.padEnd(pc.maxPageBytes + 1 + rng.int(S), 'L')],
        })
      } else if (pick < 90) {
        const p = pc.flush()
        pending.push(
          p.then(
            (lsn) =>
              facts.acks.push({
                instance: life,
                lsn,
                clock: rec.clock(),
                stable: pc.stableLsn,
                what: 'flush()',
              }),
            () => {},
          ),
        )
        if (rng.chance(0.5)) await p
      } else if (pick < 93) {
        await pc.cleanNow()
      } else {
        await turns(1 + rng.int(4))
      }
      sample('stableLsn sample')
      const bad = accountingProblem(pc)
      if (bad !== undefined) {
        a1++
        if (a1Messages.length < 3) a1Messages.push(`seed=${seed} A1 life ${life} step ${i}: ${bad}`)
      }
    }
    await Promise.allSettled(pending)
    const target = pc.log.maxReservedLsn
    const closeCall = rec.clock()
    await pc.close()
    const closeEnd = rec.clock()
    facts.acks.push({ instance: life, lsn: target, clock: closeEnd, stable: pc.stableLsn, what: 'close()' })
    facts.lifetimes.push({ index: life, openClock, closeCall, closeEnd, closedOk: true, poisoned: false })
  }
  const trace = disk.trace
  // Checkpoints: the rename that publishes a cut acknowledges every LSN below it.
  for (const r of trace) {
    const m = r.kind === 'rename' && r.ok ? /^checkpoint-([0-9a-f]{16})$/.exec(r.to ?? '') : null
    if (m === null) continue
    const cut = Number.parseInt(m[1] as string, 16)
    if (cut === 0) continue
    const life = facts.lifetimes.findIndex((l) => r.start > l.openClock && r.start <= l.closeEnd)
    facts.acks.push({
      instance: life,
      lsn: cut - 1,
      clock: r.start,
      stable: cut - 1,
      what: `checkpoint ${cut}`,
    })
  }
  const report = checkProtocol(trace, rec, facts) as Report
  Object.assign(report, { a1, a1Messages, ...checkHeadWitness(trace, rec, S) })
  return report
}

/** I6: a slot holding segment B is zeroed only after a durable header says the log starts above B. */
function checkHeadWitness(
  trace: readonly import('../../src/io/index.js').TraceRecord[],
  rec: RecordingStorage,
  S: number,
): { i6: number; i6Checked: number; i6Messages: string[] } {
  const writes = trace
    .filter((r) => r.kind === 'write' && r.path === 'db/log' && r.ok)
    .sort((a, b) => a.start - b.start)
  const syncs = trace.filter((r) => r.kind === 'datasync' && r.path === 'db/log' && r.ok)
  const headers: Array<{ w: (typeof writes)[number]; firstLsn: number }> = []
  const lifeOf = new Map<number, number>()
  let i6 = 0
  let i6Checked = 0
  const i6Messages: string[] = []
  for (const w of writes) {
    const bytes = rec.writeBytes.get(w.op) as Uint8Array
    const pos = w.position as number
    const slot = Math.floor(pos / S)
    if (pos % S === 0 && bytes.length >= S && bytes.every((b) => b === 0)) {
      const base = lifeOf.get(slot)
      if (base !== undefined) {
        i6Checked++
        // Durable by a datasync after it, or by itself when it was a synced (O_DSYNC) write.
        const witnessed = headers.some(
          (h) =>
            h.firstLsn > base &&
            ((h.w.synced === true && h.w.end < w.start) ||
              syncs.some((s) => s.start > h.w.end && s.end < w.start)),
        )
        if (!witnessed) {
          i6++
          if (i6Messages.length < 3)
            i6Messages.push(
              `I6: slot ${slot} (segment ${base}) zeroed by ${showRecord(w)} before a durable header moved the log's start past it`,
            )
        }
        lifeOf.delete(slot)
      }
      continue
    }
    if (pos % S === 0) {
      const h = decodeSegmentHeader(bytes, 0)
      if (h.ok) {
        lifeOf.set(slot, h.header.baseLsn)
        headers.push({ w, firstLsn: h.header.firstLsn })
      }
    }
  }
  return { i6, i6Checked, i6Messages }
}

const total = (r: Report): number => INVARIANTS.reduce((n, inv) => n + r.violations[inv], 0) + r.i6 + r.a1

test(`page cache protocol monitor over ${SEEDS} seeds: I1–I6 and accounting hold`, async () => {
  const seeds = seedList(SEEDS, 1)
  const sums = { I1: 0, I2: 0, I3: 0, I4: 0, I5: 0, I6: 0, A1: 0 }
  const checked = { I1: 0, I3: 0, I5: 0, I6: 0 }
  let events = 0
  for (const seed of seeds) {
    const r = await runSeed(seed)
    events += r.events
    for (const inv of INVARIANTS) sums[inv] += r.violations[inv]
    sums.I6 += r.i6
    sums.A1 += r.a1
    checked.I1 += r.checked.I1
    checked.I3 += r.checked.I3
    checked.I5 += r.checked.I5
    checked.I6 += r.i6Checked
    if (total(r) > 0) {
      const msgs = [
        ...INVARIANTS.flatMap((i) => r.messages[i]),
        ...r.a1Messages,
        ...((r as unknown as { i6Messages: string[] }).i6Messages ?? []),
      ]
      assert.fail(`seed=${seed} (replay: BOBSLED_SEED=${seed}): ${msgs.join('\n')}`)
    }
  }
  const v = Object.values(sums).reduce((a, b) => a + b, 0)
  console.log(
    `RELIABILITY pagecache-monitor seeds=${seeds.length} events=${events} violations=${v} ` +
      `(I1=${sums.I1} I2=${sums.I2} I3=${sums.I3} I4=${sums.I4} I5=${sums.I5} I6=${sums.I6} A1=${sums.A1}) ` +
      `checked: extents=${checked.I1} blob_pointers=${checked.I3} (via_relinkBlob=${relinks}) slot_reuses=${checked.I5} head_zeroings=${checked.I6} seed=${seeds[0]}`,
  )
  if (process.env.BOBSLED_SEED === undefined) {
    for (const [k, n] of Object.entries(checked)) assert.ok(n > 0, `${k} checked nothing`)
    assert.ok(relinks > 0, 'cleaning relinked blob pointers')
  }
})

async function mutation(name: string, pick: (r: Report) => number, o: Options, count: number): Promise<void> {
  let found = 0
  const seeds = seedList(count, 50_001)
  for (const seed of seeds) found += pick(await runSeed(seed, o))
  console.log(`RELIABILITY pagecache-monitor-mutation ${name} seeds=${seeds.length} caught=${found}`)
  if (process.env.BOBSLED_SEED === undefined) assert.ok(found > 0, `the monitor missed ${name}`)
}

test('mutation check: acknowledging before the datasync trips I1 on the page cache', async () => {
  await mutation('unsafeAckBeforeSync I1', (r) => r.violations.I1, { unsafeAckBeforeSync: true }, 5)
})

test("mutation check: a syncDir('blobs') that does nothing trips I3 on the page cache", async () => {
  await mutation('skip-syncDir-blobs I3', (r) => r.violations.I3, { skipBlobDirSync: true }, 10)
})
