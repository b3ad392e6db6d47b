// IO-trace protocol monitor (reliability regimen §5.0 item 2, R12). A seeded random log
// workload runs on a traced SimDisk through a RecordingStorage; the workload notes, on the
// trace's logical clock, what it appended (LSN extents and their file positions) and every
// acknowledgement (a resolved makeStable / flush / close). After the run, checkProtocol()
// checks five invariants over the trace, which is the ground truth for IO:
//
//  I1 stable before sync. For every acknowledged LSN L, every extent appended by that Log
//     instance whose first LSN is ≤ L (a record, a whole batch, a blob pointer) has each of
//     its bytes in the `log` file covered by successful writes that (a) were issued after
//     the extent was appended, (b) ended before a successful datasync of `log` began, and
//     (c) that datasync ended before the acknowledgement — or by a synced write (O_DSYNC,
//     its own datasync) that ended before the acknowledgement. Also: the public stable LSN read
//     at the acknowledgement is ≥ L.
//  I2 no sync retry. After a failed datasync (or synced write) of `log`, the same Log
//     instance issues no further datasync or synced write of `log`: none starts after the
//     failed one ended, up to the moment
//     its close() settled (syncs already in flight when it failed are not retries).
//  I3 blob before pointer. For every blob pointer message found in a write of `log` (parsed
//     from the written bytes: kind, CRC, blob id, size), before the first such write
//     started: the blob file's writes covered [0, 32 + size) and each ended before a
//     successful datasync of the blob file that itself ended before the pointer write; the
//     blob's create (open) ended before a successful syncDir('blobs') began, and that
//     syncDir ended before the pointer write.
//  I4 durable names. conf: conf.tmp is written, datasynced, renamed to conf, and the folder
//     synced (sync began after the rename ended), all before the `log` file is first opened.
//     witness: for every close() that resolved on an unpoisoned instance, inside that
//     close(): witness.tmp written, datasynced, renamed to witness, folder synced, all
//     ended before close() resolved.
//  I5 slot reuse. When a write puts a segment header of a new segment life (another base
//     LSN) into a slot that held an earlier life, an earlier all-zero write of the whole
//     slot started after every non-zero write of the earlier life had ended, and a
//     successful datasync of `log` covered it (began after it ended) and ended before the
//     new header's write started.

import type { TraceRecord } from '../../src/io/index.js'
import { SimDisk } from '../../src/io/index.js'
import {
  BLOB_POINTER_BODY_BYTES,
  decodeSegmentHeader,
  MessageKind,
  messageHeaderBytes,
  readU64,
  SEGMENT_HEADER_BYTES,
} from '../../src/log/format.js'
import { Log } from '../../src/log/index.js'
import { newParsedMessage, Parse, parseMessage } from '../../src/log/reader.js'
import { Prng } from '../../src/util/prng.js'
import { encodeRecord } from '../crash/log-records.js'
import { RecordingStorage, showRecord } from './io-recorder.js'
import { turns } from './log-faults.js'

export const INVARIANTS = ['I1', 'I2', 'I3', 'I4', 'I5'] as const
export type Invariant = (typeof INVARIANTS)[number]

const ROOT = 'db'
const LOG_PATH = `${ROOT}/log`
const BLOB_HEADER_BYTES = 32
const MAX_MESSAGES = 5

/** A range of LSNs the workload appended, and where its bytes live in the `log` file. */
export interface Extent {
  instance: number
  kind: 'record' | 'batch' | 'blob'
  lo: number
  hi: number
  /** File pieces [pos, pos + len) of the extent, one per segment it touches. */
  pieces: Array<{ pos: number; len: number }>
  /** Logical clock when it was appended: its writes start after this. */
  clock: number
}

export interface Ack {
  instance: number
  lsn: number
  /** Logical clock when the acknowledgement was seen. */
  clock: number
  /** log.stableLsn when the acknowledgement was seen. */
  stable: number
  what: string
}

export interface Lifetime {
  index: number
  openClock: number
  closeCall: number
  /** Clock when close() settled. */
  closeEnd: number
  closedOk: boolean
  poisoned: boolean
}

export interface Facts {
  seed: number
  segmentBytes: number
  extents: Extent[]
  acks: Ack[]
  lifetimes: Lifetime[]
}

export interface MonitorReport {
  seed: number
  events: number
  violations: Record<Invariant, number>
  /** First few violation messages per invariant. */
  messages: Record<Invariant, string[]>
  /** How many cases each invariant actually examined (a check that never runs proves nothing). */
  checked: Record<Invariant, number>
}

