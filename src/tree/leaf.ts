// Compact leaves (docs/DESIGN.md, "Tree: in-memory leaves"). A leaf holds its entries as
// the bytes of its encoded page (codec.ts: 0x01, varint n, n × (bytes key, bytes value)) in
// one ArrayBuffer, followed in the same buffer by a Uint32Array of where each key lies and
// of each key's word (prefix.ts), so a lookup is a binary search over the words that
// compares keys in place only on a tie, and a page-in is a copy plus one pass over the
// varints. Rebuilding those bytes costs a whole-leaf copy, so writes gather in a
// small sorted overlay (the caller's key and value arrays) that is folded into new bytes
// once it holds OVERLAY_MAX entries, or when the bytes are needed (encode, scans, splits).
//
// A Leaf never changes as seen from outside: writes return a new Leaf. fold() replaces a
// leaf's bytes and overlay by bytes holding the same entries; nothing else writes to a leaf,
// and no byte of a built buffer is written again, so a reader holding a leaf (or a view of
// its bytes) across an await sees one version of it.

import { Buffer } from 'node:buffer'
import { InvariantError } from '../errors.js'
import { assert } from '../util/assert.js'
import { compareBytes } from './keys.js'
import { commonPrefixBytes, compareFrom, sharesPrefix, wordAt } from './prefix.js'

export const TAG_LEAF = 0x01

/** Overlay entries a leaf gathers before a write folds them into new bytes. */
export const OVERLAY_MAX = 16

/**
 * Memory of a leaf beyond its buffer's bytes: the Leaf object, the ArrayBuffer and its
 * backing store, two views (measured on Node 20: ~250 bytes; rounded up).
 */
const LEAF_OVERHEAD_BYTES = 320
/** Memory of one overlay entry beyond its bytes: two typed arrays, their buffers, slots. */
const OVERLAY_ENTRY_OVERHEAD_BYTES = 260

const NO_KEYS: readonly Uint8Array[] = []
const NO_VALUES: readonly (Uint8Array | undefined)[] = []

/** Bytes of an unsigned LEB128 varint of n (n a safe integer ≥ 0). */
export function varintBytes(n: number): number {
  if (n < 128) return 1
  if (n < 16384) return 2
  let len = 1
  while (n >= 128) {
    n = Math.floor(n / 128)
    len++
  }
  return len
}

export function entryBytes(key: Uint8Array, value: Uint8Array): number {
  return varintBytes(key.length) + key.length + varintBytes(value.length) + value.length
}

function headerBytes(count: number): number {
  return 1 + varintBytes(count)
}

export class Leaf {
  readonly kind = 'leaf'
  /** The encoded base page, exactly its bytes (a view at offset 0 of its own buffer). */
  buf: Uint8Array
  /**
   * [keyStart, keyEnd) of every base entry i at [2i, 2i + 1], in buf; then the word of every
   * base key after the shared prefix (prefix.ts) at [2n + i]. A view of the same buffer: one
   * view rather than two saves ~110 bytes per leaf.
   */
  offs: Uint32Array
  /** Bytes every base key shares at its start (prefix.ts). */
  cpl: number
  /** Changes since buf, sorted by key, distinct: the new value, or undefined (removed). */
  ovKeys: readonly Uint8Array[]
  ovVals: readonly (Uint8Array | undefined)[]
  /** Bytes of the overlay's keys and values. */
  ovBytes: number
  /** Entries of the leaf (base and overlay together). */
  readonly count: number
  /** Exact bytes of the leaf's encoded page (codec.ts writes exactly this many). */
  readonly bytes: number

  constructor(
    buf: Uint8Array,
    offs: Uint32Array,
    cpl: number,
    ovKeys: readonly Uint8Array[],
    ovVals: readonly (Uint8Array | undefined)[],
    ovBytes: number,
    count: number,
    bytes: number,
  ) {
    this.buf = buf
    this.offs = offs
    this.cpl = cpl
    this.ovKeys = ovKeys
    this.ovVals = ovVals
    this.ovBytes = ovBytes
    this.count = count
    this.bytes = bytes
  }
}

/** Memory the leaf holds, for the page cache's byte-bounded LRU. */
export function leafMemoryBytes(l: Leaf): number {
  return (
    LEAF_OVERHEAD_BYTES + l.buf.buffer.byteLength + l.ovBytes + l.ovKeys.length * OVERLAY_ENTRY_OVERHEAD_BYTES
  )
}

// ---- building compact bytes ----

