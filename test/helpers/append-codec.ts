// A page is its bytes and a delta appends bytes; built in the page cache's arena when it
// has one (appendCodec) or not (plainAppendCodec). Shared by the page cache tests.

import type { PageCodec } from '../../src/pagecache/index.js'

export const appendCodec: PageCodec<Uint8Array> = {
  materialize(base, deltas) {
    const page = new Uint8Array(appendCodec.arena?.builtBytes(base, deltas) as number)
    appendCodec.arena?.build(base, deltas, page)
    return page
  },
  encode: (page) => page,
  memoryBytes: (page) => page.length + 64,
  arena: {
    builtBytes(base, deltas) {
      let n = base.length
      for (const d of deltas) n += d.length
      return n
    },
    build(base, deltas, out) {
      out.set(base)
      let at = base.length
      for (const d of deltas) {
        out.set(d, at)
        at += d.length
      }
    },
  },
}

/** The same pages without the arena hook: the page cache hands the codec its own arrays. */
export const plainAppendCodec: PageCodec<Uint8Array> = {
  materialize(base, deltas) {
    let n = base.length
    for (const d of deltas) n += d.length
    const page = new Uint8Array(n)
    page.set(base)
    let at = base.length
    for (const d of deltas) {
      page.set(d, at)
      at += d.length
    }
    return page
  },
  encode: (page) => page,
  memoryBytes: (page) => page.length + 64,
}

/** `n` bytes of a pattern that differs by seed. */
export const bytesOf = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff
  return b
}
