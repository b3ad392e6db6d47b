import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import * as zlib from 'node:zlib'
import fc from 'fast-check'
import {
  type DecodedHeader,
  decodeMessageHeader,
  decodeSegmentHeader,
  encodeSegmentHeader,
  MAX_MESSAGE_HEADER_BYTES,
  MessageKind,
  messageCrc,
  messageHeaderBytes,
  readU32,
  readU64,
  readVarint,
  SEGMENT_HEADER_BYTES,
  type SegmentHeader,
  stampMessageCrc,
  varintBytes,
  writeMessageHeader,
  writeU32,
  writeU64,
  writeVarint,
} from '../../src/log/format.js'
import { newParsedMessage, Parse, parseMessage } from '../../src/log/reader.js'

const MAX = Number.MAX_SAFE_INTEGER

// ---- independent reference models (BigInt, straight from the digest's tables) ----

/** The SQLite4 varint of the digest §2.6, capped at 8 bytes (values are safe integers). */
function refVarint(value: number): number[] {
  const v = BigInt(value)
  if (v <= 240n) return [value]
  if (v <= 2287n) {
    const w = v - 240n
    return [241 + Number(w / 256n), Number(w % 256n)]
  }
  if (v <= 67823n) {
    const w = v - 2288n
    return [249, Number(w / 256n), Number(w % 256n)]
  }
  let n = 3
  while (v >= 1n << BigInt(8 * n)) n++
  const out = [247 + n]
  for (let i = 0; i < n; i++) out.push(Number((v >> BigInt(8 * i)) & 0xffn))
  return out
}

function refLe64(value: bigint): number[] {
  const out: number[] = []
  for (let i = 0; i < 8; i++) out.push(Number((value >> BigInt(8 * i)) & 0xffn))
  return out
}

