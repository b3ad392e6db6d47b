// Promises waiting for an LSN to pass a moving point (stable or written), kept in a
// binary min-heap so that each advance releases exactly the waiters it covers.

interface Waiter {
  lsn: number
  resolve: () => void
  reject: (e: Error) => void
}

export class LsnWaiters {
  private readonly heap: Waiter[] = []

  get size(): number {
    return this.heap.length
  }

  /** The lowest LSN waited for (Infinity: nobody waits). */
  get minLsn(): number {
    return this.heap.length === 0 ? Number.POSITIVE_INFINITY : (this.heap[0] as Waiter).lsn
  }

  wait(lsn: number): Promise<void> {
    return new Promise<void>((resolve, reject) => this.push({ lsn, resolve, reject }))
  }

  /** Resolves every waiter whose LSN is ≤ `point`; returns how many. */
  releaseUpTo(point: number): number {
    let n = 0
    const h = this.heap
    while (h.length > 0 && (h[0] as Waiter).lsn <= point) {
      ;(this.pop() as Waiter).resolve()
      n++
    }
    return n
  }

  rejectAll(e: Error): void {
    const all = this.heap.splice(0)
    for (const w of all) w.reject(e)
  }

  private push(w: Waiter): void {
    const h = this.heap
    h.push(w)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >>> 1
      if ((h[p] as Waiter).lsn <= w.lsn) break
      h[i] = h[p] as Waiter
      i = p
    }
    h[i] = w
  }

  private pop(): Waiter | undefined {
    const h = this.heap
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        if (l >= h.length) break
        const r = l + 1
        const c = r < h.length && (h[r] as Waiter).lsn < (h[l] as Waiter).lsn ? r : l
        if ((h[c] as Waiter).lsn >= last.lsn) break
        h[i] = h[c] as Waiter
        i = c
      }
      h[i] = last
    }
    return top
  }
}
