// The key-level power-loss run over the simulated disk, shared by the R3 test at the Db
// level (test/sim/db-power-loss.test.ts: PSOW, gating) and its device-fault variants
// (test/sim/db-power-loss-variants.test.ts: non-PSOW, misdirected and lost writes). A
// random workload of inserts, removes, batches, updateAndFetch, compare-and-swap and
// clear() across two trees (test/crash/db-workload.ts) runs on open() over a SimDisk until
// the power is cut at a seeded random moment, sometimes again during the recovery that
// follows; after each reopen the state must be a prefix of the issued writes holding every
// acknowledged one, and no call may have answered wrong (a CAS with no other writer failing).

import { type Db, type OpenOptions, open } from '../../src/index.js'
import { SimDisk, type SimFaults } from '../../src/io/index.js'
import { Prng } from '../../src/util/prng.js'
import {
  addRecovered,
  checkRecovered,
  History,
  readState,
  runWorkload,
  type Scenario,
  type WriteIntent,
} from '../crash/db-workload.js'
import { turns } from '../helpers/log-faults.js'

export interface DbOutcome {
  acked: number
  kept: number
  ackedLost: number
  tornBatches: number
  phantom: number
  violation?: string
  /**
   * What the violation is: 'acked_lost' when the state is a prefix of the writes that stops
   * before an acknowledged one (only a tail is missing); 'wrong' when it is no prefix at all
   * (a phantom value, a torn batch, writes out of order).
   */
  kind?: 'acked_lost' | 'wrong'
  /** The acked_lost is a rollback: the state is an earlier round's, one a recovery had returned. */
  rollback?: boolean
  /** Lone rounds written inline (StorageFile.writeSyncedNow), over the run's workload rounds. */
  inlineWrites: number
}

export interface DbRunOptions {
  /** Mutation switch of the workload: acknowledge before awaiting. */
  ackEarly?: boolean
  /** Device faults of the simulated disk (the R3 variants); none by default. */
  device?: SimFaults
  /** Told every disk of the run as it comes up (the last one's `injected` counts the device faults). */
  onDisk?: (disk: SimDisk) => void
  /** Mutation switch of the checker: a value read back is replaced by another write's. */
  swapValues?: boolean
  /** Mutation switch of the workload: every compare-and-swap is taken as failed. */
  casFails?: boolean
  /** Lone rounds written inline; default: on for even seeds, so both write paths get cut. */
  inlineSyncedWrites?: boolean
  /** The workload's scenario (db-workload.ts); default 'mixed'. */
  scenario?: Scenario
  /**
   * The page cache's capacity; default 16 KiB, which its log buffers overfill, so a round
   * is rarely alone and rarely inline. 1 MiB lets a lone writer's rounds go inline.
   */
  cacheCapacity?: number
}

function openDb(
  disk: SimDisk,
  durability: 'sync' | 'flush',
  inlineSyncedWrites: boolean,
  cacheCapacity: number,
): Promise<Db> {
  const o: OpenOptions = {
    storage: disk.storage('db'),
    durability,
    inlineSyncedWrites,
    segmentBytes: 8 * 1024,
    cacheCapacity,
    flushEveryMs: 0,
    nodeMaxBytes: 512,
    nodeMaxEntries: 16,
  }
  return open('db', o)
}

/**
 * Tells lost acknowledged writes from a wrong state, the same check with no write
 * acknowledged: 'acked_lost' when the state is some prefix of this round's writes, or of an
 * earlier round's (a rollback past a state an earlier recovery had returned: a device
 * without PSOW, or a misdirected or lost write, can take writes of the last segment that
 * were already recovered, docs/RELIABILITY.md "Rollback past a recovered state"); 'wrong'
 * when it is none.
 */
