import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { InvariantError } from '../../src/errors.js'
import { StabilityIntervals } from '../../src/log/stability.js'

describe('StabilityIntervals: digest §1.4 worked example', () => {
  test('out-of-order completion publishes only the contiguous prefix', () => {
    const s = new StabilityIntervals(99)
    assert.equal(s.publishedLsn, 99)
    assert.equal(s.markDone(200, 299), 99)
    assert.equal(s.contiguousLsn, 99)
    assert.equal(s.pendingRangeCount, 1)
    assert.equal(s.isDone(199), false)
    assert.equal(s.isDone(200), true)
    assert.equal(s.markDone(100, 199), 299)
    assert.equal(s.publishedLsn, 299)
    assert.equal(s.contiguousLsn, 299)
    assert.equal(s.pendingRangeCount, 0)
  })

  test('a pending batch (150, 400) caps the published point at 149 until it is done', () => {
    const s = new StabilityIntervals(99)
    s.markBatch(150, 400)
    assert.equal(s.markDone(200, 299), 99)
    assert.equal(s.markDone(100, 199), 149)
    assert.equal(s.contiguousLsn, 299)
    assert.equal(s.markDone(300, 399), 149)
    assert.equal(s.markDone(400, 400), 400)
    assert.equal(s.publishedLsn, 400)
  })

  test('a pending batch (350, 400) still lets the prefix below it publish (unlike sled)', () => {
    const s = new StabilityIntervals(99)
    s.markBatch(350, 400)
    assert.equal(s.markDone(200, 299), 99)
    // sled publishes nothing here; we publish 100-299, which lies wholly below the batch.
    assert.equal(s.markDone(100, 199), 299)
    assert.equal(s.markDone(300, 360), 349)
    assert.equal(s.markDone(361, 400), 400)
  })

  test('a wholly done batch that is not yet contiguous does not publish early', () => {
    const s = new StabilityIntervals(-1)
    s.markBatch(10, 19)
    assert.equal(s.markDone(10, 19), -1)
    assert.equal(s.markDone(0, 4), 4)
    assert.equal(s.markDone(5, 9), 19)
  })
})

describe('StabilityIntervals: misuse is an InvariantError', () => {
  test('markDone overlapping the done prefix', () => {
    const s = new StabilityIntervals(99)
    assert.throws(() => s.markDone(99, 120), InvariantError)
    assert.throws(() => s.markDone(0, 0), InvariantError)
    s.markDone(100, 110)
    assert.throws(() => s.markDone(100, 110), InvariantError)
    assert.throws(() => s.markDone(105, 120), InvariantError)
  })

  test('markDone overlapping a pending range', () => {
    const s = new StabilityIntervals(99)
    s.markDone(200, 299)
    assert.throws(() => s.markDone(200, 299), InvariantError, 'double')
    assert.throws(() => s.markDone(250, 260), InvariantError, 'inside')
    assert.throws(() => s.markDone(150, 200), InvariantError, 'touching from the left')
    assert.throws(() => s.markDone(299, 350), InvariantError, 'touching from the right')
    assert.throws(() => s.markDone(150, 350), InvariantError, 'covering')
    // The state is unchanged by the refused calls.
    assert.equal(s.pendingRangeCount, 1)
    assert.equal(s.isDone(199), false)
    assert.equal(s.isDone(300), false)
    assert.equal(s.markDone(100, 199), 299)
  })

  test('markDone extending the prefix into a pending range', () => {
    const s = new StabilityIntervals(99)
    s.markDone(200, 299)
    assert.throws(() => s.markDone(100, 200), InvariantError)
    assert.throws(() => s.markDone(100, 250), InvariantError)
    assert.throws(() => s.markDone(100, 400), InvariantError)
    assert.equal(s.contiguousLsn, 99)
    assert.equal(s.markDone(100, 199), 299)
  })

  test('empty ranges and batches', () => {
    const s = new StabilityIntervals(-1)
    assert.throws(() => s.markDone(5, 4), InvariantError)
    assert.throws(() => s.markBatch(5, 4), InvariantError)
  })

  test('markBatch below or at the done prefix, or out of order', () => {
    const s = new StabilityIntervals(99)
    assert.throws(() => s.markBatch(99, 200), InvariantError)
    assert.throws(() => s.markBatch(50, 60), InvariantError)
    s.markDone(100, 149)
    assert.throws(() => s.markBatch(149, 200), InvariantError)
    s.markBatch(150, 200)
    assert.throws(() => s.markBatch(200, 300), InvariantError, 'overlapping the previous batch')
    assert.throws(() => s.markBatch(120, 140), InvariantError, 'below the previous batch')
    s.markBatch(201, 300)
  })
})

