// Seeded power loss over the simulated disk: a random workload (single appends, batches,
// blobs, flushes, some not awaited) runs until the power is cut at a random moment —
// sometimes in the middle of the following recovery too. After the crash, which keeps a
// random subset of the unsynced writes, torn at sector granularity, the log is reopened:
// every acknowledged record must be there, the log must be a prefix of what was appended,
// no record may be one that was never written, and batches must be whole or absent.
// BOBSLED_SEED=<n> replays one seed; failures print it.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { Prng } from '../../src/util/prng.js'
import { checkPrefix, encodeRecord } from '../crash/log-records.js'

const SEGMENT_BYTES = 2048
const soak = process.env.BOBSLED_SOAK === '1'
const SEEDS = soak ? 20_000 : 500

interface Outcome {
  acked: number
  recovered: number
  violation?: string
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

async function openOn(disk: SimDisk, options: { unsafeAckBeforeSync?: boolean } = {}): Promise<Log> {
  return Log.open('db', {
    storage: disk.storage('db'),
    segmentBytes: SEGMENT_BYTES,
    flushEveryMs: 0,
    ...options,
  })
}

/** Cuts the power after `turns` turns of the event loop. */
function cutAfter(turns: number): Promise<void> {
  return new Promise((resolve) => {
    const step = (n: number): void => {
      if (n <= 0) resolve()
      else setImmediate(() => step(n - 1))
    }
    step(turns)
  })
}

export async function runSeed(seed: number, unsafeAckBeforeSync = false): Promise<Outcome> {
  const rng = new Prng(seed)
  let disk = new SimDisk({ seed, latency: true })
  const w: Writer = { seq: 0, acked: -1 }
  const rounds = 1 + rng.int(3)
  for (let round = 0; round < rounds; round++) {
    const log = await openOn(disk, { unsafeAckBeforeSync })
    const before = checkPrefix(await readAll(log))
    if ('violation' in before) return { acked: w.acked, recovered: -1, violation: before.violation }
    if (before.count <= w.acked)
      return { acked: w.acked, recovered: before.count, violation: 'acknowledged record lost' }
    w.seq = before.count
    // The workload runs while the power cut is scheduled a random number of turns ahead.
    const running = workload(log, rng, w, 20 + rng.int(200))
    await Promise.race([running, cutAfter(rng.int(400))])
    disk = disk.crash({ seed: rng.next() })
    await running.catch(() => {})
    if (rng.chance(0.3)) {
      // A second power cut while recovery runs (it zeroes and syncs the torn tail).
      const opening = openOn(disk).catch(() => undefined)
      await cutAfter(rng.int(30))
      disk = disk.crash({ seed: rng.next() })
      await opening
    }
  }
  const log = await openOn(disk)
  const records = await readAll(log)
  await log.close()
  const check = checkPrefix(records)
  if ('violation' in check) return { acked: w.acked, recovered: -1, violation: check.violation }
  if (check.count <= w.acked) {
    return { acked: w.acked, recovered: check.count, violation: `acknowledged seq ${w.acked} lost` }
  }
  return { acked: w.acked, recovered: check.count }
}

function seedsToRun(count: number, offset: number): number[] {
  const only = process.env.BOBSLED_SEED
  if (only !== undefined) return [Number(only)]
  return Array.from({ length: count }, (_, i) => offset + i)
}

test(`power loss over ${SEEDS} seeds: no acknowledged record lost, prefix, no phantom, whole batches`, async () => {
  let failures = 0
  let ackedTotal = 0
  let recoveredTotal = 0
  const seeds = seedsToRun(SEEDS, 1)
  for (const seed of seeds) {
    let o: Outcome
    try {
      o = await runSeed(seed)
    } catch (e) {
      assert.fail(`seed=${seed}: recovery failed: ${(e as Error).stack}`)
    }
    if (o.violation !== undefined) {
      failures++
      assert.fail(`seed=${seed}: ${o.violation} (acked ${o.acked}, recovered ${o.recovered})`)
    }
    ackedTotal += o.acked + 1
    recoveredTotal += o.recovered
  }
  console.log(
    `RELIABILITY log-power-loss seeds=${seeds.length} acked=${ackedTotal} recovered=${recoveredTotal} acked_lost=0 phantom=0 non_prefix=0 torn_batches=0 failed_reopens=0 seed=${seeds[0]}`,
  )
  assert.equal(failures, 0)
  assert.ok(ackedTotal > seeds.length, 'the workload acknowledged records')
})

test('mutation check: acknowledging before the datasync is caught by the power-loss test', async () => {
  // With the switch on, flush() resolves without a datasync; a power cut then loses
  // "acknowledged" records, and the same check must see it for some seed.
  // Unsynced data behind a witness also makes recovery report corruption: caught too.
  let lost = 0
  let failedReopens = 0
  const seeds = seedsToRun(200, 10_001)
  for (const seed of seeds) {
    const o = await runSeed(seed, true).catch(() => undefined)
    if (o === undefined) failedReopens++
    else if (o.violation !== undefined) lost++
  }
  const caught = lost + failedReopens
  console.log(
    `RELIABILITY log-power-loss-mutation seeds=${seeds.length} caught=${caught} acked_lost=${lost} failed_reopens=${failedReopens}`,
  )
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(caught > 0, 'the harness cannot fail: it missed unsynced acks')
})
