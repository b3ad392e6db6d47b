// The log-level power-loss workload and its run over the simulated disk, shared by the R3
// test (test/sim/log-power-loss.test.ts, PSOW, gating) and its device-fault variants
// (test/sim/power-loss-variants.test.ts: non-PSOW, misdirected and lost writes, reported).
// A random workload (single appends, batches, blobs, flushes, some not awaited) runs until
// the power is cut at a random moment, sometimes again in the middle of the following
// recovery. After each crash the log is reopened and checked: every acknowledged record
// there, a prefix of what was appended, no phantom record, batches whole or absent.

import { SimDisk, type SimFaults } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { Prng } from '../../src/util/prng.js'
import { checkPrefix, encodeRecord } from '../crash/log-records.js'
import { turns } from '../helpers/log-faults.js'

export const SEGMENT_BYTES = 2048
export interface Outcome {
  acked: number
  recovered: number
  violation?: string
  /** What the violation is: an acknowledged record missing from a valid prefix, or wrong records (phantom, torn, not a prefix). */
  kind?: 'acked_lost' | 'wrong'
  /** Lone rounds written inline (StorageFile.writeSyncedNow) by the workload's logs. */
  inlineWrites: number
}

interface Writer {
  seq: number
  acked: number
}

/** Runs a random workload on `log` for a while; returns when the power should go. */
async function workload(log: Log, rng: Prng, w: Writer, steps: number): Promise<void> {
  const ack = (upTo: number): void => {
    w.acked = Math.max(w.acked, upTo)
  }
  for (let i = 0; i < steps; i++) {
    const pick = rng.int(20)
    try {
      if (pick < 10) {
        log.append(encodeRecord(w.seq, 0, 1, rng.int(200)))
        w.seq++
      } else if (pick < 14) {
        const n = 2 + rng.int(5)
        const batch = Array.from({ length: n }, (_, k) => encodeRecord(w.seq + k, k, n, rng.int(150)))
        log.appendBatch(batch)
        w.seq += n
      } else if (pick < 15) {
        const seq = w.seq++
        // Over a quarter segment: a blob file.
        await log.appendLarge(encodeRecord(seq, 0, 1, log.maxInlineBytes + rng.int(600)))
      } else if (pick < 17) {
        const upTo = w.seq - 1
        await log.flush()
        ack(upTo)
      } else if (pick < 19) {
        const upTo = w.seq - 1
        log.flush().then(
          () => ack(upTo),
          () => {},
        )
      } else {
        await new Promise((r) => setImmediate(r))
      }
    } catch {
      return // the disk died under us (or the log was poisoned by it)
    }
  }
}

async function readAll(log: Log): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const r of log.iterFrom(0)) out.push(r.data)
  return out
}

async function openOn(
  disk: SimDisk,
  options: { unsafeAckBeforeSync?: boolean; inlineSyncedWrites: boolean },
): Promise<Log> {
  return Log.open('db', {
    storage: disk.storage('db'),
    segmentBytes: SEGMENT_BYTES,
    flushEveryMs: 0,
    ...options,
  })
}

export interface RunOptions {
  /** Mutation switch of the log: flush() resolves without a datasync. */
  unsafeAckBeforeSync?: boolean
  /** Device faults of the simulated disk (the R3 variants); none by default. */
  device?: SimFaults
  /**
   * Mutation switch of the harness: the final read hands back two records swapped, as a
   * misdirected write landing on a message boundary would; the check must call it wrong.
   */
  swapRecords?: boolean
  /** Told every disk of the run as it comes up (the last one's `injected` counts the device faults). */
  onDisk?: (disk: SimDisk) => void
  /** Lone rounds written inline; default: on for even seeds, so both write paths get cut. */
  inlineSyncedWrites?: boolean
}

export async function runSeed(seed: number, o: RunOptions = {}): Promise<Outcome> {
  const rng = new Prng(seed)
  let disk = new SimDisk({ seed, latency: true, ...o.device })
  o.onDisk?.(disk)
  const cut = (): void => {
    disk = disk.crash({ seed: rng.next() })
    o.onDisk?.(disk)
  }
  const w: Writer = { seq: 0, acked: -1 }
  const rounds = 1 + rng.int(3)
  const inlineSyncedWrites = o.inlineSyncedWrites ?? seed % 2 === 0
  let inlineWrites = 0
  const wrong = (violation: string, acked = w.acked): Outcome => ({
    acked,
    recovered: -1,
    violation,
    kind: 'wrong',
    inlineWrites,
  })
  for (let round = 0; round < rounds; round++) {
    const log = await openOn(disk, {
      unsafeAckBeforeSync: o.unsafeAckBeforeSync === true,
      inlineSyncedWrites,
    })
    const before = checkPrefix(await readAll(log))
    if ('violation' in before) return wrong(before.violation)
    if (before.count <= w.acked) {
      return {
        acked: w.acked,
        recovered: before.count,
        violation: 'acknowledged record lost',
        kind: 'acked_lost',
        inlineWrites,
      }
    }
    w.seq = before.count
    // The workload runs while the power cut is scheduled a random number of turns ahead.
    const running = workload(log, rng, w, 20 + rng.int(200))
    await Promise.race([running, turns(rng.int(400))])
    cut()
    await running.catch(() => {})
    inlineWrites += log.metrics().inlineWrites
    if (rng.chance(0.3)) {
      // A second power cut while recovery runs (it zeroes and syncs the torn tail).
      const opening = openOn(disk, { inlineSyncedWrites }).catch(() => undefined)
      await turns(rng.int(30))
      cut()
      await opening
    }
  }
  const log = await openOn(disk, { inlineSyncedWrites })
  const records = await readAll(log)
  await log.close()
  if (o.swapRecords === true && records.length >= 2) {
    ;[records[0], records[1]] = [records[1] as Uint8Array, records[0] as Uint8Array]
  }
  const check = checkPrefix(records)
  if ('violation' in check) return wrong(check.violation)
  if (check.count <= w.acked) {
    return {
      acked: w.acked,
      recovered: check.count,
      violation: `acknowledged seq ${w.acked} lost`,
      kind: 'acked_lost',
      inlineWrites,
    }
  }
  return { acked: w.acked, recovered: check.count, inlineWrites }
}
