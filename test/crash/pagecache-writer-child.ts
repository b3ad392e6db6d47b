// Child process for the page cache SIGKILL test: opens a PageCache (list pages) in the
// folder, prints OPEN, then writes forever, one call at a time: small replaces, links,
// frees, batches and blob-sized replaces (replaceLarge), with flushes, checkpoints and
// cleanNow now and then, reporting on stdout as test/crash/pagecache-workload.ts describes.
// argv: <dir> <seed> <tag prefix> <ackEarly 0|1>. With ackEarly (the mutation switch) every
// write is acknowledged as soon as its call returns and no flush is ever asked for (no
// timer, no flush step): acks no flush backs, so a kill loses some whatever the machine's
// load (a flush-before-await race alone was caught 0 of 8 times under a full test run).
// The parent kills it with SIGKILL at random.

import { writeSync } from 'node:fs'
import { InvalidArgumentError } from '../../src/errors.js'
import { PageCache, type PageWrite } from '../../src/pagecache/index.js'
import { Prng } from '../../src/util/prng.js'
import { deltaOf, type ListPage, listCodec } from '../helpers/list-codec.js'
import { itemOf, PAGE_CACHE_OPTIONS, type PageOp, writesOf } from './pagecache-workload.js'

const [dir, seedArg, prefix, ackEarlyArg] = process.argv.slice(2)
// `node --test` over a whole dist/test folder also runs helper scripts with no arguments.
if (dir === undefined) process.exit(0)
const ackEarly = ackEarlyArg === '1'
const say = (line: string): void => {
  // Synchronous: a line written is in the pipe before any SIGKILL.
  writeSync(1, `${line}\n`)
}

const pc = await PageCache.open(dir, listCodec, { ...PAGE_CACHE_OPTIONS, flushEveryMs: ackEarly ? 0 : 200 })
const now = new Map<number, readonly string[]>()
for (const pid of [...pc.pageIds()]) {
  const p = await pc.get(pid)
  if (p !== undefined) now.set(pid, [...p.items])
}
say('OPEN')

const rng = new Prng(Number(seedArg))
let tag = 0
let busy = 0
const item = (): string => `${prefix}.${tag++}`.padEnd(4 + rng.int(40), '.')

/** One write call: announced, made, and its LSN reported (or its refusal, B-PC3). */
async function write(ops: PageOp[], call: () => number | Promise<number>): Promise<void> {
  say(`I ${JSON.stringify(ops)}`)
  let lsn: number
  try {
    lsn = await call()
  } catch (e) {
    if (!(e instanceof InvalidArgumentError) || !e.message.includes('large write in flight')) throw e
    busy++
    say('X')
    return
  }
  say(`L ${lsn}`)
  if (ackEarly) say(`F ${lsn}`)
  for (const [pid, items] of writesOf(now, ops)) {
    if (items === undefined) now.delete(pid)
    else now.set(pid, items)
  }
}

for (let step = 0; ; step++) {
  const pick = rng.int(100)
  const pids = [...now.keys()]
  if (pick < 12 || pids.length === 0) {
    const pid = pc.allocate()
    const op: PageOp = { k: 'r', pid, s: item() }
    await write([op], () => pc.replace(pid, { items: [itemOf(op)] }))
  } else if (pick < 40) {
    const pid = rng.pick(pids)
    const op: PageOp = { k: 'r', pid, s: item() }
    await write([op], () => pc.replace(pid, { items: [itemOf(op)] }))
  } else if (pick < 58) {
    const pid = rng.pick(pids)
    const s = item()
    const items = [...(now.get(pid) as readonly string[]), s]
    await write([{ k: 'l', pid, s }], () => pc.link(pid, deltaOf(s), { items }))
  } else if (pick < 63) {
    const pid = rng.pick(pids)
    await write([{ k: 'f', pid }], () => pc.free(pid))
  } else if (pick < 73) {
    const ops: PageOp[] = []
    const state = new Map<number, readonly string[]>()
    const batch: PageWrite<ListPage>[] = []
    for (let k = 0, n = 2 + rng.int(4); k < n; k++) {
      const pid = rng.pick(pids)
      const cur = state.get(pid) ?? now.get(pid)
      if (cur === undefined) continue
      const s = item()
      if (rng.chance(0.5)) {
        state.set(pid, [...cur, s])
        ops.push({ k: 'l', pid, s })
        batch.push({ kind: 'link', pid, delta: deltaOf(s), page: { items: [...cur, s] } })
      } else {
        state.set(pid, [s])
        ops.push({ k: 'r', pid, s })
        batch.push({ kind: 'replace', pid, page: { items: [s] } })
      }
    }
    await write(ops, () => pc.writeBatch(batch))
  } else if (pick < 85) {
    // Blob-sized: over maxPageBytes (a quarter segment), up to ~2.5 KiB more.
    const pid = rng.chance(0.3) ? pc.allocate() : rng.pick(pids)
    const op: PageOp = { k: 'r', pid, s: item(), big: pc.maxPageBytes + 1 + rng.int(2500) }
    await write([op], () => pc.replaceLarge(pid, { items: [itemOf(op)] }))
  } else if (pick < 93) {
    if (!ackEarly) say(`F ${await pc.flush()}`)
  } else if (pick < 95) {
    await pc.checkpoint()
  } else if (pick < 97) {
    await pc.cleanNow()
  } else {
    await pc.whenWritable()
  }
  if (step % 20 === 0) {
    const st = pc.stats()
    if (st.backgroundError !== undefined) throw new Error(`background error: ${st.backgroundError}`)
    say(`S ${st.pagesRelocated} ${st.segmentsCleaned} ${st.checkpointsWritten} ${busy}`)
  }
}
