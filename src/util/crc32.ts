import * as zlib from 'node:zlib'

// CRC-32 (IEEE, as zlib). zlib.crc32 is native on Node >= 20.15; the table is the fallback.
type Crc32 = (data: Uint8Array, start: number, end: number, previous?: number) => number

const TABLE = (() => {
  const t = new Uint32Array(256)
  for (let i = 0; i < 256; i++) {
    let c = i
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    t[i] = c >>> 0
  }
  return t
})()

export const crc32Table: Crc32 = (data, start, end, previous = 0) => {
  let c = (previous ^ 0xffffffff) >>> 0
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}

const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32

// Below this size the call into C costs more than the table loop.
const NATIVE_MIN_BYTES = 48

export const crc32: Crc32 =
  native === undefined
    ? crc32Table
    : (data, start, end, previous = 0) => {
        if (end - start < NATIVE_MIN_BYTES) return crc32Table(data, start, end, previous)
        const view = start === 0 && end === data.length ? data : data.subarray(start, end)
        return native(view, previous) >>> 0
      }
