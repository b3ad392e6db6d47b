// Inline synced writes through the public API on real files (docs/DESIGN.md, "Inline synced
// writes"): with durability 'sync' and one writer, each awaited insert is one O_DSYNC write on
// the main thread, what it wrote is there after a real reopen, and an awaited insert loop
// still lets timers and immediates run (its completions come after a setImmediate).

import assert from 'node:assert/strict'
import { constants } from 'node:fs'
import { test } from 'node:test'
import { open } from '../../src/index.js'
import { tempDir } from '../helpers/temp-dir.js'

const key = (i: number): string => `key:${String(i).padStart(5, '0')}`
const value = (i: number, round: number): string => `value ${i} of round ${round}`

interface LogSync {
  syncs: number
  syncedWrites: number
  inlineWrites: number
  inlineFallbacks: number
}

async function logSync(db: { stats(): Promise<object> }): Promise<LogSync> {
  return ((await db.stats()) as { store: { logSync: LogSync } }).store.logSync
}

test('one durable writer on real files: its inserts are inline O_DSYNC writes, and there after a reopen', {
  skip: constants.O_DSYNC === undefined ? 'no O_DSYNC on this platform' : false,
}, async () => {
  const dir = await tempDir('db-inline')
  try {
    for (const inlineSyncedWrites of [true, false]) {
      let db = await open(dir.path, { durability: 'sync', flushEveryMs: 0, inlineSyncedWrites })
      const s0 = await logSync(db)
      for (let i = 0; i < 200; i++) await db.insert(key(i), value(i, inlineSyncedWrites ? 1 : 2))
      const s1 = await logSync(db)
      const msg = `inline=${inlineSyncedWrites} ${JSON.stringify(s1)}`
      const rounds = s1.syncs - s0.syncs
      assert.ok(rounds >= 200, `one durable round per insert at least: ${msg}`)
      // Every lone round went inline, or to the pool on purpose (the slow-disk guard: a
      // file growing, a disk shared with other work). Not lone: the first synced write, which
      // opens the O_DSYNC descriptor, and a segment's pre-extending round (write + datasync).
      if (inlineSyncedWrites) {
        assert.ok(s1.inlineWrites > s0.inlineWrites, msg)
        assert.ok(s1.inlineWrites + s1.inlineFallbacks - s0.inlineWrites - s0.inlineFallbacks >= 190, msg)
      } else assert.equal(s1.inlineWrites + s1.inlineFallbacks, 0, msg)
      await db.close()
      db = await open(dir.path, { warmCache: false })
      for (let i = 0; i < 200; i++) {
        const got = new TextDecoder().decode(await db.get(key(i)))
        assert.equal(got, value(i, inlineSyncedWrites ? 1 : 2), `${msg}: ${key(i)}`)
      }
      await db.close()
    }
  } finally {
    await dir.remove()
  }
})

test('an awaited durable insert loop does not starve timers and immediates', async () => {
  const dir = await tempDir('db-inline-starve')
  try {
    const db = await open(dir.path, { durability: 'sync', flushEveryMs: 0 })
    for (let i = 0; i < 10; i++) await db.insert(key(i), value(i, 0))
    const s0 = await logSync(db)
    let timers = 0
    let immediates = 0
    const tick = setInterval(() => timers++, 0)
    const imm = (): void => {
      immediates++
      if (immediates < 100_000) setImmediate(imm)
    }
    setImmediate(imm)
    // Starved (a completion on a bare microtask), no timer would run in any number of inserts.
    let inserts = 0
    while (timers < 3 && inserts < 20_000) {
      await db.insert(key(inserts % 500), value(inserts, 1))
      inserts++
    }
    clearInterval(tick)
    const s1 = await logSync(db)
    assert.ok(timers >= 3, `a timer ran ${timers} times in ${inserts} durable inserts`)
    assert.ok(immediates >= inserts / 2, `${immediates} immediates in ${inserts} inserts`)
    // Its rounds were fit for the inline path: written inline, or sent to the pool by the
    // slow-disk guard (a loaded machine trips it; test/log/inline-writes.test.ts runs the same
    // loop on the simulated disk, where every round goes inline).
    const fit = (x: LogSync): number => x.inlineWrites + x.inlineFallbacks
    if (constants.O_DSYNC !== undefined)
      assert.ok(
        fit(s1) - fit(s0) >= inserts - 2,
        `the loop's rounds were fit to go inline: ${JSON.stringify(s1)}`,
      )
    await db.close()
  } finally {
    await dir.remove()
  }
})
