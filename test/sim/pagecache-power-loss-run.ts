// The page cache's power-loss run over the simulated disk, shared by its R3 test
// (test/sim/pagecache-power-loss.test.ts: PSOW, gating) and its device-fault variants
// (test/sim/db-power-loss-variants.test.ts). A random workload of overwrites, links, frees,
// batches and large (blob) pages on segments of 1–4 KiB, with cleaning and checkpoints,
// runs until the power is cut at a random moment; after each reopen the store must equal
// the model at some prefix of the write history at least as long as the acknowledged one,
// with no orphan blob file, sound accounting, and the same page table when recovered twice.

import { InvalidArgumentError } from '../../src/errors.js'
import { SimDisk, type SimFaults } from '../../src/io/index.js'
import { PageCache, type PageWrite } from '../../src/pagecache/index.js'
import { Prng } from '../../src/util/prng.js'
import { deltaOf, type ListPage, listCodec } from '../helpers/list-codec.js'
import { turns } from '../helpers/log-faults.js'
import {
  accountingProblem,
  type Items,
  orphanBlobs,
  PageHistory,
  pageTable,
  readState,
} from '../helpers/page-history.js'

export interface Totals {
  acked: number
  recovered: number
  relocated: number
  cleaned: number
  checkpoints: number
  blobs: number
  relinked: number
  /** Writes refused because cleaning was relocating their page (B-PC3, fixed: must stay 0). */
  busyRefusals: number
  /** Lone rounds written inline (StorageFile.writeSyncedNow) before the cuts. */
  inlineWrites: number
  /** User page-ins read inline (StorageFile.readNow), reads after each reopen included. */
  inlinePageIns: number
  /** Pages read back by the workload while it wrote (each equal to the model's state). */
  readsChecked: number
}

export const newTotals = (): Totals => ({
  acked: 0,
  recovered: 0,
  relocated: 0,
  cleaned: 0,
  checkpoints: 0,
  blobs: 0,
  relinked: 0,
  busyRefusals: 0,
  inlineWrites: 0,
  inlinePageIns: 0,
  readsChecked: 0,
})

export interface PcRunOptions {
  /** Device faults of the simulated disk (the R3 variants); none by default. */
  device?: SimFaults
  /** Told every disk of the run as it comes up (the last one's `injected` counts the device faults). */
  onDisk?: (disk: SimDisk) => void
  /** Mutation switch of the checker: two pages read back trade contents (last reopen only). */
  swapPages?: boolean
  /** Lone rounds written inline; default: on for even seeds, so both write paths get cut. */
  inlineSyncedWrites?: boolean
  /** User page-ins read inline; default: off for every third seed, so both read paths run. */
  inlineReads?: boolean
}

export interface PcOutcome {
  violation?: string
  /**
   * 'acked_lost': the pages equal a history prefix shorter than the acknowledged one;
   * 'detected': cleaning stopped on a CorruptionError (its background error); else 'wrong'.
   */
  kind?: 'acked_lost' | 'wrong' | 'detected'
  /** The acked_lost is a rollback: the pages are an earlier round's state, one a recovery had returned. */
  rollback?: boolean
}

function openOn(
  disk: SimDisk,
  S: number,
  inlineSyncedWrites: boolean,
  inlineReads: boolean,
): Promise<PageCache<ListPage>> {
  return PageCache.open('db', listCodec, {
    storage: disk.storage('db'),
    inlineSyncedWrites,
    inlineReads,
    segmentBytes: S,
    flushEveryMs: 0,
    cacheCapacity: 2000,
    consolidateAfter: 3,
    checkpointEveryBytes: 2 * S,
  })
}

/** Runs writes until told to stop (the power went) or the steps run out. */
async function workload(
  pc: PageCache<ListPage>,
  h: PageHistory,
  rng: Prng,
  steps: number,
  isDead: () => boolean,
  t: Totals,
): Promise<void> {
  let tag = 0
  const live = (): number[] => [...h.now.keys()]
  const item = (): string => `${tag++}`.padEnd(1 + rng.int(40), '.')
  for (let i = 0; i < steps && !isDead(); i++) {
    try {
      await step(pc, h, rng, live, item, isDead, t)
    } catch (e) {
      // Was B-PC3 (docs/RELIABILITY.md): cleaning relocating a large page made every write
      // to that page throw until its blob write settled. Counted, and must stay 0 (the
      // workload awaits its own replaceLarge() calls, so only background work could refuse).
      if (!(e instanceof InvalidArgumentError) || !e.message.includes('large write in flight')) throw e
      t.busyRefusals++
    }
  }
}