/** Writes a leaf's bytes, key offsets and key words into one fresh buffer. */
class Builder {
  readonly buf: Uint8Array
  readonly offs: Uint32Array
  private pos: number
  private i = 0

  constructor(
    readonly count: number,
    readonly bytes: number,
  ) {
    const at = (bytes + 7) & ~7
    const ab = new ArrayBuffer(at + 12 * count)
    this.buf = new Uint8Array(ab, 0, bytes)
    this.offs = new Uint32Array(ab, at, 3 * count)
    this.buf[0] = TAG_LEAF
    this.pos = writeVarint(this.buf, 1, count)
  }

  entry(key: Uint8Array, value: Uint8Array): void {
    let p = writeVarint(this.buf, this.pos, key.length)
    this.offs[2 * this.i] = p
    this.buf.set(key, p)
    p += key.length
    this.offs[2 * this.i + 1] = p
    p = writeVarint(this.buf, p, value.length)
    this.buf.set(value, p)
    this.pos = p + value.length
    this.i++
  }

  /** Copies base entries [from, to) of `src` as they are. */
  run(src: Leaf, from: number, to: number): void {
    if (from >= to) return
    const s = entryStart(src, from)
    const e = entryStart(src, to)
    const shift = this.pos - s
    this.buf.set(src.buf.subarray(s, e), this.pos)
    const so = src.offs
    const o = this.offs
    let j = 2 * this.i
    for (let k = 2 * from; k < 2 * to; k++) o[j++] = (so[k] as number) + shift
    this.pos += e - s
    this.i += to - from
  }

  done(): Leaf {
    if (!(this.pos === this.bytes && this.i === this.count))
      throw new InvariantError(`built ${this.pos} bytes, sized ${this.bytes}`)
    const cpl = fillWords(this.buf, this.offs)
    return new Leaf(this.buf, this.offs, cpl, NO_KEYS, NO_VALUES, 0, this.count, this.bytes)
  }
}

/** Writes the word of every key (keys sorted) and returns the bytes they all share. */
function fillWords(buf: Uint8Array, offs: Uint32Array): number {
  const n = (offs.length / 3) | 0
  if (n === 0) return 0
  const last = 2 * n - 2
  const cpl = commonPrefixBytes(
    buf,
    offs[0] as number,
    offs[1] as number,
    buf,
    offs[last] as number,
    offs[last + 1] as number,
  )
  for (let i = 0; i < n; i++)
    offs[2 * n + i] = wordAt(buf, (offs[2 * i] as number) + cpl, offs[2 * i + 1] as number)
  return cpl
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 128) {
    buf[pos++] = (n % 128) | 0x80
    n = Math.floor(n / 128)
  }
  buf[pos++] = n
  return pos
}

/** A leaf holding keys[i] → values[i] (keys sorted and distinct). */
export function makeLeaf(keys: readonly Uint8Array[], values: readonly Uint8Array[]): Leaf {
  assert(keys.length === values.length, 'a leaf has one value per key')
  let bytes = headerBytes(keys.length)
  for (let i = 0; i < keys.length; i++) bytes += entryBytes(keys[i] as Uint8Array, values[i] as Uint8Array)
  const b = new Builder(keys.length, bytes)
  for (let i = 0; i < keys.length; i++) b.entry(keys[i] as Uint8Array, values[i] as Uint8Array)
  return b.done()
}

/**
 * A leaf of the `count` entries of `src` (a whole encoded leaf page, checked by the caller)
 * in a buffer of its own: `readOffsets` writes each key's [start, end) into its offsets
 * (into the leaf's buffer itself: no array of their own), after the bytes are copied.
 */
export function leafOfBytes(src: Uint8Array, count: number, readOffsets: (offs: Uint32Array) => void): Leaf {
  const b = new Builder(count, src.length)
  b.buf.set(src)
  readOffsets(b.offs)
  const cpl = fillWords(b.buf, b.offs)
  return new Leaf(b.buf, b.offs, cpl, NO_KEYS, NO_VALUES, 0, count, src.length)
}

/**
 * A leaf over `src` itself (no copy): `offs` holds [keyStart, keyEnd) of each key and room
 * for their words, filled here. Only for a caller that merges it into new bytes at once
 * and drops it (page-in with deltas): `src` may be memory its owner reuses.
 */
export function leafViewOfBytes(src: Uint8Array, offs: Uint32Array): Leaf {
  const count = (offs.length / 3) | 0
  assert(offs.length === 3 * count, 'room for each key offset and word')
  const cpl = fillWords(src, offs)
  return new Leaf(src, offs, cpl, NO_KEYS, NO_VALUES, 0, count, src.length)
}

