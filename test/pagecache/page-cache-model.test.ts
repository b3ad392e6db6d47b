// Model-based property test of the page cache (issue 3, R1 for the page layer): fast-check
// command sequences — allocate, replace, replaceLarge, link, free, writeBatch, get, flush,
// clean close + reopen, power cut + reopen, cleanNow, checkpoint — run against a
// PageCache over the simulated disk (segments of 1–4 KiB, a cache of a few KiB so pages
// are evicted and paged in again, cleaning and periodic checkpoints on) and against a
// model Map pid → items. After a clean reopen the store equals the model; after a power
// cut it equals the model's state at some prefix of the write history at least as long as
// the acknowledged one (test/helpers/page-history.ts). Accounting invariants are checked
// after every command. BOBSLED_SEED=<n> replays a run; BOBSLED_SOAK=1 runs more.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { SimDisk } from '../../src/io/index.js'
import { PageCache, type PageWrite } from '../../src/pagecache/index.js'
import { deltaOf, type ListPage, listCodec } from '../helpers/list-codec.js'
import { accountingProblem, type Items, PageHistory, readState } from '../helpers/page-history.js'

const soak = process.env.BOBSLED_SOAK === '1'
const RUNS = soak ? 3000 : 300
const MAX_COMMANDS = soak ? 200 : 100

interface Model {
  h: PageHistory
  /** Allocated ids not yet written (free again after any restart). */
  pending: Set<number>
}

interface Real {
  disk: SimDisk
  pc: PageCache<ListPage>
  segmentBytes: number
  crashes: number
  divergences: number
}

const counters = { commands: 0, crashes: 0, reopens: 0, pageIns: 0, relocated: 0, cleaned: 0, ckpts: 0 }

function openOn(disk: SimDisk, segmentBytes: number): Promise<PageCache<ListPage>> {
  return PageCache.open('db', listCodec, {
    storage: disk.storage('db'),
    segmentBytes,
    flushEveryMs: 0,
    cacheCapacity: 1500,
    consolidateAfter: 3,
    checkpointEveryBytes: 3 * segmentBytes,
  })
}

/** Pages the model holds, in id order (commands pick one by index). */
const livePids = (m: Model): number[] => [...m.h.now.keys()].sort((a, b) => a - b)
const writablePids = (m: Model): number[] => [...livePids(m), ...m.pending].sort((a, b) => a - b)
const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length] as T

function afterCommand(r: Real, what: string): void {
  const bad = accountingProblem(r.pc)
  if (bad !== undefined) {
    r.divergences++
    assert.fail(`after ${what}: ${bad}`)
  }
}

type Cmd = fc.AsyncCommand<Model, Real>

class Allocate implements Cmd {
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    const pid = r.pc.allocate()
    assert.ok(!m.h.now.has(pid) && !m.pending.has(pid), `allocate() returned page ${pid}, which is in use`)
    m.pending.add(pid)
  }
  toString = (): string => 'allocate'
}

class Replace implements Cmd {
  constructor(
    readonly at: number,
    readonly item: string,
  ) {}
  check = (m: Model): boolean => writablePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    const pid = pick(writablePids(m), this.at)
    const items = [this.item]
    m.h.record(r.pc.replace(pid, { items: [...items] }), [[pid, items]])
    m.pending.delete(pid)
    afterCommand(r, this.toString())
  }
  toString = (): string => `replace(#${this.at}, ${this.item})`
}

/** Many overwrites in a row: log volume, so cleaning and checkpoints have work to do. */
class Churn implements Cmd {
  constructor(
    readonly at: number,
    readonly count: number,
    readonly item: string,
  ) {}
  check = (m: Model): boolean => livePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    const pids = livePids(m)
    for (let i = 0; i < this.count; i++) {
      const pid = pick(pids, this.at + i)
      const items = [`${this.item}${i}`.repeat(1 + (i % 4))]
      m.h.record(r.pc.replace(pid, { items: [...items] }), [[pid, items]])
      if (i % 16 === 15) await r.pc.whenWritable()
    }
    afterCommand(r, this.toString())
  }
  toString = (): string => `churn(#${this.at}, ${this.count}, ${this.item})`
}

class ReplaceLarge implements Cmd {
  constructor(
    readonly at: number,
    readonly size: number,
  ) {}
  check = (m: Model): boolean => writablePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    const pid = pick(writablePids(m), this.at)
    const items = [`${'L'.repeat(this.size)}${pid}`]
    m.h.record(await r.pc.replaceLarge(pid, { items: [...items] }), [[pid, items]])
    m.pending.delete(pid)
    afterCommand(r, this.toString())
  }
  toString = (): string => `replaceLarge(#${this.at}, ${this.size})`
}

