// The tree's page and delta bytes: round trips, exact sizes, deltas applied at page-in
// equal the writer's in-memory node, and malformed bytes are a CorruptionError, never a
// crash, a hang or a huge allocation.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { CorruptionError } from '../../src/errors.js'
import {
  applyLeafOps,
  decodeLeafDelta,
  decodePage,
  encodeLeafDelta,
  encodePage,
  type LeafOp,
  treeCodec,
} from '../../src/tree/codec.js'
import { compareBytes } from '../../src/tree/keys.js'
import { leafEntries, leafGet, leafPut } from '../../src/tree/leaf.js'
import { EMPTY_LEAF, type Leaf, makeIndex, makeLeaf, type TreePage } from '../../src/tree/node.js'
import { CopySlab } from '../../src/util/copy-slab.js'

/** A page with leaves as their entries, so equal contents compare equal (leaf.ts). */
function plain(p: TreePage): unknown {
  return p.kind === 'leaf' ? { kind: 'leaf', count: p.count, bytes: p.bytes, ...leafEntries(p) } : p
}

const bytes = fc.uint8Array({ maxLength: 40 })
const sortedLeaf = fc
  .uniqueArray(bytes, { selector: (b) => Buffer.from(b).toString('hex'), maxLength: 30 })
  .chain((keys) => {
    keys.sort(compareBytes)
    return fc
      .array(bytes, { minLength: keys.length, maxLength: keys.length })
      .map((values) => makeLeaf(keys, values))
  })
const leafOp: fc.Arbitrary<LeafOp> = fc.record({ key: bytes, value: fc.option(bytes, { nil: undefined }) })

test('leaf and index pages round-trip and encode to exactly node.bytes', () => {
  fc.assert(
    fc.property(sortedLeaf, fc.array(fc.maxSafeNat(), { minLength: 1, maxLength: 20 }), (leaf, pids) => {
      const enc = encodePage(leaf)
      assert.equal(enc.length, leaf.bytes)
      assert.deepEqual(plain(decodePage(enc)), plain(leaf))
      const keys = leafEntries(leaf).keys.slice(0, pids.length - 1)
      if (keys.length === pids.length - 1) {
        const index = makeIndex(keys, pids)
        const ie = encodePage(index)
        assert.equal(ie.length, index.bytes)
        assert.deepEqual(decodePage(ie), index)
      }
    }),
  )
})

test('leaves with lengths of one and of two varint bytes page in as written', () => {
  // Page-in reads a length below 128 itself and any other through the checked reader.
  const long = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.constantFrom(127, 128, 129, 255, 256).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
  )
  const leaf = fc
    .uniqueArray(long, { selector: (b) => Buffer.from(b).toString('hex'), maxLength: 12 })
    .chain((keys) => {
      keys.sort(compareBytes)
      return fc.array(long, { minLength: keys.length, maxLength: keys.length }).map((v) => makeLeaf(keys, v))
    })
  fc.assert(
    fc.property(
      leaf,
      fc.array(fc.record({ key: long, value: fc.option(long, { nil: undefined }) })),
      (l, ops) => {
        const enc = encodePage(l)
        assert.deepEqual(plain(decodePage(enc)), plain(l))
        const applied = treeCodec.materialize(enc, [encodeLeafDelta(ops)])
        assert.deepEqual(plain(applied), plain(applyLeafOps(l, ops)))
        // Cut short, the page is refused, whichever length the cut falls in.
        for (const n of [enc.length - 1, enc.length >> 1, 2]) {
          if (n < enc.length) assert.throws(() => decodePage(enc.subarray(0, n)), CorruptionError)
        }
      },
    ),
    { numRuns: 300 },
  )
  // A length in a longer form than it needs is refused (sizes are computed from values).
  assert.throws(() => decodePage(new Uint8Array([0x01, 1, 0x81, 0x00, 0x61, 0])), /shortest form/)
  assert.throws(() => decodePage(new Uint8Array([0x01, 1, 1, 0x61, 0x80, 0x00])), /shortest form/)
  assert.throws(() => decodePage(new Uint8Array([0x01, 1, 1, 0x61, 2, 0x62])), /exceeds the bytes left/)
  assert.throws(() => decodePage(new Uint8Array([0x01, 1, 1, 0x61])), /truncated/)
})

test('META and counter pages round-trip', () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string({ minLength: 1 }), fc.maxSafeNat()), fc.maxSafeNat(), (trees, n) => {
      const meta = { kind: 'meta' as const, defaultRoot: n, trees: new Map(Object.entries(trees)) }
      assert.deepEqual(decodePage(encodePage(meta)), meta)
      const counter = { kind: 'counter' as const, idLimit: n }
      assert.deepEqual(decodePage(encodePage(counter)), counter)
    }),
  )
})

