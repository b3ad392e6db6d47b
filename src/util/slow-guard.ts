// Counts which of the last few timed operations were slow, and says when to back off: an
// operation done on the main thread (a synchronous read or write) is fast while the OS
// serves it from memory, and blocks the event loop for a device access when it does not.

/** Set bits of a 32-bit integer. */
function bitCount(x: number): number {
  let n = 0
  for (let v = x >>> 0; v !== 0; v &= v - 1) n++
  return n
}

export class SlowGuard {
  /** Which of the last `window` operations were slow, one bit each (newest: bit 0). */
  private slowBits = 0
  private backoffLeft = 0

  /** Trips when `trip` of the last `window` (at most 31) noted operations were slow. */
  constructor(
    private readonly window: number,
    private readonly trip: number,
  ) {}

  /**
   * Whether the next operation must take the slow-disk path; each call while backing off
   * uses up one of the operations it was tripped for.
   */
  isBackingOff(): boolean {
    if (this.backoffLeft === 0) return false
    this.backoffLeft--
    return true
  }

  /** Notes one operation done the fast way; a trip backs off for the next `backoff` operations. */
  note(isSlow: boolean, backoff: number): void {
    this.slowBits = ((this.slowBits << 1) | (isSlow ? 1 : 0)) & ((1 << this.window) - 1)
    if (isSlow && bitCount(this.slowBits) >= this.trip) {
      this.backoffLeft = backoff
      this.slowBits = 0
    }
  }
}
