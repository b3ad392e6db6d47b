// An allocation cap for untrusted-file tests (reliability-regimen §6.3, P8). Worker
// `resourceLimits` do not cap Buffer/ArrayBuffer memory (regimen §2, measured), so the cap is
// enforced where the bytes are asked for: every typed-array and ArrayBuffer constructor on
// globalThis, and Buffer.alloc / allocUnsafe / allocUnsafeSlow, are replaced by checking
// wrappers. A request over the cap is counted and refused (RangeError) before any memory is
// taken, so a multi-terabyte request can be observed without killing the process. The count
// does not depend on the error reaching the test: the engine may wrap or swallow it.
//
// What it does not see, and why that is sound enough:
//  - copies made by TypedArray#slice/map/subarray and Buffer#slice go through the real
//    constructor (species) but can never be larger than their source, which was counted;
//  - allocations inside Node's own C++ (fs reads allocate nothing: callers pass buffers);
//  - the JS heap (arrays, strings): the mutated-files test runs in a worker with
//    `resourceLimits`, which does stop heap growth, and samples heap use after each case.
// Install it in a worker or a child process only: it changes globals.

export interface AllocStats {
  /** Largest single request served, in bytes. */
  largestBytes: number
  /** Largest request refused (0: none). */
  largestRefusedBytes: number
  /** Requests over the cap (all refused). */
  overCap: number
  /** The last refused request, for messages. */
  lastOver: string
}

const TYPED = [
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
] as const

function requestedBytes(args: readonly unknown[], bytesPerElement: number): number {
  const a = args[0]
  if (typeof a === 'number') return a * bytesPerElement
  if (
    a instanceof ArrayBuffer ||
    (typeof SharedArrayBuffer !== 'undefined' && a instanceof SharedArrayBuffer)
  )
    return 0 // a view: no new memory
  if (a !== null && typeof a === 'object' && typeof (a as { length?: unknown }).length === 'number')
    return (a as { length: number }).length * bytesPerElement
  return 0
}

/** Installs the cap on this thread's globals; returns the live statistics. */
export function installAllocCap(capBytes: number): AllocStats {
  const stats: AllocStats = { largestBytes: 0, largestRefusedBytes: 0, overCap: 0, lastOver: '' }
  const check = (what: string, bytes: number): void => {
    if (!Number.isFinite(bytes)) return // the real constructor rejects it by itself
    if (bytes > capBytes) {
      stats.overCap++
      stats.largestRefusedBytes = Math.max(stats.largestRefusedBytes, bytes)
      stats.lastOver = `${what} of ${bytes} bytes (cap ${capBytes})`
      throw new RangeError(`allocation cap: ${stats.lastOver}`)
    }
    if (bytes > stats.largestBytes) stats.largestBytes = bytes
  }
  const g = globalThis as unknown as Record<string, unknown>
  for (const name of TYPED) {
    const real = g[name] as (new (...a: unknown[]) => object) & { BYTES_PER_ELEMENT: number }
    const proxy: object = new Proxy(real, {
      construct(target, args, newTarget) {
        check(`new ${name}`, requestedBytes(args, target.BYTES_PER_ELEMENT))
        return Reflect.construct(target, args, newTarget === proxy ? target : newTarget)
      },
    })
    g[name] = proxy
  }
  for (const name of ['ArrayBuffer', 'SharedArrayBuffer'] as const) {
    const real = g[name] as (new (...a: unknown[]) => object) | undefined
    if (real === undefined) continue
    const proxy: object = new Proxy(real, {
      construct(target, args, newTarget) {
        const n = typeof args[0] === 'number' ? args[0] : 0
        const max = (args[1] as { maxByteLength?: unknown } | undefined)?.maxByteLength
        check(`new ${name}`, Math.max(n, typeof max === 'number' ? max : 0))
        return Reflect.construct(target, args, newTarget === proxy ? target : newTarget)
      },
    })
    g[name] = proxy
  }
  const B = Buffer as unknown as Record<string, (...a: unknown[]) => unknown>
  for (const name of ['alloc', 'allocUnsafe', 'allocUnsafeSlow'] as const) {
    const real = B[name] as (...a: unknown[]) => unknown
    B[name] = (...args: unknown[]) => {
      check(`Buffer.${name}`, typeof args[0] === 'number' ? args[0] : 0)
      return real.apply(Buffer, args)
    }
  }
  return stats
}
