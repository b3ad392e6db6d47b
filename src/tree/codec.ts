// Bytes of the tree's pages and deltas (docs/DESIGN.md, "Tree: node format"). The page
// cache stores what encode() returns as a page's base and what encodeLeafDelta() returns as
// its deltas, and calls materialize() to page a node in. Decoding never trusts its input:
// a malformed page is a CorruptionError, never a crash or an unbounded allocation.

import { CorruptionError, InvariantError } from '../errors.js'
import type { PageCodec } from '../pagecache/page-store.js'
import type { CopySlab } from '../util/copy-slab.js'
import { compareBytes } from './keys.js'
import {
  compareRanges,
  fold,
  type Leaf,
  leafApply,
  leafMemoryBytes,
  leafOfBytes,
  leafViewOfBytes,
  TAG_LEAF,
} from './leaf.js'
import { type Counter, type Meta, makeIndex, type TreePage, varintBytes } from './node.js'

export { TAG_LEAF }
export const TAG_INDEX = 0x02
export const TAG_META = 0x03
export const TAG_COUNTER = 0x04
export const TAG_LEAF_DELTA = 0x10
const OP_SET = 0x01
const OP_REMOVE = 0x02

/** One change to a leaf: set key to value, or remove key (value undefined). */
export interface LeafOp {
  key: Uint8Array
  value: Uint8Array | undefined
}

const utf8 = new TextEncoder()
const utf8Strict = new TextDecoder('utf-8', { fatal: true })

class Writer {
  readonly buf: Uint8Array
  pos = 0
  constructor(size: number, slab?: CopySlab) {
    this.buf = slab === undefined ? new Uint8Array(size) : slab.alloc(size)
  }
  u8(b: number): void {
    this.buf[this.pos++] = b
  }
  varint(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0))
      throw new InvariantError(`a varint is a safe integer ≥ 0 (got ${n})`)
    while (n >= 128) {
      this.buf[this.pos++] = (n % 128) | 0x80
      n = Math.floor(n / 128)
    }
    this.buf[this.pos++] = n
  }
  bytes(b: Uint8Array): void {
    this.varint(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
  done(): Uint8Array {
    if (this.pos !== this.buf.length)
      throw new InvariantError(`encoded ${this.pos} bytes, sized ${this.buf.length}`)
    return this.buf
  }
}

class Reader {
  pos = 0
  constructor(
    readonly buf: Uint8Array,
    readonly what: string,
  ) {}
  fail(why: string): never {
    throw new CorruptionError(`${this.what}: ${why} at byte ${this.pos} of ${this.buf.length}`)
  }
  u8(): number {
    if (this.pos >= this.buf.length) this.fail('truncated')
    return this.buf[this.pos++] as number
  }
  varint(): number {
    let n = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      const b = this.u8()
      n += (b & 0x7f) * scale
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(n)) this.fail('varint over 2^53')
        // Sizes are computed from values (node.bytes, leaf.ts): only the shortest form fits.
        if (b === 0 && i > 0) this.fail('varint not in its shortest form')
        return n
      }
      scale *= 128
    }
    return this.fail('varint longer than 8 bytes')
  }
  /** A count of items each at least `minItemBytes` long: bounded by the bytes left. */
  count(minItemBytes: number): number {
    const n = this.varint()
    if (n * minItemBytes > this.buf.length - this.pos) this.fail(`count ${n} exceeds the bytes left`)
    return n
  }
  /**
   * Steps over a length-prefixed byte string; returns where its bytes start (they end at
   * `pos`). A page-in of a leaf runs this twice per entry: a length below 128 (one varint
   * byte, nearly all of them) is read here, any other through varint(), which checks its
   * form and says what is wrong.
   */
  skipBytes(): number {
    const buf = this.buf
    let len = this.pos < buf.length ? (buf[this.pos] as number) : 0x80
    if (len < 0x80) this.pos++
    else len = this.varint()
    if (len > buf.length - this.pos) this.fail(`length ${len} exceeds the bytes left`)
    const at = this.pos
    this.pos += len
    return at
  }
  bytes(): Uint8Array {
    const at = this.skipBytes()
    return this.buf.slice(at, this.pos)
  }
  /** A length-prefixed byte string as a view of the buffer (no copy). */
  view(): Uint8Array {
    const at = this.skipBytes()
    return this.buf.subarray(at, this.pos)
  }
  end(): void {
    if (this.pos !== this.buf.length) this.fail('trailing bytes')
  }
}

