// The benchmark's data: a seeded PRNG and the records it draws, so every peer gets the same
// keys, values and access order from the same seed (printed with every run).

export const KEY_BYTES = 16
export const VALUE_BYTES = 100
/** A live record's payload: key + value. "Live data" for the disk goal is records × this. */
export const RECORD_BYTES = KEY_BYTES + VALUE_BYTES
export const BATCH_RECORDS = 1000
export const DEFAULT_SEED = 0xb0b51ed

/**
 * sfc32 (Chris Doty-Humphrey's small fast counting PRNG), seeded through splitmix32 so that
 * nearby seeds give unrelated streams. Returns uint32s.
 */
export function prng(seed) {
  let s = seed >>> 0
  const splitmix32 = () => {
    s = (s + 0x9e3779b9) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
  let a = splitmix32()
  let b = splitmix32()
  let c = splitmix32()
  let d = splitmix32()
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = (c << 21) | (c >>> 11)
    c = (c + t) >>> 0
    return t
  }
  for (let i = 0; i < 16; i++) next()
  return next
}

/** Fills `bytes` (length a multiple of 4, 4-byte aligned) from `next`. */
export function fill(next, bytes) {
  if (bytes.length % 4 !== 0 || bytes.byteOffset % 4 !== 0) throw new RangeError('fill: unaligned buffer')
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4)
  for (let i = 0; i < words.length; i++) words[i] = next()
}

/** An index in [0, n) from `next`. */
export function pick(next, n) {
  return Math.floor((next() / 0x1_0000_0000) * n)
}

/**
 * The record set: `records` distinct random 16-byte keys in load order. Streams are split by
 * purpose (keys, values per pass, reads, writers) so that changing one workload's length
 * does not shift another's data.
 */
export class Records {
  constructor(seed, records) {
    this.seed = seed
    this.records = records
    this.keyBuffer = Buffer.alloc(records * KEY_BYTES)
    fill(prng(seed), this.keyBuffer)
  }

  key(i) {
    return this.keyBuffer.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES)
  }

  /** A PRNG for one purpose (`stream` a small distinct integer per use). */
  stream(stream) {
    return prng((this.seed ^ Math.imul(stream + 1, 0x27d4eb2f)) >>> 0)
  }

  /**
   * Yields batches {keys, values} over all records in load order; pass 0 is the load, passes
   * 1..3 the overwrites (fresh values). Each batch gets new buffers, so an engine may keep a
   * reference until its write completes.
   */
  *batches(pass, batchRecords = BATCH_RECORDS) {
    const next = this.stream(100 + pass)
    for (let start = 0; start < this.records; start += batchRecords) {
      const count = Math.min(batchRecords, this.records - start)
      const valueBuffer = Buffer.alloc(count * VALUE_BYTES)
      fill(next, valueBuffer)
      const keys = new Array(count)
      const values = new Array(count)
      for (let j = 0; j < count; j++) {
        keys[j] = this.key(start + j)
        values[j] = valueBuffer.subarray(j * VALUE_BYTES, (j + 1) * VALUE_BYTES)
      }
      yield { keys, values }
    }
  }
}