/** A Uint8Array whose indexed reads are recorded (for "never reads past end" checks). */
function tracked(buf: Uint8Array): { view: Uint8Array; reads: number[] } {
  const reads: number[] = []
  const view = new Proxy(buf, {
    get(target, prop) {
      if (typeof prop === 'string' && /^\d+$/.test(prop)) reads.push(Number(prop))
      const v = Reflect.get(target, prop)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
  return { view, reads }
}

const BOUNDARIES = [
  0,
  1,
  240,
  241,
  2287,
  2288,
  67823,
  67824,
  2 ** 24 - 1,
  2 ** 24,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 40 - 1,
  2 ** 40,
  2 ** 48 - 1,
  2 ** 48,
  2 ** 53 - 2,
  MAX,
]

/** Safe integers with weight on the encoding boundaries and each length class. */
const safeNat = fc.oneof(
  fc.constantFrom(...BOUNDARIES),
  fc
    .tuple(fc.constantFrom(...BOUNDARIES), fc.integer({ min: -3, max: 3 }))
    .map(([b, d]) => Math.min(MAX, Math.max(0, b + d))),
  fc.integer({ min: 0, max: 70_000 }),
  fc.integer({ min: 0, max: 52 }).chain((bits) => fc.integer({ min: 0, max: 2 ** bits - 1 })),
  fc.maxSafeNat(),
)

describe('varint', () => {
  test('boundaries have the documented lengths', () => {
    const expected: [number, number][] = [
      [0, 1],
      [240, 1],
      [241, 2],
      [2287, 2],
      [2288, 3],
      [67823, 3],
      [67824, 4],
      [2 ** 24 - 1, 4],
      [2 ** 24, 5],
      [2 ** 32 - 1, 5],
      [2 ** 32, 6],
      [2 ** 40 - 1, 6],
      [2 ** 40, 7],
      [2 ** 48 - 1, 7],
      [2 ** 48, 8],
      [MAX, 8],
    ]
    for (const [v, len] of expected) {
      assert.equal(varintBytes(v), len, `varintBytes(${v})`)
      const buf = new Uint8Array(16)
      assert.equal(writeVarint(buf, 0, v), len, `writeVarint(${v})`)
    }
  })

  test('encoding matches the reference and round-trips at any offset', () => {
    fc.assert(
      fc.property(safeNat, fc.integer({ min: 0, max: 20 }), (v, at) => {
        const buf = new Uint8Array(at + 12).fill(0xa5)
        const n = writeVarint(buf, at, v)
        assert.equal(n, varintBytes(v))
        assert.deepEqual([...buf.subarray(at, at + n)], refVarint(v))
        assert.ok(n <= 8)
        // Bytes outside [at, at + n) are untouched.
        assert.ok(buf.subarray(0, at).every((b) => b === 0xa5))
        assert.ok(buf.subarray(at + n).every((b) => b === 0xa5))
        const out = { bytes: -1 }
        assert.equal(readVarint(buf, at, at + n, out), v)
        assert.equal(out.bytes, n)
        // Trailing bytes after the varint do not change the decoding.
        assert.equal(readVarint(buf, at, buf.length, out), v)
        assert.equal(out.bytes, n)
      }),
      { numRuns: 2000 },
    )
  })

  test('varintBytes is monotone and only steps at the boundaries', () => {
    fc.assert(
      fc.property(safeNat, safeNat, (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a]
        assert.ok(varintBytes(lo) <= varintBytes(hi))
      }),
      { numRuns: 1000 },
    )
  })

  test('truncated input is rejected and no byte at or past end is read', () => {
    fc.assert(
      fc.property(safeNat, fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 5 }), (v, cut, at) => {
        const buf = new Uint8Array(at + 16)
        const n = writeVarint(buf, at, v)
        const end = at + Math.min(cut, n)
        const { view, reads } = tracked(buf)
        const out = { bytes: -7 }
        const r = readVarint(view, at, end, out)
        if (end < at + n) {
          assert.equal(r, -1)
        } else {
          assert.equal(r, v)
          assert.equal(out.bytes, n)
        }
        for (const i of reads) assert.ok(i >= at && i < end, `read byte ${i} outside [${at}, ${end})`)
      }),
      { numRuns: 2000 },
    )
  })

  test('arbitrary bytes never decode to an unsafe value or read past end', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 12 }),
        fc.integer({ min: 0, max: 12 }),
        (bytes, e) => {
          const end = Math.min(e, bytes.length)
          const { view, reads } = tracked(bytes)
          const out = { bytes: 0 }
          const r = readVarint(view, 0, end, out)
          for (const i of reads) assert.ok(i < end, `read byte ${i} at or past end ${end}`)
          if (r !== -1) {
            assert.ok(Number.isSafeInteger(r) && r >= 0)
            assert.ok(out.bytes >= 1 && out.bytes <= end)
            // Whatever decodes is exactly what its canonical encoding says, when canonical.
            const canon = refVarint(r)
            if (canon.length === out.bytes && canon[0] === bytes[0]) {
              assert.deepEqual([...bytes.subarray(0, out.bytes)], canon)
            }
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  test('the 255 prefix and values of 2^53 or more are rejected', () => {
    const out = { bytes: 0 }
    for (const fill of [0, 1, 0xff]) {
      const buf = new Uint8Array(9).fill(fill)
      buf[0] = 255
      assert.equal(readVarint(buf, 0, 9, out), -1, `255 prefix with fill ${fill}`)
    }
    const big = new Uint8Array(8)
    big[0] = 254
    // 2^53 in 7 little-endian bytes.
    big.set(refLe64(2n ** 53n).slice(0, 7), 1)
    assert.equal(readVarint(big, 0, 8, out), -1)
    big.set(refLe64(2n ** 56n - 1n).slice(0, 7), 1)
    assert.equal(readVarint(big, 0, 8, out), -1)
    big.set(refLe64(2n ** 53n - 1n).slice(0, 7), 1)
    assert.equal(readVarint(big, 0, 8, out), MAX)
    assert.equal(out.bytes, 8)
  })

  test('empty input is rejected', () => {
    const buf = new Uint8Array([5])
    assert.equal(readVarint(buf, 0, 0, { bytes: 0 }), -1)
    assert.equal(readVarint(buf, 1, 1, { bytes: 0 }), -1)
  })
})

describe('u64 and u32', () => {
  test('writeU64/readU64 round-trip safe integers in little-endian order', () => {
    fc.assert(
      fc.property(safeNat, fc.integer({ min: 0, max: 7 }), (v, at) => {
        const buf = new Uint8Array(at + 8)
        writeU64(buf, at, v)
        assert.deepEqual([...buf.subarray(at)], refLe64(BigInt(v)))
        assert.equal(readU64(buf, at), v)
      }),
      { numRuns: 2000 },
    )
  })

  test('readU64 returns -1 for values of 2^53 or more', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n }), (v) => {
        const buf = Uint8Array.from(refLe64(v))
        assert.equal(readU64(buf, 0), -1)
      }),
      { numRuns: 500 },
    )
    assert.equal(readU64(Uint8Array.from(refLe64(2n ** 53n)), 0), -1)
    assert.equal(readU64(Uint8Array.from(refLe64(2n ** 53n - 1n)), 0), MAX)
    assert.equal(readU64(new Uint8Array(8).fill(0xff), 0), -1)
  })

  test('writeU32/readU32 round-trip every u32', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (v) => {
        const buf = new Uint8Array(4)
        writeU32(buf, 0, v)
        assert.deepEqual([...buf], refLe64(BigInt(v)).slice(0, 4))
        assert.equal(readU32(buf, 0), v)
      }),
      { numRuns: 500 },
    )
  })
})

