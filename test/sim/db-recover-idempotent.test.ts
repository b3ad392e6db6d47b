// R13, recovery is idempotent (reliability regimen §5.1): recovering twice equals
// recovering once, also when the power goes again *during* recovery. The page cache power
// loss test (pagecache-power-loss.test.ts, `recover_twice_diff`) recovers one image twice
// on clones, which shows recovery is deterministic; this test recovers the output of a
// recovery again, at the Db level.
//
// Per seed: the key-level workload of db-power-loss (inserts, removes, batches over two
// trees, cleaning and checkpoints running on 8 KiB segments) runs on the simulated disk
// through open() until the power is cut at a seeded moment: image I. Then:
//  - reference: recover a clone of I once (open()'s page cache + Db) and take the state
//    hash: db.checksum() (every tree's name and entries in order), the tree names and the
//    page table (page id → fragments [lsn, bytes, …]); count recovery's simulated IO ops R;
//  - twice: close that recovery cleanly and recover again: the hash must be the same;
//  - chains: on another clone of I, cut the power again at a random op k ∈ [0, R] of
//    recovery (k = R: right after open resolved, before anything else runs), then recover
//    the image that leaves, up to DEPTH cuts in a row, then recover fully: the hash must
//    equal the reference.
// Diffs are counted and printed per case; the test fails on any. Mutation check: a
// "recovery" that writes one key before the cut (a recovery with a side effect on the
// state, like one that re-applies a logged write) must be reported as a diff.
// One line: `RELIABILITY r13-recover-idempotent cases=… diffs=0 seed=…`.
//
// I/O errors inside recovery (second test): on other clones of image I, op k ∈ [0, R) of
// recovery fails with EIO (once, or every op from k on), the open must fail typed or
// succeed, and then — the fault cleared, and in half the cases the power cut as well — a
// full recovery must give the reference hash. Mutation check: a harness whose failed open
// "repairs" the log by cutting it (a recovery that took an unreadable tail for a torn one)
// must be reported as a diff or a failed reopen.
// BOBSLED_SEED=<n> replays one seed; BOBSLED_SOAK=1 runs 5,000 seeds with chains of 3.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { type Db, type OpenOptions, open, openOn } from '../../src/db.js'
import { isBobsledError } from '../../src/errors.js'
import { type OpenMode, SimDisk, type Storage, type StorageFile } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { Prng } from '../../src/util/prng.js'
import { History, runWorkload } from '../crash/db-workload.js'
import { ForwardingStorage } from '../helpers/forwarding-storage.js'
import { isSoak, seedList } from '../helpers/io-recorder.js'
import { turns } from '../helpers/log-faults.js'

const SEEDS = isSoak ? 5000 : 60
const DEPTH = isSoak ? 3 : 2
/** Cut chains per seed (each on its own clone of the image). */
const CHAINS = isSoak ? 4 : 3

const options = (storage: Storage): OpenOptions => ({
  storage,
  segmentBytes: 8 * 1024,
  cacheCapacity: 16 * 1024,
  flushEveryMs: 0,
  nodeMaxBytes: 512,
  nodeMaxEntries: 16,
})

/** open() as src/db.ts builds it, keeping the page cache in hand for its page table. */
async function recoverOn(storage: Storage): Promise<{ db: Db; pc: PageCache<TreePage> }> {
  const o = options(storage)
  const pc = await PageCache.open<TreePage>('db', treeCodec, {
    storage,
    segmentBytes: o.segmentBytes as number,
    cacheCapacity: o.cacheCapacity as number,
    flushEveryMs: 0,
    // Cleaning is background work after recovery, not recovery: a pass started by the
    // first open (the recovered log may be over its space budget) and finished by its
    // clean close moves every page, so the page tables would differ for a reason that has
    // nothing to do with idempotence. The image itself was written with cleaning on.
    cleaning: false,
  })
  return { db: await openOn(pc, o), pc }
}

interface StateHash {
  checksum: number
  trees: string
  pageTable: string
}

