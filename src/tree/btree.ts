// The B+tree algorithms, as synchronous planning over an OpContext (context.ts). A tree's
// root page id never changes: a root split moves the root's entries into new children and
// the root becomes their index; a root index left with one child takes over that child's
// entries (docs/DESIGN.md, "Tree: structure").
//
// Invariants (checked by verify.ts after every step of the property tests):
// - keys in a leaf and separators in an index node are strictly increasing;
// - child i of an index node holds only keys in [keys[i-1], keys[i]) of its parent;
// - every leaf is at the same depth;
// - no leaf is empty except a root leaf, and every index node has at least two children;
// - no node needsSplit(), so every node fits a page.

import { CorruptionError } from '../errors.js'
import { assert } from '../util/assert.js'
import type { OpContext } from './context.js'
import { compareBytes, lowerBound, upperBound } from './keys.js'
import {
  fold,
  type Leaf,
  leafCompareKey,
  leafGet,
  leafKeyCopy,
  leafPut,
  leafSearch,
  leafValueCopy,
} from './leaf.js'
import type { TreeConfig } from './limits.js'
import {
  concatNodes,
  EMPTY_LEAF,
  entryCount,
  type Index,
  isUnderfull,
  makeIndex,
  type Node,
  needsSplit,
  type Piece,
  splitNode,
} from './node.js'

/** Deeper than any tree of 2^53 keys with nodes of at least two children can be. */
const DEPTH_MAX = 64

export interface PathStep {
  pid: number
  /** Index of the child the descent took. */
  slot: number
}

export interface LeafHit {
  path: PathStep[]
  pid: number
  leaf: Leaf
  /** Lowest key the leaf may hold (undefined: unbounded). */
  lo: Uint8Array | undefined
  /** Keys of the leaf are below hi (undefined: unbounded). */
  hi: Uint8Array | undefined
}

export function nodeAt(ctx: OpContext, pid: number): Node {
  const p = ctx.page(pid)
  if (p.kind !== 'leaf' && p.kind !== 'index') {
    // Only the stored pages can point at META or the counter: a plan never builds that.
    assert(pid >= 0, `placeholder ${pid} is a ${p.kind} page`)
    throw new CorruptionError(`tree page ${pid} is a ${p.kind} page, not a tree node`)
  }
  return p
}

/** A tree that is deeper than DEPTH_MAX points in a cycle or was written by something else. */
function tooDeep(root: number): never {
  throw new CorruptionError(`tree ${root} is deeper than ${DEPTH_MAX} levels (a cycle of pages?)`)
}

/**
 * Descends to the leaf whose range holds `key` (before = false: lo ≤ key < hi), or the leaf
 * holding the keys just below it (before = true: lo < key ≤ hi). key null means +∞.
 */
export function descend(ctx: OpContext, root: number, key: Uint8Array | null, before = false): LeafHit {
  const path: PathStep[] = []
  let lo: Uint8Array | undefined
  let hi: Uint8Array | undefined
  let pid = root
  for (let depth = 0; depth < DEPTH_MAX; depth++) {
    const node = nodeAt(ctx, pid)
    if (node.kind === 'leaf') return { path, pid, leaf: node, lo, hi }
    const slot =
      key === null ? node.keys.length : before ? lowerBound(node.keys, key) : upperBound(node.keys, key)
    if (slot > 0) lo = node.keys[slot - 1]
    if (slot < node.keys.length) hi = node.keys[slot]
    path.push({ pid, slot })
    pid = node.children[slot] as number
  }
  return tooDeep(root)
}

/** The leaf whose range holds key (descend() without the path and bounds, for reads). */
function findLeaf(ctx: OpContext, root: number, key: Uint8Array): Leaf {
  let pid = root
  for (let depth = 0; depth < DEPTH_MAX; depth++) {
    const node = nodeAt(ctx, pid)
    if (node.kind === 'leaf') return node
    pid = node.children[upperBound(node.keys, key)] as number
  }
  return tooDeep(root)
}

/** The value of key, or undefined: a view of the tree's bytes, never to be written to. */
export function getValue(ctx: OpContext, root: number, key: Uint8Array): Uint8Array | undefined {
  return leafGet(findLeaf(ctx, root, key), key)
}

/** The value of key as a fresh copy (the caller's to keep), or undefined. */
export function getValueCopy(ctx: OpContext, root: number, key: Uint8Array): Uint8Array | undefined {
  return leafGet(findLeaf(ctx, root, key), key)?.slice()
}

