// R1 with interleavings chosen by fast-check (regimen R1, `scheduledModelRun` with
// `fc.scheduler()`): each command issues one Db call (insert, remove, CAS, batch,
// updateAndFetch, get, range, flush over two trees) without waiting for it, and fast-check's
// scheduler decides when each call starts and in which order every promise the Db awaits
// from its page store resolves (get, flush, makeStable and whenWritable go through
// `s.scheduleFunction`), so writers queue on the mutex, readers restart and iterators resume
// in orders a plain await chain never produces. A run's history (each call's result, its
// start and end on one clock) must then be linearizable: some order of the calls that keeps
// real-time order (a call that resolved before another started comes first) gives every
// call's result and the state read back at the end (a Wing & Gong search). A range is not
// atomic (one leaf snapshot per step, docs/DESIGN.md "Iterators"), so it is checked per key
// against the states of its window in that order: keys in order and in bounds, each with a
// value it held, every key present throughout returned. Runs over the memory store (6
// resident pages: reads page in) and the page cache on the simulated disk.
// Mutation check: a Db wrapper whose insert resolves before its write is applied (the write
// lands after later calls) must be caught by the model.
// BOBSLED_SOAK=1 runs 10× the runs; BOBSLED_SEED=<n> replays one fast-check seed.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { type Db, type DbStore, openOn, type Tree } from '../../src/db.js'
import { SimDisk } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { MemoryPageStore } from '../helpers/memory-page-store.js'
import { FILE_CACHE_BYTES, FILE_SEGMENT_BYTES, hex, TINY } from './fixtures.js'

const soak = process.env.BOBSLED_SOAK === '1'
const RUNS = soak ? 4000 : 400
const NAMES = ['', 'a'] as const
type Name = (typeof NAMES)[number]
type State = Map<Name, Map<string, string>>

const name = fc.constantFrom(...NAMES)
const key = fc.integer({ min: 0, max: 5 }).map((k) => Uint8Array.of(k))
const value = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 6 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 60, maxLength: 120 }) },
)

type Call =
  | { t: 'insert'; n: Name; k: Uint8Array; v: Uint8Array }
  | { t: 'remove'; n: Name; k: Uint8Array }
  | { t: 'cas'; n: Name; k: Uint8Array; useCurrent: boolean; other: Uint8Array; next: Uint8Array | null }
  | { t: 'update'; n: Name; k: Uint8Array }
  | { t: 'batch'; ops: { n: Name; k: Uint8Array; v: Uint8Array | null }[] }
  | { t: 'get'; n: Name; k: Uint8Array }
  | { t: 'range'; n: Name; a: number; b: number; reverse: boolean }
  | { t: 'flush' }

const call: fc.Arbitrary<Call> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant('insert' as const), n: name, k: key, v: value }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('remove' as const), n: name, k: key }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('cas' as const),
      n: name,
      k: key,
      useCurrent: fc.boolean(),
      other: value,
      next: fc.option(value),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('update' as const), n: name, k: key }) },
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant('batch' as const),
      ops: fc.array(fc.record({ n: name, k: key, v: fc.option(value) }), { minLength: 1, maxLength: 6 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('get' as const), n: name, k: key }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('range' as const),
      n: name,
      a: fc.integer({ min: 0, max: 6 }),
      b: fc.integer({ min: 0, max: 6 }),
      reverse: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ t: 'flush' as const }) },
)

/** updateAndFetch's function: pure, so a plan that runs again computes the same value. */
function bump(old: Uint8Array | undefined): Uint8Array | undefined {
  if (old === undefined) return Uint8Array.of(1)
  return old.length >= 4 ? undefined : Uint8Array.of(...old, old.length + 1)
}

/** What a call returned, as text comparable with the model's answer. */
type Observed = string

const showV = (v: Uint8Array | undefined): string => (v === undefined ? '-' : hex(v))

interface Real {
  s: fc.Scheduler
  db: Db
  /** The trees calls go through (the mutation wraps these). */
  trees: Record<Name, Tree>
  /** The Db's own handles, for batch targets (a batch names trees, it calls nothing on them). */
  raw: Record<Name, Tree>
  /** The mutation wrapper's late writes, awaited before the state is read back. */
  pending: Promise<unknown>[]
  inflight: Promise<void>[]
  history: Timed[]
  clock: number
  close(): Promise<void>
}

interface Figures {
  runs: number
  calls: number
  /** Calls that were in flight together with at least one other call. */
  overlapped: number
  undecided: number
}

/**
 * Applies one call to a model state (mutating it) and returns what the Db must have answered.
 * `got` gives a useCurrent CAS the value the real call read before it (a separate get).
 */