async function stateHash(db: Db, pc: PageCache<TreePage>): Promise<StateHash> {
  const rows: string[] = []
  for (const pid of pc.pageIds()) rows.push(`${pid}:${(pc.fragmentsOf(pid) ?? []).join(',')}`)
  return {
    checksum: await db.checksum(),
    trees: (await db.treeNames()).join('/'),
    pageTable: createHash('sha256').update(rows.join(' ')).digest('hex').slice(0, 16),
  }
}

function diffOf(want: StateHash, got: StateHash): string | undefined {
  const d: string[] = []
  if (want.checksum !== got.checksum) d.push(`checksum ${want.checksum} vs ${got.checksum}`)
  if (want.trees !== got.trees) d.push(`trees ${want.trees} vs ${got.trees}`)
  if (want.pageTable !== got.pageTable) d.push(`page table ${want.pageTable} vs ${got.pageTable}`)
  return d.length === 0 ? undefined : d.join(', ')
}

/**
 * Forwards to the disk's storage until `cutAt` simulated ops have been issued since it was
 * made, then cuts the power just before the next op: every later op (and the open that
 * issues it) fails on the dead disk. `after()` is the next machine's disk.
 */
class CutAtOp extends ForwardingStorage {
  private next: SimDisk | undefined
  private readonly start: number

  constructor(
    private readonly disk: SimDisk,
    private readonly cutAt: number,
    private readonly crashSeed: number,
  ) {
    super(disk.storage('db'))
    this.start = disk.opCount
  }

  /** Cuts now if the op about to be issued is op `cutAt` of this run. */
  private check(): void {
    if (this.next === undefined && this.disk.opCount - this.start >= this.cutAt) this.cut()
  }

  cut(): void {
    if (this.next === undefined) this.next = this.disk.crash({ seed: this.crashSeed })
  }

  get isCut(): boolean {
    return this.next !== undefined
  }

  after(): SimDisk {
    if (this.next === undefined) throw new Error('the power was never cut')
    return this.next
  }

  override async openFile(name: string, mode: OpenMode): Promise<StorageFile> {
    this.check()
    const f = await this.inner.openFile(name, mode)
    const checked = <T>(issue: () => Promise<T>): Promise<T> => {
      this.check()
      return issue()
    }
    return {
      name: f.name,
      read: (b, o, l, p) => checked(() => f.read(b, o, l, p)),
      write: (b, o, l, p) => checked(() => f.write(b, o, l, p)),
      writeSynced: (b, o, l, p) => checked(() => f.writeSynced(b, o, l, p)),
      datasync: () => checked(() => f.datasync()),
      truncate: (s) => checked(() => f.truncate(s)),
      size: () => checked(() => f.size()),
      close: () => f.close(),
    }
  }
  override exists(name: string): Promise<boolean> {
    this.check()
    return this.inner.exists(name)
  }
  override list(dir: string): Promise<string[]> {
    this.check()
    return this.inner.list(dir)
  }
  override mkdir(name: string): Promise<void> {
    this.check()
    return this.inner.mkdir(name)
  }
  override rename(from: string, to: string): Promise<void> {
    this.check()
    return this.inner.rename(from, to)
  }
  override unlink(name: string): Promise<void> {
    this.check()
    return this.inner.unlink(name)
  }
  override syncDir(dir: string): Promise<void> {
    this.check()
    return this.inner.syncDir(dir)
  }
}

/** Runs the workload through open() and cuts the power at a seeded moment: the image. */
async function powerCutImage(seed: number, rng: Prng): Promise<SimDisk> {
  let disk = new SimDisk({ seed, latency: true })
  const h = new History()
  const rounds = 1 + rng.int(2)
  for (let r = 0; r < rounds; r++) {
    const db = await open('db', options(disk.storage('db')))
    const running = runWorkload(db, rng, h.nextW, 40 + rng.int(300), h, {
      durability: rng.chance(0.5) ? 'sync' : 'flush',
    })
    await Promise.race([running, turns(rng.int(2000))])
    disk = disk.crash({ seed: rng.next() })
    await running.catch(() => {})
    await db.close().catch(() => {})
  }
  return disk
}

interface Totals {
  cases: number
  diffs: number
  cutsInRecovery: number
  recoveryOpsMax: number
  diffLines: string[]
}