/** Sets (value defined) or removes key; returns the previous value (a view, as getValue). */
export function writeKey(
  ctx: OpContext,
  c: TreeConfig,
  root: number,
  key: Uint8Array,
  value: Uint8Array | undefined,
): Uint8Array | undefined {
  const hit = descend(ctx, root, key)
  const old = leafGet(hit.leaf, key)
  if (value === undefined && old === undefined) return undefined
  const leaf = leafPut(hit.leaf, key, value)
  ctx.setLeaf(hit.pid, leaf, { key, value })
  rebalance(ctx, c, hit.path, hit.pid, leaf)
  return old
}

/** Restores the invariants from a changed node up to the root: splits, merges, collapses. */
function rebalance(ctx: OpContext, c: TreeConfig, path: PathStep[], pid: number, node: Node): void {
  for (;;) {
    if (needsSplit(node, c)) {
      const pieces = splitNode(node, c)
      if (path.length === 0) {
        // The root keeps its page id: its entries move into new children.
        const pids = pieces.map(() => ctx.newPid())
        putPieces(ctx, pids, pieces)
        node = makeIndex(
          pieces.slice(1).map((p) => p.lowKey as Uint8Array),
          pids,
        )
        ctx.put(pid, node)
        continue
      }
      const pids = [pid, ...pieces.slice(1).map(() => ctx.newPid())]
      putPieces(ctx, pids, pieces)
      const step = path.pop() as PathStep
      const parent = nodeAt(ctx, step.pid) as Index
      const keys = parent.keys.slice()
      const children = parent.children.slice()
      keys.splice(step.slot, 0, ...pieces.slice(1).map((p) => p.lowKey as Uint8Array))
      children.splice(step.slot, 1, ...pids)
      node = makeIndex(keys, children)
      pid = step.pid
      ctx.put(pid, node)
      continue
    }
    if (path.length === 0) {
      if (node.kind === 'index' && node.children.length === 1) {
        const childPid = node.children[0] as number
        node = nodeAt(ctx, childPid)
        ctx.put(pid, node)
        ctx.free(childPid)
        continue
      }
      return
    }
    if (!isUnderfull(node, c)) return
    const step = path[path.length - 1] as PathStep
    const parent = nodeAt(ctx, step.pid) as Index
    assert(
      parent.kind === 'index' && parent.children.length >= 2,
      `index ${step.pid} has two children or more`,
    )
    const leftSlot = step.slot > 0 ? step.slot - 1 : step.slot
    const leftPid = parent.children[leftSlot] as number
    const rightPid = parent.children[leftSlot + 1] as number
    const left = nodeAt(ctx, leftPid)
    const right = nodeAt(ctx, rightPid)
    const combined = concatNodes(left, parent.keys[leftSlot] as Uint8Array, right)
    const keys = parent.keys.slice()
    const children = parent.children.slice()
    if (!needsSplit(combined, c)) {
      ctx.put(leftPid, combined)
      ctx.free(rightPid)
      keys.splice(leftSlot, 1)
      children.splice(leftSlot + 1, 1)
    } else {
      // Borrow: share the two siblings' entries evenly.
      const pieces = splitNode(combined, c)
      if (pieces.length === 2 && entryCount(pieces[0]?.node as Node) === entryCount(left)) return
      const pids = [leftPid, rightPid, ...pieces.slice(2).map(() => ctx.newPid())]
      putPieces(ctx, pids, pieces)
      keys.splice(leftSlot, 1, ...pieces.slice(1).map((p) => p.lowKey as Uint8Array))
      children.splice(leftSlot, 2, ...pids)
    }
    path.pop()
    pid = step.pid
    node = makeIndex(keys, children)
    ctx.put(pid, node)
  }
}

function noProgress(root: number): never {
  throw new CorruptionError(
    `tree ${root}: a range scan came back to a key it had passed (separators out of order)`,
  )
}

/** A bound of a range: a key and whether the key itself is in the range. */
export interface Bound {
  key: Uint8Array
  inclusive: boolean
}

export interface Chunk {
  entries: [Uint8Array, Uint8Array][]
  /** Where the next chunk starts (as the new lower bound, or upper bound when reverse); undefined: done. */
  resume: Bound | undefined
}

function aboveLower(key: Uint8Array, b: Bound | undefined): boolean {
  if (b === undefined) return true
  const d = compareBytes(key, b.key)
  return d > 0 || (d === 0 && b.inclusive)
}

function belowUpper(key: Uint8Array, b: Bound | undefined): boolean {
  if (b === undefined) return true
  const d = compareBytes(key, b.key)
  return d < 0 || (d === 0 && b.inclusive)
}

/** aboveLower() for key i of a folded leaf, compared in place. */
function leafAboveLower(leaf: Leaf, i: number, b: Bound | undefined): boolean {
  if (b === undefined) return true
  const d = leafCompareKey(leaf, i, b.key)
  return d > 0 || (d === 0 && b.inclusive)
}

