// The page table's columns (src/pagecache/page-table.ts) against a model of plain arrays:
// fragments in log order through growth of the rows and of the delta pool, delta slots
// reused once freed, versions that move on with every change and never come back.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { PageTable } from '../../src/pagecache/page-table.js'

interface ModelPage {
  frags: number[]
  blobBytes: number
  basePayload: number
  deltaPayload: number
}

type Op =
  | { kind: 'base'; pid: number; bytes: number; payload: number; blob: number }
  | { kind: 'delta'; pid: number; bytes: number; payload: number }
  | { kind: 'remove'; pid: number }

const PIDS = 3000
// Mostly a few hot pages (so pages are rewritten, extended and removed again), some spread
// over enough ids to grow the rows past their first allocation.
const pidArb = fc.oneof({ arbitrary: fc.nat(7), weight: 4 }, { arbitrary: fc.nat(PIDS - 1), weight: 1 })

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('base' as const),
    pid: pidArb,
    bytes: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
    payload: fc.nat(2 ** 40),
    blob: fc.oneof(fc.constant(0), fc.nat(2 ** 40)),
  }),
  fc.record({
    kind: fc.constant('delta' as const),
    pid: pidArb,
    bytes: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
    payload: fc.nat(2 ** 20),
  }),
  fc.record({ kind: fc.constant('remove' as const), pid: pidArb }),
)

function check(t: PageTable, model: Map<number, ModelPage>, pid: number): void {
  const m = model.get(pid)
  assert.equal(t.has(pid), m !== undefined, `page ${pid} present`)
  if (m === undefined) {
    assert.equal(t.fragmentCount(pid), 0)
    return
  }
  assert.deepEqual(t.fragments(pid), m.frags, `fragments of page ${pid}`)
  assert.equal(t.fragmentCount(pid), m.frags.length / 2)
  assert.equal(t.baseLsn(pid), m.frags[0])
  assert.equal(t.baseRecordBytesOf(pid), m.frags[1])
  assert.equal(t.blobBytes(pid), m.blobBytes)
  assert.equal(t.basePayloadBytes(pid), m.basePayload)
  assert.equal(t.deltaPayloadBytes(pid), m.deltaPayload)
}

test('the page table holds what a model of arrays holds, through row and pool growth', () => {
  fc.assert(
    fc.property(fc.array(opArb, { minLength: 200, maxLength: 2000, size: 'max' }), (ops) => {
      const t = new PageTable()
      const model = new Map<number, ModelPage>()
      const versions = new Map<number, Set<number>>()
      let lsn = 1
      for (const op of ops) {
        const before = t.version(op.pid)
        let changed = true
        if (op.kind === 'base') {
          t.setBase(op.pid, lsn, op.bytes, op.payload, op.blob)
          t.bump(op.pid)
          model.set(op.pid, {
            frags: [lsn, op.bytes],
            blobBytes: op.blob,
            basePayload: op.payload,
            deltaPayload: 0,
          })
        } else if (op.kind === 'delta') {
          const m = model.get(op.pid)
          if (m === undefined) {
            changed = false
          } else {
            t.addDelta(op.pid, lsn, op.bytes, op.payload)
            t.bump(op.pid)
            m.frags.push(lsn, op.bytes)
            m.deltaPayload += op.payload
          }
        } else {
          changed = model.delete(op.pid)
          t.remove(op.pid)
        }
        lsn += 1 + (op.pid % 7) * 2 ** 33
        check(t, model, op.pid)
        if (changed) {
          // A version a page-in captured before this change must never match again.
          const seen = versions.get(op.pid) ?? new Set([before])
          assert.ok(!seen.has(t.version(op.pid)), `page ${op.pid}: version ${t.version(op.pid)} came back`)
          seen.add(t.version(op.pid))
          versions.set(op.pid, seen)
        } else {
          assert.equal(t.version(op.pid), before, 'no change, no new version')
        }
      }
      let deltas = 0
      for (let pid = 0; pid < PIDS; pid++) check(t, model, pid)
      for (const m of model.values()) deltas += m.frags.length / 2 - 1
      assert.equal(t.deltas, deltas, 'delta slots in use')
    }),
    { numRuns: 40 },
  )
})

test('freed delta slots are reused: churn of deltas does not grow the pool', () => {
  const t = new PageTable()
  for (let pid = 0; pid < 100; pid++) t.setBase(pid, pid, 10, 10, 0)
  let lsn = 1000
  for (let pid = 0; pid < 100; pid++) for (let k = 0; k < 8; k++) t.addDelta(pid, lsn++, 5, 5)
  const bytes = t.bytes
  for (let round = 0; round < 50; round++) {
    for (let pid = 0; pid < 100; pid++) {
      t.setBase(pid, lsn++, 10, 10, 0)
      for (let k = 0; k < 8; k++) t.addDelta(pid, lsn++, 5, 5)
    }
  }
  assert.equal(t.deltas, 800)
  assert.equal(t.bytes, bytes, 'the pool kept its size')
  assert.equal(t.fragments(42).length, 18)
})

test('a page table of a million pages costs a few dozen bytes a page', () => {
  const t = new PageTable()
  for (let pid = 0; pid < 1_000_000; pid++) t.setBase(pid, pid * 200, 150, 100, 0)
  const perPage = t.bytes / 1_000_000
  assert.ok(perPage <= 80, `${perPage} B a page`)
})
