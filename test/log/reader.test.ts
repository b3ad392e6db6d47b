import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import {
  encodeSegmentHeader,
  MessageKind,
  messageHeaderBytes,
  RED_ZONE_BYTES,
  SEGMENT_HEADER_BYTES,
  stampMessageCrc,
  writeMessageHeader,
} from '../../src/log/format.js'
import { lastCorruptReason, newParsedMessage, Parse, parseMessage } from '../../src/log/reader.js'

interface Msg {
  kind: MessageKind
  id: number
  body: Uint8Array
}

interface Placed extends Msg {
  at: number
  totalBytes: number
  segmentNumber: number
}

/** Writes `msg` at `at` exactly as the log does (header, body, CRC stamped last). */
function put(image: Uint8Array, at: number, segmentNumber: number, msg: Msg): Placed {
  const hb = writeMessageHeader(image, at, msg.kind, msg.body.length, segmentNumber, msg.id)
  image.set(msg.body, at + hb)
  const totalBytes = hb + msg.body.length
  stampMessageCrc(image, at, totalBytes)
  return { ...msg, at, totalBytes, segmentNumber }
}

/** A segment image: header at 0, then as many of `msgs` as may legally be placed. */
function buildSegment(
  S: number,
  segmentNumber: number,
  msgs: Msg[],
): { image: Uint8Array; placed: Placed[] } {
  const image = new Uint8Array(S)
  encodeSegmentHeader(image, 0, {
    baseLsn: segmentNumber * S,
    maxStableLsn: -1,
    firstLsn: 0,
    segmentBytes: S,
    logId: 7,
    formatVersion: 1,
  })
  const placed: Placed[] = []
  let at = SEGMENT_HEADER_BYTES
  for (const m of msgs) {
    const total = messageHeaderBytes(m.body.length, segmentNumber, m.id) + m.body.length
    // The writer's rule: a message starts outside the red zone and ends inside the segment.
    if (S - at <= RED_ZONE_BYTES || at + total > S) break
    placed.push(put(image, at, segmentNumber, m))
    at += total
  }
  return { image, placed }
}

function body(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 17 + 1) & 0xff)
}

function assertMatches(out: ReturnType<typeof newParsedMessage>, m: Placed, image: Uint8Array): void {
  assert.equal(out.at, m.at)
  assert.equal(out.kind, m.kind)
  assert.equal(out.id, m.id)
  assert.equal(out.segmentNumber, m.segmentNumber)
  assert.equal(out.bodyBytes, m.body.length)
  assert.equal(out.totalBytes, m.totalBytes)
  assert.deepEqual(image.subarray(m.at + out.headerBytes, m.at + out.totalBytes), m.body)
}

const S = 2048
const H = SEGMENT_HEADER_BYTES

