// A FIFO async mutex. One per database (never process-global): it serialises writers so
// that a writer's plan, made across awaits for page-ins, is still true when it commits.

export class Mutex {
  private tail: Promise<void> = Promise.resolve()
  private held = 0

  get isLocked(): boolean {
    return this.held > 0
  }

  /** Resolves with the release function once every earlier holder has released. */
  lock(): Promise<() => void> {
    let release!: () => void
    const mine = new Promise<void>((resolve) => {
      release = resolve
    })
    const prev = this.tail
    this.tail = prev.then(() => mine)
    this.held++
    return prev.then(() => {
      let released = false
      return () => {
        if (released) return
        released = true
        this.held--
        release()
      }
    })
  }
}