// ---- message headers ----

const knownKind = fc.constantFrom(
  MessageKind.Canceled,
  MessageKind.Cap,
  MessageKind.Record,
  MessageKind.BlobPointer,
  MessageKind.BatchManifest,
  MessageKind.Witness,
)

describe('message header', () => {
  test('encode/decode round-trip', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        safeNat,
        safeNat,
        safeNat,
        fc.integer({ min: 0, max: 9 }),
        (kind, body, seg, id, at) => {
          const buf = new Uint8Array(at + MAX_MESSAGE_HEADER_BYTES + 4).fill(0x5a)
          const n = writeMessageHeader(buf, at, kind, body, seg, id)
          assert.equal(n, messageHeaderBytes(body, seg, id))
          assert.equal(n, 5 + refVarint(body).length + refVarint(seg).length + refVarint(id).length)
          assert.ok(n <= MAX_MESSAGE_HEADER_BYTES)
          assert.deepEqual([...buf.subarray(at, at + 4)], [0, 0, 0, 0], 'CRC is left zero')
          assert.equal(buf[at + 4], kind, 'kind at byte 4')
          assert.deepEqual(
            [...buf.subarray(at + 5, at + n)],
            [...refVarint(body), ...refVarint(seg), ...refVarint(id)],
          )
          assert.ok(
            buf.subarray(at + n).every((b) => b === 0x5a),
            'nothing written past the header',
          )
          const out: DecodedHeader = { kind: -1, bodyBytes: -1, segmentNumber: -1, id: -1, headerBytes: -1 }
          const { view, reads } = tracked(buf)
          assert.ok(decodeMessageHeader(view, at, at + n, out))
          for (const i of reads) assert.ok(i >= at && i < at + n)
          assert.deepEqual(out, { kind, bodyBytes: body, segmentNumber: seg, id, headerBytes: n })
          // Any shorter readable window cannot hold the header.
          for (let e = at; e < at + n; e++) assert.equal(decodeMessageHeader(buf, at, e, out), false)
        },
      ),
      { numRuns: 1000 },
    )
  })

  test('messageCrc is the inverted CRC-32 of bytes 4..end and ignores bytes 0..3', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 5, maxLength: 200 }),
        fc.integer({ min: 0, max: 7 }),
        (msg, at) => {
          const buf = new Uint8Array(at + msg.length + 3)
          buf.set(msg, at)
          const expected = (zlib.crc32(msg.subarray(4)) ^ 0xffffffff) >>> 0
          assert.equal(messageCrc(buf, at, msg.length), expected)
          buf[at] = (buf[at] as number) ^ 0xff
          buf[at + 3] = (buf[at + 3] as number) ^ 0x10
          assert.equal(messageCrc(buf, at, msg.length), expected)
          stampMessageCrc(buf, at, msg.length)
          assert.equal(readU32(buf, at), expected)
        },
      ),
      { numRuns: 300 },
    )
  })

  test('a zero-filled message does not carry a valid CRC', () => {
    for (const len of [5, 8, 32, 100]) {
      const buf = new Uint8Array(len)
      assert.notEqual(readU32(buf, 0), messageCrc(buf, 0, len))
    }
  })

  test('flipping any single bit of a stamped message makes it Corrupt', () => {
    const S = 4096
    fc.assert(
      fc.property(
        knownKind.filter((k) => k !== MessageKind.Cap),
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.integer({ min: 0, max: 1000 }),
        safeNat,
        fc.integer({ min: SEGMENT_HEADER_BYTES, max: 1000 }),
        fc.nat(),
        (kind, body, seg, id, at, bitSeed) => {
          const image = new Uint8Array(S)
          const hb = writeMessageHeader(image, at, kind, body.length, seg, id)
          image.set(body, at + hb)
          const total = hb + body.length
          stampMessageCrc(image, at, total)
          const out = newParsedMessage()
          assert.equal(parseMessage(image, at, S, S, seg, out), Parse.Ok)
          const bit = bitSeed % (total * 8)
          const i = at + (bit >>> 3)
          image[i] = (image[i] as number) ^ (1 << (bit & 7))
          assert.equal(parseMessage(image, at, S, S, seg, out), Parse.Corrupt, `bit ${bit} of ${total * 8}`)
        },
      ),
      { numRuns: 1000 },
    )
  })

  test('every single-bit flip of one message is caught (exhaustive)', () => {
    const S = 1024
    const image = new Uint8Array(S)
    const at = SEGMENT_HEADER_BYTES
    const body = Uint8Array.from({ length: 40 }, (_, i) => (i * 37 + 11) & 0xff)
    const hb = writeMessageHeader(image, at, MessageKind.Record, body.length, 3000, 70_000)
    image.set(body, at + hb)
    const total = hb + body.length
    stampMessageCrc(image, at, total)
    const out = newParsedMessage()
    for (let bit = 0; bit < total * 8; bit++) {
      const i = at + (bit >>> 3)
      image[i] = (image[i] as number) ^ (1 << (bit & 7))
      assert.equal(parseMessage(image, at, S, S, 3000, out), Parse.Corrupt, `bit ${bit}`)
      image[i] = (image[i] as number) ^ (1 << (bit & 7))
    }
    assert.equal(parseMessage(image, at, S, S, 3000, out), Parse.Ok)
  })
})