function applyModel(st: State, c: Call, got: Observed): Observed | undefined {
  const tree = (n: Name): Map<string, string> => st.get(n) as Map<string, string>
  switch (c.t) {
    case 'insert': {
      const t = tree(c.n)
      const old = t.get(hex(c.k)) ?? '-'
      t.set(hex(c.k), hex(c.v))
      return old
    }
    case 'remove': {
      const t = tree(c.n)
      const old = t.get(hex(c.k)) ?? '-'
      t.delete(hex(c.k))
      return old
    }
    case 'cas': {
      const t = tree(c.n)
      const cur = t.get(hex(c.k)) ?? '-'
      const expected = c.useCurrent ? (got.split('|')[0] as string) : hex(c.other)
      const prefix = c.useCurrent ? `${expected}|` : ''
      if (cur !== expected) return `${prefix}fail:${cur}`
      if (c.next === null) t.delete(hex(c.k))
      else t.set(hex(c.k), hex(c.next))
      return `${prefix}ok`
    }
    case 'update': {
      const t = tree(c.n)
      const cur = t.get(hex(c.k))
      const next = bump(cur === undefined ? undefined : Uint8Array.from(Buffer.from(cur, 'hex')))
      if (next === undefined) t.delete(hex(c.k))
      else t.set(hex(c.k), hex(next))
      return showV(next)
    }
    case 'batch':
      for (const o of c.ops) {
        if (o.v === null) tree(o.n).delete(hex(o.k))
        else tree(o.n).set(hex(o.k), hex(o.v))
      }
      return 'done'
    case 'get':
      return tree(c.n).get(hex(c.k)) ?? '-'
    case 'flush':
      return 'done'
    case 'range':
      return undefined
  }
}

/** The real call; with useCurrent, CAS expects the value the call itself read just before. */
async function runReal(r: Real, c: Call): Promise<Observed> {
  const t = (n: Name): Tree => r.trees[n]
  switch (c.t) {
    case 'insert':
      return showV(await t(c.n).insert(c.k, c.v))
    case 'remove':
      return showV(await t(c.n).remove(c.k))
    case 'cas': {
      // useCurrent reads the value first (another call may change it before the CAS).
      const expected = c.useCurrent ? await t(c.n).get(c.k) : c.other
      const res = await t(c.n).compareAndSwap(c.k, expected, c.next ?? undefined)
      const prefix = c.useCurrent ? `${showV(expected)}|` : ''
      return `${prefix}${res.ok ? 'ok' : `fail:${showV(res.current)}`}`
    }
    case 'update':
      return showV(await t(c.n).updateAndFetch(c.k, bump))
    case 'batch':
      await r.db.applyBatch((b) => {
        for (const o of c.ops) {
          if (o.v === null) b.remove(o.k, r.raw[o.n])
          else b.insert(o.k, o.v, r.raw[o.n])
        }
      })
      return 'done'
    case 'get':
      return showV(await t(c.n).get(c.k))
    case 'flush':
      await r.db.flush()
      return 'done'
    case 'range': {
      const lo = Math.min(c.a, c.b)
      const hi = Math.max(c.a, c.b)
      const out: string[] = []
      for await (const [k, v] of t(c.n).range({
        gte: Uint8Array.of(lo),
        lt: Uint8Array.of(hi),
        reverse: c.reverse,
      }))
        out.push(`${hex(k)}=${hex(v)}`)
      return out.join(',')
    }
  }
}

const cloneState = (s: State): State => new Map([...s].map(([n, t]) => [n, new Map(t)]))

function showState(s: State): string {
  return NAMES.map(
    (n) =>
      `${n}:${[...(s.get(n) as Map<string, string>)]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([k, v]) => `${k}=${v}`)
        .join(',')}`,
  ).join('|')
}

async function readState(r: Real): Promise<State> {
  const st: State = new Map()
  for (const n of NAMES) {
    const m = new Map<string, string>()
    for await (const [k, v] of r.trees[n].range()) m.set(hex(k), hex(v))
    st.set(n, m)
  }
  return st
}

/** A range result is fine when it fits the states its round went through (header). */
function rangeFits(c: Extract<Call, { t: 'range' }>, got: string, states: State[]): boolean {
  const lo = Math.min(c.a, c.b)
  const hi = Math.max(c.a, c.b)
  const entries = got === '' ? [] : got.split(',').map((e) => e.split('=') as [string, string])
  const keys = entries.map(([k]) => k)
  for (let i = 1; i < keys.length; i++) {
    const ordered = c.reverse
      ? (keys[i - 1] as string) > (keys[i] as string)
      : (keys[i - 1] as string) < (keys[i] as string)
    if (!ordered) return false
  }
  const inBounds = (k: string): boolean => {
    const b = Number.parseInt(k, 16)
    return k.length === 2 && b >= lo && b < hi
  }
  for (const [k, v] of entries) {
    if (!inBounds(k)) return false
    if (!states.some((s) => s.get(c.n)?.get(k) === v)) return false
  }
  const first = states[0]?.get(c.n) as Map<string, string>
  for (const k of first.keys())
    if (inBounds(k) && states.every((s) => s.get(c.n)?.has(k)) && !keys.includes(k)) return false
  return true
}