async function step(
  pc: PageCache<ListPage>,
  h: PageHistory,
  rng: Prng,
  live: () => number[],
  item: () => string,
  isDead: () => boolean,
  t: Totals,
): Promise<void> {
  {
    const pick = rng.int(100)
    const pids = live()
    if (pick < 12 || pids.length === 0) {
      const pid = pc.allocate()
      const items = [item()]
      h.record(pc.replace(pid, { items: [...items] }), [[pid, items]])
    } else if (pick < 45) {
      const pid = rng.pick(pids)
      const items = [item()]
      h.record(pc.replace(pid, { items: [...items] }), [[pid, items]])
    } else if (pick < 65) {
      const pid = rng.pick(pids)
      const s = item()
      const items = [...(h.now.get(pid) as readonly string[]), s]
      h.record(pc.link(pid, deltaOf(s), { items: [...items] }), [[pid, items]])
    } else if (pick < 70) {
      const pid = rng.pick(pids)
      h.record(pc.free(pid), [[pid, undefined]])
    } else if (pick < 80) {
      const state = new Map<number, Items>()
      const writes: PageWrite<ListPage>[] = []
      for (let k = 0, n = 2 + rng.int(4); k < n; k++) {
        const pid = rng.pick(pids)
        const cur = state.has(pid) ? state.get(pid) : h.now.get(pid)
        if (cur === undefined) continue
        const s = item()
        if (rng.chance(0.5)) {
          state.set(pid, [...cur, s])
          writes.push({ kind: 'link', pid, delta: deltaOf(s), page: { items: [...cur, s] } })
        } else {
          state.set(pid, [s])
          writes.push({ kind: 'replace', pid, page: { items: [s] } })
        }
      }
      if (writes.length > 0) h.record(pc.writeBatch(writes), [...state.entries()])
    } else if (pick < 83) {
      const pid = rng.pick(pids)
      const items = [`${item()}`.padEnd(pc.maxPageBytes + 1 + rng.int(1500), 'L')]
      const lsn = await pc.replaceLarge(pid, { items: [...items] })
      if (!isDead()) h.record(lsn, [[pid, items]])
    } else if (pick < 90) {
      const p = pc.flush()
      if (rng.chance(0.5)) h.ackLsn(await p)
      else p.then((l) => !isDead() && h.ackLsn(l)).catch(() => {})
    } else if (pick < 92) {
      pc.checkpoint().catch(() => {})
    } else if (pick < 94) {
      await pc.cleanNow()
    } else if (pick < 97) {
      // A read while cleaning, checkpoints and writes run (with inline reads on, a page-in
      // of an evicted page reads and builds it in one step): it sees the latest write.
      const pid = rng.pick(pids)
      const want = h.now.get(pid)
      const page = await pc.get(pid)
      if (isDead()) return
      const got = page === undefined ? undefined : [...page.items]
      if (JSON.stringify(got) !== JSON.stringify(want))
        throw new Error(`page ${pid} read back as ${JSON.stringify(got)}, not ${JSON.stringify(want)}`)
      t.readsChecked++
    } else {
      await pc.whenWritable()
      await turns(1 + rng.int(3))
    }
  }
}

/**
 * Tells lost acknowledged writes from a wrong state: 'acked_lost' when the pages equal some
 * prefix of the whole run's history — this round's shorter than its acknowledged part, or an
 * earlier round's (a rollback past a state an earlier recovery already returned) — 'wrong'
 * when they equal none.
 */