function metaBytes(m: Meta): { size: number; names: [Uint8Array, number][] } {
  const names = [...m.trees.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([name, pid]): [Uint8Array, number] => [utf8.encode(name), pid])
  let size = 1 + varintBytes(m.defaultRoot) + varintBytes(names.length)
  for (const [n, pid] of names) size += varintBytes(n.length) + n.length + varintBytes(pid)
  return { size, names }
}

export function encodePage(page: TreePage): Uint8Array {
  switch (page.kind) {
    case 'leaf':
      // The leaf's own bytes: immutable, so the store may keep them.
      return fold(page).buf
    case 'index': {
      const w = new Writer(page.bytes)
      w.u8(TAG_INDEX)
      w.varint(page.children.length)
      w.varint(page.children[0] as number)
      for (let i = 0; i < page.keys.length; i++) {
        w.bytes(page.keys[i] as Uint8Array)
        w.varint(page.children[i + 1] as number)
      }
      return w.done()
    }
    case 'meta': {
      const { size, names } = metaBytes(page)
      const w = new Writer(size)
      w.u8(TAG_META)
      w.varint(page.defaultRoot)
      w.varint(names.length)
      for (const [n, pid] of names) {
        w.bytes(n)
        w.varint(pid)
      }
      return w.done()
    }
    case 'counter': {
      const w = new Writer(1 + varintBytes(page.idLimit))
      w.u8(TAG_COUNTER)
      w.varint(page.idLimit)
      return w.done()
    }
  }
}

export function decodePage(bytes: Uint8Array): TreePage {
  return decodePageAs(bytes, false)
}

/**
 * Offsets of the transient leaf a page-in with deltas merges from: an array of their own per
 * page-in was an allocation outside V8's heap each time (a leaf of 100 entries: 1.2 KB),
 * garbage at once. Kept up to TRANSIENT_OFFS_MAX words (48 KiB); larger leaves allocate.
 * It holds nothing from one call to the next: databases in one process share no state by it.
 */
let transientOffs = new Uint32Array(0)
const TRANSIENT_OFFS_MAX = 12 * 1024

/**
 * A page's decoded form. With `isTransient` a leaf is a view of `bytes` (no copy; its key
 * offsets have room for the words) for a caller that builds a new leaf from it at once and
 * drops it: page-in with deltas, whose merge writes fresh bytes anyway.
 */
function decodePageAs(bytes: Uint8Array, isTransient: boolean): TreePage {
  const r = new Reader(bytes, 'tree page')
  const tag = r.u8()
  let page: TreePage
  if (tag === TAG_LEAF) {
    const n = r.count(2)
    // Kept: the offsets go straight into the leaf's own buffer (no array of their own).
    if (!isTransient) return leafOfBytes(bytes, n, (offs) => readLeafOffsets(r, n, offs))
    // A transient leaf is merged and dropped within the call (materialize()), never kept
    // and never decoded into again before that: its offsets can use memory kept for them.
    if (3 * n > transientOffs.length && 3 * n <= TRANSIENT_OFFS_MAX) transientOffs = new Uint32Array(3 * n)
    const offs = 3 * n <= transientOffs.length ? transientOffs.subarray(0, 3 * n) : new Uint32Array(3 * n)
    readLeafOffsets(r, n, offs)
    return leafViewOfBytes(bytes, offs)
  } else if (tag === TAG_INDEX) {
    const n = r.count(1)
    if (n < 1) r.fail('an index node without children')
    const children = [r.varint()]
    const keys: Uint8Array[] = []
    for (let i = 1; i < n; i++) {
      keys.push(r.bytes())
      children.push(r.varint())
    }
    checkSorted(r, keys)
    page = makeIndex(keys, children)
  } else if (tag === TAG_META) {
    const defaultRoot = r.varint()
    const n = r.count(2)
    const trees = new Map<string, number>()
    for (let i = 0; i < n; i++) {
      const nameBytes = r.bytes()
      let name: string
      try {
        name = utf8Strict.decode(nameBytes)
      } catch {
        return r.fail('a tree name that is not UTF-8')
      }
      trees.set(name, r.varint())
    }
    page = { kind: 'meta', defaultRoot, trees } satisfies Meta
  } else if (tag === TAG_COUNTER) {
    page = { kind: 'counter', idLimit: r.varint() } satisfies Counter
  } else {
    return r.fail(`unknown page tag ${tag}`)
  }
  r.end()
  return page
}

/**
 * Reads the `n` entries of a leaf page (after its count) into `offs`, [keyStart, keyEnd)
 * of entry i at [2i, 2i + 1], and checks that the keys ascend and nothing trails them.
 */
