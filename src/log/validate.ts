// Checks of everything a caller hands the log: records, ids, LSNs and open() options.
// Misuse is an InvalidArgumentError or a LimitError thrown before any state changes
// (docs/ERRORS.md). Nothing here trusts a caller's object: lengths and brands are read
// through the intrinsic %TypedArray% getters, which no subclass or Proxy can override, and
// messages are built with describe(), which never runs caller code that could throw.

import { InvalidArgumentError, LimitError } from '../errors.js'
import type { Storage } from '../io/index.js'
import { Failpoints } from './failpoints.js'
import { DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES } from './format.js'

/** Node turns a longer timer into 1 ms (TimeoutOverflowWarning): the longest safe period. */
export const MAX_FLUSH_EVERY_MS = 2 ** 31 - 1

const TYPED_ARRAY_PROTO = Object.getPrototypeOf(Uint8Array.prototype) as object

function intrinsicGetter(key: string | symbol): (this: unknown) => unknown {
  const get = Object.getOwnPropertyDescriptor(TYPED_ARRAY_PROTO, key)?.get
  if (get === undefined) throw new Error(`this runtime has no %TypedArray%.prototype getter ${String(key)}`)
  return get as (this: unknown) => unknown
}

const typedArrayTag = intrinsicGetter(Symbol.toStringTag)
const typedArrayByteLength = intrinsicGetter('byteLength')
const typedArrayBuffer = intrinsicGetter('buffer')

/**
 * A short description of any value for an error message. Never throws and never calls the
 * value's own toString / valueOf / Symbol.toPrimitive (a null-prototype object or a Symbol
 * makes String(v) and `${v}` throw).
 */
export function describe(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v)
    case 'bigint':
      return `${String(v)}n`
    case 'boolean':
    case 'undefined':
      return String(v)
    case 'symbol':
      return 'a Symbol'
    case 'function':
      return 'a function'
    default:
      if (v === null) return 'null'
      try {
        // The intrinsic tag: "[object Uint8Array]", "[object Object]", ... A Proxy or a
        // Symbol.toStringTag getter may throw here; the fallback below covers that.
        return Object.prototype.toString.call(v)
      } catch {
        return 'an object'
      }
  }
}

/** True when `b` is an ArrayBuffer whose memory was transferred away. */
function isDetached(b: ArrayBufferLike): boolean {
  if (typeof SharedArrayBuffer !== 'undefined' && b instanceof SharedArrayBuffer) return false
  try {
    new Uint8Array(b as ArrayBuffer, 0, 0)
    return false
  } catch {
    return true
  }
}

/**
 * Does the prototype chain of a real Uint8Array reach Uint8Array.prototype without
 * redefining `length` on the way? Such a subclass (or an own `length`) is misuse: the log
 * reads the true length, so it would store other bytes than the caller's own view claims.
 */
function isHonestUint8Array(data: object): boolean {
  try {
    if (Object.getOwnPropertyDescriptor(data, 'length') !== undefined) return false
    let p = Object.getPrototypeOf(data) as object | null
    for (let depth = 0; p !== null && depth < 64; depth++) {
      if (p === Uint8Array.prototype) return true
      if (Object.getOwnPropertyDescriptor(p, 'length') !== undefined) return false
      p = Object.getPrototypeOf(p) as object | null
    }
    return false
  } catch {
    return false
  }
}

/**
 * Checks a record argument and returns its true byte length. Refuses anything that is not
 * a genuine, attached Uint8Array (a Proxy, a subclass overriding `length`, a detached
 * buffer) and anything over `maxBytes`, before the caller touches any state.
 */
export function checkRecord(data: unknown, maxBytes: number): number {
  if (!ArrayBuffer.isView(data) || typedArrayTag.call(data) !== 'Uint8Array') {
    throw new InvalidArgumentError(`a record must be a Uint8Array, got ${describe(data)}`)
  }
  const proto = Object.getPrototypeOf(data)
  if ((proto !== Uint8Array.prototype && proto !== Buffer.prototype) || Object.hasOwn(data, 'length')) {
    if (!isHonestUint8Array(data)) {
      throw new InvalidArgumentError('a record must be a Uint8Array whose length is not redefined')
    }
  }
  const n = typedArrayByteLength.call(data) as number
  // A detached buffer reports length 0; copying from it would throw after a reservation.
  if (n === 0 && isDetached(typedArrayBuffer.call(data) as ArrayBufferLike)) {
    throw new InvalidArgumentError('a record must not be a view of a detached ArrayBuffer')
  }
  if (n > maxBytes) throw new LimitError('record size', maxBytes, n)
  return n
}

