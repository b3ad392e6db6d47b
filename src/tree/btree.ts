// The B+tree algorithms, as synchronous planning over an OpContext (context.ts). A tree's
// root page id never changes: a root split moves the root's entries into new children and
// the root becomes their index; a root index left with one child takes over that child's
// entries (docs/DESIGN.md, "Tree: structure").
//
// Invariants (checked by verify.ts after every step of the property tests):
// - keys in a leaf and separators in an index node are strictly increasing;
// - child i of an index node holds only keys in [keys[i-1], keys[i]) of its parent;
// - every leaf is at the same depth;
// - no leaf is empty except a root leaf, and every index node has at least two children,
//   except a root index whose one child is a blob leaf;
// - no node needsSplit(), so every node fits a page (a blob leaf: a large page);
// - a blob leaf (node.ts isBlobLeaf) is never the root.

import { CorruptionError, InvariantError } from '../errors.js'
import { assert } from '../util/assert.js'
import type { CopySlab } from '../util/copy-slab.js'
import { KILL_ODDS, maybeKill } from '../util/kill-points.js'
import type { OpContext } from './context.js'
import { compareBytes } from './keys.js'
import {
  fold,
  type Leaf,
  leafCopyRun,
  leafGet,
  leafKeyAt,
  leafPut,
  leafSearch,
  leafSlice,
  type PutResult,
  varintBytes,
} from './leaf.js'
import type { TreeConfig } from './limits.js'
import {
  concatNodes,
  EMPTY_LEAF,
  entryBytes,
  entryCount,
  type Index,
  indexSlot,
  isBlobLeaf,
  isUnderfull,
  makeIndex,
  makeLeaf,
  type Node,
  needsSplit,
  type Piece,
  spliceIndex,
  splitNode,
} from './node.js'

/** Deeper than any tree of 2^53 keys with nodes of at least two children can be. */
const DEPTH_MAX = 64

export interface PathStep {
  pid: number
  /** Index of the child the descent took. */
  slot: number
}

/**
 * The steps of a descent, root first. A stack over pooled steps that is never truncated:
 * `length = 0` on an array gives its backing store up, so every descent allocated one again.
 */
export class Path {
  private readonly steps: PathStep[] = []
  length = 0

  push(pid: number, slot: number): void {
    const step = this.steps[this.length]
    if (step === undefined) this.steps.push({ pid, slot })
    else {
      step.pid = pid
      step.slot = slot
    }
    this.length++
  }

  /** Takes the last step off (the step object stays pooled: read it before the next push). */
  pop(): PathStep {
    if (!(this.length > 0)) throw new InvariantError('a path step is popped from an empty path')
    return this.steps[--this.length] as PathStep
  }

  at(i: number): PathStep {
    if (!(i >= 0 && i < this.length)) throw new InvariantError(`path step ${i} of ${this.length}`)
    return this.steps[i] as PathStep
  }

  clear(): void {
    this.length = 0
  }
}