describe('parseMessage: fixed cases', () => {
  test('reads back-to-back messages in order, then Corrupt on zeros', () => {
    const msgs: Msg[] = [
      { kind: MessageKind.Witness, id: 0, body: body(8) },
      { kind: MessageKind.Record, id: 1, body: body(0) },
      { kind: MessageKind.Record, id: 300, body: body(241, 2) },
      { kind: MessageKind.Canceled, id: 70_000, body: body(13, 3) },
      { kind: MessageKind.BlobPointer, id: 2 ** 40, body: body(20, 4) },
      { kind: MessageKind.BatchManifest, id: 5, body: body(8, 5) },
    ]
    const { image, placed } = buildSegment(S, 3, msgs)
    assert.equal(placed.length, msgs.length)
    const out = newParsedMessage()
    let at = H
    for (const m of placed) {
      assert.equal(parseMessage(image, at, S, S, 3, out), Parse.Ok)
      assertMatches(out, m, image)
      at += out.totalBytes
    }
    assert.equal(parseMessage(image, at, S, S, 3, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /unknown kind 0/)
  })

  test('a message inside the segment header is Corrupt', () => {
    const { image } = buildSegment(S, 1, [])
    const out = newParsedMessage()
    for (const at of [0, 1, H - 1]) assert.equal(parseMessage(image, at, S, S, 1, out), Parse.Corrupt)
  })

  test('the red zone is EndOfSegment whatever it holds; S-33 is still readable', () => {
    const image = new Uint8Array(S).fill(0xff)
    const out = newParsedMessage()
    for (let at = S - RED_ZONE_BYTES; at < S + 4; at++) {
      assert.equal(parseMessage(image, at, S, S, 1, out), Parse.EndOfSegment, `at ${at}`)
    }
    // The last legal start: S-33, with a message that ends exactly at S.
    const at = S - RED_ZONE_BYTES - 1
    const hb = messageHeaderBytes(0, 1, 9)
    const m = put(image, at, 1, { kind: MessageKind.Record, id: 9, body: body(S - at - hb) })
    assert.equal(m.at + m.totalBytes, S)
    assert.equal(parseMessage(image, at, S, S, 1, out), Parse.Ok)
    assertMatches(out, m, image)
  })

  test('a valid Cap ends the segment; a damaged Cap is Corrupt', () => {
    const at = 500
    const { image } = buildSegment(S, 4, [])
    // As the writer pads: the Cap's body leaves at most MAX_MESSAGE_HEADER_BYTES of zeros at the end.
    const m = put(image, at, 4, { kind: MessageKind.Cap, id: 0, body: new Uint8Array(S - at - 32) })
    const out = newParsedMessage()
    assert.equal(parseMessage(image, at, S, S, 4, out), Parse.EndOfSegment)
    assert.equal(out.kind, MessageKind.Cap)
    assert.equal(out.totalBytes, m.totalBytes)
    image[at + 100] = 1
    assert.equal(parseMessage(image, at, S, S, 4, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /CRC/)
    // A Cap of the wrong segment number is stale, not an end.
    const { image: img2 } = buildSegment(S, 4, [])
    put(img2, at, 2, { kind: MessageKind.Cap, id: 0, body: new Uint8Array(S - at - 32) })
    assert.equal(parseMessage(img2, at, S, S, 4, out), Parse.Corrupt)
  })

  test('unknown kinds are Corrupt even with a valid CRC', () => {
    for (const kind of [0, 7, 8, 100, 255]) {
      const { image } = buildSegment(S, 1, [])
      put(image, H, 1, { kind: kind as MessageKind, id: 1, body: body(10) })
      const out = newParsedMessage()
      assert.equal(parseMessage(image, H, S, S, 1, out), Parse.Corrupt, `kind ${kind}`)
      assert.match(lastCorruptReason, /unknown kind/)
    }
  })

  test('a body overrunning the segment is Corrupt', () => {
    const { image } = buildSegment(S, 1, [])
    const at = 1000
    const hb = writeMessageHeader(image, at, MessageKind.Record, S - at, 1, 0)
    assert.ok(hb > 0)
    const out = newParsedMessage()
    assert.equal(parseMessage(image, at, S, S, 1, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /overruns the segment/)
    // Even with the segment image being longer than the segment (bytes of the next slot).
    const big = new Uint8Array(2 * S)
    big.set(image)
    put(big, at, 1, { kind: MessageKind.Record, id: 0, body: body(S - at) })
    assert.equal(parseMessage(big, at, 2 * S, S, 1, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /overruns the segment/)
    // A huge length (near 2^53) must not wrap into something that fits.
    writeMessageHeader(image, at, MessageKind.Record, Number.MAX_SAFE_INTEGER, 1, 0)
    assert.equal(parseMessage(image, at, S, S, 1, out), Parse.Corrupt)
  })

  test('stale messages of an earlier life of the slot are Corrupt', () => {
    // Life 1: segment number 5, long messages.
    const old = buildSegment(S, 5, [
      { kind: MessageKind.Record, id: 1, body: body(100, 1) },
      { kind: MessageKind.Record, id: 2, body: body(100, 2) },
      { kind: MessageKind.Record, id: 3, body: body(100, 3) },
    ])
    const image = old.image
    // Life 2: segment number 9 overwrites the header and one message at the same offset.
    encodeSegmentHeader(image, 0, {
      baseLsn: 9 * S,
      maxStableLsn: -1,
      firstLsn: 0,
      segmentBytes: S,
      logId: 7,
      formatVersion: 1,
    })
    const m = put(image, H, 9, { kind: MessageKind.Record, id: 1, body: body(100, 4) })
    const stale = old.placed[1] as Placed
    assert.equal(m.at + m.totalBytes, stale.at, 'the new message ends where a stale one begins')
    const out = newParsedMessage()
    assert.equal(parseMessage(image, H, S, S, 9, out), Parse.Ok)
    assert.equal(parseMessage(image, stale.at, S, S, 9, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /segment number 5, expected 9/)
    // The same bytes are fine for the life they belong to.
    assert.equal(parseMessage(image, stale.at, S, S, 5, out), Parse.Ok)
  })

  test('a CRC mismatch is Corrupt', () => {
    const { image, placed } = buildSegment(S, 2, [{ kind: MessageKind.Record, id: 4, body: body(50) }])
    const m = placed[0] as Placed
    const out = newParsedMessage()
    assert.equal(parseMessage(image, m.at, S, S, 2, out), Parse.Ok)
    image[m.at + m.totalBytes - 1] = (image[m.at + m.totalBytes - 1] as number) ^ 0x80
    assert.equal(parseMessage(image, m.at, S, S, 2, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /CRC mismatch/)
  })

  test('a message extending past limit is Corrupt; ending at limit is Ok', () => {
    const { image, placed } = buildSegment(S, 2, [{ kind: MessageKind.Record, id: 4, body: body(300) }])
    const m = placed[0] as Placed
    const out = newParsedMessage()
    const end = m.at + m.totalBytes
    assert.equal(parseMessage(image, m.at, end, S, 2, out), Parse.Ok)
    assert.equal(parseMessage(image, m.at, end - 1, S, 2, out), Parse.Corrupt)
    assert.match(lastCorruptReason, /past the readable bytes/)
    // A limit inside the header: the header cannot be decoded.
    for (let limit = m.at; limit < m.at + 5; limit++) {
      assert.equal(parseMessage(image, m.at, limit, S, 2, out), Parse.Corrupt)
      assert.match(lastCorruptReason, /undecodable header/)
    }
  })

  test('bytes at or past limit are never read', () => {
    const { image, placed } = buildSegment(S, 2, [{ kind: MessageKind.Record, id: 300, body: body(300) }])
    const m = placed[0] as Placed
    const out = newParsedMessage()
    for (let limit = m.at; limit < m.at + m.totalBytes; limit++) {
      const reads: number[] = []
      const view = new Proxy(image, {
        get(target, prop) {
          if (typeof prop === 'string' && /^\d+$/.test(prop)) reads.push(Number(prop))
          const v = Reflect.get(target, prop)
          return typeof v === 'function' ? v.bind(target) : v
        },
      })
      assert.equal(parseMessage(view, m.at, limit, S, 2, out), Parse.Corrupt, `limit ${limit}`)
      for (const i of reads) assert.ok(i < limit, `limit ${limit}: read byte ${i}`)
    }
  })
})

// ---- properties ----

const msgArb: fc.Arbitrary<Msg> = fc.record({
  kind: fc.constantFrom(
    MessageKind.Canceled,
    MessageKind.Record,
    MessageKind.BlobPointer,
    MessageKind.BatchManifest,
    MessageKind.Witness,
  ),
  id: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.maxSafeNat()),
  body: fc.oneof(
    { weight: 3, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 40 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 400 }) },
    // Bodies of zeros make zeroing damage invisible for those bytes: still no phantom.
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 60 }).map((n) => new Uint8Array(n)) },
  ),
})