// ---- property: random completion order against a brute-force model ----

interface Scenario {
  stable: number
  /** Ranges [lo, hi] partitioning [stable + 1, stable + n], in LSN order. */
  ranges: [number, number][]
  /** Completion order: indexes into `ranges`. */
  order: number[]
  /** Batches as runs of range indexes [first, last], in LSN order. */
  batches: [number, number][]
  /** Per batch, the completion step before which it is registered. */
  registerAt: number[]
  probes: number[]
  /** Per step, an optional bogus markDone to attempt (offsets relative to stable). */
  bogus: ({ a: number; len: number } | null)[]
}

const scenarioArb: fc.Arbitrary<Scenario> = fc
  .record({
    stable: fc.constantFrom(-1, 0, 99, 2 ** 40),
    n: fc.integer({ min: 1, max: 300 }),
    cutBias: fc.integer({ min: 1, max: 40 }),
  })
  .chain(({ stable, n, cutBias }) =>
    fc
      .uniqueArray(fc.integer({ min: 1, max: Math.max(1, n - 1) }), {
        maxLength: Math.min(n - 1, Math.ceil(n / cutBias) + 5),
        size: 'medium',
      })
      .chain((cuts) => {
        const bounds = [0, ...cuts.filter((c) => c < n).sort((a, b) => a - b), n]
        const ranges: [number, number][] = []
        for (let i = 0; i + 1 < bounds.length; i++) {
          ranges.push([stable + 1 + (bounds[i] as number), stable + (bounds[i + 1] as number)])
        }
        const R = ranges.length
        return fc.record({
          stable: fc.constant(stable),
          ranges: fc.constant(ranges),
          order: fc.shuffledSubarray(
            ranges.map((_, i) => i),
            { minLength: R, maxLength: R },
          ),
          runs: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: R, maxLength: R }),
          when: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: R, maxLength: R }),
          probes: fc.array(fc.integer({ min: -3, max: n + 3 }), { minLength: 1, maxLength: 24 }),
          bogus: fc.array(
            fc.option(
              fc.record({ a: fc.integer({ min: -2, max: n }), len: fc.integer({ min: 0, max: 20 }) }),
              {
                freq: 3,
              },
            ),
            { minLength: R, maxLength: R },
          ),
        })
      }),
  )
  .map(({ stable, ranges, order, runs, when, probes, bogus }) => {
    const R = ranges.length
    // Group consecutive ranges: a run value k > 0 makes the next k ranges one batch.
    const batches: [number, number][] = []
    for (let i = 0, j = 0; i < R; j++) {
      const k = runs[j] as number
      if (k === 0) {
        i++
      } else {
        const last = Math.min(R - 1, i + k - 1)
        batches.push([i, last])
        i = last + 1
      }
    }
    // A batch must be registered before any of its ranges completes, and batches in LSN order.
    const stepOf: number[] = []
    order.forEach((r, step) => {
      stepOf[r] = step
    })
    const deadline = batches.map(([f, l]) => Math.min(...stepOf.slice(f, l + 1)))
    const limit = deadline.slice()
    for (let j = limit.length - 2; j >= 0; j--)
      limit[j] = Math.min(limit[j] as number, limit[j + 1] as number)
    const registerAt: number[] = []
    let prev = 0
    batches.forEach((_, j) => {
      const lim = limit[j] as number
      const t = Math.max(prev, Math.min(lim, Math.floor((when[j] as number) * (lim + 1))))
      registerAt.push(t)
      prev = t
    })
    return { stable, ranges, order, batches, registerAt, probes: probes.map((p) => stable + p), bogus }
  })

class Model {
  readonly done = new Set<number>()
  readonly batches: [number, number][] = []
  constructor(readonly stable: number) {}

  isDone(x: number): boolean {
    return x <= this.stable || this.done.has(x)
  }

  contiguous(): number {
    let p = this.stable
    while (this.done.has(p + 1)) p++
    return p
  }

