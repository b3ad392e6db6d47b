// The page codec of the page cache benchmark (`bench/pagecache.ts`): a page is one byte
// string (a Uint8Array of its own), a delta appends bytes to it or replaces it whole.
//
// Delta bytes: one op byte, then the payload.
//   0x01 append  — the payload is appended to the page
//   0x02 replace — the payload becomes the page

import type { PageCodec } from '../src/pagecache/index.js'

const OP_APPEND = 0x01
const OP_REPLACE = 0x02

/**
 * Memory of a Uint8Array beyond its bytes: the JSTypedArray and JSArrayBuffer objects
 * (~190 B of heap, measured with `--expose-gc` over 100k arrays of 150 B and 4 KiB on
 * node 20) plus the backing store's malloc and bookkeeping, rounded up.
 */
export const UINT8ARRAY_OVERHEAD_BYTES = 256

export const bytesCodec: PageCodec<Uint8Array> = {
  materialize(base, deltas) {
    // A copy, like a codec that decodes (the tree's): the base is a view valid for this
    // call only (PageCodec.materialize).
    let page = base.slice()
    for (const d of deltas) {
      const op = d[0]
      const payload = d.subarray(1)
      if (op === OP_REPLACE) {
        page = payload.slice()
      } else if (op === OP_APPEND) {
        const next = new Uint8Array(page.length + payload.length)
        next.set(page)
        next.set(payload, page.length)
        page = next
      } else {
        throw new RangeError(`bench delta op ${op} is unknown`)
      }
    }
    return page
  },
  encode(page) {
    return page
  },
  memoryBytes(page) {
    return page.byteLength + UINT8ARRAY_OVERHEAD_BYTES
  },
  // Pages are byte strings: the page cache keeps them in its arena and builds page-ins
  // there (the same bytes materialize() makes, without an array per page-in).
  arena: {
    builtBytes(base, deltas) {
      let n = base.length
      for (const d of deltas) n = d[0] === OP_REPLACE ? d.length - 1 : n + d.length - 1
      return n
    },
    build(base, deltas, out) {
      // Only what the last replace (or the base) left, then the appends after it.
      let from = -1
      for (let i = 0; i < deltas.length; i++) if ((deltas[i] as Uint8Array)[0] === OP_REPLACE) from = i
      let at = 0
      if (from < 0) {
        out.set(base)
        at = base.length
      }
      for (let i = Math.max(from, 0); i < deltas.length; i++) {
        const d = deltas[i] as Uint8Array
        if (d[0] !== OP_REPLACE && d[0] !== OP_APPEND)
          throw new RangeError(`bench delta op ${d[0]} is unknown`)
        if (d[0] === OP_REPLACE) at = 0
        out.set(d.subarray(1), at)
        at += d.length - 1
      }
    },
  },
}

export function appendDelta(bytes: Uint8Array): Uint8Array {
  const d = new Uint8Array(1 + bytes.length)
  d[0] = OP_APPEND
  d.set(bytes, 1)
  return d
}

export function replaceDelta(bytes: Uint8Array): Uint8Array {
  const d = new Uint8Array(1 + bytes.length)
  d[0] = OP_REPLACE
  d.set(bytes, 1)
  return d
}
