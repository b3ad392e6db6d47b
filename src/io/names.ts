// Checks shared by both storage backends, so the simulated disk refuses exactly what the
// real one refuses and a test on SimDisk can't pass with a name FileStorage would reject.

import { InvalidArgumentError } from '../errors.js'

/**
 * Splits a storage name ('blobs/42') into its parts. Rejects anything that could leave the
 * database folder or mean different things on different platforms: absolute paths, '..',
 * '.', empty parts, backslashes (a separator on Windows) and NUL.
 * `allowRoot` lets '' stand for the database folder itself (list, syncDir).
 */
export function splitName(name: string, allowRoot = false): string[] {
  if (typeof name !== 'string')
    throw new InvalidArgumentError(`a file name must be a string, got ${typeof name}`)
  if (name === '') {
    if (allowRoot) return []
    throw new InvalidArgumentError('a file name must not be empty')
  }
  if (name.includes('\0')) throw new InvalidArgumentError(`file name ${JSON.stringify(name)} contains NUL`)
  if (name.includes('\\')) {
    throw new InvalidArgumentError(`file name ${JSON.stringify(name)} contains a backslash; use '/'`)
  }
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) {
    throw new InvalidArgumentError(
      `file name ${JSON.stringify(name)} is absolute; names are relative to the database folder`,
    )
  }
  const parts = name.split('/')
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') {
      throw new InvalidArgumentError(
        `file name ${JSON.stringify(name)} has an empty, '.' or '..' part; names must stay inside the database folder`,
      )
    }
  }
  return parts
}

/** Checks the arguments of a positional read or write before anything touches the disk. */
export function checkIoRange(buffer: Uint8Array, offset: number, length: number, position: number): void {
  if (!(buffer instanceof Uint8Array)) throw new InvalidArgumentError('buffer must be a Uint8Array')
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new InvalidArgumentError(`offset must be a non-negative integer, got ${offset}`)
  }
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new InvalidArgumentError(`length must be a non-negative integer, got ${length}`)
  }
  if (offset + length > buffer.length) {
    throw new InvalidArgumentError(
      `offset + length (${offset + length}) is past the buffer end (${buffer.length})`,
    )
  }
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new InvalidArgumentError(`position must be a non-negative integer, got ${position}`)
  }
}

export function checkSize(sizeBytes: number): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
    throw new InvalidArgumentError(`size must be a non-negative integer, got ${sizeBytes}`)
  }
}