export interface LeafHit {
  path: Path
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
    if (!(pid >= 0)) throw new InvariantError(`placeholder ${pid} is a ${p.kind} page`)
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
 *
 * The answer, its path and its steps are one reused set of objects, valid until the next
 * descend(): every caller is synchronous planning that uses a hit before it descends again
 * (a path array and an object per level were allocated by every write).
 */
export function descend(ctx: OpContext, root: number, key: Uint8Array | null, before = false): LeafHit {
  const hit = lastHit
  const path = hit.path
  path.clear()
  let lo: Uint8Array | undefined
  let hi: Uint8Array | undefined
  let pid = root
  for (let depth = 0; depth < DEPTH_MAX; depth++) {
    const node = nodeAt(ctx, pid)
    if (node.kind === 'leaf') {
      hit.pid = pid
      hit.leaf = node
      hit.lo = lo
      hit.hi = hi
      return hit
    }
    const slot = key === null ? node.keys.length : indexSlot(node, key, !before)
    if (slot > 0) lo = node.keys[slot - 1]
    if (slot < node.keys.length) hi = node.keys[slot]
    path.push(pid, slot)
    pid = node.children[slot] as number
  }
  return tooDeep(root)
}

/** descend()'s one answer. */
const lastHit: LeafHit = { path: new Path(), pid: -1, leaf: EMPTY_LEAF, lo: undefined, hi: undefined }

/** The leaf whose range holds key (descend() without the path and bounds, for reads). */
export function findLeaf(ctx: OpContext, root: number, key: Uint8Array): Leaf {
  let pid = root
  for (let depth = 0; depth < DEPTH_MAX; depth++) {
    const node = nodeAt(ctx, pid)
    if (node.kind === 'leaf') return node
    pid = node.children[indexSlot(node, key, true)] as number
  }
  return tooDeep(root)
}

/** The value of key, or undefined: a view of the tree's bytes, never to be written to. */
export function getValue(ctx: OpContext, root: number, key: Uint8Array): Uint8Array | undefined {
  return leafGet(findLeaf(ctx, root, key), key)
}

/** The value of key as a fresh copy (the caller's to keep), or undefined. */
export function getValueCopy(
  ctx: OpContext,
  root: number,
  key: Uint8Array,
  copies: CopySlab,
): Uint8Array | undefined {
  const v = leafGet(findLeaf(ctx, root, key), key)
  return v === undefined ? undefined : copies.copy(v)
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
  if (
    value !== undefined &&
    (isBlobLeaf(hit.leaf, c) || 1 + varintBytes(1) + entryBytes(key, value) > c.maxPageBytes)
  ) {
    const old = leafGet(hit.leaf, key)
    if (old === undefined && isBlobLeaf(hit.leaf, c)) {
      besideBlobLeaf(ctx, c, hit, key, value)
      return undefined
    }
    if (1 + varintBytes(1) + entryBytes(key, value) > c.maxPageBytes) {
      placeBlobEntry(ctx, c, hit, key, value)
      return old
    }
  }
  // One search of the leaf for both the previous value and the put: leafGet() then
  // leafPut() searched the overlay and the base twice per write.
  const leaf = leafPut(hit.leaf, key, value, putResult)
  const old = putResult.old
  putResult.old = undefined
  // Removing a key the leaf does not hold changes nothing.
  if (leaf === hit.leaf) return old
  ctx.setLeaf(hit.pid, leaf, { key, value })
  rebalance(ctx, c, hit.path, hit.pid, leaf)
  return old
}

/** leafPut()'s answer for writeKey(), read right after each call (it holds no state across calls). */
const putResult: PutResult = { old: undefined }

/**
 * A new key in a blob leaf's range gets a leaf of its own beside it: the blob leaf keeps its
 * page id and is not rewritten (a split would copy its value into a new blob).
 */
function besideBlobLeaf(
  ctx: OpContext,
  c: TreeConfig,
  hit: LeafHit,
  key: Uint8Array,
  value: Uint8Array,
): void {
  if (!(hit.path.length > 0)) throw new InvariantError(`blob leaf ${hit.pid} is not a root`)
  const fresh = ctx.newPid()
  ctx.put(fresh, makeLeaf([key], [value]))
  const blobKey = leafKeyAt(fold(hit.leaf), 0)
  const isBefore = compareBytes(key, blobKey) < 0
  if (isBefore) spliceIntoParent(ctx, c, hit.path, [fresh, hit.pid], [blobKey.slice()])
  else spliceIntoParent(ctx, c, hit.path, [hit.pid, fresh], [key])
}

/**
 * Stores an entry too large for an inline leaf: it becomes a blob leaf of its own, built
 * once from the caller's value, and the leaf it lands in is cut around it (entries below,
 * the blob leaf, entries above). A blob leaf under the same key is simply replaced.
 */
function placeBlobEntry(
  ctx: OpContext,
  c: TreeConfig,
  hit: LeafHit,
  key: Uint8Array,
  value: Uint8Array,
): void {
  const blob = makeLeaf([key], [value])
  let rest = hit.leaf
  if (leafGet(rest, key) !== undefined) rest = leafPut(rest, key, undefined)
  rest = fold(rest)
  const p = leafSearch(rest, key)
  const at = p >= 0 ? p : ~p
  const pieces: Node[] = []
  const lowKeys: Uint8Array[] = []
  if (at > 0) pieces.push(leafSlice(rest, 0, at))
  if (pieces.length > 0) lowKeys.push(key)
  pieces.push(blob)
  if (at < rest.count) {
    lowKeys.push(leafKeyAt(rest, at).slice())
    pieces.push(leafSlice(rest, at, rest.count))
  }
  if (hit.path.length === 0) {
    // A root never holds a blob leaf: the root becomes the index of the pieces.
    const pids = pieces.map(() => ctx.newPid())
    for (let i = 0; i < pieces.length; i++) ctx.put(pids[i] as number, pieces[i] as Node)
    ctx.put(hit.pid, makeIndex(lowKeys, pids))
    return
  }
  const pids = [hit.pid, ...pieces.slice(1).map(() => ctx.newPid())]
  for (let i = 0; i < pieces.length; i++) ctx.put(pids[i] as number, pieces[i] as Node)
  if (pieces.length > 1) spliceIntoParent(ctx, c, hit.path, pids, lowKeys)
}

/**
 * Replaces the child the last path step went through by `pids` (separated by `lowKeys`) in
 * its parent, then restores the invariants from the parent up.
 */
function spliceIntoParent(
  ctx: OpContext,
  c: TreeConfig,
  path: Path,
  pids: readonly number[],
  lowKeys: readonly Uint8Array[],
): void {
  const step = path.pop()
  const parent = nodeAt(ctx, step.pid) as Index
  if (parent.kind !== 'index') throw new InvariantError(`page ${step.pid} on a descent path is an index node`)
  const node = spliceIndex(parent, step.slot, pids, lowKeys)
  ctx.put(step.pid, node)
  rebalance(ctx, c, path, step.pid, node)
}

/** Restores the invariants from a changed node up to the root: splits, merges, collapses. */
function rebalance(ctx: OpContext, c: TreeConfig, path: Path, pid: number, node: Node): void {
  for (;;) {
    if (needsSplit(node, c)) {
      if (KILL_ODDS) maybeKill('tree.split')
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
      const step = path.pop()
      const parent = nodeAt(ctx, step.pid) as Index
      if (parent.kind !== 'index')
        throw new InvariantError(`page ${step.pid} on a descent path is an index node`)
      node = spliceIndex(
        parent,
        step.slot,
        pids,
        pieces.slice(1).map((p) => p.lowKey as Uint8Array),
      )
      pid = step.pid
      ctx.put(pid, node)
      continue
    }
    if (path.length === 0) {
      if (isBlobLeaf(node, c)) {
        // A root never holds a blob leaf (its page id is fixed, so the leaf would be copied
        // into a new blob the moment the tree grows): the leaf goes one level down.
        const child = ctx.newPid()
        ctx.put(child, node)
        ctx.put(pid, makeIndex([], [child]))
        return
      }
      if (node.kind === 'index' && node.children.length === 1) {
        const childPid = node.children[0] as number
        const child = nodeAt(ctx, childPid)
        if (isBlobLeaf(child, c)) return
        node = child
        ctx.put(pid, node)
        ctx.free(childPid)
        continue
      }
      return
    }
    if (path.length === 1 && !isBlobLeaf(node, c)) {
      // Only a root over a blob leaf has one child; once the child is no blob leaf any more,
      // the root takes it over (above).
      const root = nodeAt(ctx, path.at(0).pid) as Index
      if (root.kind === 'index' && root.children.length === 1) {
        pid = path.pop().pid
        node = root
        continue
      }
    }
    if (!isUnderfull(node, c)) return
    if (KILL_ODDS) maybeKill('tree.merge')
    const step = path.at(path.length - 1)
    const parent = nodeAt(ctx, step.pid) as Index
    if (!(parent.kind === 'index' && parent.children.length >= 2))
      throw new InvariantError(`index ${step.pid} has two children or more`)
    const leftSlot = step.slot > 0 ? step.slot - 1 : step.slot
    const leftPid = parent.children[leftSlot] as number
    const rightPid = parent.children[leftSlot + 1] as number
    const left = nodeAt(ctx, leftPid)
    const right = nodeAt(ctx, rightPid)
    const keys = parent.keys.slice()
    const children = parent.children.slice()
    if (isBlobLeaf(left, c) || isBlobLeaf(right, c)) {
      // A blob leaf is never merged or shared (that would copy its value): an empty sibling
      // is dropped, a small one stays as it is.
      const otherSlot = isBlobLeaf(left, c) ? leftSlot + 1 : leftSlot
      if (entryCount(isBlobLeaf(left, c) ? right : left) > 0) return
      ctx.free(children[otherSlot] as number)
      children.splice(otherSlot, 1)
      keys.splice(otherSlot > 0 ? otherSlot - 1 : 0, 1)
      path.pop()
      pid = step.pid
      node = makeIndex(keys, children)
      ctx.put(pid, node)
      continue
    }
    const combined = concatNodes(left, parent.keys[leftSlot] as Uint8Array, right)
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

/**
 * A run of one leaf's entries, in iteration order, copied out of the leaf in one buffer of
 * the chunk's own: key(i) and value(i) are views of that copy, so they are the caller's to
 * keep or change, and a caller keeping one keeps the chunk's bytes alive.
 */
export class Chunk {
  readonly count: number
  private readonly buffer: ArrayBufferLike

  constructor(
    bytes: Uint8Array,
    /** [keyStart, keyEnd, valueStart, valueEnd) per entry in leaf order (leafCopyRun). */
    private readonly spans: Uint32Array,
    count: number,
    private readonly reverse: boolean,
    /** Where the next chunk starts (as the new lower bound, or upper bound when reverse); undefined: done. */
    readonly resume: Bound | undefined,
  ) {
    assert(bytes.byteOffset === 0, 'a chunk owns its copy from offset 0')
    this.buffer = bytes.buffer
    this.count = count
  }

  private span(i: number): number {
    return 4 * (this.reverse ? this.count - 1 - i : i)
  }

  /** Key of entry i (iteration order). */
  key(i: number): Uint8Array {
    const j = this.span(i)
    const s = this.spans[j] as number
    return new Uint8Array(this.buffer, s, (this.spans[j + 1] as number) - s)
  }

  /** Value of entry i (iteration order). */
  value(i: number): Uint8Array {
    const j = this.span(i) + 2
    const s = this.spans[j] as number
    return new Uint8Array(this.buffer, s, (this.spans[j + 1] as number) - s)
  }

  /** Every entry as [key, value] pairs (iteration order). */
  get entries(): [Uint8Array, Uint8Array][] {
    const out: [Uint8Array, Uint8Array][] = []
    for (let i = 0; i < this.count; i++) out.push([this.key(i), this.value(i)])
    return out
  }
}

const NO_SPANS = new Uint32Array(0)

/**
 * Entries [from, to) of a folded leaf as a chunk: at most `most` of them, nearest the start
 * of the iteration; when cut there, the chunk resumes just past its last entry.
 */
function chunkOf(
  leaf: Leaf,
  from: number,
  to: number,
  most: number,
  reverse: boolean,
  resume: Bound | undefined,
): Chunk {
  if (to - from > most) {
    if (reverse) from = to - most
    else to = from + most
    // A copy: the chunk's own keys are the caller's to change.
    resume = { key: leafKeyAt(leaf, reverse ? from : to - 1).slice(), inclusive: false }
  }
  if (to <= from) return new Chunk(new Uint8Array(0), NO_SPANS, 0, reverse, resume)
  const spans = new Uint32Array(4 * (to - from))
  return new Chunk(leafCopyRun(leaf, from, to, spans), spans, to - from, reverse, resume)
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

/** Index in a folded leaf of the first key inside lower (0 when unbounded). */
function firstAbove(leaf: Leaf, lower: Bound | undefined): number {
  if (lower === undefined) return 0
  const p = leafSearch(leaf, lower.key)
  return p < 0 ? ~p : lower.inclusive ? p : p + 1
}

/** Index in a folded leaf past the last key inside upper (count when unbounded). */
function endBelow(leaf: Leaf, upper: Bound | undefined): number {
  if (upper === undefined) return leaf.count
  const p = leafSearch(leaf, upper.key)
  return p < 0 ? ~p : upper.inclusive ? p + 1 : p
}

/**
 * The entries of one leaf inside [lower, upper], in key order (reversed when `reverse`), at
 * most `most` of them, skipping empty leaves. The chunk is one leaf's snapshot: every key in
 * range that the leaf held at that moment, so a key that exists throughout an iteration is
 * never skipped. Keys and values are fresh copies, the caller's to keep.
 */
export function readChunk(
  ctx: OpContext,
  root: number,
  lower: Bound | undefined,
  upper: Bound | undefined,
  reverse: boolean,
  most = Number.POSITIVE_INFINITY,
): Chunk {
  for (let hops = 0; ; hops++) {
    assert(hops < 1 << 30, 'a range scan makes progress')
    const hit = reverse
      ? upper === undefined
        ? descend(ctx, root, null)
        : descend(ctx, root, upper.key, !upper.inclusive)
      : descend(ctx, root, lower === undefined ? new Uint8Array(0) : lower.key)
    const leaf = fold(hit.leaf)
    const from = firstAbove(leaf, lower)
    const to = endBelow(leaf, upper)
    let resume: Bound | undefined
    // A key of this leaf beyond the far bound ends the range here; else the next leaf's
    // bound, if it is still inside the range, is where the next chunk starts.
    if (!reverse) {
      if (to === leaf.count && hit.hi !== undefined && belowUpper(hit.hi, upper))
        resume = { key: hit.hi, inclusive: true }
    } else if (from === 0 && hit.lo !== undefined && aboveLower(hit.lo, lower)) {
      resume = { key: hit.lo, inclusive: false }
    }
    if (to > from || resume === undefined) return chunkOf(leaf, from, to, most, reverse, resume)
    // Separators out of order on disk could send the scan back to a leaf it left.
    if (reverse) {
      if (upper !== undefined) {
        // lo may equal an inclusive upper bound (that key was removed): excluding it is progress.
        const d = compareBytes(resume.key, upper.key)
        if (d > 0 || (d === 0 && !upper.inclusive)) noProgress(root)
      }
      upper = resume
    } else {
      if (lower !== undefined && compareBytes(resume.key, lower.key) <= 0) noProgress(root)
      lower = resume
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