  /** Largest p: every byte ≤ p done, and p below every registered batch that is not wholly done. */
  published(): number {
    const open = this.batches.filter(([lo, hi]) => {
      for (let x = lo; x <= hi; x++) if (!this.isDone(x)) return true
      return false
    })
    let p = this.stable
    while (this.isDone(p + 1) && open.every(([lo]) => p + 1 < lo)) p++
    return p
  }

  /** Maximal runs of done bytes above the contiguous prefix. */
  pendingRuns(): number {
    const c = this.contiguous()
    const xs = [...this.done].filter((x) => x > c).sort((a, b) => a - b)
    let runs = 0
    for (let i = 0; i < xs.length; i++) if (i === 0 || (xs[i] as number) !== (xs[i - 1] as number) + 1) runs++
    return runs
  }
}

function checkAgainst(s: StabilityIntervals, m: Model, probes: number[]): void {
  assert.equal(s.contiguousLsn, m.contiguous(), 'contiguous')
  assert.equal(s.publishedLsn, m.published(), 'published')
  assert.equal(s.pendingRangeCount, m.pendingRuns(), 'pending ranges')
  for (const x of probes) assert.equal(s.isDone(x), m.isDone(x), `isDone(${x})`)
}

describe('StabilityIntervals: model check', () => {
  test('random completion order with batches matches the model after every step', () => {
    fc.assert(
      fc.property(scenarioArb, (sc) => {
        const s = new StabilityIntervals(sc.stable)
        const m = new Model(sc.stable)
        let lastPublished = s.publishedLsn
        let nextBatch = 0
        sc.order.forEach((r, step) => {
          while (nextBatch < sc.batches.length && sc.registerAt[nextBatch] === step) {
            const [f, l] = sc.batches[nextBatch] as [number, number]
            const lo = (sc.ranges[f] as [number, number])[0]
            const hi = (sc.ranges[l] as [number, number])[1]
            s.markBatch(lo, hi)
            m.batches.push([lo, hi])
            assert.equal(s.publishedLsn, lastPublished, 'markBatch does not move the published point')
            checkAgainst(s, m, sc.probes)
            nextBatch++
          }
          const bogus = sc.bogus[step]
          if (bogus) {
            const lo = sc.stable + bogus.a
            const hi = lo + bogus.len
            let overlaps = false
            for (let x = lo; x <= hi; x++) if (m.isDone(x)) overlaps = true
            if (overlaps) {
              assert.throws(() => s.markDone(lo, hi), InvariantError, `bogus [${lo}, ${hi}]`)
              checkAgainst(s, m, sc.probes)
            }
          }
          const [lo, hi] = sc.ranges[r] as [number, number]
          const ret = s.markDone(lo, hi)
          for (let x = lo; x <= hi; x++) m.done.add(x)
          assert.equal(ret, s.publishedLsn)
          assert.ok(ret >= lastPublished, `published went back from ${lastPublished} to ${ret}`)
          lastPublished = ret
          checkAgainst(s, m, sc.probes)
        })
        assert.equal(nextBatch, sc.batches.length)
        const end = (sc.ranges.at(-1) as [number, number])[1]
        assert.equal(s.publishedLsn, end)
        assert.equal(s.contiguousLsn, end)
        assert.equal(s.pendingRangeCount, 0)
      }),
      { numRuns: 300 },
    )
  })

  test('isDone agrees with the model on every byte at every step (small spaces)', () => {
    fc.assert(
      fc.property(
        scenarioArb.filter(
          (sc) => sc.ranges.length <= 30 && (sc.ranges.at(-1) as [number, number])[1] - sc.stable <= 60,
        ),
        (sc) => {
          const s = new StabilityIntervals(sc.stable)
          const m = new Model(sc.stable)
          const n = (sc.ranges.at(-1) as [number, number])[1] - sc.stable
          const all = Array.from({ length: n + 6 }, (_, i) => sc.stable - 2 + i)
          for (const r of sc.order) {
            const [lo, hi] = sc.ranges[r] as [number, number]
            s.markDone(lo, hi)
            for (let x = lo; x <= hi; x++) m.done.add(x)
            checkAgainst(s, m, all)
          }
        },
      ),
      { numRuns: 200 },
    )
  })
})