test("deltas materialised at page-in equal the writer's node (node.ts and codec.ts agree)", () => {
  fc.assert(
    fc.property(
      sortedLeaf,
      fc.array(fc.array(leafOp, { maxLength: 5 }), { maxLength: 6 }),
      (base, deltas) => {
        let writer: Leaf = base
        for (const d of deltas) {
          for (const op of d) {
            const before = writer
            writer = leafPut(writer, op.key, op.value)
            assert.deepEqual(leafGet(writer, op.key), op.value)
            if (op.value === undefined && leafGet(before, op.key) === undefined) assert.equal(writer, before)
          }
        }
        // Every other delta carved from a slab, as writes encode them (OpContext.prepare).
        const slab = new CopySlab()
        const encoded = deltas.map((d, i) => (i % 2 === 0 ? encodeLeafDelta(d) : encodeLeafDelta(d, slab)))
        for (const [i, e] of encoded.entries())
          assert.deepEqual(
            decodeLeafDelta(e),
            deltas[i]?.map((o) => ({ ...o })),
          )
        const paged = treeCodec.materialize(encodePage(base), encoded)
        assert.deepEqual(plain(paged), plain(writer))
        assert.equal(writer.bytes, encodePage(writer).length, 'incremental sizes stay exact')
        assert.deepEqual(plain(applyLeafOps(EMPTY_LEAF, [])), plain(EMPTY_LEAF))
      },
    ),
  )
})

test('leaves paged in with deltas keep their entries while other leaves are paged in', () => {
  // Each page-in with deltas merges from a transient leaf whose offsets use memory kept for
  // the next one: nothing paged in may keep it.
  fc.assert(
    fc.property(
      fc.array(
        fc.tuple(sortedLeaf, fc.array(fc.array(leafOp, { maxLength: 4 }), { minLength: 1, maxLength: 3 })),
        {
          minLength: 2,
          maxLength: 8,
        },
      ),
      (pages) => {
        const kept = pages.map(([base, deltas]) => ({
          want: deltas.reduce((l: Leaf, d) => applyLeafOps(l, d), base),
          got: treeCodec.materialize(
            encodePage(base),
            deltas.map((d) => encodeLeafDelta(d)),
          ),
        }))
        for (const { want, got } of kept) assert.deepEqual(plain(got), plain(want))
      },
    ),
  )
  // Deltas with no ops at all leave the base as it was: still a leaf of its own.
  const a = new Uint8Array([0x61])
  const first = treeCodec.materialize(encodePage(makeLeaf([a], [a])), [encodeLeafDelta([])])
  treeCodec.materialize(encodePage(makeLeaf([new Uint8Array([0x62, 0x62])], [a])), [encodeLeafDelta([])])
  assert.deepEqual(plain(first), plain(makeLeaf([a], [a])))
})

test('malformed bytes give CorruptionError, never another error', () => {
  const check = (f: () => unknown): void => {
    try {
      f()
    } catch (e) {
      assert.ok(e instanceof CorruptionError, `unexpected ${String(e)}`)
    }
  }
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 64 }),
      fc.array(fc.uint8Array({ maxLength: 16 }), { maxLength: 3 }),
      (b, ds) => {
        check(() => decodePage(b))
        check(() => decodeLeafDelta(b))
        check(() => treeCodec.materialize(b, ds))
      },
    ),
    { numRuns: 2000 },
  )
  // A huge claimed count or length is refused before any allocation.
  assert.throws(() => decodePage(new Uint8Array([1, 0xff, 0xff, 0xff, 0xff, 0x0f])), CorruptionError)
  assert.throws(() => decodePage(new Uint8Array([1, 1, 0xff, 0xff, 0xff, 0x7f])), CorruptionError)
  // Truncations of a valid page all fail cleanly.
  const page = encodePage(makeLeaf([new Uint8Array([1, 2])], [new Uint8Array([3])]))
  for (let n = 0; n < page.length; n++) assert.throws(() => decodePage(page.subarray(0, n)), CorruptionError)
})

test('a leaf written key by key (overlay, folds) matches a sorted-map model', () => {
  const key = fc.uint8Array({ maxLength: 6 }).map((b) => b.map((x) => x % 4))
  fc.assert(
    fc.property(
      fc.array(fc.record({ key, value: fc.option(bytes, { nil: undefined }), fold: fc.boolean() }), {
        maxLength: 120,
      }),
      (ops) => {
        const model = new Map<string, Uint8Array>()
        let leaf: Leaf = EMPTY_LEAF
        for (const op of ops) {
          const hex = Buffer.from(op.key).toString('hex')
          leaf = leafPut(leaf, op.key, op.value)
          if (op.value === undefined) model.delete(hex)
          else model.set(hex, op.value)
          assert.deepEqual(leafGet(leaf, op.key), op.value)
          assert.equal(leaf.count, model.size)
          // Folding (as encode and scans do) keeps the entries.
          if (op.fold) assert.equal(encodePage(leaf).length, leaf.bytes)
        }
        const keys = [...model.keys()].sort().map((h) => Uint8Array.from(Buffer.from(h, 'hex')))
        keys.sort(compareBytes)
        const values = keys.map((k) => model.get(Buffer.from(k).toString('hex')) as Uint8Array)
        assert.deepEqual(plain(leaf), plain(makeLeaf(keys, values)))
        assert.deepEqual(plain(decodePage(encodePage(leaf))), plain(leaf))
      },
    ),
    { numRuns: 300 },
  )
})
