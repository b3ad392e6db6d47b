import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { LsnWaiters } from '../../src/log/waiters.js'

/** Lets every settled promise run its reactions. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

type Op = { op: 'wait'; lsn: number } | { op: 'release'; point: number }

// Dense LSNs (many duplicates and near-ties) stress the heap's sift-down and sift-up.
const lsnArb = fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 60 }))

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: lsnArb.map((lsn) => ({ op: 'wait' as const, lsn })) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: -1, max: 64 }).map((point) => ({ op: 'release' as const, point })),
  },
  {
    weight: 1,
    arbitrary: fc.integer({ min: -1, max: 9 }).map((point) => ({ op: 'release' as const, point })),
  },
)

interface Tracked {
  lsn: number
  state: 'pending' | 'resolved' | 'rejected'
  error?: unknown
}

function track(w: LsnWaiters, lsn: number, all: Tracked[]): Tracked {
  const t: Tracked = { lsn, state: 'pending' }
  all.push(t)
  w.wait(lsn).then(
    () => {
      assert.equal(t.state, 'pending', 'settled twice')
      t.state = 'resolved'
    },
    (e) => {
      assert.equal(t.state, 'pending', 'settled twice')
      t.state = 'rejected'
      t.error = e
    },
  )
  return t
}

describe('LsnWaiters', () => {
  test('releaseUpTo resolves exactly the waiters at or below the point (model check)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 60, size: 'medium' }), async (ops) => {
        const w = new LsnWaiters()
        const all: Tracked[] = []
        // The model: the LSNs still waiting.
        const pending = new Set<Tracked>()
        for (const o of ops) {
          if (o.op === 'wait') {
            pending.add(track(w, o.lsn, all))
          } else {
            const expected = [...pending].filter((t) => t.lsn <= o.point)
            assert.equal(w.releaseUpTo(o.point), expected.length)
            for (const t of expected) pending.delete(t)
            await flush()
          }
          assert.equal(w.size, pending.size)
          for (const t of all)
            assert.equal(t.state, pending.has(t) ? 'pending' : 'resolved', `waiter ${t.lsn}`)
        }
      }),
      { numRuns: 500 },
    )
  })

  test('any insertion order: one release per point frees them in LSN order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 1000 }), { maxLength: 200, size: 'medium' }),
        fc.integer({ min: -1, max: 1001 }),
        async (lsns, point) => {
          const w = new LsnWaiters()
          const order: number[] = []
          for (const lsn of lsns) void w.wait(lsn).then(() => order.push(lsn))
          assert.equal(w.size, lsns.length)
          const below = lsns.filter((l) => l <= point)
          assert.equal(w.releaseUpTo(point), below.length)
          await flush()
          assert.deepEqual(
            order,
            below.sort((a, b) => a - b),
          )
          assert.equal(w.size, lsns.length - below.length)
          assert.equal(w.releaseUpTo(Number.MAX_SAFE_INTEGER), lsns.length - below.length)
          assert.equal(w.size, 0)
          assert.equal(w.releaseUpTo(Number.MAX_SAFE_INTEGER), 0)
        },
      ),
      { numRuns: 200 },
    )
  })

  test('rejectAll rejects every pending waiter with the given error and leaves resolved ones alone', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 50 }),
        fc.integer({ min: -1, max: 100 }),
        async (lsns, point) => {
          const w = new LsnWaiters()
          const all: Tracked[] = []
          for (const lsn of lsns) track(w, lsn, all)
          w.releaseUpTo(point)
          const err = new Error('poisoned')
          w.rejectAll(err)
          assert.equal(w.size, 0)
          await flush()
          for (const t of all) {
            if (t.lsn <= point) {
              assert.equal(t.state, 'resolved')
            } else {
              assert.equal(t.state, 'rejected')
              assert.equal(t.error, err)
            }
          }
          // The set keeps working afterwards.
          const later = track(w, 5, all)
          assert.equal(w.size, 1)
          w.rejectAll(new Error('again'))
          assert.equal(w.releaseUpTo(10), 0)
          await flush()
          assert.equal(later.state, 'rejected')
          const last = track(w, 7, all)
          assert.equal(w.releaseUpTo(7), 1)
          await flush()
          assert.equal(last.state, 'resolved')
        },
      ),
      { numRuns: 100 },
    )
  })

  test('an empty set: size 0, release frees nothing, rejectAll is a no-op', () => {
    const w = new LsnWaiters()
    assert.equal(w.size, 0)
    assert.equal(w.releaseUpTo(1e9), 0)
    w.rejectAll(new Error('x'))
    assert.equal(w.size, 0)
  })
})