// ---- segment headers ----

const segmentHeaderArb: fc.Arbitrary<SegmentHeader> = fc
  .record({
    baseLsn: safeNat,
    maxStableLsn: fc.oneof(
      fc.constant(-1),
      safeNat.map((v) => Math.min(v, MAX - 1)),
    ),
    firstLsn: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true }), fc.constant(1)),
    segmentBytes: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    logId: safeNat,
    formatVersion: fc.integer({ min: 0, max: 0xffff }),
  })
  // The log start never lies above the segment's base, nor above its max stable LSN + 1.
  .map((h) => ({ ...h, firstLsn: Math.floor(h.firstLsn * Math.min(h.baseLsn, h.maxStableLsn + 1)) }))

const plainHeader = (): SegmentHeader => ({
  baseLsn: 8192,
  maxStableLsn: 8191,
  firstLsn: 4096,
  segmentBytes: 4096,
  logId: 1,
  formatVersion: 1,
})

function withCrc(buf: Uint8Array, at: number): void {
  writeU32(buf, at, (zlib.crc32(buf.subarray(at + 4, at + SEGMENT_HEADER_BYTES)) ^ 0xffffffff) >>> 0)
}

describe('segment header', () => {
  test('encode/decode round-trip, touching only its 48 bytes', () => {
    fc.assert(
      fc.property(segmentHeaderArb, fc.integer({ min: 0, max: 16 }), (h, at) => {
        const buf = new Uint8Array(at + SEGMENT_HEADER_BYTES + 16).fill(0x77)
        encodeSegmentHeader(buf, at, h)
        assert.ok(buf.subarray(0, at).every((b) => b === 0x77))
        assert.ok(buf.subarray(at + SEGMENT_HEADER_BYTES).every((b) => b === 0x77))
        // Layout: magic "BSEG" at 4..7, fields little-endian.
        assert.equal(String.fromCharCode(...buf.subarray(at + 4, at + 8)), 'BSEG')
        assert.equal(readU64(buf, at + 16), h.baseLsn)
        assert.equal(readU64(buf, at + 24), h.maxStableLsn + 1)
        assert.equal(readU64(buf, at + 40), h.firstLsn)
        const r = decodeSegmentHeader(buf, at)
        assert.deepEqual(r, { ok: true, header: h })
      }),
      { numRuns: 1000 },
    )
  })

  test('maxStableLsn -1 (no stable point) round-trips', () => {
    const buf = new Uint8Array(SEGMENT_HEADER_BYTES)
    const h = {
      baseLsn: 0,
      maxStableLsn: -1,
      firstLsn: 0,
      segmentBytes: 1 << 20,
      logId: 42,
      formatVersion: 1,
    }
    encodeSegmentHeader(buf, 0, h)
    assert.deepEqual(decodeSegmentHeader(buf, 0), { ok: true, header: h })
  })

  test('a CRC-valid header whose first LSN lies above its base or its max stable LSN + 1 is rejected as a field error', () => {
    const h = {
      baseLsn: 8192,
      maxStableLsn: 4095,
      firstLsn: 4096,
      segmentBytes: 1024,
      logId: 42,
      formatVersion: 1,
    }
    const buf = new Uint8Array(SEGMENT_HEADER_BYTES)
    encodeSegmentHeader(buf, 0, h)
    assert.equal(
      decodeSegmentHeader(buf, 0).ok,
      true,
      'first LSN = max stable + 1 is what a truncation writes',
    )
    for (const bad of [
      { ...h, firstLsn: 4097 },
      { ...h, maxStableLsn: 9000, firstLsn: 8193 },
    ]) {
      encodeSegmentHeader(buf, 0, bad)
      assert.deepEqual(decodeSegmentHeader(buf, 0), { ok: false, reason: 'field' })
    }
  })

  test('an all-zero slot fails the CRC', () => {
    assert.deepEqual(decodeSegmentHeader(new Uint8Array(SEGMENT_HEADER_BYTES), 0), {
      ok: false,
      reason: 'crc',
    })
    assert.deepEqual(decodeSegmentHeader(new Uint8Array(SEGMENT_HEADER_BYTES + 100), 50), {
      ok: false,
      reason: 'crc',
    })
  })

  test('every single-bit flip is rejected', () => {
    fc.assert(
      fc.property(segmentHeaderArb, (h) => {
        const buf = new Uint8Array(SEGMENT_HEADER_BYTES)
        encodeSegmentHeader(buf, 0, h)
        for (let bit = 0; bit < SEGMENT_HEADER_BYTES * 8; bit++) {
          buf[bit >>> 3] = (buf[bit >>> 3] as number) ^ (1 << (bit & 7))
          const r = decodeSegmentHeader(buf, 0)
          assert.equal(r.ok, false, `bit ${bit}`)
          buf[bit >>> 3] = (buf[bit >>> 3] as number) ^ (1 << (bit & 7))
        }
        assert.equal(decodeSegmentHeader(buf, 0).ok, true)
      }),
      { numRuns: 30 },
    )
  })

  test('a valid CRC over a wrong magic reads as magic', () => {
    const buf = new Uint8Array(SEGMENT_HEADER_BYTES)
    encodeSegmentHeader(buf, 0, plainHeader())
    buf[4] = 0x43
    withCrc(buf, 0)
    assert.deepEqual(decodeSegmentHeader(buf, 0), { ok: false, reason: 'magic' })
  })

  test('a log start above the segment base reads as field', () => {
    const buf = new Uint8Array(SEGMENT_HEADER_BYTES)
    encodeSegmentHeader(buf, 0, { ...plainHeader(), firstLsn: 8192 })
    assert.equal(decodeSegmentHeader(buf, 0).ok, true)
    encodeSegmentHeader(buf, 0, { ...plainHeader(), firstLsn: 8193 })
    assert.deepEqual(decodeSegmentHeader(buf, 0), { ok: false, reason: 'field' })
  })

  test('a valid CRC over an unsafe u64 field reads as field', () => {
    for (const off of [16, 24, 32, 40]) {
      const buf = new Uint8Array(SEGMENT_HEADER_BYTES)
      encodeSegmentHeader(buf, 0, plainHeader())
      buf.set(refLe64(2n ** 53n), off)
      withCrc(buf, 0)
      assert.deepEqual(decodeSegmentHeader(buf, 0), { ok: false, reason: 'field' }, `u64 at ${off}`)
    }
  })
})
