// The key-level crash workload and its checker, shared by the SIGKILL test (a child process
// runs the workload, test/crash/db-writer-child.ts) and the power-loss test (the workload
// runs in-process over the simulated disk).
//
// Every write has a write id w, unique and increasing in issue order, and every value
// written is `${w}:` plus filler, so a recovered value names the write that put it there.
// A batch's writes share one id. The writer reports each write's intent before issuing it
// and its acknowledgement only after the promise that makes it durable has resolved:
//  - 'sync' durability: each write is acknowledged alone when its own promise resolves;
//  - 'flush': writes resolve when applied; `await db.flush()` acknowledges every write
//    issued before it.
// Writes issued together (a group, up to 4) may be applied in any order among themselves
// (the Db orders concurrent writes as they reach its writer mutex, and whenWritable() may
// let one overtake another); groups are in order. A group wholly applied may have left any
// of its orders' outcomes, so the checker carries every distinct one into the next group.
// The checker then demands that the recovered database equals the state after some prefix
// of the applied writes (some order within each group) that contains every acknowledged one:
// nothing acknowledged is lost, no key holds an older or never-written value (phantom),
// and every batch is whole or absent.

import type { Db, Tree } from '../../src/index.js'
import type { Prng } from '../../src/util/prng.js'

export const TREES = ['', 't'] as const
export const KEYS_PER_TREE = 48

export interface Op {
  tree: number
  key: number
  /** Value length after the `${w}:` prefix; -1 removes the key. */
  len: number
}

export interface WriteIntent {
  w: number
  /** Writes issued together (no await between them) share a group: their order is the Db's. */
  group: number
  ops: Op[]
  /**
   * How the writer issues it (its effect is the ops either way, so the checker needs no
   * more): `updateAndFetch` with a function that ignores the old value, compare-and-swap
   * against the value it has just read (only alone in its group: nothing else writes
   * meanwhile, so it must succeed), or `clear()` of a whole tree (ops: every key removed).
   */
  via?: 'update' | 'cas' | 'clear'
}

export interface Sink {
  intent(i: WriteIntent): void
  /** Acknowledges write w alone ('sync') or every write up to w (prefix = true). */
  ack(w: number, prefix: boolean): void
  /** A call answered what it must not (a CAS with no other writer failed): a bug to report. */
  wrongAnswer?(what: string): void
}

/**
 * What the writer writes (regimen R2's scenarios, after sled's test_crash_recovery.rs):
 *  - 'mixed': inserts, removes and batches of 1–7 ops over both trees, up to 4 in flight;
 *  - 'overwrite-256': one insert at a time, write w sets key w mod 256 of the default tree
 *    (sequential overwrites: the recovered tree must be a clean prefix of them);
 *  - 'batches-8': batches that set the same 8 keys (4 in each tree) to one value, or remove
 *    all 8 (1 in 10), up to 3 in flight (after recovery the 8 keys must all be equal).
 */
export type Scenario = 'mixed' | 'overwrite-256' | 'batches-8'

export const OVERWRITE_KEYS = 256
export const BATCH_KEYS = 8

export interface WorkloadOptions {
  durability: 'sync' | 'flush'
  scenario?: Scenario
  /** Mutation switch: acknowledge before awaiting (the harness must then fail). */
  ackEarly?: boolean
  /**
   * Mutation switch for 'flush' durability: acknowledge each write once applied and never
   * flush (acknowledged writes sit in the log's memory buffer; a kill loses them).
   */
  ackApplied?: boolean
  /** Mutation switch: apply a batch as one write per op, not atomically (torn batches). */
  splitBatches?: boolean
  /** 'mixed' also issues updateAndFetch, compare-and-swap and clear() (WriteIntent.via). */
  moreKinds?: boolean
  /** Mutation switch: every compare-and-swap is taken as failed (the check must report it). */
  casFails?: boolean
  /** Length of an inserted value (default: mostly small, some up to ~1 KB). */
  valueLen?: (rng: Prng) => number
}

