// A small seeded PRNG (sfc32, seeded through splitmix32) so every simulated run replays
// exactly from its seed. Not for anything that needs unpredictability (tokens use crypto).

/** splitmix32: spreads a weak seed (0, 1, 2, ...) over all 32 bits. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0
  let z = state.s
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

/** Mixes two numbers into a new 32-bit seed (child streams: `mixSeed(seed, step)`). */
export function mixSeed(a: number, b: number): number {
  const state = { s: (a ^ Math.imul(b | 0, 0x27d4eb2d)) | 0 }
  splitmix32(state)
  return splitmix32(state)
}

export class Prng {
  readonly seed: number
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Prng seed must be a finite number, got ${seed}`)
    // Seeds above 2^32 keep their high bits instead of being silently truncated.
    const low = seed >>> 0
    const high = Math.floor(seed / 0x100000000) >>> 0
    this.seed = seed
    const state = { s: (low ^ Math.imul(high, 0x9e3779b1)) | 0 }
    this.a = splitmix32(state)
    this.b = splitmix32(state)
    this.c = splitmix32(state)
    this.d = 1
    for (let i = 0; i < 12; i++) this.next()
  }

  /** A uniform unsigned 32-bit integer. */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.next() / 0x100000000
  }

  /** A uniform integer in [0, maxExclusive). maxExclusive must be in 1..2^32. */
  int(maxExclusive: number): number {
    if (!(maxExclusive >= 1 && maxExclusive <= 0x100000000) || !Number.isInteger(maxExclusive)) {
      throw new RangeError(`Prng.int needs an integer in 1..2^32, got ${maxExclusive}`)
    }
    // Rejection sampling: a plain modulo would favour small results for large bounds.
    const limit = 0x100000000 - (0x100000000 % maxExclusive)
    for (;;) {
      const x = this.next()
      if (x < limit) return x % maxExclusive
    }
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.float() < p
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Prng.pick from an empty array')
    return items[this.int(items.length)] as T
  }

  /** Fisher-Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      const tmp = items[i] as T
      items[i] = items[j] as T
      items[j] = tmp
    }
    return items
  }

  /** A copy in the same state: both then produce the same sequence. */
  clone(): Prng {
    const p = new Prng(this.seed)
    p.a = this.a
    p.b = this.b
    p.c = this.c
    p.d = this.d
    return p
  }

  /** An independent stream, so one consumer's draws don't shift another's. */
  fork(): Prng {
    return new Prng(mixSeed(this.next(), this.next()))
  }
}