export interface MonitorOptions {
  /** Mutation: flush() acknowledges without a datasync (Log option). */
  unsafeAckBeforeSync?: boolean
  /** Mutation: syncDir('blobs') becomes a no-op that still resolves. */
  skipBlobDirSync?: boolean
  /** Odds that a life gets one injected datasync failure. Default 0.3. */
  faultOdds?: number
  /** Workload steps per Log lifetime. Default 60..260. */
  steps?: number
}

function zeroCounts(): Record<Invariant, number> {
  return { I1: 0, I2: 0, I3: 0, I4: 0, I5: 0 }
}

/** Runs one seeded workload and checks its trace. */
export async function runMonitorSeed(seed: number, o: MonitorOptions = {}): Promise<MonitorReport> {
  const rng = new Prng(seed)
  const S = rng.pick([1024, 2048, 4096] as const)
  const disk = new SimDisk({ seed, latency: true, trace: true })
  const rec = new RecordingStorage(disk, disk.storage(ROOT), {
    skipSyncDir: o.skipBlobDirSync === true ? ['blobs'] : [],
  })
  const facts: Facts = { seed, segmentBytes: S, extents: [], acks: [], lifetimes: [] }
  let seq = 0
  const lives = 1 + rng.int(3)
  for (let life = 0; life < lives; life++) {
    const openClock = rec.clock()
    const log = await Log.open(ROOT, {
      storage: rec,
      segmentBytes: S,
      flushEveryMs: 0,
      unsafeAckBeforeSync: o.unsafeAckBeforeSync === true,
    })
    const maxPad = log.maxInlineBytes - 12
    const lsns: number[] = []
    const pending: Promise<unknown>[] = []
    const extentOf = (kind: Extent['kind'], lo: number, hi: number, clock: number): void => {
      const pieces: Extent['pieces'] = []
      for (let base = Math.floor(lo / S) * S; base <= hi; base += S) {
        const a = Math.max(lo, base)
        const b = Math.min(hi, base + S - 1)
        const pos = log.positionOf(a)
        if (pos === undefined)
          throw new Error(`seed=${seed}: positionOf(${a}) is undefined right after append`)
        pieces.push({ pos, len: b - a + 1 })
      }
      facts.extents.push({ instance: life, kind, lo, hi, pieces, clock })
    }
    const ack = (p: Promise<unknown>, lsn: number | undefined, what: string): void => {
      pending.push(
        p.then(
          (v) => {
            const at = lsn ?? (v as number)
            facts.acks.push({ instance: life, lsn: at, clock: rec.clock(), stable: log.stableLsn, what })
          },
          () => {},
        ),
      )
    }
    const steps = o.steps ?? 60 + rng.int(200)
    const faultAt = rng.chance(o.faultOdds ?? 0.3) ? rng.int(steps) : -1
    for (let i = 0; i < steps; i++) {
      if (i === faultAt) disk.setFaults({ failAt: { op: rng.int(3), kinds: ['datasync'] } })
      if (log.failure !== undefined) break
      const pick = rng.int(100)
      try {
        if (pick < 40) {
          const data = encodeRecord(seq++, 0, 1, rng.int(Math.min(maxPad, 200)))
          const clock = rec.clock()
          const lsn = log.append(data)
          const len = messageHeaderBytes(data.length, Math.floor(lsn / S), 0) + data.length
          extentOf('record', lsn, lsn + len - 1, clock)
          lsns.push(lsn)
        } else if (pick < 52) {
          const n = 2 + rng.int(6)
          const batch = Array.from({ length: n }, (_, k) =>
            encodeRecord(seq + k, k, n, rng.int(Math.min(maxPad, 150))),
          )
          seq += n
          const clock = rec.clock()
          const before = log.maxReservedLsn
          const last = log.appendBatch(batch)
          extentOf('batch', before + 1, log.maxReservedLsn, clock)
          lsns.push(last)
        } else if (pick < 58) {
          const data = encodeRecord(seq++, 0, 1, log.maxInlineBytes + rng.int(S))
          const clock = rec.clock()
          const p = log.appendLarge(data).then((lsn) => {
            const len = messageHeaderBytes(BLOB_POINTER_BODY_BYTES, Math.floor(lsn / S), 0)
            extentOf('blob', lsn, lsn + len + BLOB_POINTER_BODY_BYTES - 1, clock)
            lsns.push(lsn)
          })
          if (rng.chance(0.5)) await p
          else pending.push(p.catch(() => {}))
        } else if (pick < 68) {
          if (lsns.length > 0) {
            const l = rng.chance(0.5) ? (lsns[lsns.length - 1] as number) : (rng.pick(lsns) as number)
            ack(log.makeStable(l), l, `makeStable(${l})`)
          }
        } else if (pick < 80) {
          const p = log.flush()
          ack(p, undefined, 'flush()')
          if (rng.chance(0.5)) await p
        } else if (pick < 84) {
          if (lsns.length > 0) pending.push(log.truncateBefore(rng.pick(lsns) as number).catch(() => {}))
        } else {
          await turns(1 + rng.int(4))
        }
      } catch {
        // The instance was poisoned (an injected fault): the rest of this life is skipped.
      }
    }
    await Promise.allSettled(pending)
    const target = log.maxReservedLsn
    const closeCall = rec.clock()
    let closedOk = false
    try {
      await log.close()
      closedOk = true
    } catch {}
    const closeEnd = rec.clock()
    const poisoned = log.failure !== undefined
    if (closedOk && !poisoned) {
      facts.acks.push({
        instance: life,
        lsn: target,
        clock: closeEnd,
        stable: log.stableLsn,
        what: 'close()',
      })
    }
    facts.lifetimes.push({ index: life, openClock, closeCall, closeEnd, closedOk, poisoned })
    disk.setFaults({ failAt: undefined })
  }
  return checkProtocol(disk.trace, rec, facts)
}