export const keyName = (k: number): string => `k${String(k).padStart(3, '0')}`

export function valueFor(w: number, len: number): string {
  return `${w}:${'v'.repeat(len)}`
}

class WrongAnswer extends Error {}

async function applyIntent(
  db: Db,
  trees: Tree[],
  i: WriteIntent,
  split: boolean,
  casFails = false,
): Promise<void> {
  if (i.via !== undefined) {
    const o = i.ops[0] as Op
    const t = trees[o.tree] as Tree
    if (i.via === 'clear') return t.clear()
    const v = new TextEncoder().encode(valueFor(i.w, o.len))
    if (i.via === 'update') {
      await t.updateAndFetch(keyName(o.key), () => v)
      return
    }
    const cur = await t.get(keyName(o.key))
    const r = await t.compareAndSwap(keyName(o.key), cur, v)
    // Nothing else wrote meanwhile: a failure is a bug (reported by the caller).
    if (!r.ok || casFails)
      throw new WrongAnswer(`w=${i.w}: compareAndSwap of ${keyName(o.key)} failed with no other writer`)
    return
  }
  if (i.ops.length === 1 || split) {
    for (const o of i.ops) {
      const t = trees[o.tree] as Tree
      if (o.len < 0) await t.remove(keyName(o.key))
      else await t.insert(keyName(o.key), valueFor(i.w, o.len))
    }
    return
  }
  await db.applyBatch((b) => {
    for (const o of i.ops) {
      const t = trees[o.tree] as Tree
      if (o.len < 0) b.remove(keyName(o.key), t)
      else b.insert(keyName(o.key), valueFor(i.w, o.len), t)
    }
  })
}

/** Values for 16 KiB segments: 40% over the blob threshold (4 KiB), up to 24 KiB. */
export const blobValueLen = (rng: Prng): number => (rng.chance(0.4) ? 4200 + rng.int(20_000) : rng.int(300))

/** Values for the kill-point child: mostly small, 1 in 20 over the blob threshold (a blob file). */
export const someBlobsValueLen = (rng: Prng): number =>
  rng.chance(0.05) ? 4200 + rng.int(8_000) : rng.chance(0.1) ? 200 + rng.int(800) : rng.int(60)

function randomOp(rng: Prng, valueLen: ((rng: Prng) => number) | undefined): Op {
  const r = rng.int(10)
  const small = (): number => (r < 9 ? rng.int(60) : 200 + rng.int(800))
  return {
    tree: rng.int(TREES.length),
    key: rng.int(KEYS_PER_TREE),
    len: r < 3 ? -1 : valueLen === undefined ? small() : valueLen(rng),
  }
}

