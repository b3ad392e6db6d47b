import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  bumpOffset,
  decrementWriters,
  EMPTY_HEADER,
  type HeaderWord,
  incrementWriters,
  isMaxed,
  isSealed,
  MAX_OFFSET,
  MAX_WRITERS,
  markMaxed,
  markSealed,
  offsetOf,
  withOffset,
  writersOf,
} from '../../src/log/header-word.js'

interface Model {
  offset: number
  writers: number
  sealed: boolean
  maxed: boolean
}

type Op =
  | { op: 'bump'; n: number }
  | { op: 'set'; n: number }
  | { op: 'inc' }
  | { op: 'dec' }
  | { op: 'seal' }
  | { op: 'max' }

/** The documented layout: offset bits 0-23, writers 24-29, sealed 30, maxed 31. */
function encode(m: Model): number {
  return m.offset + m.writers * 2 ** 24 + (m.sealed ? 2 ** 30 : 0) + (m.maxed ? 2 ** 31 : 0)
}

/** Applies `op` to the model; returns false when the real function must throw. */
function step(m: Model, o: Op): boolean {
  switch (o.op) {
    case 'bump':
      if (m.offset + o.n < 0 || m.offset + o.n > MAX_OFFSET) return false
      m.offset += o.n
      return true
    case 'set':
      if (o.n < 0 || o.n > MAX_OFFSET) return false
      m.offset = o.n
      return true
    case 'inc':
      if (m.writers === MAX_WRITERS) return false
      m.writers++
      return true
    case 'dec':
      if (m.writers === 0) return false
      m.writers--
      return true
    case 'seal':
      m.sealed = true
      return true
    case 'max':
      m.maxed = true
      return true
  }
}

function apply(h: HeaderWord, o: Op): HeaderWord {
  switch (o.op) {
    case 'bump':
      return bumpOffset(h, o.n)
    case 'set':
      return withOffset(h, o.n)
    case 'inc':
      return incrementWriters(h)
    case 'dec':
      return decrementWriters(h)
    case 'seal':
      return markSealed(h)
    case 'max':
      return markMaxed(h)
  }
}

function check(h: HeaderWord, m: Model): void {
  assert.ok(Number.isInteger(h) && h >= 0 && h < 2 ** 32, `header ${h} is not a u32`)
  assert.equal(offsetOf(h), m.offset)
  assert.equal(writersOf(h), m.writers)
  assert.equal(isSealed(h), m.sealed)
  assert.equal(isMaxed(h), m.maxed)
  assert.equal(h, encode(m))
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: -64, max: MAX_OFFSET + 1 }))
      .map((n) => ({ op: 'bump' as const, n })),
  },
  {
    weight: 1,
    arbitrary: fc
      .oneof(fc.constantFrom(0, MAX_OFFSET, MAX_OFFSET + 1, -1), fc.integer({ min: 0, max: MAX_OFFSET }))
      .map((n) => ({ op: 'set' as const, n })),
  },
  // Writers move in runs so that both 0 and 63 are reached often.
  { weight: 3, arbitrary: fc.constant({ op: 'inc' as const }) },
  { weight: 2, arbitrary: fc.constant({ op: 'dec' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'seal' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'max' as const }) },
)

const opsArb = fc.array(
  // Inc/dec come in runs so that both writer limits are reached often.
  fc
    .tuple(opArb, fc.integer({ min: 1, max: 70 }))
    .map(([o, k]) => (o.op === 'inc' || o.op === 'dec' ? Array<Op>(k).fill(o) : [o])),
  { maxLength: 40, size: 'medium' },
)

describe('IoBuf header word', () => {
  test('the empty header has every field clear', () => {
    check(EMPTY_HEADER, { offset: 0, writers: 0, sealed: false, maxed: false })
  })

  test('fields evolve independently, as a plain-object model', () => {
    fc.assert(
      fc.property(opsArb, (runs) => {
        let h = EMPTY_HEADER
        const m: Model = { offset: 0, writers: 0, sealed: false, maxed: false }
        for (const o of runs.flat()) {
          const allowed = step(m, o)
          if (allowed) {
            h = apply(h, o)
          } else {
            const before = h
            assert.throws(() => apply(h, o), RangeError, JSON.stringify(o))
            assert.equal(h, before)
          }
          check(h, m)
        }
      }),
      { numRuns: 500 },
    )
  })

  test('bumpOffset past MAX_OFFSET throws and never carries into the writers', () => {
    let h = incrementWriters(markSealed(EMPTY_HEADER))
    h = bumpOffset(h, MAX_OFFSET)
    check(h, { offset: MAX_OFFSET, writers: 1, sealed: true, maxed: false })
    assert.throws(() => bumpOffset(h, 1), RangeError)
    assert.throws(() => withOffset(h, MAX_OFFSET + 1), RangeError)
    assert.throws(() => bumpOffset(EMPTY_HEADER, MAX_OFFSET + 1), RangeError)
    assert.throws(() => bumpOffset(EMPTY_HEADER, -1), RangeError)
    assert.equal(MAX_OFFSET, 2 ** 24 - 1)
  })

  test('writer count limits: incrementing at 63 and decrementing at 0 throw', () => {
    let h = markMaxed(markSealed(withOffset(EMPTY_HEADER, MAX_OFFSET)))
    assert.throws(() => decrementWriters(h), RangeError)
    for (let i = 0; i < MAX_WRITERS; i++) h = incrementWriters(h)
    check(h, { offset: MAX_OFFSET, writers: 63, sealed: true, maxed: true })
    assert.equal(h, 2 ** 32 - 1, 'every bit set')
    assert.throws(() => incrementWriters(h), RangeError)
    for (let i = 0; i < MAX_WRITERS; i++) h = decrementWriters(h)
    check(h, { offset: MAX_OFFSET, writers: 0, sealed: true, maxed: true })
    assert.throws(() => decrementWriters(h), RangeError)
  })

  test('sealed and maxed survive offset and writer changes, and are idempotent', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_OFFSET }),
        fc.integer({ min: 0, max: MAX_WRITERS - 1 }),
        fc.boolean(),
        fc.boolean(),
        (offset, writers, sealed, maxed) => {
          const m = { offset, writers, sealed, maxed }
          const h = encode(m)
          check(h, m)
          check(markSealed(markSealed(h)), { ...m, sealed: true })
          check(markMaxed(markMaxed(h)), { ...m, maxed: true })
          check(incrementWriters(h), { ...m, writers: writers + 1 })
          check(withOffset(h, 0), { ...m, offset: 0 })
          check(withOffset(h, MAX_OFFSET), { ...m, offset: MAX_OFFSET })
          if (writers > 0) check(decrementWriters(h), { ...m, writers: writers - 1 })
        },
      ),
      { numRuns: 1000 },
    )
  })
})
