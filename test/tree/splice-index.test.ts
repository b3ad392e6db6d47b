// spliceIndex() (a split's new children put into their parent, with the parent's sizes and
// words carried over) and resolveChildren() (placeholders given their real page ids at
// commit) against makeIndex() of the same arrays: the same node, field for field, for every
// slot (the ends, where the shared prefix can change, included) and every width of page id.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { compareBytes } from '../../src/tree/keys.js'
import { makeIndex, resolveChildren, spliceIndex } from '../../src/tree/node.js'

/** Sorted distinct keys, often behind a shared prefix, so the words and prefix matter. */
const allKeys = fc
  .tuple(
    fc.uint8Array({ minLength: 0, maxLength: 9, max: 3 }),
    fc.uniqueArray(fc.uint8Array({ minLength: 0, maxLength: 7, max: 3 }), {
      minLength: 1,
      maxLength: 60,
      comparator: (a, b) => compareBytes(a, b) === 0,
    }),
  )
  .map(([prefix, tails]) => tails.map((t) => Uint8Array.from([...prefix, ...t])).sort(compareBytes))

/** Page ids: small, wide (several varint bytes) and placeholders (< 0, counted at 8 bytes). */
const pid = fc.oneof(
  fc.integer({ min: 0, max: 200 }),
  fc.integer({ min: 2 ** 20, max: 2 ** 40 }),
  fc.integer({ min: -9, max: -1 }),
)

const splice = fc
  .tuple(allKeys, fc.nat(), fc.nat(), fc.array(pid, { minLength: 130, maxLength: 130 }))
  .map(([keys, a, b, pids]) => {
    // keys[from, from + added) are the new separators; the rest are the parent's.
    const added = 1 + (b % keys.length)
    const from = a % (keys.length - added + 1)
    const parentKeys = [...keys.slice(0, from), ...keys.slice(from + added)]
    const parentChildren = pids.slice(0, parentKeys.length + 1)
    const newPids = pids.slice(parentKeys.length + 1, parentKeys.length + 2 + added)
    return { parentKeys, parentChildren, slot: from, lowKeys: keys.slice(from, from + added), newPids }
  })

test('spliceIndex() builds the node makeIndex() builds from the spliced separators and children', () => {
  fc.assert(
    fc.property(splice, ({ parentKeys, parentChildren, slot, lowKeys, newPids }) => {
      const parent = makeIndex(parentKeys, parentChildren)
      const got = spliceIndex(parent, slot, newPids, lowKeys)
      const keys = parentKeys.slice()
      const children = parentChildren.slice()
      keys.splice(slot, 0, ...lowKeys)
      children.splice(slot, 1, ...newPids)
      const want = makeIndex(keys, children)
      assert.deepEqual(got.keys, want.keys)
      assert.deepEqual(got.children, want.children)
      assert.equal(got.bytes, want.bytes, 'encoded size')
      assert.equal(got.cpl, want.cpl, 'shared prefix')
      assert.deepEqual([...got.words], [...want.words], 'words')
    }),
    { numRuns: 2000, seed: Number(process.env.FC_SEED ?? 0x5b1ce) },
  )
})

test('resolveChildren() builds the node makeIndex() builds from the resolved children', () => {
  fc.assert(
    fc.property(allKeys, fc.array(pid, { minLength: 61, maxLength: 61 }), fc.nat(), (keys, pids, salt) => {
      const children = pids.slice(0, keys.length + 1)
      const real = (p: number): number => (p >= 0 ? p : (salt % 3 === 0 ? 2 ** 35 : 7) + -p * 1000)
      const got = resolveChildren(makeIndex(keys, children), real)
      const want = makeIndex(keys, children.map(real))
      assert.deepEqual(got.children, want.children)
      assert.equal(got.bytes, want.bytes, 'encoded size')
      assert.equal(got.cpl, want.cpl)
      assert.deepEqual([...got.words], [...want.words])
    }),
    { numRuns: 1000, seed: Number(process.env.FC_SEED ?? 0x5b1ce) },
  )
})