async function runSeed(seed: number, t: Totals, mutant = false): Promise<void> {
  const rng = new Prng(seed)
  const image = await powerCutImage(seed, rng)
  const note = (what: string, d: string | undefined): void => {
    t.cases++
    if (d === undefined) return
    t.diffs++
    t.diffLines.push(`seed=${seed} ${what}: ${d}`)
  }
  // Reference: one recovery.
  const refDisk = image.clone()
  const ops0 = refDisk.opCount
  const ref = await recoverOn(refDisk.storage('db'))
  const recoveryOps = refDisk.opCount - ops0
  t.recoveryOpsMax = Math.max(t.recoveryOpsMax, recoveryOps)
  const want = await stateHash(ref.db, ref.pc)
  await ref.db.close()
  // Twice: recover what the first recovery (and its clean close) left.
  const again = await recoverOn(refDisk.storage('db'))
  note('recovered twice (clean close between)', diffOf(want, await stateHash(again.db, again.pc)))
  await again.db.close()
  // Chains of cuts inside recovery.
  for (let c = 0; c < CHAINS; c++) {
    let disk = image.clone()
    const depth = 1 + rng.int(DEPTH)
    const path: number[] = []
    for (let d = 0; d < depth; d++) {
      // The mutant's recovery always completes, so its write always happens.
      const k = mutant ? Number.MAX_SAFE_INTEGER : rng.int(recoveryOps + 1)
      path.push(k)
      const cutter = new CutAtOp(disk, k, rng.next())
      const opening = recoverOn(cutter).then(
        async (r) => {
          // Recovery finished before op k: the cut lands right after it, before any write.
          if (mutant) await r.db.insert(`mutant-${d}`, 'written by recovery', { durable: true })
          cutter.cut()
          await r.db.close().catch(() => {})
        },
        () => {},
      )
      await opening
      if (cutter.isCut) t.cutsInRecovery++
      else cutter.cut()
      disk = cutter.after()
    }
    const final = await recoverOn(disk.storage('db'))
    note(
      `cuts at recovery ops [${path.join(',')}] of ${recoveryOps}`,
      diffOf(want, await stateHash(final.db, final.pc)),
    )
    await final.db.close()
  }
}

test(`R13: recovering twice equals recovering once, also with power cuts inside recovery (${SEEDS} seeds)`, async () => {
  const t: Totals = { cases: 0, diffs: 0, cutsInRecovery: 0, recoveryOpsMax: 0, diffLines: [] }
  const seeds = seedList(SEEDS, 1)
  const t0 = performance.now()
  for (const seed of seeds) {
    try {
      await runSeed(seed, t)
    } catch (e) {
      assert.fail(`seed=${seed} (replay: BOBSLED_SEED=${seed}): recovery failed: ${(e as Error).stack}`)
    }
  }
  console.log(
    `RELIABILITY r13-recover-idempotent cases=${t.cases} diffs=${t.diffs} cuts_in_recovery=${t.cutsInRecovery} ` +
      `chain_depth_max=${DEPTH} recovery_ops_max=${t.recoveryOpsMax} ms=${Math.round(performance.now() - t0)} seed=${seeds[0]}`,
  )
  assert.equal(t.diffs, 0, t.diffLines.slice(0, 10).join('\n'))
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(t.cutsInRecovery > seeds.length, 'cuts landed inside recovery')
})

test('R13 mutation check: a recovery with a side effect on the state is reported', async () => {
  const t: Totals = { cases: 0, diffs: 0, cutsInRecovery: 0, recoveryOpsMax: 0, diffLines: [] }
  const seeds = seedList(10, 1)
  for (const seed of seeds) await runSeed(seed, t, true)
  console.log(
    `RELIABILITY r13-recover-idempotent-mutation cases=${t.cases} diffs=${t.diffs} seed=${seeds[0]}`,
  )
  assert.ok(t.diffs > 0, 'the comparison never sees a difference')
})

interface IoTotals {
  cases: number
  diffs: number
  failedOpens: number
  untyped: number
  failedReopens: number
  lines: string[]
}

/**
 * I/O errors inside recovery: per chain, a clone of the power-cut image whose op k of
 * recovery fails with EIO (once or from then on), then a full recovery with no fault.
 */
