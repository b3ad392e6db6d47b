// Every error bobsled throws on purpose is a BobsledError with a stable `code`.
// Codes are documented one heading each in docs/ERRORS.md; never rename one.

export type ErrorCode =
  | 'BOBSLED_IO'
  | 'BOBSLED_DISK_FULL'
  | 'BOBSLED_CORRUPTION'
  | 'BOBSLED_NOT_A_DATABASE'
  | 'BOBSLED_VERSION'
  | 'BOBSLED_LOCKED'
  | 'BOBSLED_PERMISSION'
  | 'BOBSLED_LIMIT'
  | 'BOBSLED_INVALID_ARGUMENT'
  | 'BOBSLED_CLOSED'
  | 'BOBSLED_FAILPOINT'
  | 'BOBSLED_INVARIANT'

export interface BobsledError extends Error {
  readonly code: ErrorCode
}

export function isBobsledError(e: unknown): e is BobsledError {
  if (!(e instanceof Error)) return false
  const code = (e as unknown as { code?: unknown }).code
  return typeof code === 'string' && code.startsWith('BOBSLED_')
}

/** Operating-condition errors: IO, corruption, locks. */
export class StorageError extends Error implements BobsledError {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/**
 * A read, write, sync, rename or other file operation failed. After an IoError from a
 * write or a datasync the database instance is poisoned: reopen it to continue.
 */
export class IoError extends StorageError {
  readonly file: string | undefined
  readonly syscallCode: string | undefined
  constructor(message: string, facts: { file?: string; cause?: unknown } = {}) {
    super('BOBSLED_IO', message, { cause: facts.cause })
    this.file = facts.file
    this.syscallCode = errnoCode(facts.cause)
  }
}

/** ENOSPC or EFBIG: a write could not be stored. The instance is poisoned like any IoError. */
export class DiskFullError extends IoError {
  constructor(message: string, facts: { file?: string; cause?: unknown } = {}) {
    super(message, facts)
    ;(this as { code: ErrorCode }).code = 'BOBSLED_DISK_FULL'
  }
}

/** Bytes on disk failed a check (CRC, segment number, structure) where data must be intact. */
export class CorruptionError extends StorageError {
  readonly file: string | undefined
  readonly offset: number | undefined
  readonly lsn: number | undefined
  constructor(
    message: string,
    facts: { file?: string; offset?: number; lsn?: number; cause?: unknown } = {},
  ) {
    super('BOBSLED_CORRUPTION', message, { cause: facts.cause })
    this.file = facts.file
    this.offset = facts.offset
    this.lsn = facts.lsn
  }
}

/** The folder holds files that are not a bobsled database. Nothing was changed. */
export class NotADatabaseError extends StorageError {
  readonly file: string | undefined
  constructor(message: string, facts: { file?: string } = {}) {
    super('BOBSLED_NOT_A_DATABASE', message)
    this.file = facts.file
  }
}

/** The files were written by a format version this build cannot read. */
export class VersionError extends StorageError {
  constructor(message: string) {
    super('BOBSLED_VERSION', message)
  }
}

/** Another opener (this process or another) holds the database folder. */
export class DatabaseLockedError extends StorageError {
  readonly path: string
  readonly holderPid: number | undefined
  constructor(message: string, facts: { path: string; holderPid?: number }) {
    super('BOBSLED_LOCKED', message)
    this.path = facts.path
    this.holderPid = facts.holderPid
  }
}

/** The operating system refused access (EACCES, EPERM). */
export class PermissionError extends StorageError {
  constructor(message: string, facts: { cause?: unknown } = {}) {
    super('BOBSLED_PERMISSION', message, { cause: facts.cause })
  }
}

/** The instance was closed; open it again to continue. */
export class ClosedError extends StorageError {
  constructor(message = 'the log is closed') {
    super('BOBSLED_CLOSED', message)
  }
}

/** A named failpoint fired (tests only). */
export class FailpointError extends StorageError {
  readonly failpoint: string
  constructor(name: string) {
    super('BOBSLED_FAILPOINT', `failpoint "${name}" fired`)
    this.failpoint = name
  }
}

/** A value is over a published limit. Thrown before any state changes. */
export class LimitError extends RangeError implements BobsledError {
  readonly code = 'BOBSLED_LIMIT' as const
  readonly limit: string
  readonly maximum: number
  readonly actual: number
  constructor(limit: string, maximum: number, actual: number) {
    super(`${limit} is ${actual}, over the limit of ${maximum}`)
    this.name = 'LimitError'
    this.limit = limit
    this.maximum = maximum
    this.actual = actual
  }
}

/** Misuse of the API: a wrong type or an impossible option. Thrown before any state changes. */
export class InvalidArgumentError extends TypeError implements BobsledError {
  readonly code = 'BOBSLED_INVALID_ARGUMENT' as const
  constructor(message: string) {
    super(message)
    this.name = 'InvalidArgumentError'
  }
}

/** A broken internal invariant: always a bug in bobsled, never a user error. */
export class InvariantError extends Error implements BobsledError {
  readonly code = 'BOBSLED_INVARIANT' as const
  constructor(message: string) {
    super(`invariant violated: ${message}`)
    this.name = 'InvariantError'
  }
}

export function errnoCode(e: unknown): string | undefined {
  if (e !== null && typeof e === 'object' && typeof (e as { code?: unknown }).code === 'string') {
    return (e as { code: string }).code
  }
  return undefined
}

/** Wraps an error from the `fs` layer (or the simulated disk) in the matching typed error. */
export function wrapIoError(e: unknown, what: string, file?: string): StorageError {
  if (isBobsledError(e)) return e as StorageError
  const code = errnoCode(e)
  const facts = { file, cause: e }
  const where = file === undefined ? what : `${what} (${file})`
  if (code === 'ENOSPC' || code === 'EFBIG' || code === 'EDQUOT') {
    return new DiskFullError(`${where}: no space left (${code})`, facts)
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new PermissionError(`${where}: permission denied (${code})`, { cause: e })
  }
  const detail = e instanceof Error ? e.message : String(e)
  return new IoError(`${where} failed: ${detail}`, facts)
}
