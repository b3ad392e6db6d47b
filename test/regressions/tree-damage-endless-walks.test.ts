// Hangs and untyped errors on crafted databases, found by R8's Db damage catalogue
// (test/reliability/db-damage.test.ts), each pinned here by its case name:
//  - an index node whose first child is the root: clear() and dropTree() measured the
//    tree's height down the leftmost path, which then never ends (a synchronous endless
//    loop); the walk is now bounded by the depth limit and visits each page once;
//  - a log record naming page 2^40 (or 2^53 - 1): open() then built the free-id list up to
//    that id (a Set of 2^24 entries fails untyped, an endless loop before that); open now
//    refuses more free ids than a page table can hold with CorruptionError;
//  - a checkpoint whose fragment list names LSNs where no record starts: the page-in
//    passed the log's InvalidArgumentError on as if the caller had erred; it is a
//    CorruptionError now;
//  - cycles, chains deeper than 64 levels, and children that are META or the counter page
//    were InvariantErrors (a bug report) although the bytes on disk caused them; they are
//    CorruptionErrors now.
// The cases run in the catalogue's worker, watched from this thread: a synchronous endless
// loop cannot stop a test in its own thread.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Worker } from 'node:worker_threads'
import type { DamageEnd, DamageInput } from '../reliability/db-damage-worker.js'

const CASES = [
  'index node: first child is the root (cycle on the leftmost path)',
  'index node: last child is the root (cycle)',
  'tree deeper than any sane bound (a chain of 100 index nodes)',
  'index node: a child that is the META page',
  'log: a page record with a huge page id',
  'log: a page record with page id 2^53 - 1',
  'checkpoint (CRC valid): a page with a fragment chain of 5,000',
]
const DEADLINE_MS = 30_000

test('crafted cycles, depths, huge page ids and foreign fragments end in CorruptionError, not a hang', async () => {
  const ends = await new Promise<DamageEnd[]>((resolve, reject) => {
    const data: DamageInput = {
      from: 0,
      only: CASES,
      family: undefined,
      seed: 0xda3a,
      caseTimeoutMs: 5_000,
      isSelfCheck: false,
    }
    const w = new Worker(new URL('../reliability/db-damage-worker.js', import.meta.url), { workerData: data })
    const out: DamageEnd[] = []
    const timer = setTimeout(() => {
      void w.terminate()
      reject(new Error(`no answer after ${DEADLINE_MS} ms: ${CASES.length - out.length} cases hang`))
    }, DEADLINE_MS)
    w.on('message', (m: DamageEnd | { t: 'start' | 'done' }) => {
      if (m.t === 'end') out.push(m)
      if (m.t === 'done') {
        clearTimeout(timer)
        void w.terminate()
        resolve(out)
      }
    })
    w.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
  const got = ends.map((e) => [
    e.name,
    e.kind === 'detected_open' || e.kind === 'detected_later' ? 'CorruptionError' : `${e.kind}: ${e.detail}`,
  ])
  assert.deepEqual(got.sort(), CASES.map((n) => [n, 'CorruptionError']).sort())
})