/** Coverage of [pos, pos + len) by intervals; returns the first uncovered offset or -1. */
function firstGap(pos: number, len: number, intervals: Array<[number, number]>): number {
  intervals.sort((a, b) => a[0] - b[0])
  let at = pos
  const end = pos + len
  for (const [a, b] of intervals) {
    if (a > at) break
    if (b > at) at = b
    if (at >= end) return -1
  }
  return at >= end ? -1 : at
}

/**
 * For each successful write in `writes`, the end tick of the earliest-ending successful
 * datasync in `syncs` that began after the write ended (Infinity if none); a synced write's
 * own end when that is earlier.
 */
function syncedBy(writes: TraceRecord[], syncs: TraceRecord[]): Map<TraceRecord, number> {
  const ok = syncs.filter((s) => s.ok).sort((a, b) => a.start - b.start)
  // Suffix minimum of end ticks over syncs ordered by start.
  const minEnd = new Array<number>(ok.length + 1).fill(Number.POSITIVE_INFINITY)
  for (let i = ok.length - 1; i >= 0; i--)
    minEnd[i] = Math.min(minEnd[i + 1] as number, (ok[i] as TraceRecord).end)
  const out = new Map<TraceRecord, number>()
  for (const w of writes) {
    // First sync with start > w.end.
    let lo = 0
    let hi = ok.length
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((ok[mid] as TraceRecord).start > w.end) hi = mid
      else lo = mid + 1
    }
    // A synced write (O_DSYNC) is its own datasync: durable when it ended.
    out.set(w, w.synced === true ? Math.min(w.end, minEnd[lo] as number) : (minEnd[lo] as number))
  }
  return out
}

function isAllZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false
  return true
}