class Link implements Cmd {
  constructor(
    readonly at: number,
    readonly item: string,
  ) {}
  check = (m: Model): boolean => livePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    const pid = pick(livePids(m), this.at)
    const items = [...(m.h.now.get(pid) as readonly string[]), this.item]
    m.h.record(r.pc.link(pid, deltaOf(this.item), { items: [...items] }), [[pid, items]])
    afterCommand(r, this.toString())
  }
  toString = (): string => `link(#${this.at}, ${this.item})`
}

class Free implements Cmd {
  constructor(readonly at: number) {}
  check = (m: Model): boolean => livePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    const pid = pick(livePids(m), this.at)
    m.h.record(r.pc.free(pid), [[pid, undefined]])
    afterCommand(r, this.toString())
  }
  toString = (): string => `free(#${this.at})`
}

type BatchOp = { op: 'replace' | 'link' | 'free'; at: number; item: string }

class Batch implements Cmd {
  constructor(readonly ops: BatchOp[]) {}
  check = (m: Model): boolean => writablePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    // Plan against the state as the batch evolves it; skip writes that would be invalid.
    const state = new Map<number, Items>()
    const cur = (pid: number): Items => (state.has(pid) ? state.get(pid) : m.h.now.get(pid))
    const freed = new Set<number>()
    const writes: PageWrite<ListPage>[] = []
    const candidates = writablePids(m)
    for (const o of this.ops) {
      const pid = pick(candidates, o.at)
      if (freed.has(pid)) continue
      const before = cur(pid)
      if (o.op === 'replace') {
        state.set(pid, [o.item])
        writes.push({ kind: 'replace', pid, page: { items: [o.item] } })
      } else if (o.op === 'link' && before !== undefined) {
        const items = [...before, o.item]
        state.set(pid, items)
        writes.push({ kind: 'link', pid, delta: deltaOf(o.item), page: { items: [...items] } })
      } else if (o.op === 'free' && before !== undefined) {
        state.set(pid, undefined)
        freed.add(pid)
        writes.push({ kind: 'free', pid })
      }
    }
    if (writes.length === 0) return
    m.h.record(r.pc.writeBatch(writes), [...state.entries()])
    for (const pid of state.keys()) m.pending.delete(pid)
    afterCommand(r, this.toString())
  }
  toString = (): string => `batch(${this.ops.map((o) => `${o.op}#${o.at}`).join(',')})`
}

class Get implements Cmd {
  constructor(readonly at: number) {}
  check = (m: Model): boolean => writablePids(m).length > 0
  async run(m: Model, r: Real): Promise<void> {
    const pid = pick(writablePids(m), this.at)
    const resident = r.pc.peek(pid) !== undefined
    const got = await r.pc.get(pid)
    if (!resident && got !== undefined) counters.pageIns++
    const want = m.h.now.get(pid)
    if (JSON.stringify(got?.items) !== JSON.stringify(want)) r.divergences++
    assert.deepEqual(got?.items, want === undefined ? undefined : [...want], `get(${pid})`)
  }
  toString = (): string => `get(#${this.at})`
}

class Flush implements Cmd {
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    m.h.ackLsn(await r.pc.flush())
  }
  toString = (): string => 'flush'
}

class Clean implements Cmd {
  check = (): boolean => true
  async run(_m: Model, r: Real): Promise<void> {
    await r.pc.cleanNow()
    afterCommand(r, 'cleanNow')
  }
  toString = (): string => 'cleanNow'
}

class Checkpoint implements Cmd {
  check = (): boolean => true
  async run(_m: Model, r: Real): Promise<void> {
    await r.pc.checkpoint()
    afterCommand(r, 'checkpoint')
  }
  toString = (): string => 'checkpoint'
}

function noteCounters(pc: PageCache<ListPage>): void {
  const st = pc.stats()
  counters.relocated += st.pagesRelocated
  counters.cleaned += st.segmentsCleaned
  counters.ckpts += st.checkpointsWritten
}

async function checkReopened(m: Model, r: Real, what: string): Promise<void> {
  const state = await readState(r.pc)
  const k = m.h.matchPrefix(state)
  if (typeof k === 'string') {
    r.divergences++
    assert.fail(`after ${what}: no prefix of the history matches the store, ${k}`)
  }
  m.h.rebase(state)
  m.pending.clear()
  afterCommand(r, what)
}

class Restart implements Cmd {
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    noteCounters(r.pc)
    await r.pc.close()
    m.h.ackAll()
    r.pc = await openOn(r.disk, r.segmentBytes)
    counters.reopens++
    await checkReopened(m, r, 'close + reopen')
    assert.equal(m.h.entries.length, 0)
  }
  toString = (): string => 'restart'
}