/** Runs writes until `steps` are issued or a write fails (the disk died, the process is killed). */
export async function runWorkload(
  db: Db,
  rng: Prng,
  firstW: number,
  steps: number,
  sink: Sink,
  o: WorkloadOptions,
): Promise<number> {
  let w = firstW
  const scenario = o.scenario ?? 'mixed'
  const next = (group: number): WriteIntent => {
    const id = w++
    if (scenario === 'overwrite-256') {
      const len = rng.chance(0.1) ? 200 + rng.int(800) : rng.int(100)
      return { w: id, group, ops: [{ tree: 0, key: id % OVERWRITE_KEYS, len }] }
    }
    if (scenario === 'batches-8') {
      const len = rng.chance(0.1) ? -1 : rng.int(100)
      const ops = Array.from({ length: BATCH_KEYS }, (_, k) => ({ tree: k % 2, key: k, len }))
      return { w: id, group, ops }
    }
    if (o.moreKinds === true && rng.chance(0.02)) {
      const tree = rng.int(TREES.length)
      const ops = Array.from({ length: KEYS_PER_TREE }, (_, key) => ({ tree, key, len: -1 }))
      return { w: id, group, ops, via: 'clear' }
    }
    const n = rng.chance(0.3) ? 2 + rng.int(6) : 1
    return { w: id, group, ops: Array.from({ length: n }, () => randomOp(rng, o.valueLen)) }
  }
  const inFlightMax = scenario === 'overwrite-256' ? 1 : scenario === 'batches-8' ? 3 : 4
  try {
    const trees: Tree[] = [db, await db.openTree('t')]
    for (let s = 0; s < steps; s++) {
      // Up to inFlightMax writes in flight at once; intents go out in issue order.
      const g = w
      const n = inFlightMax > 1 && rng.chance(0.3) ? 2 + rng.int(inFlightMax - 1) : 1
      const group = Array.from({ length: n }, () => next(g))
      if (o.moreKinds === true)
        for (const i of group) {
          const single = i.via === undefined && i.ops.length === 1 && (i.ops[0] as Op).len >= 0
          if (single && group.length === 1 && rng.chance(0.15)) i.via = 'cas'
          else if (single && rng.chance(0.15)) i.via = 'update'
        }
      const running: Promise<void>[] = []
      for (const i of group) {
        sink.intent(i)
        if (o.ackEarly && o.durability === 'sync') sink.ack(i.w, false)
        running.push(
          applyIntent(db, trees, i, o.splitBatches === true, o.casFails === true).then(() => {
            if ((!o.ackEarly && o.durability === 'sync') || o.ackApplied) sink.ack(i.w, false)
          }),
        )
      }
      await Promise.all(running)
      if (o.durability === 'flush' && !o.ackApplied && rng.chance(0.3)) {
        const upTo = w - 1
        if (o.ackEarly) sink.ack(upTo, true)
        await db.flush()
        if (!o.ackEarly) sink.ack(upTo, true)
      }
      if (rng.chance(0.1)) await new Promise((r) => setImmediate(r))
    }
  } catch (e) {
    // The storage died under the workload (power cut) or the Db was poisoned by it; or a
    // call gave an answer it must not.
    if (e instanceof WrongAnswer) sink.wrongAnswer?.(e.message)
  }
  return w
}

/** The parent's record of one database's history: its state, and what was issued and acked. */
export class History {
  /** Key → write id of its value, or -1 for absent, as of the last verified recovery. */
  base = new Map<string, number>()
  intents: WriteIntent[] = []
  acked = new Set<number>()
  ackedPrefix = -1
  nextW = 0

  intent(i: WriteIntent): void {
    this.intents.push(i)
    this.nextW = Math.max(this.nextW, i.w + 1)
  }

  ack(w: number, prefix: boolean): void {
    if (prefix) this.ackedPrefix = Math.max(this.ackedPrefix, w)
    else this.acked.add(w)
  }

  isAcked(w: number): boolean {
    return w <= this.ackedPrefix || this.acked.has(w)
  }
}

export interface CheckResult {
  ackedLost: number
  tornBatches: number
  phantom: number
  acked: number
  /** Writes of this cycle the recovery kept. */
  kept: number
  violation?: string
}

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [xs.slice()]
  const out: T[][] = []
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...rest])
  })
  return out
}

const slot = (tree: number, key: number): string => `${tree}/${key}`

/** Reads every key of both trees as write ids (-1: absent); a value not of our form is a phantom. */
export async function readState(db: Db): Promise<{ state: Map<string, number>; phantom: string[] }> {
  const state = new Map<string, number>()
  const phantom: string[] = []
  const names = await db.treeNames()
  for (let t = 0; t < TREES.length; t++) {
    const name = TREES[t] as string
    if (name !== '' && !names.includes(name)) continue
    const tree = name === '' ? db : await db.openTree(name)
    for await (const [k, v] of tree.range()) {
      const ks = new TextDecoder().decode(k)
      const vs = new TextDecoder().decode(v)
      const key = Number(ks.slice(1))
      const w = Number(vs.slice(0, vs.indexOf(':')))
      if (!/^k\d{3}$/.test(ks) || !Number.isSafeInteger(w)) phantom.push(`${name}/${ks}=${vs.slice(0, 20)}`)
      else state.set(slot(t, key), w)
    }
  }
  return { state, phantom }
}

