import { InvariantError } from '../errors.js'

/**
 * Asserts an invariant bobsled relies on. A failure is a bug, never a user error.
 *
 * On a path run per page or per operation, give a constant message, or write
 * `if (!cond) throw new InvariantError(\`...${id}\`)`: a template literal passed here is
 * built on every call, and a number in it goes through V8's number-string cache, which
 * keeps each new string alive past the next scavenge. Those strings were a good part of
 * what survived scavenges in the peak-RSS bench (docs/DESIGN.md, "Peak RSS").
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message)
}

export function unreachable(value: never, message = 'unreachable'): never {
  throw new InvariantError(`${message}: ${String(value)}`)
}