/** belowUpper() for key i of a folded leaf, compared in place. */
function leafBelowUpper(leaf: Leaf, i: number, b: Bound | undefined): boolean {
  if (b === undefined) return true
  const d = leafCompareKey(leaf, i, b.key)
  return d < 0 || (d === 0 && b.inclusive)
}

/** Where key is or would go in a folded leaf. */
function positionOf(leaf: Leaf, key: Uint8Array): number {
  const p = leafSearch(leaf, key)
  return p >= 0 ? p : ~p
}

/**
 * The entries of one leaf inside [lower, upper], in key order (reversed when `reverse`),
 * skipping empty leaves. The chunk is one leaf's snapshot: every key in range that the leaf
 * held at that moment, so a key that exists throughout an iteration is never skipped.
 * Keys and values are fresh copies, the caller's to keep.
 */
export function readChunk(
  ctx: OpContext,
  root: number,
  lower: Bound | undefined,
  upper: Bound | undefined,
  reverse: boolean,
): Chunk {
  for (let hops = 0; ; hops++) {
    assert(hops < 1 << 30, 'a range scan makes progress')
    if (!reverse) {
      const hit = descend(ctx, root, lower === undefined ? new Uint8Array(0) : lower.key)
      const entries: [Uint8Array, Uint8Array][] = []
      const leaf = fold(hit.leaf)
      const n = leaf.count
      let i = lower === undefined ? 0 : positionOf(leaf, lower.key)
      for (; i < n; i++) {
        if (!leafAboveLower(leaf, i, lower)) continue
        if (!leafBelowUpper(leaf, i, upper)) return { entries, resume: undefined }
        entries.push([leafKeyCopy(leaf, i), leafValueCopy(leaf, i)])
      }
      const resume =
        hit.hi === undefined || !belowUpper(hit.hi, upper) ? undefined : { key: hit.hi, inclusive: true }
      if (entries.length > 0 || resume === undefined) return { entries, resume }
      // Separators out of order on disk could send the scan back to a leaf it left.
      if (lower !== undefined && compareBytes(resume.key, lower.key) <= 0) noProgress(root)
      lower = resume
    } else {
      const hit =
        upper === undefined ? descend(ctx, root, null) : descend(ctx, root, upper.key, !upper.inclusive)
      const entries: [Uint8Array, Uint8Array][] = []
      const leaf = fold(hit.leaf)
      const n = leaf.count
      let i = upper === undefined ? n - 1 : positionOf(leaf, upper.key)
      if (i >= n) i = n - 1
      for (; i >= 0; i--) {
        if (!leafBelowUpper(leaf, i, upper)) continue
        if (!leafAboveLower(leaf, i, lower)) return { entries, resume: undefined }
        entries.push([leafKeyCopy(leaf, i), leafValueCopy(leaf, i)])
      }
      const resume =
        hit.lo === undefined || !aboveLower(hit.lo, lower) ? undefined : { key: hit.lo, inclusive: false }
      if (entries.length > 0 || resume === undefined) return { entries, resume }
      if (upper !== undefined) {
        // lo may equal an inclusive upper bound (that key was removed): excluding it is progress.
        const d = compareBytes(resume.key, upper.key)
        if (d > 0 || (d === 0 && !upper.inclusive)) noProgress(root)
      }
      upper = resume
    }
  }
}

/** Empties a tree: frees every page but the root, which becomes an empty leaf. */
export function clearTree(ctx: OpContext, root: number): void {
  for (const pid of treePids(ctx, root)) if (pid !== root) ctx.free(pid)
  ctx.put(root, EMPTY_LEAF)
}

/** Every page id of the tree under root (root included), for clear() and dropTree(). */
export function treePids(ctx: OpContext, root: number): number[] {
  // Bounded and visited-once: a cycle or a page shared between subtrees on disk would make
  // this walk loop for ever or free a page twice.
  let height = 1
  for (let n = nodeAt(ctx, root); n.kind === 'index'; n = nodeAt(ctx, n.children[0] as number)) {
    if (++height > DEPTH_MAX) tooDeep(root)
  }
  const out: number[] = []
  const seen = new Set<number>()
  const walk = (pid: number, level: number): void => {
    if (seen.has(pid)) throw new CorruptionError(`tree ${root}: page ${pid} is reachable twice`)
    seen.add(pid)
    out.push(pid)
    if (level === height - 1) return
    const n = nodeAt(ctx, pid)
    if (n.kind !== 'index')
      throw new CorruptionError(`tree ${root}: leaf ${pid} at level ${level} of ${height}`)
    for (const ch of n.children) walk(ch, level + 1)
  }
  walk(root, 0)
  return out
}

function putPieces(ctx: OpContext, pids: readonly number[], pieces: readonly Piece[]): void {
  for (let i = 0; i < pieces.length; i++) ctx.put(pids[i] as number, (pieces[i] as Piece).node)
}
