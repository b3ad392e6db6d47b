// A FIFO async mutex. One per database (never process-global): it serialises writers so
// that a writer's plan, made across awaits for page-ins, is still true when it commits.
// unlock() hands the mutex straight to the first waiter, so a tryLock() can never take it
// ahead of a writer that queued earlier. A free mutex is taken with no promise at all: most
// writes find it free, and a promise chain per lock was a third of a write's allocations.

import { InvariantError } from '../errors.js'

export class Mutex {
  private held = false
  /** Wake-ups of the writers waiting, first come first served. */
  private readonly waiters: (() => void)[] = []

  /** Held, or handed over to a waiter that has not run yet. */
  get isLocked(): boolean {
    return this.held
  }

  /** Takes the mutex if it is free; false when it is held (the caller then queues with lock()). */
  tryLock(): boolean {
    if (this.held) return false
    this.held = true
    return true
  }

  /** Resolves once every earlier holder has released; the caller then holds the mutex. */
  lock(): Promise<void> {
    if (!this.held) {
      this.held = true
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      this.waiters.push(resolve)
    })
  }

  /** Releases the mutex; it passes to the first waiter, if any. Called once per lock. */
  unlock(): void {
    if (!this.held) throw new InvariantError('Mutex.unlock() of a free mutex')
    const next = this.waiters.shift()
    if (next === undefined) this.held = false
    else next()
  }
}
