// Named failpoints, per log instance (never process-global): a test arms one and the code
// path that evaluates it throws FailpointError, which the log treats like an IO failure.

import { FailpointError } from '../errors.js'

/** Names evaluated by the log; see docs/DESIGN.md for where each sits. */
export type FailpointName =
  | 'buffer write'
  | 'buffer write post'
  | 'datasync'
  | 'blob write'
  | 'blob sync'
  | 'segment zero'
  | 'segment shrink'
  | 'recovery zero'
  | 'conf write'

interface Armed {
  /** Evaluations to let pass before firing. */
  skip: number
  /** Firings left; Infinity keeps it firing. */
  times: number
}

export class Failpoints {
  private readonly armed = new Map<string, Armed>()

  /** Arms `name`: let `skip` evaluations pass, then fire `times` times (default once). */
  set(name: FailpointName, options: { skip?: number; times?: number } = {}): void {
    this.armed.set(name, { skip: options.skip ?? 0, times: options.times ?? 1 })
  }

  clear(name?: FailpointName): void {
    if (name === undefined) this.armed.clear()
    else this.armed.delete(name)
  }

  /** Throws FailpointError when `name` is armed and due. */
  hit(name: FailpointName): void {
    if (this.armed.size === 0) return
    const a = this.armed.get(name)
    if (a === undefined) return
    if (a.skip > 0) {
      a.skip--
      return
    }
    a.times--
    if (a.times <= 0) this.armed.delete(name)
    throw new FailpointError(name)
  }
}