// ---- reading the base ----

function baseCount(l: Leaf): number {
  return (l.offs.length / 3) | 0
}

/** Start of base entry i (its key length varint); the end of the bytes for i = count. */
function entryStart(l: Leaf, i: number): number {
  if (i >= baseCount(l)) return l.buf.length
  const ks = l.offs[2 * i] as number
  return ks - varintBytes((l.offs[2 * i + 1] as number) - ks)
}

/** Position of key among the base entries: its index, or ~index of where it would go. */
function baseSearch(l: Leaf, key: Uint8Array): number {
  const offs = l.offs
  const n = (offs.length / 3) | 0
  const buf = l.buf
  const cpl = l.cpl
  if (cpl > 0) {
    const side = sharesPrefix(key, buf, offs[0] as number, cpl)
    if (side !== 0) return side < 0 ? ~0 : ~n
  }
  const w = wordAt(key, cpl, key.length)
  const words = 2 * n
  let lo = 0
  let hi = n
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const x = offs[words + mid] as number
    const c =
      x !== w
        ? x - w
        : compareFrom(buf, (offs[2 * mid] as number) + cpl, offs[2 * mid + 1] as number, key, cpl)
    if (c === 0) return mid
    if (c < 0) lo = mid + 1
    else hi = mid
  }
  return ~lo
}

/** [start, end) of base entry i's value. */
let valueEnd = 0
function valueStart(l: Leaf, i: number): number {
  const buf = l.buf
  let p = l.offs[2 * i + 1] as number
  let b = buf[p++] as number
  let len = b & 0x7f
  let scale = 128
  while (b & 0x80) {
    b = buf[p++] as number
    len += (b & 0x7f) * scale
    scale *= 128
  }
  valueEnd = p + len
  return p
}

function baseValue(l: Leaf, i: number): Uint8Array {
  const s = valueStart(l, i)
  return l.buf.subarray(s, valueEnd)
}

// ---- the overlay ----

/** Position of key in the overlay: its index, or ~index of where it would go. */
function overlaySearch(keys: readonly Uint8Array[], key: Uint8Array): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const c = compareBytes(keys[mid] as Uint8Array, key)
    if (c === 0) return mid
    if (c < 0) lo = mid + 1
    else hi = mid
  }
  return ~lo
}

/** The value of key, or undefined. A view of the leaf's bytes: never write to it. */
export function leafGet(l: Leaf, key: Uint8Array): Uint8Array | undefined {
  if (l.ovKeys.length > 0) {
    const j = overlaySearch(l.ovKeys, key)
    if (j >= 0) return l.ovVals[j]
  }
  const p = baseSearch(l, key)
  return p < 0 ? undefined : baseValue(l, p)
}

/** Where leafPut() leaves the value the key had before (undefined: none). */
export interface PutResult {
  /** A view of the leaf's bytes or the caller's array, as leafGet() returns: never write to it. */
  old: Uint8Array | undefined
}

/**
 * The leaf with key set to value, or removed (value undefined); `l` itself when removing a
 * key it does not hold. With `was`, also says what the key held: the search a put does
 * anyway, so a writer that needs the previous value does not search the leaf twice.
 */
export function leafPut(l: Leaf, key: Uint8Array, value: Uint8Array | undefined, was?: PutResult): Leaf {
  const j = l.ovKeys.length > 0 ? overlaySearch(l.ovKeys, key) : -1
  const p = baseSearch(l, key)
  const inBase = p >= 0
  let oldSize = 0
  if (j >= 0) {
    const ov = l.ovVals[j]
    if (ov !== undefined) oldSize = entryBytes(key, ov)
    if (was !== undefined) was.old = ov
  } else if (inBase) {
    oldSize = entryStart(l, p + 1) - entryStart(l, p)
    if (was !== undefined) was.old = baseValue(l, p)
  } else if (was !== undefined) {
    was.old = undefined
  }
  if (value === undefined && oldSize === 0) return l
  const count = l.count - (oldSize > 0 ? 1 : 0) + (value === undefined ? 0 : 1)
  const bytes =
    l.bytes -
    oldSize +
    (value === undefined ? 0 : entryBytes(key, value)) -
    varintBytes(l.count) +
    varintBytes(count)
  // New overlay arrays of their exact size: slice() then splice() grew the copy and made a
  // result array besides, per write.
  let keys: Uint8Array[]
  let vals: (Uint8Array | undefined)[]
  let ovBytes = l.ovBytes
  if (j >= 0) {
    ovBytes -= (l.ovKeys[j] as Uint8Array).length + (l.ovVals[j]?.length ?? 0)
    if (value === undefined && !inBase) {
      keys = withoutAt(l.ovKeys, j)
      vals = withoutAt(l.ovVals, j)
    } else {
      keys = l.ovKeys.slice()
      vals = l.ovVals.slice()
      keys[j] = key
      vals[j] = value
      ovBytes += key.length + (value?.length ?? 0)
    }
  } else {
    keys = withAt(l.ovKeys, ~j, key)
    vals = withAt(l.ovVals, ~j, value)
    ovBytes += key.length + (value?.length ?? 0)
  }
  if (keys.length > OVERLAY_MAX) {
    const m = merge(l, keys, vals)
    assert(m.count === count && m.bytes === bytes, 'a folded leaf keeps its size')
    return m
  }
  return new Leaf(l.buf, l.offs, l.cpl, keys, vals, ovBytes, count, bytes)
}