const segArb = fc.record({
  S: fc.constantFrom<number>(1024, 1500, 2048, 4096),
  segmentNumber: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 2 ** 40 })),
  msgs: fc.array(msgArb, { minLength: 0, maxLength: 40, size: 'medium' }),
})

/** Scans like recovery: from the first message while Ok; returns the Ok messages and the stop result. */
function scan(
  image: Uint8Array,
  limit: number,
  S: number,
  seg: number,
): { ok: Placed[]; stop: Parse; at: number } {
  const out = newParsedMessage()
  const ok: Placed[] = []
  let at = H
  for (;;) {
    const r = parseMessage(image, at, limit, S, seg, out)
    if (r !== Parse.Ok) return { ok, stop: r, at }
    ok.push({
      kind: out.kind,
      id: out.id,
      body: image.slice(at + out.headerBytes, at + out.totalBytes),
      at,
      totalBytes: out.totalBytes,
      segmentNumber: out.segmentNumber,
    })
    assert.ok(out.totalBytes > 0)
    at += out.totalBytes
  }
}

function sameMessage(a: Placed, b: Placed): boolean {
  return (
    a.at === b.at &&
    a.kind === b.kind &&
    a.id === b.id &&
    a.totalBytes === b.totalBytes &&
    a.segmentNumber === b.segmentNumber &&
    a.body.length === b.body.length &&
    a.body.every((x, i) => x === b.body[i])
  )
}

