// Child process of the real disk-full test (disk-full-real.test.ts). Two modes:
//
//   fill <dir> <seed> <ballastBytes>
//     Writes a ballast file of <ballastBytes> beside <dir>, then opens a Log in <dir> and
//     appends (single records, batches, blobs) until the file system says no. Flushes go out
//     unawaited too, so some are in flight when the fault hits. Prints:
//       ACK <seq>           a flush resolved: every record below seq+1 is acknowledged
//       FAULT <json>        the first rejected call, classified (typed or not, code, errno)
//       AFTER <json>        what the poisoned instance did afterwards
//       DONE
//     With SIGXFSZ ignored (EFBIG variant under `ulimit -f`), the same.
//
//   verify <dir> <freeMode>
//     freeMode 'delete' removes the ballast first ('remount' means the parent shell already
//     made the tmpfs bigger). Opens the log, checks the records are a clean prefix, appends
//     and flushes a few more, closes, reopens and checks again. Prints:
//       VERIFY <json>   (recovered count, prefix violation, leftover temp files, orphan blobs)
//
// Every failure a caller sees must be a typed bobsled error; the parent checks the figures.

import { rmSync, writeFileSync, writeSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { DiskFullError, IoError, isBobsledError } from '../../src/errors.js'
import { FileStorage } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { Prng } from '../../src/util/prng.js'
import { checkPrefix, encodeRecord } from '../crash/log-records.js'
import { ProbeStorage, withTimeout } from '../helpers/log-faults.js'

const SEGMENT_BYTES = 64 * 1024
const CALL_TIMEOUT_MS = 10_000
const [mode, dir, arg1, arg2] = process.argv.slice(2) as [string, string, string, string]
const ballast = path.join(path.dirname(dir), 'ballast')

function out(line: string): void {
  writeSync(1, `${line}\n`)
}

function classify(e: unknown): Record<string, unknown> {
  return {
    typed: isBobsledError(e),
    code: isBobsledError(e) ? e.code : undefined,
    name: e instanceof Error ? e.name : typeof e,
    isDiskFull: e instanceof DiskFullError,
    isIoError: e instanceof IoError,
    errno: e instanceof IoError ? e.syscallCode : undefined,
    message: e instanceof Error ? e.message.slice(0, 200) : String(e),
  }
}

async function fill(seed: number, ballastBytes: number): Promise<void> {
  if (arg2 === 'efbig') process.on('SIGXFSZ', () => {})
  if (ballastBytes > 0) writeFileSync(ballast, Buffer.alloc(ballastBytes, 1))
  const rng = new Prng(seed)
  // The stable LSN at the moment the first write or datasync failed (before the log saw it).
  let stableAtFault: number | undefined
  let log: Log | undefined
  const probe = new ProbeStorage(new FileStorage(dir), () => {
    if (stableAtFault === undefined && log !== undefined) stableAtFault = log.stableLsn
  })
  log = await Log.open(dir, { storage: probe, segmentBytes: SEGMENT_BYTES, flushEveryMs: 0 })
  const l = log
  let seq = 0
  let flushesAfterFault = 0
  let untypedRejections = 0
  const inFlight = new Set<Promise<void>>()
  const flushFrom = (upTo: number): Promise<void> => {
    const p = l.flush().then(
      (target) => {
        // A flush that resolves for bytes not stable when the fault hit breaks P7.
        if (stableAtFault !== undefined && target > stableAtFault) flushesAfterFault++
        out(`ACK ${upTo}`)
      },
      (e: unknown) => {
        if (!isBobsledError(e)) untypedRejections++
      },
    )
    inFlight.add(p)
    void p.finally(() => inFlight.delete(p))
    return p
  }
  let fault: unknown
  try {
    for (let op = 0; op < 1_000_000; op++) {
      const pick = rng.int(20)
      if (pick < 12) {
        l.append(encodeRecord(seq, 0, 1, rng.int(2000)))
        seq++
      } else if (pick < 17) {
        const n = 2 + rng.int(5)
        l.appendBatch(Array.from({ length: n }, (_, i) => encodeRecord(seq + i, i, n, rng.int(800))))
        seq += n
      } else {
        await withTimeout(
          l.appendLarge(encodeRecord(seq, 0, 1, l.maxInlineBytes + 1 + rng.int(40_000))),
          CALL_TIMEOUT_MS,
          'appendLarge',
        )
        seq++
      }
      if (rng.int(3) === 0) {
        const p = flushFrom(seq - 1)
        if (rng.int(2) === 0) await withTimeout(p, CALL_TIMEOUT_MS, 'flush')
        if (l.failure !== undefined) throw l.failure
      }
      if (rng.int(6) === 0) await withTimeout(l.whenWritable(), CALL_TIMEOUT_MS, 'whenWritable')
    }
  } catch (e) {
    fault = e
  }
  await Promise.allSettled([...inFlight])
  out(`FAULT ${JSON.stringify({ ...classify(fault), seq, stableAtFault: stableAtFault ?? null })}`)
  // The instance must now be poisoned: every write-side call rejects with a typed error.
  probe.markPoisoned()
  const stableAfter = l.stableLsn
  const after: Record<string, unknown> = { poisoned: l.failure !== undefined }
  const expectTyped = async (what: string, f: () => unknown): Promise<void> => {
    try {
      await withTimeout(Promise.resolve().then(f), CALL_TIMEOUT_MS, what)
      after[what] = 'resolved'
    } catch (e) {
      after[what] = isBobsledError(e) ? e.code : `UNTYPED ${e instanceof Error ? e.name : String(e)}`
    }
  }
  await expectTyped('append', () => l.append(encodeRecord(seq, 0, 1, 10)))
  await expectTyped('appendLarge', () => l.appendLarge(encodeRecord(seq, 0, 1, l.maxInlineBytes + 10)))
  await expectTyped('flush', () => l.flush())
  await expectTyped('makeStable', () => l.makeStable(l.maxReservedLsn))
  after.stableMoved = l.stableLsn !== stableAfter
  after.flushesAfterFault = flushesAfterFault
  after.untypedRejections = untypedRejections
  after.syncAfterFailedSync = probe.syncAfterFailedSync
  after.logIoAfterPoison = probe.logIoAfterFailure
  try {
    await withTimeout(l.close(), CALL_TIMEOUT_MS, 'close')
    after.close = 'ok'
  } catch (e) {
    after.close = isBobsledError(e) ? e.code : `UNTYPED ${String(e)}`
  }
  out(`AFTER ${JSON.stringify(after)}`)
  out('DONE')
}

let blobRecords = 0

async function readAll(): Promise<Uint8Array[]> {
  blobRecords = 0
  const l = await withTimeout(
    Log.open(dir, { segmentBytes: SEGMENT_BYTES, flushEveryMs: 0 }),
    CALL_TIMEOUT_MS,
    'reopen',
  )
  const records: Uint8Array[] = []
  try {
    for await (const r of l.iterFrom(0)) {
      records.push(r.data)
      if (r.isBlob) blobRecords++
    }
  } finally {
    await l.close()
  }
  return records
}

async function verify(freeMode: string): Promise<void> {
  if (freeMode === 'delete') rmSync(ballast, { force: true })
  const v: Record<string, unknown> = { reopen: false }
  try {
    const first = await readAll()
    const c = checkPrefix(first)
    v.reopen = true
    v.recovered = 'count' in c ? c.count : -1
    v.violation = 'violation' in c ? c.violation : null
    // The recovered log takes new writes, and they survive another reopen.
    const l = await Log.open(dir, { segmentBytes: SEGMENT_BYTES, flushEveryMs: 0 })
    const start = 'count' in c ? c.count : 0
    for (let i = 0; i < 20; i++) l.append(encodeRecord(start + i, 0, 1, 100))
    await l.flush()
    await l.close()
    const second = checkPrefix(await readAll())
    v.afterMore = 'count' in second ? second.count : -1
    v.leftovers = (await fs.readdir(dir)).filter((n) => n.endsWith('.tmp') || n === 'tail.journal')
    // A blob whose write hit the fault is an orphan: recovery must have removed it.
    v.orphanBlobs = (await fs.readdir(path.join(dir, 'blobs'))).length - blobRecords
  } catch (e) {
    v.error = classify(e)
  }
  out(`VERIFY ${JSON.stringify(v)}`)
}

if (mode === 'fill') await fill(Number(arg1), Number(arg2 === 'efbig' ? 0 : arg2))
else if (mode === 'verify') await verify(arg1)
else throw new Error(`unknown mode ${mode}`)