/** A copy of `a` with x inserted at index at. */
function withAt<T>(a: readonly T[], at: number, x: T): T[] {
  const n = a.length
  const out = new Array<T>(n + 1)
  for (let i = 0; i < at; i++) out[i] = a[i] as T
  out[at] = x
  for (let i = at; i < n; i++) out[i + 1] = a[i] as T
  return out
}

/** A copy of `a` without index at. */
function withoutAt<T>(a: readonly T[], at: number): T[] {
  const n = a.length
  const out = new Array<T>(n - 1)
  for (let i = 0; i < at; i++) out[i] = a[i] as T
  for (let i = at + 1; i < n; i++) out[i - 1] = a[i] as T
  return out
}

/**
 * The base of `l` with sorted distinct changes applied (value undefined: remove); the
 * overlay of `l` is ignored.
 */
function merge(l: Leaf, keys: readonly Uint8Array[], vals: readonly (Uint8Array | undefined)[]): Leaf {
  const n = baseCount(l)
  const at = new Int32Array(keys.length)
  let count = n
  let body = l.buf.length - headerBytes(n)
  for (let j = 0; j < keys.length; j++) {
    const key = keys[j] as Uint8Array
    const p = baseSearch(l, key)
    at[j] = p
    if (p >= 0) {
      count--
      body -= entryStart(l, p + 1) - entryStart(l, p)
    }
    const v = vals[j]
    if (v !== undefined) {
      count++
      body += entryBytes(key, v)
    }
  }
  const b = new Builder(count, headerBytes(count) + body)
  let i = 0
  for (let j = 0; j < keys.length; j++) {
    const p = at[j] as number
    const pos = p >= 0 ? p : ~p
    b.run(l, i, pos)
    i = p >= 0 ? p + 1 : pos
    const v = vals[j]
    if (v !== undefined) b.entry(keys[j] as Uint8Array, v)
  }
  b.run(l, i, n)
  return b.done()
}

/** Folds the overlay into new bytes (same entries); afterwards the positional calls work. */
export function fold(l: Leaf): Leaf {
  if (l.ovKeys.length === 0) return l
  const m = merge(l, l.ovKeys, l.ovVals)
  assert(m.count === l.count && m.bytes === l.bytes, 'a folded leaf keeps its size')
  l.buf = m.buf
  l.offs = m.offs
  l.cpl = m.cpl
  l.ovKeys = NO_KEYS
  l.ovVals = NO_VALUES
  l.ovBytes = 0
  return l
}

/**
 * The leaf with ops applied in order (value undefined: remove); later ops on a key win.
 * Builds new bytes once, whatever the number of ops.
 */
export function leafApply(l: Leaf, ops: readonly { key: Uint8Array; value: Uint8Array | undefined }[]): Leaf {
  if (ops.length === 0) return l
  fold(l)
  const order = ops.map((_, i) => i)
  order.sort(
    (a, b) => compareBytes((ops[a] as { key: Uint8Array }).key, (ops[b] as { key: Uint8Array }).key) || a - b,
  )
  const keys: Uint8Array[] = []
  const vals: (Uint8Array | undefined)[] = []
  for (let k = 0; k < order.length; k++) {
    const op = ops[order[k] as number] as { key: Uint8Array; value: Uint8Array | undefined }
    const next = order[k + 1]
    // Sorted stably: the last op of a run of equal keys is the one that counts.
    if (next !== undefined && compareBytes((ops[next] as { key: Uint8Array }).key, op.key) === 0) continue
    keys.push(op.key)
    vals.push(op.value)
  }
  return merge(l, keys, vals)
}

