// The packed state word of one IoBuf: offset (bytes reserved, 24 bits), open writers
// (6 bits), sealed, maxed. Pure functions over a u32 so the same state machine can later
// live in an Int32Array cell of a SharedArrayBuffer and be driven by Atomics.compareExchange
// from worker threads (see docs/DESIGN.md). Today one isolate owns it and mutates it
// synchronously, so no CAS is needed.

export const OFFSET_BITS = 24
export const MAX_OFFSET = (1 << OFFSET_BITS) - 1
export const MAX_WRITERS = 63

const WRITER_UNIT = 1 << OFFSET_BITS
const WRITER_MASK = 0x3f << OFFSET_BITS
const SEALED_BIT = 1 << 30
const MAXED_BIT = 0x8000_0000

export type HeaderWord = number

export const EMPTY_HEADER: HeaderWord = 0

export const offsetOf = (h: HeaderWord): number => h & MAX_OFFSET
export const writersOf = (h: HeaderWord): number => (h & WRITER_MASK) >>> OFFSET_BITS
export const isSealed = (h: HeaderWord): boolean => (h & SEALED_BIT) !== 0
export const isMaxed = (h: HeaderWord): boolean => (h & MAXED_BIT) >>> 0 !== 0

export function withOffset(h: HeaderWord, offset: number): HeaderWord {
  if (offset < 0 || offset > MAX_OFFSET) throw new RangeError(`offset ${offset} does not fit the header word`)
  return ((h & ~MAX_OFFSET) | offset) >>> 0
}

export function bumpOffset(h: HeaderWord, bytes: number): HeaderWord {
  return withOffset(h, offsetOf(h) + bytes)
}

export function incrementWriters(h: HeaderWord): HeaderWord {
  if (writersOf(h) >= MAX_WRITERS) throw new RangeError('too many open writers in one buffer')
  return (h + WRITER_UNIT) >>> 0
}

export function decrementWriters(h: HeaderWord): HeaderWord {
  if (writersOf(h) === 0) throw new RangeError('no open writer to release')
  return (h - WRITER_UNIT) >>> 0
}

export const markSealed = (h: HeaderWord): HeaderWord => (h | SEALED_BIT) >>> 0
export const markMaxed = (h: HeaderWord): HeaderWord => (h | MAXED_BIT) >>> 0
