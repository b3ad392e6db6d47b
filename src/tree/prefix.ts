// Packed key words: what makes a node search cheap (docs/DESIGN.md, "Tree: read path").
// A node's keys, being sorted, all share the first `cpl` bytes of its first and last key.
// The next 4 bytes of every key, big-endian and zero-padded past its end, are packed in
// one Uint32Array, so a binary search steps through a few cache lines of words instead of
// one key (and its array object) per step, and compares whole keys only when two words tie.
//
// Why a word decides: for keys a and b that share their first cpl bytes, word(a) < word(b)
// implies a < b. At the first byte where the zero-padded words differ, either both keys have
// a real byte there (so that byte decides) or the smaller side is past the end of its key,
// which makes that key a proper prefix of the other: smaller in memcmp order. The other
// side cannot be past its end, since its padding 0 would then be the smaller byte. Equal
// words decide nothing (a key and that key followed by zero bytes have the same word).

/** Bytes the keys in buf[as, ae) and buf[bs, be) have in common at their start. */
export function commonPrefixBytes(
  a: Uint8Array,
  as: number,
  ae: number,
  b: Uint8Array,
  bs: number,
  be: number,
): number {
  const n = Math.min(ae - as, be - bs)
  let i = 0
  while (i < n && a[as + i] === b[bs + i]) i++
  return i
}

/** The word of the key in buf[s, e): its 4 bytes from s, big-endian, zero-padded past e. */
export function wordAt(buf: Uint8Array, s: number, e: number): number {
  if (e - s >= 4)
    return (
      (((buf[s] as number) << 24) |
        ((buf[s + 1] as number) << 16) |
        ((buf[s + 2] as number) << 8) |
        (buf[s + 3] as number)) >>>
      0
    )
  let w = 0
  for (let i = 0; i < 4; i++) w = w * 256 + (s + i < e ? (buf[s + i] as number) : 0)
  return w
}

/**
 * Where `key` stands against a node's shared prefix, `first[fs, fs + cpl)`: -1 when it is
 * below every key of the node, 1 when above every key, 0 when it starts with the prefix (its
 * order among the keys is then decided from byte cpl on).
 */
export function sharesPrefix(key: Uint8Array, first: Uint8Array, fs: number, cpl: number): number {
  const n = Math.min(cpl, key.length)
  for (let i = 0; i < n; i++) {
    const d = (key[i] as number) - (first[fs + i] as number)
    if (d !== 0) return d < 0 ? -1 : 1
  }
  // A key that ends inside the prefix is a proper prefix of every key of the node.
  return key.length < cpl ? -1 : 0
}

/** memcmp order of buf[s, e) against key[from, key.length). */
export function compareFrom(buf: Uint8Array, s: number, e: number, key: Uint8Array, from: number): number {
  const la = e - s
  const lb = key.length - from
  const n = Math.min(la, lb)
  for (let i = 0; i < n; i++) {
    const d = (buf[s + i] as number) - (key[from + i] as number)
    if (d !== 0) return d
  }
  return la - lb
}
