// The in-memory pages of the tree layer. Nodes are immutable: every change builds a new
// object, so a reader holding a node across an await sees one consistent version of it.
// Each node carries its exact encoded size (`bytes`), kept in step by every constructor;
// codec.ts writes exactly that many bytes (docs/DESIGN.md, "Tree: node format").

import { assert } from '../util/assert.js'
import {
  entryBytes,
  fold,
  Leaf,
  leafConcat,
  leafEntryBytes,
  leafKeyAt,
  leafSlice,
  makeLeaf,
  varintBytes,
} from './leaf.js'
import type { TreeConfig } from './limits.js'
import { commonPrefixBytes, compareFrom, sharesPrefix, wordAt } from './prefix.js'

export { entryBytes, Leaf, makeLeaf, varintBytes }

/**
 * An index node: n children and n-1 separators; child i holds the keys in
 * [keys[i-1], keys[i]) (unbounded at either end where the node's own bounds apply).
 */
export interface Index {
  readonly kind: 'index'
  readonly keys: readonly Uint8Array[]
  readonly children: readonly number[]
  readonly bytes: number
  /** The word of every separator after the shared prefix, for the search (prefix.ts). */
  readonly words: Uint32Array
  /** Bytes every separator shares at its start (prefix.ts). */
  readonly cpl: number
}

/** The META page: tree name → root page id. The default tree has its own slot. */
export interface Meta {
  readonly kind: 'meta'
  readonly defaultRoot: number
  readonly trees: ReadonlyMap<string, number>
}

/** The ID-generator page: every id handed out so far is below `idLimit`. */
export interface Counter {
  readonly kind: 'counter'
  readonly idLimit: number
}

export type Node = Leaf | Index
export type TreePage = Leaf | Index | Meta | Counter

/** Placeholder pids (< 0) stand for pages allocated at commit; count them at the widest. */
const PID_BYTES_MAX = 8
export function pidBytes(pid: number): number {
  return pid < 0 ? PID_BYTES_MAX : varintBytes(pid)
}

export function separatorBytes(key: Uint8Array, child: number): number {
  return varintBytes(key.length) + key.length + pidBytes(child)
}

export const EMPTY_LEAF: Leaf = makeLeaf([], [])

export function makeIndex(keys: readonly Uint8Array[], children: readonly number[]): Index {
  assert(children.length === keys.length + 1, 'an index node has one more child than separators')
  let bytes = 1 + varintBytes(children.length) + pidBytes(children[0] as number)
  for (let i = 0; i < keys.length; i++)
    bytes += separatorBytes(keys[i] as Uint8Array, children[i + 1] as number)
  const n = keys.length
  const words = new Uint32Array(n)
  let cpl = 0
  if (n > 0) {
    const first = keys[0] as Uint8Array
    const last = keys[n - 1] as Uint8Array
    cpl = commonPrefixBytes(first, 0, first.length, last, 0, last.length)
    for (let i = 0; i < n; i++) {
      const k = keys[i] as Uint8Array
      words[i] = wordAt(k, cpl, k.length)
    }
  }
  return { kind: 'index', keys, children, bytes, words, cpl }
}

/**
 * `node` with its child at `slot` replaced by `pids`, separated by `lowKeys` (each in that
 * child's range, ascending): makeIndex() of the spliced arrays, but with the size and the
 * words carried over from `node` where its first and last separators, and so the prefix
 * they share, stay. A split of a leaf under a wide index rebuilt every word and size of it.
 */
export function spliceIndex(
  node: Index,
  slot: number,
  pids: readonly number[],
  lowKeys: readonly Uint8Array[],
): Index {
  assert(pids.length === lowKeys.length + 1, 'one more child than separators in a splice')
  const n = node.keys.length
  const add = lowKeys.length
  const keys = new Array<Uint8Array>(n + add)
  const children = new Array<number>(n + 1 + add)
  for (let i = 0; i < slot; i++) {
    keys[i] = node.keys[i] as Uint8Array
    children[i] = node.children[i] as number
  }
  for (let i = 0; i < add; i++) keys[slot + i] = lowKeys[i] as Uint8Array
  for (let i = 0; i <= add; i++) children[slot + i] = pids[i] as number
  for (let i = slot; i < n; i++) {
    keys[i + add] = node.keys[i] as Uint8Array
    children[i + 1 + add] = node.children[i + 1] as number
  }
  if (slot === 0 || slot >= n) return makeIndex(keys, children)
  let bytes =
    node.bytes - varintBytes(n + 1) + varintBytes(n + 1 + add) - pidBytes(node.children[slot] as number)
  for (let i = 0; i <= add; i++) bytes += pidBytes(pids[i] as number)
  const words = new Uint32Array(n + add)
  words.set(node.words.subarray(0, slot), 0)
  const cpl = node.cpl
  for (let i = 0; i < add; i++) {
    const k = lowKeys[i] as Uint8Array
    bytes += varintBytes(k.length) + k.length
    words[slot + i] = wordAt(k, cpl, k.length)
  }
  words.set(node.words.subarray(slot), slot + add)
  return { kind: 'index', keys, children, bytes, words, cpl }
}

/**
 * `node` with each placeholder child (< 0) replaced by its real page id: the separators, and
 * so the words, stay; only the size of those children changes. makeIndex() rebuilt every
 * word of every index a batch gave a new child, at each commit.
 */
export function resolveChildren(node: Index, real: (pid: number) => number): Index {
  let bytes = node.bytes
  const children = node.children.map((ch) => {
    if (ch >= 0) return ch
    const pid = real(ch)
    bytes += pidBytes(pid) - pidBytes(ch)
    return pid
  })
  return { kind: 'index', keys: node.keys, children, bytes, words: node.words, cpl: node.cpl }
}