class Crash implements Cmd {
  constructor(readonly seed: number) {}
  check = (): boolean => true
  async run(m: Model, r: Real): Promise<void> {
    noteCounters(r.pc)
    // The old instance keeps running on a dead disk; its writes can no longer land.
    r.disk = r.disk.crash({ seed: this.seed })
    r.pc = await openOn(r.disk, r.segmentBytes)
    counters.crashes++
    await checkReopened(m, r, `power cut (crash seed ${this.seed})`)
  }
  toString = (): string => `crash(${this.seed})`
}

const item = fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme-ascii' })
const at = fc.nat(50)
const commands = fc.commands(
  [
    fc.constant(new Allocate()),
    fc.constant(new Allocate()),
    fc.tuple(at, item).map(([a, s]) => new Replace(a, s)),
    fc.tuple(at, item).map(([a, s]) => new Replace(a, s)),
    fc.tuple(at, item).map(([a, s]) => new Replace(a, s)),
    fc.tuple(at, item).map(([a, s]) => new Replace(a, s)),
    fc.tuple(at, fc.integer({ min: 10, max: 80 }), item).map(([a, n, s]) => new Churn(a, n, s)),
    fc.tuple(at, fc.integer({ min: 1100, max: 5000 })).map(([a, n]) => new ReplaceLarge(a, n)),
    fc.tuple(at, item).map(([a, s]) => new Link(a, s)),
    fc.tuple(at, item).map(([a, s]) => new Link(a, s)),
    fc.tuple(at, item).map(([a, s]) => new Link(a, s)),
    at.map((a) => new Free(a)),
    fc
      .array(fc.record({ op: fc.constantFrom('replace', 'link', 'free'), at, item }), {
        minLength: 1,
        maxLength: 6,
      })
      .map((ops) => new Batch(ops as BatchOp[])),
    at.map((a) => new Get(a)),
    at.map((a) => new Get(a)),
    fc.constant(new Flush()),
    fc.constant(new Restart()),
    fc.nat().map((s) => new Crash(s)),
    fc.constant(new Clean()),
    fc.constant(new Checkpoint()),
  ],
  { maxCommands: MAX_COMMANDS, size: 'max' },
)

/** One run: a fresh simulated disk, the commands, then a final clean reopen check. */
async function runCommands(
  diskSeed: number,
  segmentBytes: number,
  cmds: Iterable<Cmd>,
  stats = { divergences: 0 },
): Promise<void> {
  const disk = new SimDisk({ seed: diskSeed, latency: true })
  const real: Real = { disk, pc: await openOn(disk, segmentBytes), segmentBytes, crashes: 0, divergences: 0 }
  const model: Model = { h: new PageHistory(), pending: new Set() }
  try {
    const list = [...cmds]
    counters.commands += list.length
    await fc.asyncModelRun(() => ({ model, real }), list)
    await new Restart().run(model, real)
    await real.pc.close()
  } finally {
    stats.divergences += real.divergences
  }
}

test(`page cache model: ${RUNS} runs of up to ${MAX_COMMANDS} commands, 0 divergences`, async () => {
  const seed = Number(process.env.BOBSLED_SEED ?? 1)
  const stats = { divergences: 0 }
  const t0 = performance.now()
  const result = await fc.check(
    fc.asyncProperty(fc.nat(), fc.constantFrom(1024, 2048, 4096), commands, async (diskSeed, S, cmds) =>
      runCommands(diskSeed, S, cmds, stats),
    ),
    { seed, numRuns: RUNS, endOnFailure: false, path: process.env.BOBSLED_PATH },
  )
  const ms = Math.round(performance.now() - t0)
  console.log(
    `RELIABILITY pagecache-model runs=${result.numRuns} commands=${counters.commands} crashes=${counters.crashes} ` +
      `reopens=${counters.reopens} page_ins=${counters.pageIns} pages_relocated=${counters.relocated} ` +
      `segments_cleaned=${counters.cleaned} checkpoints=${counters.ckpts} divergences=${result.failed ? 1 : 0} ` +
      `ms=${ms} seed=${seed}`,
  )
  if (result.failed) {
    assert.fail(
      `seed=${seed} (replay: BOBSLED_SEED=${seed} BOBSLED_PATH=${result.counterexamplePath}) path=${result.counterexamplePath}\n` +
        `counterexample: ${fc.stringify(result.counterexample)}\n${(result.errorInstance as Error)?.stack}`,
    )
  }
  assert.ok(
    counters.crashes > 0 && counters.relocated > 0 && counters.pageIns > 0,
    'the runs covered crashes, cleaning and page-ins',
  )
})
