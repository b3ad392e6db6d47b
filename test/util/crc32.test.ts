import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as zlib from 'node:zlib'
import fc from 'fast-check'
import { crc32, crc32Table } from '../../src/util/crc32.js'

// The reference: zlib's CRC-32, or a plain bitwise CRC where zlib.crc32 is missing.
function reference(d: Uint8Array, previous = 0): number {
  // zlib.crc32 returns 0 for an empty input whatever the seed; the CRC of nothing is the seed.
  if (d.length === 0) return previous >>> 0
  const z = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32
  if (z !== undefined) return z(d, previous) >>> 0
  let c = ~previous >>> 0
  for (const b of d) {
    c ^= b
    for (let k = 0; k < 8; k++) c = c & 1 ? (0xedb88320 ^ (c >>> 1)) >>> 0 : c >>> 1
  }
  return ~c >>> 0
}

test('known value: CRC-32 of "123456789" is 0xCBF43926', () => {
  const d = new TextEncoder().encode('123456789')
  assert.equal(crc32Table(d, 0, d.length), 0xcbf43926)
  assert.equal(crc32(d, 0, d.length), 0xcbf43926)
})

test('slicing-by-16 and the dispatching crc32 equal the reference on any range and seed', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2000 }),
      fc.nat(),
      fc.nat(),
      fc.integer({ min: 0, max: 0xffffffff }),
      (d, a, b, prev) => {
        const start = d.length === 0 ? 0 : a % (d.length + 1)
        const end = start + (d.length === 0 ? 0 : b % (d.length - start + 1))
        const want = reference(d.subarray(start, end), prev)
        assert.equal(crc32Table(d, start, end, prev), want)
        assert.equal(crc32(d, start, end, prev), want)
      },
    ),
    { numRuns: 500 },
  )
})

test('chaining: crc(a ++ b) = crc(b, crc(a))', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 700 }), fc.uint8Array({ maxLength: 700 }), (a, b) => {
      const ab = new Uint8Array(a.length + b.length)
      ab.set(a)
      ab.set(b, a.length)
      assert.equal(crc32(ab, 0, ab.length), crc32(b, 0, b.length, crc32(a, 0, a.length)))
    }),
  )
})

test('the word-wise CRC equals the byte-wise one at every alignment', async () => {
  const { crc32Words, wordsOf } = await import('../../src/util/crc32.js')
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 600 }), fc.nat(), fc.nat(), (src, a, b) => {
      const d = new Uint8Array(src.length)
      d.set(src)
      const start = a % d.length
      const end = start + (b % (d.length - start + 1))
      assert.equal(crc32Words(d, wordsOf(d), start, end), crc32Table(d, start, end))
    }),
    { numRuns: 1000 },
  )
})