function classify(
  past: PageHistory[],
  h: PageHistory,
  state: Map<number, readonly string[]>,
): { kind: 'acked_lost' | 'wrong'; rollback: boolean } {
  for (const [i, x] of [...past, h].entries()) {
    const acked = x.ackedCount
    x.ackedCount = 0
    const k = x.matchPrefix(state)
    x.ackedCount = acked
    if (typeof k === 'number') return { kind: 'acked_lost', rollback: i < past.length }
  }
  return { kind: 'wrong', rollback: false }
}

/** One seed; returns its violation if any. Throws when a reopen fails. */
export async function runPcSeed(seed: number, t: Totals, o: PcRunOptions = {}): Promise<PcOutcome> {
  const rng = new Prng(seed)
  const S = rng.pick([1024, 2048, 4096] as const)
  let disk = new SimDisk({ seed, latency: true, ...o.device })
  o.onDisk?.(disk)
  // Cleaning that stopped on a typed corruption error (a blob or segment a device fault
  // damaged) detected the damage: the variants count it so, the R3p gate fails on it.
  const wrong = (violation: string): PcOutcome => ({
    violation,
    kind: /background error: CorruptionError/.test(violation) ? 'detected' : 'wrong',
  })
  const h = new PageHistory()
  /** Each earlier round's history (its base and entries), for classify(). */
  const past: PageHistory[] = []
  const rounds = 1 + rng.int(3)
  const inline = o.inlineSyncedWrites ?? seed % 2 === 0
  const inlineReads = o.inlineReads ?? seed % 3 !== 0
  for (let round = 0; round <= rounds; round++) {
    // Recover the same image twice: on a clone first, then for real.
    const twin = await openOn(disk.clone(), S, inline, inlineReads)
    const twinTable = pageTable(twin)
    const pc = await openOn(disk, S, inline, inlineReads)
    if (pageTable(pc) !== twinTable) return wrong(`round ${round}: recovering twice gave two page tables`)
    const state = await readState(pc)
    if (o.swapPages === true && round === rounds) {
      const pids = [...state.keys()].filter((p) => (state.get(p) ?? []).length > 0)
      if (pids.length >= 2) {
        const [a, b] = pids as [number, number]
        const items = state.get(a) as readonly string[]
        state.set(a, state.get(b) as readonly string[])
        state.set(b, items)
      }
    }
    const k = h.matchPrefix(state)
    if (typeof k === 'string') {
      const c = classify(past, h, state)
      const what = c.rollback ? 'rolled back to an earlier round' : k
      return { violation: `round ${round}: ${what}`, kind: c.kind, rollback: c.rollback }
    }
    t.acked += h.ackedCount
    t.recovered += k
    const orphans = await orphanBlobs(pc, (d) => disk.storage('db').list(d))
    if (orphans.length > 0) return wrong(`round ${round}: orphan blob files ${orphans.join(',')}`)
    const bad = accountingProblem(pc)
    if (bad !== undefined) return wrong(`round ${round} after recovery: ${bad}`)
    // Only what this recovery kept can come back later; the lost tail must not.
    const kept = h.clone()
    kept.entries = kept.entries.slice(0, k)
    past.push(kept)
    h.rebase(state)
    if (round === rounds) {
      t.inlinePageIns += pc.stats().inlineReads.pageIns
      await pc.close()
      break
    }
    let dead = false
    const running = workload(pc, h, rng, 50 + rng.int(400), () => dead, t)
    const cut = rng.int(600)
    const done = await Promise.race([running.then(() => true), turns(cut).then(() => false)])
    if (done) {
      const problem = accountingProblem(pc)
      if (problem !== undefined) return wrong(`round ${round} before the cut: ${problem}`)
      if (rng.chance(0.5)) h.ackLsn(await pc.flush())
    }
    const st = pc.stats()
    t.relocated += st.pagesRelocated
    t.cleaned += st.segmentsCleaned
    t.checkpoints += st.checkpointsWritten
    t.blobs += st.liveBlobBytes > 0 ? 1 : 0
    t.relinked += pc.log.metrics().blobsRelinked
    t.inlineWrites += st.logSync.inlineWrites
    t.inlinePageIns += st.inlineReads.pageIns
    disk = disk.crash({ seed: rng.next() })
    o.onDisk?.(disk)
    dead = true
    await running.catch(() => {})
  }
  return {}
}