/**
 * The child of `node` whose range holds key: the number of separators ≤ key (upper = true),
 * or the child holding the keys just below it: the number of separators < key (upper =
 * false). The words decide most steps; whole separators are compared only on a tie.
 */
export function indexSlot(node: Index, key: Uint8Array, upper: boolean): number {
  const keys = node.keys
  const words = node.words
  const n = words.length
  const cpl = node.cpl
  if (cpl > 0) {
    const side = sharesPrefix(key, keys[0] as Uint8Array, 0, cpl)
    if (side !== 0) return side < 0 ? 0 : n
  }
  const w = wordAt(key, cpl, key.length)
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const x = words[mid] as number
    let c = x - w
    if (c === 0) {
      const k = keys[mid] as Uint8Array
      c = compareFrom(k, cpl, k.length, key, cpl)
    }
    if (c < 0 || (c === 0 && upper)) lo = mid + 1
    else hi = mid
  }
  return lo
}

export function entryCount(node: Node): number {
  return node.kind === 'leaf' ? node.count : node.children.length
}

/**
 * True for a leaf too large for an inline page: it holds one entry (a larger leaf always
 * splits) and is stored as a blob. The tree never copies one needlessly: it is never merged
 * with a sibling, never a root, and keeps its page id while it is unchanged (DESIGN.md,
 * "Tree: large values").
 */
export function isBlobLeaf(node: TreePage, c: TreeConfig): node is Leaf {
  return node.kind === 'leaf' && node.count === 1 && node.bytes > c.maxPageBytes
}

/** Fewest entries a node can be split into pieces of: one entry, or two children. */
function minPiece(node: Node): number {
  return node.kind === 'leaf' ? 1 : 2
}

/**
 * True when the node is over its size or count and can be split. A node that cannot be split
 * (one leaf entry, at most three children) may exceed nodeMaxBytes; the key and value limits
 * keep it within a page (limits.ts).
 */
export function needsSplit(node: Node, c: TreeConfig): boolean {
  const n = entryCount(node)
  return (node.bytes > c.nodeMaxBytes || n > c.nodeMaxEntries) && n >= 2 * minPiece(node)
}

/**
 * True when a non-root node should merge with or borrow from a sibling: it is below a
 * quarter of the maximum in both bytes and entries (a node small in only one of them would
 * be over the other limit after a merge), or it is empty / an index of one child.
 */
export function isUnderfull(node: Node, c: TreeConfig): boolean {
  const n = entryCount(node)
  if (n < minPiece(node)) return true
  return node.bytes < c.nodeMaxBytes / 4 && n < c.nodeMaxEntries / 4
}

/** One piece of a split and the key that separates it from the piece before it. */
export interface Piece {
  node: Node
  /** Lowest key of the piece (undefined for the first piece). */
  lowKey: Uint8Array | undefined
}

/**
 * Splits `node` into pieces none of which needsSplit(), cutting each oversized run where
 * the encoded bytes are most even. Leaf pieces start at their first key; for index nodes the
 * separator at the cut moves up to the parent.
 */
export function splitNode(node: Node, c: TreeConfig): Piece[] {
  const out: Piece[] = []
  const go = (n: Node, lowKey: Uint8Array | undefined): void => {
    if (!needsSplit(n, c)) {
      out.push({ node: n, lowKey })
      return
    }
    const [left, right, sep] = bisect(n)
    go(left, lowKey)
    go(right, sep)
  }
  go(node, undefined)
  return out
}

/** Cuts a node into two pieces of the most even encoded size. */
function bisect(node: Node): [Node, Node, Uint8Array] {
  if (node.kind === 'leaf') {
    fold(node)
    const n = node.count
    const sizes: number[] = []
    for (let i = 0; i < n; i++) sizes.push(leafEntryBytes(node, i))
    const cut = evenCut(sizes, 1, n - 1)
    // The separator is copied: it outlives the leaf's bytes in the parent.
    return [leafSlice(node, 0, cut), leafSlice(node, cut, n), leafKeyAt(node, cut).slice()]
  }
  const n = node.children.length
  // Entry i of an index node is child i with the separator before it.
  const sizes = node.children.map((ch, i) =>
    i === 0 ? pidBytes(ch) : separatorBytes(node.keys[i - 1] as Uint8Array, ch),
  )
  const cut = evenCut(sizes, 2, n - 2)
  return [
    makeIndex(node.keys.slice(0, cut - 1), node.children.slice(0, cut)),
    makeIndex(node.keys.slice(cut), node.children.slice(cut)),
    node.keys[cut - 1] as Uint8Array,
  ]
}

/** The cut in [lo, hi] that makes the sums of sizes[0..cut) and sizes[cut..) most even. */
function evenCut(sizes: readonly number[], lo: number, hi: number): number {
  assert(lo <= hi, 'a node being split has room for two pieces')
  const total = sizes.reduce((a, b) => a + b, 0)
  let best = lo
  let bestDiff = Number.POSITIVE_INFINITY
  let left = 0
  for (let i = 0; i < hi; i++) {
    left += sizes[i] as number
    const cut = i + 1
    if (cut < lo) continue
    const diff = Math.abs(total - 2 * left)
    if (diff < bestDiff) {
      bestDiff = diff
      best = cut
    }
  }
  return best
}

/** The union of two siblings (`sep` separates them in their parent). */
export function concatNodes(left: Node, sep: Uint8Array, right: Node): Node {
  if (left.kind === 'leaf' && right.kind === 'leaf') {
    return leafConcat(fold(left), fold(right))
  }
  assert(left.kind === 'index' && right.kind === 'index', 'siblings are at the same level')
  return makeIndex([...left.keys, sep, ...right.keys], [...left.children, ...right.children])
}