export function checkProtocol(
  trace: readonly TraceRecord[],
  rec: RecordingStorage,
  facts: Facts,
): MonitorReport {
  const S = facts.segmentBytes
  const report: MonitorReport = {
    seed: facts.seed,
    events: trace.length,
    violations: zeroCounts(),
    messages: { I1: [], I2: [], I3: [], I4: [], I5: [] },
    checked: zeroCounts(),
  }
  const violate = (inv: Invariant, msg: string): void => {
    report.violations[inv]++
    if (report.messages[inv].length < MAX_MESSAGES)
      report.messages[inv].push(`seed=${facts.seed} ${inv}: ${msg}`)
  }
  const bytesOf = (w: TraceRecord): Uint8Array => {
    const b = rec.writeBytes.get(w.op)
    if (b === undefined) throw new Error(`seed=${facts.seed}: no bytes recorded for ${showRecord(w)}`)
    return b
  }
  const logWrites = trace.filter((r) => r.kind === 'write' && r.path === LOG_PATH && r.ok)
  const logSyncs = trace.filter((r) => r.kind === 'datasync' && r.path === LOG_PATH)
  const logSyncedBy = syncedBy(logWrites, logSyncs)
  // A synced write is a datasync too: after a failed sync, issuing one would be a retry.
  const logSyncsAndSyncedWrites = trace.filter(
    (r) => r.path === LOG_PATH && (r.kind === 'datasync' || (r.kind === 'write' && r.synced === true)),
  )

  // ---- I1: every acknowledged extent was written, then synced, then acknowledged ----
  const acks = [...facts.acks].sort((a, b) => a.clock - b.clock)
  const open = [...facts.extents]
  for (const a of acks) {
    if (a.stable < a.lsn) violate('I1', `${a.what} resolved with stableLsn ${a.stable} < ${a.lsn}`)
    for (let i = 0; i < open.length; i++) {
      const e = open[i] as Extent
      if (e.instance !== a.instance || e.lo > a.lsn) continue
      open.splice(i--, 1)
      report.checked.I1++
      for (const p of e.pieces) {
        const covering: Array<[number, number]> = []
        for (const w of logWrites) {
          if (w.start <= e.clock || (logSyncedBy.get(w) as number) > a.clock) continue
          const wp = w.position as number
          const wl = w.length as number
          if (wp < p.pos + p.len && wp + wl > p.pos) covering.push([wp, wp + wl])
        }
        const gap = firstGap(p.pos, p.len, covering)
        if (gap >= 0) {
          const near = logWrites
            .filter(
              (w) =>
                w.start > e.clock &&
                (w.position as number) <= gap &&
                (w.position as number) + (w.length as number) > gap,
            )
            .slice(0, 3)
            .map((w) => `${showRecord(w)} synced-by-end=${logSyncedBy.get(w)}`)
          violate(
            'I1',
            `${a.what} at clock ${a.clock} acknowledged ${e.kind} LSN ${e.lo}..${e.hi} but file byte ${gap} ` +
              `was not written-then-synced before it; writes there: ${near.join('; ') || 'none'}`,
          )
          break
        }
      }
    }
  }

  // ---- I2: no datasync of log after a failed one, in the same instance ----
  for (const life of facts.lifetimes) {
    const inLife = logSyncsAndSyncedWrites.filter((s) => s.start > life.openClock && s.start <= life.closeEnd)
    for (const f of inLife.filter((s) => !s.ok)) {
      report.checked.I2++
      for (const s of inLife) {
        if (s.start > f.end) violate('I2', `datasync retried after ${showRecord(f)}: ${showRecord(s)}`)
      }
    }
  }

  // ---- I3: blob written, synced, folder synced before its pointer is written ----
  const pointerWrites = new Map<string, { first: TraceRecord; id: number; size: number }>()
  const msg = newParsedMessage()
  for (const e of facts.extents) {
    if (e.kind !== 'blob') continue
    const p = e.pieces[0] as { pos: number; len: number }
    const slotStart = p.pos - (p.pos % S)
    let found: { first: TraceRecord; id: number; size: number } | undefined
    for (const w of logWrites) {
      const wp = w.position as number
      if (w.start <= e.clock || wp > p.pos || wp + (w.length as number) < p.pos + p.len) continue
      const image = new Uint8Array(S)
      image.set(bytesOf(w), wp - slotStart)
      const at = p.pos - slotStart
      const r = parseMessage(image, at, S, S, Math.floor(e.lo / S), msg)
      if (r !== Parse.Ok || msg.kind !== MessageKind.BlobPointer) continue
      if (found === undefined || w.start < found.first.start) {
        found = {
          first: w,
          id: readU64(image, at + msg.headerBytes),
          size: readU64(image, at + msg.headerBytes + 8),
        }
      }
    }
    if (found !== undefined) pointerWrites.set(`${e.lo}`, found)
  }
  for (const [lsn, pw] of pointerWrites) {
    report.checked.I3++
    const P = pw.first
    const name = `blobs/${pw.id.toString(16).padStart(16, '0')}`
    const path = `${ROOT}/${name}`
    const what = `pointer LSN ${lsn} (${showRecord(P)}) to ${name}`
    const writes = trace.filter((r) => r.kind === 'write' && r.path === path && r.ok && r.start < P.start)
    const synced = syncedBy(
      writes,
      trace.filter((r) => r.kind === 'datasync' && r.path === path),
    )
    const good = writes
      .filter((w) => (synced.get(w) as number) < P.start)
      .map((w): [number, number] => [w.position as number, (w.position as number) + (w.length as number)])
    const gap = firstGap(0, BLOB_HEADER_BYTES + pw.size, good)
    if (gap >= 0)
      violate('I3', `${what}: blob byte ${gap} not written and datasynced before the pointer write`)
    const create = trace.find((r) => r.kind === 'open' && r.path === path && r.ok)
    if (create === undefined || create.start > P.start) {
      violate('I3', `${what}: the blob file was not created before the pointer write`)
      continue
    }
    const dirSync = trace.find(
      (r) =>
        r.kind === 'syncDir' && r.path === `${ROOT}/blobs` && r.ok && r.start > create.end && r.end < P.start,
    )
    if (dirSync === undefined) {
      violate(
        'I3',
        `${what}: no syncDir(blobs) between the blob's create ${showRecord(create)} and the pointer write`,
      )
    }
  }

  // ---- I4: conf and witness renamed into place and their folder synced before use ----
  const renameSequence = (
    tmp: string,
    final: string,
    from: number,
    until: number,
    use: string,
  ): string | undefined => {
    const tmpPath = `${ROOT}/${tmp}`
    const R = trace.find(
      (r) =>
        r.kind === 'rename' &&
        r.path === tmpPath &&
        r.to === final &&
        r.ok &&
        r.start > from &&
        r.end <= until,
    )
    if (R === undefined) return `no rename ${tmp} -> ${final} before ${use}`
    const writes = trace.filter(
      (r) => r.kind === 'write' && r.path === tmpPath && r.ok && r.start > from && r.end < R.start,
    )
    if (writes.length === 0) return `${tmp} renamed without being written`
    const lastWriteEnd = Math.max(...writes.map((w) => w.end))
    const D = trace.find(
      (r) => r.kind === 'datasync' && r.path === tmpPath && r.ok && r.start > lastWriteEnd && r.end < R.start,
    )
    if (D === undefined) return `${tmp} renamed (${showRecord(R)}) before a datasync covering its writes`
    const F = trace.find(
      (r) => r.kind === 'syncDir' && r.path === ROOT && r.ok && r.start > R.end && r.end <= until,
    )
    if (F === undefined) return `no folder sync after ${showRecord(R)} before ${use}`
    return undefined
  }
  const firstLogOpen = trace.find((r) => r.kind === 'open' && r.path === LOG_PATH && r.ok)
  if (firstLogOpen !== undefined) {
    report.checked.I4++
    const bad = renameSequence(
      'conf.tmp',
      'conf',
      -1,
      firstLogOpen.start,
      `the log file is opened (${showRecord(firstLogOpen)})`,
    )
    if (bad !== undefined) violate('I4', `conf: ${bad}`)
  }
  for (const life of facts.lifetimes) {
    if (!life.closedOk || life.poisoned) continue
    report.checked.I4++
    const bad = renameSequence(
      'witness.tmp',
      'witness',
      life.closeCall,
      life.closeEnd,
      `close() resolved (clock ${life.closeEnd})`,
    )
    if (bad !== undefined) violate('I4', `witness of life ${life.index}: ${bad}`)
  }

  // ---- I5: a slot is zeroed and synced before a new segment life's header lands in it ----
  const bySlot = new Map<number, TraceRecord[]>()
  for (const w of [...logWrites].sort((a, b) => a.start - b.start)) {
    const slot = Math.floor((w.position as number) / S)
    let list = bySlot.get(slot)
    if (list === undefined) {
      list = []
      bySlot.set(slot, list)
    }
    list.push(w)
  }
  for (const [slot, writes] of bySlot) {
    let lifeBase: number | undefined
    let lastDataEnd = -1
    for (const w of writes) {
      const bytes = bytesOf(w)
      const wp = w.position as number
      let headerBase: number | undefined
      if (wp === slot * S && bytes.length >= SEGMENT_HEADER_BYTES) {
        const h = decodeSegmentHeader(bytes, 0)
        if (h.ok) headerBase = h.header.baseLsn
      }
      if (headerBase !== undefined && lifeBase !== undefined && headerBase !== lifeBase) {
        report.checked.I5++
        const zeroed = writes.find(
          (z) =>
            z.start > lastDataEnd &&
            z.start < w.start &&
            (z.position as number) === slot * S &&
            (z.length as number) >= S &&
            isAllZero(bytesOf(z)) &&
            (logSyncedBy.get(z) as number) < w.start,
        )
        if (zeroed === undefined) {
          violate(
            'I5',
            `slot ${slot}: header of segment ${headerBase} written (${showRecord(w)}) over segment ${lifeBase} ` +
              `without a zeroed and synced slot after the old life's last write (ended ${lastDataEnd})`,
          )
        }
      }
      if (headerBase !== undefined) lifeBase = headerBase
      if (!isAllZero(bytes)) lastDataEnd = Math.max(lastDataEnd, w.end)
    }
  }
  return report
}

export function formatReport(r: MonitorReport): string {
  const lines = INVARIANTS.flatMap((inv) => r.messages[inv])
  return lines.join('\n')
}
