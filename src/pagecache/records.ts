// The page cache's records inside log messages (docs/FORMAT.md, "Page records"):
// one kind byte, the page id as a varint, then the payload (a base or a delta; nothing
// for Free). The page id lives in the body, not in the log's id field, so the records of
// an atomic batch (one log id for all) can name different pages.

import { CorruptionError } from '../errors.js'
import { readVarint, varintBytes, writeVarint } from '../log/index.js'
import type { CopySlab } from '../util/copy-slab.js'

export const enum PageRecordKind {
  Replace = 1,
  Link = 2,
  Free = 3,
}

/** The record's bytes; carved from `slab` when given (for records the log copies at once). */
export function encodePageRecord(
  kind: PageRecordKind,
  pid: number,
  payload?: Uint8Array,
  slab?: CopySlab,
): Uint8Array {
  const n = payload === undefined ? 0 : payload.length
  const size = 1 + varintBytes(pid) + n
  const out = slab === undefined ? new Uint8Array(size) : slab.alloc(size)
  out[0] = kind
  const at = 1 + writeVarint(out, 1, pid)
  if (payload !== undefined) out.set(payload, at)
  return out
}

/**
 * A record's bytes before its payload (kind byte, page id), for Log.appendWithHead(): a
 * write then copies its page once, into the log, instead of into a whole record first.
 * Heads are arrays made once, one per length: appendWithHead() copies the head before it
 * returns, so the next write reuses it. A fresh array per
 * write was ~190 B of garbage per page written, and garbage sets how often V8 scavenges
 * (docs/DESIGN.md, "Peak RSS"). One per page cache, so no state is shared between
 * databases.
 */
export class PageRecordHeads {
  /** Index: the head's length, 1 + the page id's varint (at most 9 bytes for a safe integer). */
  private readonly byLength = Array.from({ length: 11 }, (_, n) => new Uint8Array(n))

  /** The head of a `kind` record of page `pid`, valid until the next call. */
  encode(kind: PageRecordKind, pid: number): Uint8Array {
    const out = this.byLength[1 + varintBytes(pid)] as Uint8Array
    out[0] = kind
    writeVarint(out, 1, pid)
    return out
  }
}

export interface PageRecord {
  kind: PageRecordKind
  pid: number
  payload: Uint8Array
}

const scratch = { bytes: 0 }

/**
 * Parses a record. The log already checked its CRC; a record that still does not parse
 * was written by something else, which is corruption, not a reason to guess.
 */
export function decodePageRecord(data: Uint8Array, lsn: number): PageRecord {
  const kind = data[0]
  const pid = readVarint(data, 1, data.length, scratch)
  if (
    (kind !== PageRecordKind.Replace && kind !== PageRecordKind.Link && kind !== PageRecordKind.Free) ||
    pid < 0
  ) {
    throw new CorruptionError(`the record at LSN ${lsn} is not a page record`, { lsn })
  }
  return { kind, pid, payload: data.subarray(1 + scratch.bytes) }
}
