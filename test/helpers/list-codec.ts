// A small page codec for page cache tests: a page is a list of strings; a delta appends
// one. Its encoding is deliberately simple so a test can predict every byte count.

import type { PageCodec } from '../../src/pagecache/index.js'

export interface ListPage {
  items: string[]
}

const enc = new TextEncoder()
const dec = new TextDecoder()

export const listCodec: PageCodec<ListPage> = {
  materialize(base, deltas) {
    const items = JSON.parse(dec.decode(base)) as string[]
    for (const d of deltas) items.push(dec.decode(d))
    return { items }
  },
  encode(page) {
    return enc.encode(JSON.stringify(page.items))
  },
  memoryBytes(page) {
    let n = 32
    for (const s of page.items) n += 16 + s.length * 2
    return n
  },
}

export const deltaOf = (item: string): Uint8Array => enc.encode(item)