function readLeafOffsets(r: Reader, n: number, offs: Uint32Array): void {
  for (let i = 0; i < n; i++) {
    offs[2 * i] = r.skipBytes()
    offs[2 * i + 1] = r.pos
    r.skipBytes()
  }
  const bytes = r.buf
  for (let i = 1; i < n; i++) {
    const c = compareRanges(
      bytes,
      offs[2 * i - 2] as number,
      offs[2 * i - 1] as number,
      offs[2 * i] as number,
      offs[2 * i + 1] as number,
    )
    if (c >= 0) r.fail(`keys out of order at entry ${i}`)
  }
  r.end()
}

/** Keys out of order would send descents the wrong way: refuse them at page-in. */
function checkSorted(r: Reader, keys: readonly Uint8Array[]): void {
  for (let i = 1; i < keys.length; i++) {
    if (compareBytes(keys[i - 1] as Uint8Array, keys[i] as Uint8Array) >= 0)
      r.fail(`keys out of order at entry ${i}`)
  }
}

export function leafDeltaBytes(ops: readonly LeafOp[]): number {
  let size = 1 + varintBytes(ops.length)
  for (const op of ops) {
    size += 1 + varintBytes(op.key.length) + op.key.length
    if (op.value !== undefined) size += varintBytes(op.value.length) + op.value.length
  }
  return size
}

/**
 * The delta's bytes; carved from `slab` when given (a delta is logged and dropped at once, so
 * a small one need not cost a backing store of its own).
 */
export function encodeLeafDelta(ops: readonly LeafOp[], slab?: CopySlab): Uint8Array {
  const w = new Writer(leafDeltaBytes(ops), slab)
  w.u8(TAG_LEAF_DELTA)
  w.varint(ops.length)
  for (const op of ops) {
    w.u8(op.value === undefined ? OP_REMOVE : OP_SET)
    w.bytes(op.key)
    if (op.value !== undefined) w.bytes(op.value)
  }
  return w.done()
}

export function decodeLeafDelta(bytes: Uint8Array): LeafOp[] {
  const ops: LeafOp[] = []
  decodeLeafDeltaInto(bytes, ops, false)
  return ops
}

/**
 * Appends a delta's ops to `ops`; with `asViews` their keys and values are views of `bytes`
 * (no array of their own each) for a caller that copies them before `bytes` is reused.
 */
function decodeLeafDeltaInto(bytes: Uint8Array, ops: LeafOp[], asViews: boolean): void {
  const r = new Reader(bytes, 'leaf delta')
  if (r.u8() !== TAG_LEAF_DELTA) r.fail('not a leaf delta')
  const n = r.count(2)
  const take = asViews ? () => r.view() : () => r.bytes()
  for (let i = 0; i < n; i++) {
    const kind = r.u8()
    if (kind === OP_SET) {
      const key = take()
      ops.push({ key, value: take() })
    } else if (kind === OP_REMOVE) ops.push({ key: take(), value: undefined })
    else r.fail(`unknown leaf op ${kind}`)
  }
  r.end()
}

/** Applies ops to a leaf in order (later ops on a key win). Used at page-in. */
export function applyLeafOps(leaf: Leaf, ops: readonly LeafOp[]): Leaf {
  return leafApply(leaf, ops)
}

/** The codec the page store uses for every tree-layer page. */
export const treeCodec: PageCodec<TreePage> = {
  materialize(base: Uint8Array, deltas: readonly Uint8Array[]): TreePage {
    if (deltas.length === 0) return decodePage(base)
    // With deltas the base and the ops are only read: the merge below writes the leaf's
    // bytes once, from views of them (a page-in used to copy the base, then copy it again
    // in the merge, and give every op's key and value an array of its own).
    const page = decodePageAs(base, true)
    if (page.kind !== 'leaf') {
      throw new CorruptionError(`tree page: a ${page.kind} page with ${deltas.length} leaf deltas`)
    }
    // All deltas' ops in one pass: new bytes are built once.
    const ops: LeafOp[] = []
    for (const d of deltas) decodeLeafDeltaInto(d, ops, true)
    const leaf = applyLeafOps(page, ops)
    // Ops that cancel out (set then removed, of a key the base lacks) leave the view itself.
    return leaf === page ? decodePage(base) : leaf
  },
  encode: encodePage,
  memoryBytes(page: TreePage): number {
    // A leaf is one buffer (its bytes and key offsets) plus its small overlay (leaf.ts).
    if (page.kind === 'leaf') return leafMemoryBytes(page)
    // An index node: its object, each separator's own array, and its words (node.ts; a
    // typed array with its buffer, ~160 bytes beyond its 4 per separator).
    if (page.kind === 'index') return 224 + page.bytes + 108 * page.children.length + 4 * page.words.length
    if (page.kind === 'meta') return 64 + 160 * page.trees.size
    return 64
  },
}