// ---- positional access (on folded leaves: callers fold() first) ----

function checkFolded(l: Leaf): void {
  assert(l.ovKeys.length === 0, 'positional access needs a folded leaf')
}

/** Position of key in a folded leaf: its index, or ~index of where it would go. */
export function leafSearch(l: Leaf, key: Uint8Array): number {
  checkFolded(l)
  return baseSearch(l, key)
}

/** Key i of a folded leaf, as a view of its bytes (never write to it). */
export function leafKeyAt(l: Leaf, i: number): Uint8Array {
  return l.buf.subarray(l.offs[2 * i] as number, l.offs[2 * i + 1] as number)
}

/** Value i of a folded leaf, as a view of its bytes (never write to it). */
export function leafValueAt(l: Leaf, i: number): Uint8Array {
  return baseValue(l, i)
}

/** A fresh copy of key i of a folded leaf. */
export function leafKeyCopy(l: Leaf, i: number): Uint8Array {
  return l.buf.slice(l.offs[2 * i] as number, l.offs[2 * i + 1] as number)
}

/** A fresh copy of value i of a folded leaf. */
export function leafValueCopy(l: Leaf, i: number): Uint8Array {
  const s = valueStart(l, i)
  return l.buf.slice(s, valueEnd)
}

/**
 * Copies base entries [from, to) of a folded leaf into one fresh buffer (one allocation and
 * one memcpy for a whole range chunk, not two per entry) and writes where each key and value
 * lies in it to `spans`: 4 per entry, [keyStart, keyEnd, valueStart, valueEnd).
 */
export function leafCopyRun(l: Leaf, from: number, to: number, spans: Uint32Array): Uint8Array {
  checkFolded(l)
  assert(spans.length >= 4 * (to - from), 'a span per entry')
  const s = entryStart(l, from)
  const bytes = l.buf.slice(s, entryStart(l, to))
  const offs = l.offs
  let k = 0
  for (let i = from; i < to; i++) {
    spans[k++] = (offs[2 * i] as number) - s
    spans[k++] = (offs[2 * i + 1] as number) - s
    spans[k++] = valueStart(l, i) - s
    spans[k++] = valueEnd - s
  }
  return bytes
}

/** Encoded bytes of entry i of a folded leaf. */
export function leafEntryBytes(l: Leaf, i: number): number {
  return entryStart(l, i + 1) - entryStart(l, i)
}

/** Entries [from, to) of a folded leaf, as a new leaf. */
export function leafSlice(l: Leaf, from: number, to: number): Leaf {
  checkFolded(l)
  const count = to - from
  const b = new Builder(count, headerBytes(count) + entryStart(l, to) - entryStart(l, from))
  b.run(l, from, to)
  return b.done()
}

/** The entries of two folded leaves, a's keys all below b's, as one leaf. */
export function leafConcat(a: Leaf, b: Leaf): Leaf {
  checkFolded(a)
  checkFolded(b)
  const na = baseCount(a)
  const nb = baseCount(b)
  const count = na + nb
  const body = a.buf.length - headerBytes(na) + b.buf.length - headerBytes(nb)
  const w = new Builder(count, headerBytes(count) + body)
  w.run(a, 0, na)
  w.run(b, 0, nb)
  return w.done()
}

/** Keys and values of a leaf as fresh arrays (for tools and tests). */
export function leafEntries(l: Leaf): { keys: Uint8Array[]; values: Uint8Array[] } {
  fold(l)
  const keys: Uint8Array[] = []
  const values: Uint8Array[] = []
  for (let i = 0; i < l.count; i++) {
    keys.push(leafKeyCopy(l, i))
    values.push(leafValueCopy(l, i))
  }
  return { keys, values }
}

/** Compares two byte ranges of buf (memcmp order), for the sort check at page-in. */
export function compareRanges(buf: Uint8Array, as: number, ae: number, bs: number, be: number): number {
  const la = ae - as
  const lb = be - bs
  const n = Math.min(la, lb)
  if (n >= 32) return Buffer.compare(buf.subarray(as, ae), buf.subarray(bs, be))
  for (let i = 0; i < n; i++) {
    const d = (buf[as + i] as number) - (buf[bs + i] as number)
    if (d !== 0) return d
  }
  return la - lb
}
