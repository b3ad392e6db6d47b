import { InvariantError } from '../errors.js'

/** Asserts an invariant bobsled relies on. A failure is a bug, never a user error. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message)
}

export function unreachable(value: never, message = 'unreachable'): never {
  throw new InvariantError(`${message}: ${String(value)}`)
}
