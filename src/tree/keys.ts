// Keys are byte strings ordered bytewise (memcmp, shorter first on a tie), as in sled.

import { Buffer } from 'node:buffer'

/** Below this many bytes a JS loop beats the native call's overhead (measured ~3x). */
const NATIVE_COMPARE_MIN_BYTES = 32

/** memcmp order: negative when a < b, 0 when equal, positive when a > b. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  if (n >= NATIVE_COMPARE_MIN_BYTES) return Buffer.compare(a, b)
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number)
    if (d !== 0) return d
  }
  return a.length - b.length
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** Index of the first key ≥ `key` (keys sorted ascending). */
export function lowerBound(keys: readonly Uint8Array[], key: Uint8Array): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareBytes(keys[mid] as Uint8Array, key) < 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** Index of the first key > `key` (keys sorted ascending). */
export function upperBound(keys: readonly Uint8Array[], key: Uint8Array): number {
  let lo = 0
  let hi = keys.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (compareBytes(keys[mid] as Uint8Array, key) <= 0) lo = mid + 1
    else hi = mid
  }
  return lo
}

/**
 * The smallest key greater than every key that starts with `prefix`, or undefined when no
 * such key exists (the prefix is empty or all 0xff bytes).
 */
export function prefixEnd(prefix: Uint8Array): Uint8Array | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if ((prefix[i] as number) < 0xff) {
      const end = prefix.slice(0, i + 1)
      end[i] = (end[i] as number) + 1
      return end
    }
  }
  return undefined
}