interface Timed {
  c: Call
  got: Observed
  /** Ticks of one clock shared by the run's calls: start and resolution. */
  start: number
  end: number
}

/** Steps the search may take for one history before it gives up (counted as undecided). */
const SEARCH_STEPS_MAX = 200_000

/**
 * Searches for an order of the history's calls (Wing & Gong) that keeps real-time order (a
 * call that resolved before another started comes first), gives every call its result and
 * ends in the state read back; ranges are then checked against the states of their window
 * in that order (from the first state after every call that ended before the range started,
 * to the last state before a call that started after it ended). Returns 'ok', 'none' or
 * 'undecided'.
 */
function linearizable(before: State, history: Timed[], after: State): 'ok' | 'none' | 'undecided' {
  const want = showState(after)
  const calls = history.filter((x) => x.c.t !== 'range')
  const ranges = history.filter((x) => x.c.t === 'range')
  let steps = 0
  const order: number[] = []
  const states: State[] = []
  const placed = new Array<boolean>(calls.length).fill(false)
  const rangesFit = (): boolean =>
    ranges.every((rg) => {
      let lo = 0
      let hi = order.length
      order.forEach((ci, pos) => {
        const x = calls[ci] as Timed
        if (x.end < rg.start) lo = Math.max(lo, pos + 1)
        if (x.start > rg.end) hi = Math.min(hi, pos)
      })
      return rangeFits(rg.c as Extract<Call, { t: 'range' }>, rg.got, states.slice(lo, Math.max(lo, hi) + 1))
    })
  const dfs = (st: State): boolean | undefined => {
    if (++steps > SEARCH_STEPS_MAX) return undefined
    if (order.length === calls.length) return showState(st) === want && rangesFit()
    for (let i = 0; i < calls.length; i++) {
      if (placed[i]) continue
      const x = calls[i] as Timed
      // x may go next only if no unplaced call resolved before x started.
      if (calls.some((y, j) => !placed[j] && j !== i && y.end < x.start)) continue
      const next = cloneState(st)
      if (applyModel(next, x.c, x.got) !== x.got) continue
      placed[i] = true
      order.push(i)
      states.push(next)
      const r = dfs(next)
      placed[i] = false
      order.pop()
      states.pop()
      if (r !== false) return r
    }
    return false
  }
  states.push(cloneState(before))
  const found = dfs(cloneState(before))
  return found === true ? 'ok' : found === undefined ? 'undecided' : 'none'
}

/**
 * One command issues one call and returns at once: a scheduled command's run is a single
 * scheduler task, so it must not wait for other scheduled tasks (the call's own steps).
 * fast-check then decides when the call starts, and in which order its store calls resolve,
 * among the calls issued before and after it.
 */
class Issue implements fc.AsyncCommand<object, Real> {
  constructor(readonly c: Call) {}
  check(): boolean {
    return true
  }
  async run(_m: object, r: Real): Promise<void> {
    const c = this.c
    r.inflight.push(
      (async () => {
        await r.s.schedule(Promise.resolve(), `start ${c.t}`)
        const start = r.clock++
        const got = await runReal(r, c)
        r.history.push({ c, got, start, end: r.clock++ })
      })(),
    )
  }
  toString(): string {
    return JSON.stringify(this.c, (_, v) => (v instanceof Uint8Array ? hex(v) : v))
  }
}

/**
 * Routes the store's awaited calls through the scheduler (fast-check orders their results)
 * while `live` says so; off while the Db closes, when nothing would release them.
 */