/** The counters every checkRecovered() caller sums over its cycles. */
export interface RecoveredTotals {
  acked: number
  kept: number
  ackedLost: number
  tornBatches: number
  phantom: number
}

/** Adds one check's counters to `t`; returns the check, for its violation. */
export function addRecovered(t: RecoveredTotals, c: CheckResult): CheckResult {
  t.acked += c.acked
  t.kept += c.kept
  t.ackedLost += c.ackedLost
  t.tornBatches += c.tornBatches
  t.phantom += c.phantom
  return c
}

/**
 * Checks a recovered state against the history and, when it passes, makes it the new base
 * (the writes after the recovered prefix are forgotten: the next writer reuses nothing).
 */
export function checkRecovered(
  h: History,
  recovered: Map<string, number>,
  phantomValues: string[],
): CheckResult {
  const acked = h.intents.filter((i) => h.isAcked(i.w)).length
  const res: CheckResult = { ackedLost: 0, tornBatches: 0, phantom: phantomValues.length, acked, kept: 0 }
  const issued = new Set<number>(h.intents.map((i) => i.w))
  // Phantoms: a value naming a write that never touched that key.
  const wrote = new Map<string, Set<number>>()
  for (const i of h.intents)
    for (const o of i.ops) {
      const s = slot(o.tree, o.key)
      const set = wrote.get(s) ?? new Set<number>()
      wrote.set(s, set)
      if (o.len >= 0) set.add(i.w)
    }
  for (const [s, w] of recovered) {
    if (h.base.get(s) === w) continue
    if (!issued.has(w) || !wrote.get(s)?.has(w)) res.phantom++
  }
  // Find a prefix of the applied writes (groups in order, any order inside a group) whose
  // state equals the recovered one and contains every acknowledged write.
  const same = (st: Map<string, number>): boolean => {
    for (const [s, w] of st) if ((recovered.get(s) ?? -1) !== w) return false
    for (const [s, w] of recovered) if ((st.get(s) ?? -1) !== w) return false
    return true
  }
  const applyTo = (st: Map<string, number>, i: WriteIntent): void => {
    for (const o of i.ops) st.set(slot(o.tree, o.key), o.len < 0 ? -1 : i.w)
  }
  const groups: WriteIntent[][] = []
  for (const i of h.intents) {
    const g = groups.at(-1)
    if (g !== undefined && (g[0] as WriteIntent).group === i.group) g.push(i)
    else groups.push([i])
  }
  let ackedLeft = h.intents.filter((i) => h.isAcked(i.w)).length
  // The states the applied writes can have led to: a whole group may have been applied in
  // any order of its writes, and when two of them touch one key the order shows, so every
  // distinct outcome is kept (a few at most: a group has up to 4 writes).
  let states: Map<string, number>[] = [new Map(h.base)]
  let cut: Set<number> | undefined =
    ackedLeft === 0 && same(states[0] as Map<string, number>) ? new Set() : undefined
  const done = new Set<number>()
  for (const g of groups) {
    if (cut !== undefined) break
    const ackedInGroup = g.filter((i) => h.isAcked(i.w)).length
    const next = new Map<string, Map<string, number>>()
    for (const base of states) {
      for (const perm of permutations(g)) {
        const st = new Map(base)
        const applied = new Set(done)
        let acks = 0
        for (const i of perm) {
          applyTo(st, i)
          applied.add(i.w)
          if (h.isAcked(i.w)) acks++
          if (ackedLeft - acks === 0 && same(st)) {
            cut = applied
            break
          }
        }
        if (cut !== undefined) break
        const key = JSON.stringify([...st].sort((a, b) => (a[0] < b[0] ? -1 : 1)))
        if (!next.has(key)) next.set(key, st)
      }
      if (cut !== undefined) break
    }
    states = [...next.values()]
    if (states.length > 20_000)
      throw new Error(`the checker tracks ${states.length} candidate states: too many`)
    for (const i of g) done.add(i.w)
    ackedLeft -= ackedInGroup
  }
  if (cut === undefined) {
    // Classify: a key older than its last acknowledged write is a lost ack; a batch seen
    // in part is torn.
    for (const i of h.intents) {
      if (!h.isAcked(i.w)) continue
      for (const o of i.ops) {
        const s = slot(o.tree, o.key)
        const later = h.intents.some((j) => j.w > i.w && j.ops.some((p) => slot(p.tree, p.key) === s))
        const got = recovered.get(s) ?? -1
        if (!later && got !== (o.len < 0 ? -1 : i.w)) res.ackedLost++
        if (got >= 0 && got < i.w && o.len >= 0) res.ackedLost++
      }
    }
    for (const i of h.intents) {
      if (i.ops.length < 2) continue
      const seen = i.ops.filter((o) => recovered.get(slot(o.tree, o.key)) === i.w).length
      const lastIn = i.ops.filter(
        (o, idx) => o.len >= 0 && !i.ops.slice(idx + 1).some((p) => p.tree === o.tree && p.key === o.key),
      ).length
      if (seen > 0 && seen < lastIn) res.tornBatches++
    }
    if (process.env.BOBSLED_DEBUG) {
      const lines = h.intents.map((i) => {
        const ops = i.ops.map((o) => {
          const got = recovered.get(slot(o.tree, o.key)) ?? -1
          return `${slot(o.tree, o.key)}${o.len < 0 ? '-' : '+'}(got ${got})`
        })
        return `w=${i.w}${h.isAcked(i.w) ? ' ACK' : ''} ${ops.join(' ')}`
      })
      console.log(lines.join('\n'))
      const written = new Set(h.intents.flatMap((i) => i.ops.map((o) => slot(o.tree, o.key))))
      for (const s of new Set([...h.base.keys(), ...recovered.keys()])) {
        const was = h.base.get(s) ?? -1
        const got = recovered.get(s) ?? -1
        if (was !== got && !written.has(s))
          console.log(`not written this round: ${s} base ${was}, recovered ${got}`)
      }
    }
    res.violation = `no prefix of the ${h.intents.length} writes covering the ${acked} acknowledged ones gives the recovered state (acked_lost=${res.ackedLost} torn_batches=${res.tornBatches} phantom=${res.phantom})`
    return res
  }
  if (res.phantom > 0) res.violation = `phantom values: ${phantomValues.slice(0, 3).join(', ')}`
  res.kept = cut.size
  h.base = new Map([...recovered].filter(([, w]) => w >= 0))
  h.intents = []
  h.acked.clear()
  h.ackedPrefix = -1
  return res
}

