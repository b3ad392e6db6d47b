// The packed key words (src/tree/prefix.ts) against plain memcmp searches. Keys come from a
// tiny alphabet with zero bytes, short lengths and long shared prefixes, so words tie often,
// a key and that key followed by zeros share a word, and keys end inside a node's prefix.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { compareBytes, lowerBound, upperBound } from '../../src/tree/keys.js'
import { leafGet, leafSearch, makeLeaf } from '../../src/tree/leaf.js'
import { indexSlot, makeIndex } from '../../src/tree/node.js'
import { sharesPrefix, wordAt } from '../../src/tree/prefix.js'

const shortKey = fc.uint8Array({ minLength: 0, maxLength: 7, max: 2 })
/** A node's keys: distinct, sorted, often behind one long shared prefix. */
const nodeKeys = fc
  .tuple(
    fc.uint8Array({ minLength: 0, maxLength: 9, max: 2 }),
    fc.uniqueArray(shortKey, { minLength: 0, maxLength: 40, comparator: (a, b) => compareBytes(a, b) === 0 }),
  )
  .map(([prefix, tails]) => {
    const keys = tails.map((t) => Uint8Array.from([...prefix, ...t]))
    return keys.sort(compareBytes)
  })
/** Sought keys: anything near the node's keys, or off its prefix on either side. */
const probes = (keys: Uint8Array[]): fc.Arbitrary<Uint8Array[]> =>
  fc.array(
    fc.oneof(
      shortKey,
      fc.uint8Array({ minLength: 0, maxLength: 16, max: 2 }),
      keys.length === 0
        ? shortKey
        : fc
            .tuple(fc.constantFrom(...keys), shortKey, fc.nat(16))
            .map(([k, tail, cut]) => Uint8Array.from([...k.subarray(0, Math.min(cut, k.length)), ...tail])),
      keys.length === 0 ? shortKey : fc.constantFrom(...keys),
    ),
    { minLength: 1, maxLength: 30 },
  )

/** Where key goes among sorted keys: its index, or ~index of where it would go. */
function plainSearch(keys: readonly Uint8Array[], key: Uint8Array): number {
  const i = lowerBound(keys, key)
  return i < keys.length && compareBytes(keys[i] as Uint8Array, key) === 0 ? i : ~i
}

type Search = (keys: Uint8Array[], key: Uint8Array) => number

const leafSearchOf: Search = (keys, key) =>
  leafSearch(
    makeLeaf(
      keys,
      keys.map((k) => k.subarray(0, 1)),
    ),
    key,
  )

/** A planted bug: trusts equal words to mean equal keys (the tie compare left out). */
const trustingWords: Search = (keys, key) => {
  const node = makeIndex(keys, [...keys.map((_, i) => i), keys.length])
  const side = node.cpl > 0 ? sharesPrefix(key, keys[0] as Uint8Array, 0, node.cpl) : 0
  if (side !== 0) return side < 0 ? ~0 : ~keys.length
  const w = wordAt(key, node.cpl, key.length)
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const c = (node.words[mid] as number) - w
    if (c === 0) return mid
    if (c < 0) lo = mid + 1
    else hi = mid
  }
  return ~lo
}

function agrees(search: Search) {
  return fc.property(
    nodeKeys.chain((keys) => fc.tuple(fc.constant(keys), probes(keys))),
    ([keys, sought]) => {
      for (const key of sought) assert.equal(search(keys, key), plainSearch(keys, key), `key ${key}`)
    },
  )
}

test('a leaf search over words finds what a plain memcmp search finds', () => {
  fc.assert(agrees(leafSearchOf), { numRuns: 400 })
})

test('a leaf get over words returns the value of exactly the sought key', () => {
  fc.assert(
    fc.property(
      nodeKeys.chain((keys) => fc.tuple(fc.constant(keys), probes(keys))),
      ([keys, sought]) => {
        const leaf = makeLeaf(
          keys,
          keys.map((_, i) => Uint8Array.of(i)),
        )
        for (const key of sought) {
          const i = plainSearch(keys, key)
          assert.deepEqual(leafGet(leaf, key), i >= 0 ? Uint8Array.of(i) : undefined)
        }
      },
    ),
    { numRuns: 200 },
  )
})

test('an index slot over words is the memcmp upper bound (descent) and lower bound (before)', () => {
  fc.assert(
    fc.property(
      nodeKeys.chain((keys) => fc.tuple(fc.constant(keys), probes(keys))),
      ([keys, sought]) => {
        const node = makeIndex(keys, [...keys.map((_, i) => i), keys.length])
        for (const key of sought) {
          assert.equal(indexSlot(node, key, true), upperBound(keys, key), `upper ${key}`)
          assert.equal(indexSlot(node, key, false), lowerBound(keys, key), `lower ${key}`)
        }
      },
    ),
    { numRuns: 400 },
  )
})

test('a word decides only when it differs: zero padding ties a key with its zero-extended self', () => {
  const a = Uint8Array.of(7, 1)
  const b = Uint8Array.of(7, 1, 0)
  assert.equal(wordAt(a, 0, a.length), wordAt(b, 0, b.length))
  assert.equal(wordAt(Uint8Array.of(0xff, 0xff, 0xff, 0xff), 0, 4), 0xffff_ffff)
  assert.ok(compareBytes(a, b) < 0)
  const leaf = makeLeaf([a, b], [Uint8Array.of(1), Uint8Array.of(2)])
  assert.deepEqual(leafGet(leaf, b), Uint8Array.of(2))
  assert.deepEqual(leafGet(leaf, a), Uint8Array.of(1))
})

test('mutation switch: the same property fails for a search that trusts equal words', () => {
  assert.throws(() => fc.assert(agrees(trustingWords), { numRuns: 400 }))
})
