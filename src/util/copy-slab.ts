// Fresh copies (of values for callers, of keys and values the tree keeps, of short records
// the log copies at once), carved out of shared slabs as Node's Buffer pool does.
// A Uint8Array of more than 64 bytes gets a backing store of its own (malloc plus external
// memory accounting); a view into a slab does not, so a small copy costs about a third of
// slice() (measured on Node 20). The copy is still the caller's alone: no tree byte is
// shared, and a slab is never handed out twice. A caller keeping one value keeps its slab
// alive (at most SLAB_BYTES), as with Buffers; values report their place with byteOffset.

const SLAB_BYTES = 8192
/** Larger copies get a buffer of their own, so one value never pins much more than itself. */
const POOLED_BYTES_MAX = SLAB_BYTES >>> 3

/** One per database (no process-global state): the slab copies are carved from. */
export class CopySlab {
  private slab = new ArrayBuffer(0)
  private used = 0

  /** A fresh copy of src. */
  copy(src: Uint8Array): Uint8Array {
    const n = src.length
    if (n > POOLED_BYTES_MAX) return src.slice()
    const out = this.carve(n)
    out.set(src)
    return out
  }

  /** n fresh zero bytes, never handed out before. */
  alloc(n: number): Uint8Array {
    return n > POOLED_BYTES_MAX ? new Uint8Array(n) : this.carve(n)
  }

  private carve(n: number): Uint8Array {
    if (this.used + n > this.slab.byteLength) {
      this.slab = new ArrayBuffer(SLAB_BYTES)
      this.used = 0
    }
    const out = new Uint8Array(this.slab, this.used, n)
    // 8-byte steps keep every copy aligned for a caller's wider views (DataView, Float64Array).
    this.used = (this.used + n + 7) & ~7
    return out
  }
}