function classify(
  past: readonly History[],
  h: History,
  state: Map<string, number>,
  phantom: string[],
): { kind: 'acked_lost' | 'wrong'; rollback: boolean } {
  for (const [n, x] of [...past, h].entries()) {
    const unacked = new History()
    unacked.base = new Map(x.base)
    for (const i of x.intents) unacked.intent(i)
    if (checkRecovered(unacked, state, phantom).violation === undefined)
      return { kind: 'acked_lost', rollback: n < past.length }
  }
  return { kind: 'wrong', rollback: false }
}

/** The inline writes of a Db whose disk may be dead (0 when its stats cannot be read). */
async function inlineWritesOf(db: Db): Promise<number> {
  try {
    const s = (await db.stats()) as { store?: { logSync?: { inlineWrites: number } } }
    return s.store?.logSync?.inlineWrites ?? 0
  } catch {
    return 0
  }
}

/** One seed; throws when a reopen or a read fails (a typed error is a detection). */
export async function runDbSeed(
  seed: number,
  durability: 'sync' | 'flush',
  o: DbRunOptions = {},
): Promise<DbOutcome> {
  const rng = new Prng(seed)
  let disk = new SimDisk({ seed, latency: true, ...o.device })
  o.onDisk?.(disk)
  const crash = (): void => {
    disk = disk.crash({ seed: rng.next() })
    o.onDisk?.(disk)
  }
  const h = new History()
  /** Each earlier round's base and the writes its recovery kept, for classify(). */
  const past: History[] = []
  const total: DbOutcome = { acked: 0, kept: 0, ackedLost: 0, tornBatches: 0, phantom: 0, inlineWrites: 0 }
  const rounds = 1 + rng.int(3)
  const inline = o.inlineSyncedWrites ?? seed % 2 === 0
  const capacity = o.cacheCapacity ?? 16 * 1024
  for (let round = 0; round <= rounds; round++) {
    const db = await openDb(disk, durability, inline, capacity)
    const { state, phantom } = await readState(db)
    if (o.swapValues === true && round === rounds) {
      // Two keys trade values, as a misdirected write landing on a record boundary would.
      const keys = [...state.keys()].filter((k) => (state.get(k) ?? -1) >= 0)
      if (keys.length >= 2) {
        const [a, b] = keys as [string, string]
        const va = state.get(a) as number
        state.set(a, state.get(b) as number)
        state.set(b, va)
      }
    }
    // What this round may be rolled back to later: its base and the writes it kept.
    const before = new History()
    before.base = new Map(h.base)
    const intents = h.intents.slice()
    const c = addRecovered(total, checkRecovered(h, state, phantom))
    if (c.violation !== undefined) {
      await db.close().catch(() => {})
      const { kind, rollback } = classify(past, h, state, phantom)
      const what = rollback ? `rolled back to an earlier round (${c.violation})` : c.violation
      return { ...total, violation: `round ${round}: ${what}`, kind, rollback }
    }
    for (const i of intents.slice(0, c.kept)) before.intent(i)
    past.push(before)
    if (round === rounds) {
      await db.close()
      break
    }
    const wrong: string[] = []
    const sink = {
      intent: (i: WriteIntent) => h.intent(i),
      ack: (w: number, prefix: boolean) => h.ack(w, prefix),
      wrongAnswer: (what: string) => wrong.push(what),
    }
    const running = runWorkload(db, rng, h.nextW, 10 + rng.int(150), sink, {
      durability,
      ackEarly: o.ackEarly === true,
      moreKinds: true,
      casFails: o.casFails === true,
      ...(o.scenario !== undefined ? { scenario: o.scenario } : {}),
    })
    await Promise.race([running, turns(rng.int(600))])
    crash()
    await running
    total.inlineWrites += await inlineWritesOf(db)
    if (wrong.length > 0) return { ...total, violation: `round ${round}: ${wrong.join('; ')}`, kind: 'wrong' }
    if (rng.chance(0.3)) {
      // A second power cut while recovery runs.
      const opening = openDb(disk, durability, inline, capacity).catch(() => undefined)
      await turns(rng.int(40))
      crash()
      await opening
    }
  }
  return total
}