function scheduledStore(store: DbStore, s: fc.Scheduler, live: { on: boolean }): DbStore {
  const wrapped = new Map<PropertyKey, (...a: unknown[]) => Promise<unknown>>()
  for (const m of ['get', 'flush', 'makeStable', 'whenWritable'] as const) {
    const f = (store[m] as (...a: unknown[]) => Promise<unknown>).bind(store)
    const viaScheduler = s.scheduleFunction(f)
    wrapped.set(m, (...a) => (live.on ? viaScheduler(...a) : f(...a)))
  }
  return new Proxy(store, {
    get(target, p, receiver) {
      const w = wrapped.get(p)
      if (w !== undefined) return w
      const v = Reflect.get(target, p, receiver)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

/** The mutation: an insert that answers and resolves at once and writes a scheduler turn later. */
function lateInsert(tree: Tree, s: fc.Scheduler, pending: Promise<unknown>[]): Tree {
  return new Proxy(tree, {
    get(target, p, receiver) {
      if (p === 'insert')
        return async (k: Uint8Array, v: Uint8Array) => {
          const old = await target.get(k)
          pending.push(s.schedule(Promise.resolve(), 'late write').then(() => target.insert(k, v)))
          return old
        }
      const x = Reflect.get(target, p, receiver)
      return typeof x === 'function' ? x.bind(target) : x
    },
  })
}

type Backend = 'memory' | 'sim'

async function setup(backend: Backend, s: fc.Scheduler, seed: number, mutate: boolean): Promise<Real> {
  const live = { on: true }
  const store: DbStore =
    backend === 'memory'
      ? (new MemoryPageStore<TreePage>(treeCodec, { consolidateAfter: 3, residentMax: 6 }) as DbStore)
      : await PageCache.open<TreePage>('db', treeCodec, {
          storage: new SimDisk({ seed, latency: false }).storage('db'),
          segmentBytes: FILE_SEGMENT_BYTES,
          cacheCapacity: FILE_CACHE_BYTES,
          consolidateAfter: 3,
          checkpointEveryBytes: 48 * 1024,
          flushEveryMs: 0,
        })
  // Opened before the scheduler takes over: nothing would release its store calls yet.
  live.on = false
  const db = await openOn(scheduledStore(store, s, live), TINY)
  const a = await db.openTree('a')
  live.on = true
  const pending: Promise<unknown>[] = []
  return {
    s,
    db,
    trees: mutate ? { '': lateInsert(db, s, pending), a: lateInsert(a, s, pending) } : { '': db, a },
    raw: { '': db, a },
    pending,
    inflight: [],
    history: [],
    clock: 0,
    async close() {
      live.on = false
      await db.close()
    },
  }
}

const issues = fc.commands([call.map((c) => new Issue(c))], { maxCommands: 16 })

const emptyState = (): State => new Map(NAMES.map((n) => [n, new Map<string, string>()]))

/** Runs the property; returns fast-check's details (failed when a history is not linearizable). */
function check(backend: Backend, mutate: boolean, runs: number, seed: number, figures: Figures) {
  let diskSeed = 0
  return fc.check(
    fc.asyncProperty(fc.scheduler(), issues, async (s, cmds) => {
      figures.runs++
      const r = await setup(backend, s, ++diskSeed, mutate)
      try {
        await fc.scheduledModelRun(s, () => ({ model: {}, real: r }), cmds)
        // Calls issued last may still wait for store calls scheduled after waitAll returned.
        await s.waitFor(Promise.all(r.inflight))
        await s.waitFor(Promise.all(r.pending))
        const after = await s.waitFor(readState(r))
        figures.calls += r.history.length
        figures.overlapped += r.history.filter((x) =>
          r.history.some((y) => y !== x && y.start < x.end && x.start < y.end),
        ).length
        const verdict = linearizable(emptyState(), r.history, after)
        if (verdict === 'undecided') figures.undecided++
        assert.notEqual(verdict, 'none', `no linearization explains the history, after ${showState(after)}`)
      } finally {
        await r.close().catch(() => {})
      }
    }),
    { numRuns: runs, seed, endOnFailure: mutate },
  )
}

const newFigures = (): Figures => ({ runs: 0, calls: 0, overlapped: 0, undecided: 0 })
const baseSeed = Number(process.env.BOBSLED_SEED ?? 1)

for (const backend of ['memory', 'sim'] as const) {
  const runs = backend === 'memory' ? RUNS : Math.ceil(RUNS / 3)
  test(`R1 scheduled [${backend}]: ${runs} runs of concurrent Db calls in orders fast-check picks, every history linearizable`, async () => {
    const figures = newFigures()
    const d = await check(backend, false, runs, baseSeed, figures)
    console.log(
      `RELIABILITY db-model-scheduled backend=${backend} runs=${runs} calls=${figures.calls} overlapped=${figures.overlapped} undecided=${figures.undecided} divergences=${d.failed ? 1 : 0} seed=${baseSeed}`,
    )
    assert.ok(!d.failed, fc.defaultReportMessage(d) ?? 'failed')
    assert.ok(figures.overlapped > figures.calls / 4, 'calls ran concurrently')
    assert.equal(figures.undecided, 0, 'every history was decided')
  })
}

test('R1 scheduled mutation check: an insert that resolves before its write is applied is caught', async () => {
  const figures = newFigures()
  const d = await check('memory', true, 100, baseSeed, figures)
  console.log(
    `RELIABILITY db-model-scheduled-mutation runs=${figures.runs} caught=${d.failed ? 1 : 0} seed=${baseSeed}`,
  )
  assert.ok(d.failed, 'the model accepted an insert applied after later calls')
  assert.match(String(d.errorInstance), /no linearization/, 'caught by the model, not by an error')
})