/**
 * Scenario (a)'s own check, the sled-style one: the recovered default tree must equal the
 * base plus the writes of this cycle up to the last one whose value survived, key by key.
 * Returns how many of the 256 keys disagree with that prefix (0 when it holds). Run it
 * before checkRecovered, which moves the base on.
 */
export function overwriteNonPrefix(h: History, recovered: Map<string, number>): number {
  let last = -1
  h.intents.forEach((i, idx) => {
    const o = i.ops[0] as Op
    if (recovered.get(slot(o.tree, o.key)) === i.w) last = idx
  })
  const expected = new Map(h.base)
  for (const i of h.intents.slice(0, last + 1)) {
    const o = i.ops[0] as Op
    expected.set(slot(o.tree, o.key), o.len < 0 ? -1 : i.w)
  }
  let wrong = 0
  for (let k = 0; k < OVERWRITE_KEYS; k++) {
    const s = slot(0, k)
    if ((recovered.get(s) ?? -1) !== (expected.get(s) ?? -1)) wrong++
  }
  return wrong
}

/** Scenario (b)'s own check: 1 when the 8 batch keys do not all hold the same write (or none). */
export function batchKeysTorn(recovered: Map<string, number>): number {
  const first = recovered.get(slot(0, 0)) ?? -1
  for (let k = 1; k < BATCH_KEYS; k++) if ((recovered.get(slot(k % 2, k)) ?? -1) !== first) return 1
  return 0
}