export function checkId(id: unknown): void {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw new InvalidArgumentError(`a record id must be a non-negative safe integer, got ${describe(id)}`)
  }
}

/** An LSN argument must be a safe integer before it is compared with anything. */
export function lsnError(lsn: unknown, what: string): InvalidArgumentError | undefined {
  if (typeof lsn === 'number' && Number.isSafeInteger(lsn)) return undefined
  return new InvalidArgumentError(`${what} takes an LSN (a safe integer), got ${describe(lsn)}`)
}

const STORAGE_METHODS = [
  'ensureRoot',
  'openFile',
  'exists',
  'list',
  'mkdir',
  'rename',
  'unlink',
  'syncDir',
  'lock',
] as const

function isStorage(s: unknown): s is Storage {
  if (s === null || typeof s !== 'object') return false
  try {
    const o = s as Record<string, unknown>
    return STORAGE_METHODS.every((m) => typeof o[m] === 'function')
  } catch {
    return false
  }
}

/** The options of Log.open(), checked before any IO. `o` is whatever the caller passed. */
export function validateOptions(o: unknown): void {
  if (o === null || typeof o !== 'object') {
    throw new InvalidArgumentError(`Log.open() options must be an object, got ${describe(o)}`)
  }
  const opts = o as Record<string, unknown>
  // null or undefined: the default (an existing log keeps its own size anyway).
  const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES
  const isPow2 =
    typeof segmentBytes === 'number' &&
    Number.isSafeInteger(segmentBytes) &&
    (segmentBytes & (segmentBytes - 1)) === 0
  if (!isPow2 || segmentBytes < MIN_SEGMENT_BYTES || segmentBytes > MAX_SEGMENT_BYTES) {
    throw new InvalidArgumentError(
      `segmentBytes must be a power of two from ${MIN_SEGMENT_BYTES} to ${MAX_SEGMENT_BYTES}, got ${describe(segmentBytes)}`,
    )
  }
  for (const k of [
    'flushEveryMs',
    'syncEveryBytes',
    'writeHighWaterBytes',
    'maxBlobBytes',
    'maxBatchRecords',
  ] as const) {
    const v = opts[k]
    if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)) {
      throw new InvalidArgumentError(`${k} must be a non-negative integer, got ${describe(v)}`)
    }
  }
  const every = opts.flushEveryMs
  if (typeof every === 'number' && every > MAX_FLUSH_EVERY_MS) {
    throw new InvalidArgumentError(`flushEveryMs must be at most ${MAX_FLUSH_EVERY_MS}, got ${every}`)
  }
  // 0 would make every caller of whenWritable() wait for writes that may never be issued.
  if (opts.writeHighWaterBytes === 0) throw new InvalidArgumentError('writeHighWaterBytes must be at least 1')
  for (const k of [
    'verifyOnOpen',
    'inlineSyncedWrites',
    'unsafeAckBeforeSync',
    'unsafeUnorderedPreExtension',
    'scanWitnessed',
    'deferAccept',
    'unsafeRepairBeforeAccept',
  ] as const) {
    const v = opts[k]
    if (v !== undefined && typeof v !== 'boolean') {
      throw new InvalidArgumentError(`${k} must be a boolean, got ${describe(v)}`)
    }
  }
  if (opts.onLocked !== undefined && typeof opts.onLocked !== 'function') {
    throw new InvalidArgumentError(`onLocked must be a function, got ${describe(opts.onLocked)}`)
  }
  if (opts.storage !== undefined && !isStorage(opts.storage)) {
    throw new InvalidArgumentError(
      `storage must implement the Storage interface, got ${describe(opts.storage)}`,
    )
  }
  if (opts.failpoints !== undefined && !(opts.failpoints instanceof Failpoints)) {
    throw new InvalidArgumentError(
      `failpoints must be a Failpoints instance, got ${describe(opts.failpoints)}`,
    )
  }
}
