// The mirror of the write path: validates one message in a segment image. Used by
// recovery (scan) and by iteration; both trust nothing (docs/FORMAT.md, "Reading").

import { assert } from '../util/assert.js'
import {
  type DecodedHeader,
  decodeMessageHeader,
  isKnownKind,
  MessageKind,
  messageCrc,
  RED_ZONE_BYTES,
  readU32,
  SEGMENT_HEADER_BYTES,
} from './format.js'

export const enum Parse {
  Ok = 0,
  /** No message can start here (red zone or past a Cap): continue with the next segment. */
  EndOfSegment = 1,
  /** Bytes that are not a valid message of this segment: a tear, or damage. */
  Corrupt = 2,
}

export interface ParsedMessage extends DecodedHeader {
  /** Offset of the message inside the segment. */
  at: number
  totalBytes: number
}

/** Why a message was rejected, for error messages and tests. */
export let lastCorruptReason = ''

/**
 * Validates the message starting at in-segment offset `at` of `segment`, an image of part
 * of the segment whose byte 0 is the segment's byte `origin` (0: a whole-segment image).
 * `at` and `limit` are in-segment offsets; bytes at or past `limit` are treated as
 * unavailable. Checks, in order: room for a header, header decodes, kind known, body fits
 * the segment, segment number, CRC (for Record and Canceled messages only if `checkCrc`).
 */
export function parseMessage(
  segment: Uint8Array,
  at: number,
  limit: number,
  segmentBytes: number,
  segmentNumber: number,
  out: ParsedMessage,
  checkCrc = true,
  origin = 0,
): Parse {
  assert(origin >= 0 && origin <= at, 'the image starts at or before the message')
  if (at < SEGMENT_HEADER_BYTES) {
    lastCorruptReason = 'message inside the segment header'
    return Parse.Corrupt
  }
  if (at > segmentBytes - RED_ZONE_BYTES - 1) return Parse.EndOfSegment
  const end = Math.min(limit, segmentBytes, origin + segment.length)
  if (!decodeMessageHeader(segment, at - origin, end - origin, out)) {
    lastCorruptReason = 'undecodable header'
    return Parse.Corrupt
  }
  if (!isKnownKind(out.kind)) {
    lastCorruptReason = `unknown kind ${out.kind}`
    return Parse.Corrupt
  }
  const total = out.headerBytes + out.bodyBytes
  if (at + total > segmentBytes) {
    lastCorruptReason = `body of ${out.bodyBytes} bytes overruns the segment`
    return Parse.Corrupt
  }
  if (at + total > end) {
    lastCorruptReason = 'message extends past the readable bytes'
    return Parse.Corrupt
  }
  if (out.segmentNumber !== segmentNumber) {
    lastCorruptReason = `segment number ${out.segmentNumber}, expected ${segmentNumber}`
    return Parse.Corrupt
  }
  // Recovery may skip the CRC of plain records it trusts (below the durable witness): they
  // are checked when read. Messages that steer recovery are always checked.
  const mustCheck = checkCrc || (out.kind !== MessageKind.Record && out.kind !== MessageKind.Canceled)
  if (mustCheck && readU32(segment, at - origin) !== messageCrc(segment, at - origin, total)) {
    lastCorruptReason = 'CRC mismatch'
    return Parse.Corrupt
  }
  out.at = at
  out.totalBytes = total
  if (out.kind === MessageKind.Cap) return Parse.EndOfSegment
  return Parse.Ok
}

export function newParsedMessage(): ParsedMessage {
  return { kind: 0, bodyBytes: 0, segmentNumber: 0, id: 0, headerBytes: 0, at: 0, totalBytes: 0 }
}