describe('parseMessage: properties', () => {
  test('a scan yields exactly the written messages, then Corrupt (or EndOfSegment in the red zone)', () => {
    fc.assert(
      fc.property(segArb, ({ S, segmentNumber, msgs }) => {
        const { image, placed } = buildSegment(S, segmentNumber, msgs)
        const r = scan(image, S, S, segmentNumber)
        assert.equal(r.ok.length, placed.length)
        placed.forEach((m, i) => {
          assert.ok(sameMessage(r.ok[i] as Placed, m), `message ${i}`)
        })
        const tail =
          placed.length === 0 ? H : (placed.at(-1) as Placed).at + (placed.at(-1) as Placed).totalBytes
        assert.equal(r.at, tail)
        if (tail > S - RED_ZONE_BYTES - 1) assert.equal(r.stop, Parse.EndOfSegment)
        else assert.equal(r.stop, Parse.Corrupt)
      }),
      { numRuns: 300 },
    )
  })

  test('a Cap after the messages ends the scan with EndOfSegment', () => {
    fc.assert(
      fc.property(segArb, ({ S, segmentNumber, msgs }) => {
        const { image, placed } = buildSegment(S, segmentNumber, msgs)
        const tail =
          placed.length === 0 ? H : (placed.at(-1) as Placed).at + (placed.at(-1) as Placed).totalBytes
        fc.pre(S - tail >= 32)
        put(image, tail, segmentNumber, { kind: MessageKind.Cap, id: 0, body: new Uint8Array(S - tail - 32) })
        const r = scan(image, S, S, segmentNumber)
        assert.equal(r.ok.length, placed.length)
        assert.equal(r.at, tail)
        assert.equal(r.stop, Parse.EndOfSegment)
      }),
      { numRuns: 100 },
    )
  })

  test('truncation or zeroing never yields a message that was not written', () => {
    const damage = fc.record({
      mode: fc.constantFrom('limit', 'zero-tail', 'zero-range', 'stale-tail'),
      cut: fc.double({ min: 0, max: 1, noNaN: true }),
      len: fc.integer({ min: 1, max: 64 }),
    })
    fc.assert(
      fc.property(segArb, damage, ({ S, segmentNumber, msgs }, { mode, cut, len }) => {
        const { image, placed } = buildSegment(S, segmentNumber, msgs)
        const k = H + Math.floor(cut * (S - H))
        let limit = S
        if (mode === 'limit') limit = k
        else if (mode === 'zero-tail') image.fill(0, k)
        else if (mode === 'zero-range') image.fill(0, k, Math.min(S, k + len))
        else {
          // Torn write over an older life: the tail holds the same layout from another segment number.
          const older = buildSegment(S, segmentNumber + 1, msgs).image
          image.set(older.subarray(k), k)
        }
        const r = scan(image, limit, S, segmentNumber)
        for (const m of r.ok) {
          const w = placed.find((p) => p.at === m.at)
          assert.ok(w !== undefined && sameMessage(m, w), `phantom message at ${m.at}`)
        }
        // Every message wholly before the damage is still read.
        const intact = placed.filter((p) => p.at + p.totalBytes <= k)
        assert.ok(r.ok.length >= intact.length, `lost intact messages: ${r.ok.length} < ${intact.length}`)
        // No offset at all parses as a message that was not written (not only the scan chain).
        const out = newParsedMessage()
        for (let at = H; at < S - RED_ZONE_BYTES; at++) {
          if (parseMessage(image, at, limit, S, segmentNumber, out) !== Parse.Ok) continue
          const w = placed.find((p) => p.at === at)
          assert.ok(w !== undefined, `phantom message at offset ${at}`)
          assert.equal(out.totalBytes, w.totalBytes)
        }
      }),
      { numRuns: 200 },
    )
  })
})