async function runIoSeed(seed: number, t: IoTotals, mutant = false): Promise<void> {
  const rng = new Prng(seed ^ 0x10e2)
  const image = await powerCutImage(seed, new Prng(seed))
  const refDisk = image.clone()
  const ops0 = refDisk.opCount
  const ref = await recoverOn(refDisk.storage('db'))
  const recoveryOps = refDisk.opCount - ops0
  const want = await stateHash(ref.db, ref.pc)
  await ref.db.close()
  for (let c = 0; c < CHAINS; c++) {
    let disk = image.clone()
    const k = rng.int(recoveryOps)
    const persistent = rng.chance(0.5)
    const powerCut = rng.chance(0.5)
    const what = `seed=${seed} EIO at recovery op ${k} of ${recoveryOps}${persistent ? ' and after' : ''}${powerCut ? ', then a power cut' : ''}`
    t.cases++
    disk.setFaults({ failAt: { op: k, code: 'EIO', persistent } })
    try {
      const r = await recoverOn(disk.storage('db'))
      // The fault lands after open resolved (in its background work or close): fine too.
      await r.db.close().catch(() => {})
    } catch (e) {
      t.failedOpens++
      if (!isBobsledError(e)) {
        t.untyped++
        t.lines.push(`${what}: untyped ${(e as Error).stack}`)
      }
      if (mutant) await cutLogInHalf(disk)
    }
    disk.setFaults({ failAt: undefined })
    if (powerCut) disk = disk.crash({ seed: rng.next() })
    let final: Awaited<ReturnType<typeof recoverOn>>
    try {
      final = await recoverOn(disk.storage('db'))
    } catch (e) {
      t.failedReopens++
      t.lines.push(`${what}: the reopen failed: ${(e as Error).message}`)
      continue
    }
    const d = diffOf(want, await stateHash(final.db, final.pc))
    if (d !== undefined) {
      t.diffs++
      t.lines.push(`${what}: ${d}`)
    }
    await final.db.close()
  }
}

/** The planted bug: a failed recovery that "repairs" the log by dropping its second half. */
async function cutLogInHalf(disk: SimDisk): Promise<void> {
  disk.setFaults({ failAt: undefined })
  const f = await disk.storage('db').openFile('log', 'createOrOpen')
  const size = await f.size()
  await f.truncate(Math.floor(size / 2 / 4096) * 4096)
  await f.datasync()
  await f.close()
}

const IO_SEEDS = isSoak ? 2000 : 20

test(`R13: an I/O error inside recovery, then a clean reopen, gives the state of a clean recovery (${IO_SEEDS} seeds)`, async () => {
  const t: IoTotals = { cases: 0, diffs: 0, failedOpens: 0, untyped: 0, failedReopens: 0, lines: [] }
  const seeds = seedList(IO_SEEDS, 1)
  const t0 = performance.now()
  for (const seed of seeds) await runIoSeed(seed, t)
  console.log(
    `RELIABILITY r13-io-error-in-recovery cases=${t.cases} failed_opens=${t.failedOpens} untyped=${t.untyped} ` +
      `failed_reopens=${t.failedReopens} diffs=${t.diffs} ms=${Math.round(performance.now() - t0)} seed=${seeds[0]}`,
  )
  assert.deepEqual(t.lines.slice(0, 10), [], 'replay: BOBSLED_SEED=<seed>')
  if (process.env.BOBSLED_SEED === undefined)
    assert.ok(t.failedOpens > seeds.length, 'the errors landed inside recovery')
})

test('R13 I/O-error mutation check: a failed recovery that cuts the log is reported', async () => {
  const t: IoTotals = { cases: 0, diffs: 0, failedOpens: 0, untyped: 0, failedReopens: 0, lines: [] }
  for (const seed of seedList(5, 1)) await runIoSeed(seed, t, true)
  console.log(
    `RELIABILITY r13-io-error-in-recovery-mutation cases=${t.cases} failed_opens=${t.failedOpens} caught=${t.diffs + t.failedReopens}`,
  )
  assert.ok(t.diffs + t.failedReopens > 0, 'the comparison never sees the cut log')
})
