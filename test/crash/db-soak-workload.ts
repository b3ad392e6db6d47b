// The R15 soak's database workload, shared by its writer child (test/helpers/soak-db-child.ts)
// and the parent that checks it (db-soak.ts): Zipf-distributed keys over a few trees and
// self-checking values of 1 B to 1 MiB.
//
// A value written by write w is the string `${w}:` repeated to its length (Buffer.alloc's
// fill), so a recovered value names the write that put it there and every byte of it can be
// checked against that write's announced length (a torn blob, a value from another write
// or another length is caught). A value shorter than its own `${w}:` id cannot name its
// write, so lengths are raised to the id's length: the smallest values are 2–9 bytes.

import type { Prng } from '../../src/util/prng.js'

/** The default tree and two named ones (History's op.tree indexes this). */
export const SOAK_TREES = ['', 'users', 'events'] as const
export const SOAK_KEYS_PER_TREE = 1024
/** YCSB's Zipf constant: a few keys take most writes (hot pages, constant overwrites). */
export const ZIPF_THETA = 0.99
export const SOAK_VALUE_BYTES_MAX = 1024 * 1024

export const soakKeyName = (k: number): string => `k${String(k).padStart(4, '0')}`

/** Parses a key of this workload back to its index, or -1. */
export function soakKeyIndex(key: Uint8Array): number {
  const s = Buffer.from(key).toString('latin1')
  if (!/^k\d{4}$/.test(s)) return -1
  const k = Number(s.slice(1))
  return k < SOAK_KEYS_PER_TREE ? k : -1
}

export const soakValueBytes = (w: number, len: number): Buffer =>
  Buffer.alloc(Math.max(len, `${w}:`.length), `${w}:`)

/** The length a value of write w really has (see soakValueBytes). */
export const soakValueLen = (w: number, len: number): number => Math.max(len, `${w}:`.length)

/** The write id a value names, or -1 when the value is not a whole, well-formed one. */
export function soakValueWrite(v: Uint8Array): number {
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  const colon = b.indexOf(0x3a)
  if (colon <= 0 || colon > 16) return -1
  const w = Number(b.toString('latin1', 0, colon))
  if (!Number.isSafeInteger(w) || w < 0) return -1
  return b.equals(soakValueBytes(w, b.length)) ? w : -1
}

/** Cumulative Zipf weights over the key ranks; a rank is then mapped to a scattered key. */
const cdf: number[] = (() => {
  const out: number[] = []
  let sum = 0
  for (let i = 1; i <= SOAK_KEYS_PER_TREE; i++) {
    sum += 1 / i ** ZIPF_THETA
    out.push(sum)
  }
  return out.map((x) => x / sum)
})()

/** A key index, Zipf by rank; hot ranks are spread over the key space (not one leaf). */
export function zipfKey(rng: Prng): number {
  const u = rng.float()
  let lo = 0
  let hi = cdf.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((cdf[mid] as number) < u) lo = mid + 1
    else hi = mid
  }
  // 389 is coprime with 1024: a permutation of the ranks.
  return (lo * 389) % SOAK_KEYS_PER_TREE
}

/**
 * 1 B to 1 MiB, skewed: 80% up to 100 B, 13% up to 4 KiB, 5% up to 64 KiB (most over the
 * blob threshold of 64 KiB segments), 1.5% up to 512 KiB, 0.5% from 768 KiB to 1 MiB.
 */
export function soakValueLenDraw(rng: Prng): number {
  const r = rng.float()
  if (r < 0.8) return 1 + rng.int(100)
  if (r < 0.93) return 100 + rng.int(4 * 1024 - 100)
  if (r < 0.98) return 4 * 1024 + rng.int(60 * 1024)
  if (r < 0.995) return 64 * 1024 + rng.int(448 * 1024)
  return 768 * 1024 + rng.int(SOAK_VALUE_BYTES_MAX - 768 * 1024 + 1)
}
