// Recovery: from the bytes of the log file to a trusted end of the log. This is the one
// place that decides what on disk is believed; docs/RECOVERY.md explains it in prose.
//
// Decision table (evaluated in this order):
//
// | situation                                                        | decision                                   |
// |------------------------------------------------------------------|--------------------------------------------|
// | slot header: CRC ok, but other log id / segment size / version   | CorruptionError (foreign or mixed segment) |
// | slot header: CRC ok, but a field > 2^53, or first LSN above the   | CorruptionError (no writer builds it)      |
// |   base LSN or above the max stable LSN + 1                       |                                            |
// | two slots claim the same segment LSN                             | CorruptionError                            |
// | slot header fails its CRC (zeroed, never written, or torn)       | slot is not part of the log                |
// | segment below the log start (highest first LSN of the headers    | truncation remnant: stale                  |
// |   of kept segments; a header beyond the end does not count)      |                                            |
// | gap in segment LSNs at g (from the log start on), g ≤ witness    | CorruptionError (a durable segment lost)   |
// | gap at g above the witness                                       | log ends at g; later segments are stale    |
// | message invalid at LSN x ≤ witness                               | CorruptionError (damage below the witness) |
// | message invalid at LSN x > witness                               | torn tail: the log ends at x               |
// | Cap, or red zone reached                                         | continue with the next segment             |
// | batch manifest whose last byte lies at or past the end           | log ends at the manifest (batch dropped)   |
// | end of log below the witness                                     | CorruptionError                            |
//
// The witness is the highest stable LSN recorded durably: every segment header carries the
// public stable LSN of its opening, Witness messages carry it mid-segment, and a clean close
// writes one last Witness. Only bytes above it may be treated as a torn tail.
//
// After deciding, recovery plans how the on-disk state is made to match the decision before
// any new write: the rest of the end segment and every slot outside the log are to be zeroed
// (when not already zero) and datasynced, so stale messages can never be read as part of a
// later log. It writes nothing itself: the plan (repairs.ts) is applied only once the open is
// accepted, by the log alone or by the layers above it (a refused open leaves the folder as
// found, regimen R8); until then the log is read through a view of the planned state
// (repaired-file.ts). A power cut before the plan is applied loses nothing: the next
// recovery finds the same bytes and plans the same repairs.

import { Buffer } from 'node:buffer'
import { CorruptionError } from '../errors.js'
import type { Storage, StorageFile } from '../io/index.js'
import { assert } from '../util/assert.js'
import { BLOB_DIR } from './blob.js'
import type { Conf } from './conf.js'
import {
  BLOB_POINTER_BODY_BYTES,
  decodeSegmentHeader,
  MessageKind,
  OLDEST_FORMAT_VERSION,
  RED_ZONE_BYTES,
  readU32,
  readU64,
  SEGMENT_HEADER_BYTES,
  U64_BODY_BYTES,
} from './format.js'
import { lastCorruptReason, newParsedMessage, Parse, parseMessage } from './reader.js'
import { RepairedFile } from './repaired-file.js'
import { type LogRepairs, zeroSlotBytes } from './repairs.js'
import { readTailJournal } from './tail-journal.js'

export interface SegmentSlot {
  baseLsn: number
  slot: number
}

export interface RecoveredBlob {
  id: number
  lsn: number
  sizeBytes: number
  crc: number
}

export interface RecoveredLog {
  /** Where the log begins (raised by truncateBefore). */
  firstLsn: number
  /** LSN of the next byte to write; every byte below it is durable and valid. */
  nextLsn: number
  /** Segments of the log in LSN order (the last may be the active one). */
  segments: SegmentSlot[]
  /** Slots not holding any segment of the log (all zero on disk after recovery). */
  freeSlots: number[]
  slotCount: number
  /** Highest durably witnessed stable LSN. */
  witnessLsn: number
  /** True when nextLsn lies inside the last segment with room for more messages. */
  continuesLastSegment: boolean
  blobs: RecoveredBlob[]
  records: number
  recordBytes: number
  /** Segments to be zeroed because they lie outside the log. */
  zeroedSlots: number
  /** What must be written before the log takes a new write (repairs.ts). */
  repairs: LogRepairs
  /** The log file as the repairs will leave it: read it, not the file, until they are applied. */
  view: RepairedFile
  /**
   * Message starts the scan walked, by segment base, ascending, at least
   * MESSAGE_MARK_EVERY_BYTES apart, all below `nextLsn`: iterFrom() starts its walk at the
   * last one at or below where it is asked to begin (record-reader.ts).
   */
  messageMarks: Map<number, number[]>
}

/** Spacing of RecoveredLog.messageMarks: what iterFrom() may walk before its start. */
const MESSAGE_MARK_EVERY_BYTES = 4096

const READ_AHEAD = 4

/** What the caller already read of the folder, so that recovery need not ask again. */
export interface KnownFolder {
  hasTailJournal: boolean
  /** The blob folder's entries (none when it is missing). */
  blobNames: readonly string[]
}

interface SlotInfo {
  slot: number
  baseLsn: number
  maxStableLsn: number
  firstLsn: number
}

/**
 * Decides what the log holds and plans the repairs that make the disk say so; writes
 * nothing. `raw` is the log file, undefined when it does not exist yet (an empty log). On a
 * throw the tail journal this opened is closed again.
 */
export async function recoverLog(
  storage: Storage,
  raw: StorageFile | undefined,
  fileLabel: string,
  conf: Conf,
  closeWitness = -1,
  verifyAll = false,
  scanWitnessed = true,
  folder?: KnownFolder,
): Promise<RecoveredLog> {
  const S = conf.segmentBytes
  // 0. A tail rewrite that a power cut interrupted is finished by replaying its journal
  // (tail-journal.ts); until then the log reads as if it had been.
  // A missing log file is an empty one: every extent lies past its end.
  const rawBytes = raw === undefined ? 0 : await raw.size()
  const journal =
    folder?.hasTailJournal === false ? undefined : await readTailJournal(storage, rawBytes, conf.logId, S)
  // Reads started beside the scan; on a throw they settle before the files they read close.
  const sideReads: Promise<unknown>[] = []
  try {
    const view = new RepairedFile(raw, rawBytes, journal?.file)
    for (const e of journal?.extents ?? []) view.fromJournal(e.position, e.length, e.at)
    return await decideAndPlan(
      storage,
      view,
      fileLabel,
      conf,
      journal,
      closeWitness,
      verifyAll,
      scanWitnessed,
      sideReads,
      folder,
    )
  } catch (e) {
    await Promise.allSettled(sideReads)
    await journal?.file?.close().catch(() => {})
    throw e
  }
}

async function decideAndPlan(
  storage: Storage,
  file: RepairedFile,
  fileLabel: string,
  conf: Conf,
  journal: Awaited<ReturnType<typeof readTailJournal>>,
  closeWitness: number,
  verifyAll: boolean,
  scanWitnessed: boolean,
  sideReads: Promise<unknown>[],
  folder: KnownFolder | undefined,
): Promise<RecoveredLog> {
  const S = conf.segmentBytes
  const size = await file.size()
  const slotCount = Math.floor(size / S) + (size % S >= SEGMENT_HEADER_BYTES ? 1 : 0)

  // 1. Header scan.
  const headers = await readHeaders(file, slotCount, S)
  const valid: SlotInfo[] = []
  const invalidSlots: number[] = []
  for (let slot = 0; slot < slotCount; slot++) {
    const check = decodeSegmentHeader(headers, slot * SEGMENT_HEADER_BYTES)
    const where = { file: fileLabel, offset: slot * S }
    if (!check.ok && check.reason === 'field')
      throw new CorruptionError(`segment slot ${slot} has a header whose fields contradict each other`, where)
    if (!check.ok) {
      invalidSlots.push(slot)
      continue
    }
    const h = check.header
    if (h.logId !== conf.logId)
      throw new CorruptionError(`segment slot ${slot} belongs to another log`, where)
    // Headers of an upgraded log keep the version they were written with (≤ the conf's).
    const versionOk = h.formatVersion >= OLDEST_FORMAT_VERSION && h.formatVersion <= conf.formatVersion
    if (h.segmentBytes !== S || !versionOk || h.baseLsn % S !== 0) {
      throw new CorruptionError(`segment slot ${slot} has a header that does not match conf`, where)
    }
    valid.push({ slot, baseLsn: h.baseLsn, maxStableLsn: h.maxStableLsn, firstLsn: h.firstLsn })
  }
  valid.sort((a, b) => a.baseLsn - b.baseLsn)
  // A slot whose header is all zeros holds no segment, whatever the chain turns out to be:
  // it is free, and only a read of its body tells whether it is zero on disk (step 5). Those
  // reads run beside the message scan, started once its first reads are on their way (at
  // 1M records, 8 slots took 3–4 ms one by one after it). Every other free slot has a
  // non-zero header, so it is dirty without a read.
  const blankSlots = new Set(
    invalidSlots.filter((slot) =>
      isZero(headers, slot * SEGMENT_HEADER_BYTES, (slot + 1) * SEGMENT_HEADER_BYTES),
    ),
  )
  let blankDirty: Promise<Set<number>> | undefined
  const checkBlanks = (): Promise<Set<number>> => {
    if (blankDirty === undefined) {
      blankDirty = findDirtySlots(file, [...blankSlots], S)
      // Not an unhandled rejection if a throw leaves it behind (recoverLog awaits it then).
      blankDirty.catch(() => {})
      sideReads.push(blankDirty)
    }
    return blankDirty
  }
  // The stable LSN of the last clean close, read before any scanning (close-witness.ts).
  let witnessOfHeaders = closeWitness
  for (let i = 0; i < valid.length; i++) {
    const v = valid[i] as SlotInfo
    if (i > 0 && (valid[i - 1] as SlotInfo).baseLsn === v.baseLsn) {
      throw new CorruptionError(`two segment slots claim LSN ${v.baseLsn}`, {
        file: fileLabel,
        lsn: v.baseLsn,
      })
    }
    witnessOfHeaders = Math.max(witnessOfHeaders, v.maxStableLsn)
  }

  // The log's start is the highest first LSN in the header of a segment the log keeps. A
  // header beyond the recovered end (a torn tail, or after a gap) was never covered by a
  // completed datasync: truncation zeroes slots only after the header raising the start is
  // durable, and durability is contiguous. Such a claim is ignored, and steps 2–4 run again
  // from the start the kept headers name: otherwise this recovery would zero segments the
  // log still holds, and the next one, finding no durable header with that start, would
  // miss segment 0 below the witness (B-PC4).
  let exclude = Number.POSITIVE_INFINITY
  let logStart = 0
  let d: Awaited<ReturnType<typeof decide>>
  for (;;) {
    logStart = 0
    for (const v of valid) if (v.baseLsn < exclude) logStart = Math.max(logStart, v.firstLsn)
    d = await decide(logStart)
    const lastBase = d.chain.length === 0 ? -1 : (d.chain[d.chain.length - 1] as SlotInfo).baseLsn
    let keptStart = 0
    for (const v of valid) if (v.baseLsn <= lastBase) keptStart = Math.max(keptStart, v.firstLsn)
    if (keptStart === logStart) break
    exclude = lastBase + 1
  }
  const { chain, stale, end, endChainIndex, endImage, endAt, blobs, records, recordBytes, marks } = d
  const witness = d.witness

  /** Steps 2–4 for one candidate start: which segments and bytes the log holds. */
  async function decide(logStart: number) {
    let witness = witnessOfHeaders
    // 2. The chain of consecutive segments from the log's start. Segments below the start
    // are remnants of a truncation; a gap at or below the witness is a lost durable segment;
    // a gap above it means nothing from there on was ever stable.
    const chain: SlotInfo[] = []
    const stale: number[] = []
    let gapAt: number | undefined
    for (const v of valid) {
      if (v.baseLsn < logStart) {
        stale.push(v.slot)
        continue
      }
      if (gapAt === undefined) {
        const expected = chain.length === 0 ? logStart : (chain[chain.length - 1] as SlotInfo).baseLsn + S
        if (v.baseLsn === expected) {
          chain.push(v)
          continue
        }
        if (expected <= witness) {
          throw new CorruptionError(
            `segment at LSN ${expected} is missing below the durable witness ${witness}`,
            {
              file: fileLabel,
              lsn: expected,
            },
          )
        }
        gapAt = expected
      }
      stale.push(v.slot)
    }

    // 3. Message scan, with read-ahead of the next segment.
    const msg = newParsedMessage()
    const marks = new Map<number, number[]>()
    const blobs: RecoveredBlob[] = []
    let records = 0
    let recordBytes = 0
    let end = chain.length === 0 ? logStart : (chain[0] as SlotInfo).baseLsn + SEGMENT_HEADER_BYTES
    let endChainIndex = chain.length - 1
    let endsInside = false
    let endImage: Uint8Array | undefined
    let endAt = 0
    // The last manifest seen and the counters before it, for cutting a torn batch.
    let manifest:
      | { lsn: number; peg: number; records: number; recordBytes: number; blobs: number }
      | undefined
    // Reads run READ_AHEAD segments ahead of the scan, into a small ring of buffers (a fresh
    // zeroed segment buffer per read costs more than the read itself from the page cache).
    // Segments wholly at or below the witness need no walk when nothing asks for their
    // counts and no blob file could be an orphan they would clear: open then reads only the
    // tail. (A batch cannot straddle the witness: stability never publishes half a batch.)
    let firstScan = 0
    const hasBlobs = (): boolean | Promise<boolean> =>
      folder === undefined ? hasBlobFiles(storage) : folder.blobNames.length > 0
    if (!scanWitnessed && !verifyAll && !(await hasBlobs())) {
      while (firstScan < chain.length - 1 && (chain[firstScan] as SlotInfo).baseLsn + S - 1 <= witness)
        firstScan++
      if (firstScan > 0) end = (chain[firstScan] as SlotInfo).baseLsn + SEGMENT_HEADER_BYTES
    }
    // A buffer per segment the scan reads, no more: after a clean close that is one. Not
    // zeroed here: every read fills its buffer, zeros past the end of the file included,
    // and a megabyte zeroed on the main thread cost ~0.5 ms of the reopen.
    const ring = Array.from({ length: Math.min(chain.length - firstScan, READ_AHEAD + 1) }, () =>
      uninitializedBytes(S),
    )
    const reads: Array<Promise<Uint8Array> | undefined> = []
    const issue = (k: number): void => {
      if (k >= chain.length) return
      const p = readSegmentInto(file, (chain[k] as SlotInfo).slot, S, ring[k % ring.length] as Uint8Array)
      // A read-ahead left behind by a throw below must not become an unhandled rejection.
      p.catch(() => {})
      reads[k] = p
    }
    for (let k = firstScan; k < firstScan + READ_AHEAD; k++) issue(k)
    void checkBlanks()
    scan: for (let i = firstScan; i < chain.length; i++) {
      const seg = chain[i] as SlotInfo
      const image = await (reads[i] as Promise<Uint8Array>)
      reads[i] = undefined
      issue(i + READ_AHEAD)
      const segmentNumber = seg.baseLsn / S
      let at = SEGMENT_HEADER_BYTES
      const segMarks: number[] = []
      marks.set(seg.baseLsn, segMarks)
      let nextMark = 0
      for (;;) {
        // Bytes at or below the witness were synced and are trusted, as in sled: their CRCs
        // are checked on every read instead (docs/DESIGN.md). Above it, everything is checked.
        const r = parseMessage(image, at, S, S, segmentNumber, msg, verifyAll || seg.baseLsn + at > witness)
        if (r === Parse.EndOfSegment) {
          end = seg.baseLsn + S
          break
        }
        const lsn = seg.baseLsn + at
        if (r === Parse.Corrupt) {
          const reason = lastCorruptReason
          // A Witness written after the damage proves the damaged bytes were durable.
          if (!isZero(image, at, S))
            witness = Math.max(witness, laterWitness(image, at + 1, S, segmentNumber, seg.baseLsn))
          if (lsn <= witness) {
            throw new CorruptionError(
              `log damaged at LSN ${lsn} (${reason}), below the durable witness ${witness}`,
              {
                file: fileLabel,
                offset: seg.slot * S + at,
                lsn,
              },
            )
          }
          end = lsn
          endChainIndex = i
          endsInside = true
          endImage = image
          endAt = at
          for (let j = i + 1; j < chain.length; j++) stale.push((chain[j] as SlotInfo).slot)
          chain.length = i + 1
          break scan
        }
        if (lsn >= nextMark) {
          segMarks.push(lsn)
          nextMark = lsn + MESSAGE_MARK_EVERY_BYTES
        }
        const body = at + msg.headerBytes
        switch (msg.kind) {
          case MessageKind.Record:
            records++
            recordBytes += msg.bodyBytes
            break
          case MessageKind.BlobPointer:
            if (msg.bodyBytes !== BLOB_POINTER_BODY_BYTES || readU64(image, body) < 0) {
              throw new CorruptionError(`malformed blob pointer at LSN ${lsn}`, { file: fileLabel, lsn })
            }
            blobs.push({
              id: readU64(image, body),
              lsn,
              sizeBytes: readU64(image, body + 8),
              crc: readU32(image, body + 16),
            })
            records++
            recordBytes += readU64(image, body + 8)
            break
          case MessageKind.Witness: {
            const w = msg.bodyBytes === U64_BODY_BYTES ? readU64(image, body) : -1
            if (w < 0 || w - 1 >= lsn)
              throw new CorruptionError(`malformed witness at LSN ${lsn}`, { file: fileLabel, lsn })
            witness = Math.max(witness, w - 1)
            break
          }
          case MessageKind.BatchManifest: {
            const peg = msg.bodyBytes === U64_BODY_BYTES ? readU64(image, body) : -1
            if (peg < lsn)
              throw new CorruptionError(`malformed batch manifest at LSN ${lsn}`, { file: fileLabel, lsn })
            manifest = { lsn, peg, records, recordBytes, blobs: blobs.length }
            break
          }
          default:
            // Canceled: a reservation that was aborted; skipped.
            break
        }
        at += msg.totalBytes
        end = seg.baseLsn + at
        if (i === chain.length - 1) {
          endImage = image
          endAt = at
        }
      }
    }
    if (!endsInside && chain.length > 0) {
      // The scan ran off the last segment cleanly (after a Cap or in the red zone) or ended
      // in unwritten space; either way `end` is where the next message goes.
      endChainIndex = chain.length - 1
    }

    // 4. A batch that is not wholly inside the log is dropped, with everything after it.
    if (manifest !== undefined && manifest.peg >= end) {
      end = manifest.lsn
      records = manifest.records
      recordBytes = manifest.recordBytes
      blobs.length = manifest.blobs
      const segIndex = chain.findIndex((s) => s.baseLsn <= end && end < s.baseLsn + S)
      assert(segIndex >= 0, 'a manifest lies inside the chain')
      for (let j = segIndex + 1; j < chain.length; j++) stale.push((chain[j] as SlotInfo).slot)
      chain.length = segIndex + 1
      endChainIndex = segIndex
      endImage = await readSegment(file, (chain[segIndex] as SlotInfo).slot, S)
      endAt = end - (chain[segIndex] as SlotInfo).baseLsn
    }
    if (end <= witness) {
      throw new CorruptionError(`the log ends at LSN ${end}, below its durable witness ${witness}`, {
        file: fileLabel,
        lsn: end,
      })
    }

    // Starts at or past the end name messages the plan cuts or zeroes.
    for (const [base, list] of marks) {
      while (list.length > 0 && (list[list.length - 1] as number) >= end) list.pop()
      if (list.length === 0) marks.delete(base)
    }
    return { chain, stale, end, endChainIndex, endImage, endAt, blobs, records, recordBytes, witness, marks }
  }

  // 5. Plan what makes the disk match the decision before anything new is written.
  const repairs: LogRepairs = {
    journal,
    endZero: undefined,
    tail: [],
    zeroSlots: [],
    truncateTo: undefined,
    fileBytes: size,
  }
  const lastSeg = chain[endChainIndex]
  let continuesLastSegment = false
  if (lastSeg !== undefined && endImage !== undefined) {
    const inSegment = end - lastSeg.baseLsn
    continuesLastSegment = inSegment < S - RED_ZONE_BYTES && inSegment === endAt
    if (inSegment < S && !isZero(endImage, inSegment, S)) {
      // Zeroing never extends the file: past its end every byte reads as zero already.
      const position = lastSeg.slot * S + inSegment
      repairs.endZero = { position, length: Math.min(S - inSegment, size - position) }
    }
  }
  // fsyncgate: bytes above the witness may sit in the page cache after a failed datasync
  // that marked them clean without storing them. Writing them again makes the datasync
  // that follows cover them, so nothing this recovery accepts can vanish at the next power
  // cut. Their copy goes to the tail journal first: a torn rewrite must not damage bytes
  // that were durable already. (Copies: the scan's buffers are reused.)
  for (const seg of chain) {
    const lo = Math.max(witness + 1, seg.baseLsn)
    const hi = Math.min(end, seg.baseLsn + S)
    if (lo >= hi) continue
    const image = seg === lastSeg && endImage !== undefined ? endImage : await readSegment(file, seg.slot, S)
    repairs.tail.push({
      position: seg.slot * S + (lo - seg.baseLsn),
      bytes: image.slice(lo - seg.baseLsn, hi - seg.baseLsn),
    })
  }
  const live = new Set(chain.map((c) => c.slot))
  const freeSlots: number[] = []
  const outside = [...stale, ...invalidSlots].sort((a, b) => a - b)
  const dirtyBlanks = await checkBlanks()
  for (const slot of outside) {
    if (live.has(slot)) continue
    freeSlots.push(slot)
    if (!blankSlots.has(slot) || dirtyBlanks.has(slot)) repairs.zeroSlots.push(slot)
  }
  // A partial slot too short to hold a header: torn file growth.
  if (size > slotCount * S) repairs.truncateTo = slotCount * S
  if (repairs.endZero !== undefined) file.zero(repairs.endZero.position, repairs.endZero.length)
  for (const slot of repairs.zeroSlots) file.zero(slot * S, zeroSlotBytes(slot, S, size))
  if (repairs.truncateTo !== undefined) file.cut(repairs.truncateTo)

  return {
    firstLsn: logStart,
    nextLsn: end,
    segments: chain.map((c) => ({ baseLsn: c.baseLsn, slot: c.slot })),
    freeSlots,
    slotCount,
    witnessLsn: witness,
    continuesLastSegment,
    blobs,
    records,
    recordBytes,
    zeroedSlots: repairs.zeroSlots.length,
    repairs,
    view: file,
    messageMarks: marks,
  }
}

/** The blob folder holds an entry (it is made at the first accepted open, so may be missing). */
async function hasBlobFiles(storage: Storage): Promise<boolean> {
  return (await storage.exists(BLOB_DIR)) && (await storage.list(BLOB_DIR)).length > 0
}

/**
 * Looks past damage at in-segment offset `from` for a valid Witness message of the same
 * segment life and returns the stable LSN it records (-1 if none). Only valid messages
 * count: kind, segment number, bounds and CRC all check.
 */
function laterWitness(
  image: Uint8Array,
  from: number,
  S: number,
  segmentNumber: number,
  baseLsn: number,
): number {
  const msg = newParsedMessage()
  let best = -1
  for (let at = Math.max(from, SEGMENT_HEADER_BYTES); at <= S - RED_ZONE_BYTES - 1; at++) {
    if (image[at + 4] !== MessageKind.Witness) continue
    if (parseMessage(image, at, S, S, segmentNumber, msg) !== Parse.Ok || msg.bodyBytes !== U64_BODY_BYTES)
      continue
    const w = readU64(image, at + msg.headerBytes) - 1
    if (w >= -1 && w < baseLsn + at) best = Math.max(best, w)
  }
  return best
}

/** Bytes findDirtySlots() reads at a time, into a buffer per reader that stays in cache. */
const ZERO_CHECK_CHUNK_BYTES = 256 * 1024
/** Slots findDirtySlots() reads at once (the thread pool has 4 threads; the scan takes one). */
const ZERO_CHECK_READERS = 2

/**
 * Which of `slots` hold a non-zero byte (bytes past the end of the file read as zeros).
 * Every open reads every free slot: truncation zeroed them, so nearly all are zero, and a
 * slot's check stops at its first non-zero chunk.
 */
async function findDirtySlots(file: StorageFile, slots: readonly number[], S: number): Promise<Set<number>> {
  const dirty = new Set<number>()
  let next = 0
  const reader = async (): Promise<void> => {
    // Only the bytes a read returned are compared: no need to zero it first.
    const chunk = uninitializedBytes(Math.min(S, ZERO_CHECK_CHUNK_BYTES))
    while (next < slots.length) {
      const slot = slots[next++] as number
      for (let at = 0; at < S; ) {
        const n = await file.read(chunk, 0, Math.min(chunk.length, S - at), slot * S + at)
        if (n === 0) break
        if (!isZero(chunk, 0, n)) {
          dirty.add(slot)
          break
        }
        at += n
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(slots.length, ZERO_CHECK_READERS) }, reader))
  return dirty
}

async function readHeaders(file: StorageFile, slotCount: number, S: number): Promise<Uint8Array> {
  const all = new Uint8Array(slotCount * SEGMENT_HEADER_BYTES)
  // Each round costs a thread-pool round trip at every open: 146 slots at 1M records.
  const parallel = 256
  for (let first = 0; first < slotCount; first += parallel) {
    const reads: Promise<number>[] = []
    for (let slot = first; slot < Math.min(slotCount, first + parallel); slot++) {
      reads.push(file.read(all, slot * SEGMENT_HEADER_BYTES, SEGMENT_HEADER_BYTES, slot * S))
    }
    await Promise.all(reads)
  }
  return all
}

/**
 * An array of `n` bytes whose memory is not zeroed first: only for a buffer a read fills
 * before anything reads it (readSegmentInto() zeroes what lies past the end of the file).
 * A plain Uint8Array, not a Buffer: Buffer's slice() is a view, where callers copy.
 */
function uninitializedBytes(n: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(n).buffer, 0, n)
}

/** Reads a whole slot; bytes past the end of the file read as zeros. */
export function readSegment(file: StorageFile, slot: number, S: number): Promise<Uint8Array> {
  return readSegmentInto(file, slot, S, new Uint8Array(S))
}

async function readSegmentInto(
  file: StorageFile,
  slot: number,
  S: number,
  image: Uint8Array,
): Promise<Uint8Array> {
  let got = 0
  while (got < S) {
    const n = await file.read(image, got, S - got, slot * S + got)
    if (n === 0) break
    got += n
  }
  image.fill(0, got)
  return image
}

/** Zeros that isZero() compares against: never written. */
const ZERO_BLOCK = new Uint8Array(64 * 1024)

function isZero(b: Uint8Array, from: number, to: number): boolean {
  // memcmp against zeros: recovery calls this on whole free segments at every open, where a
  // JS loop over the words took longer than reading them.
  for (let i = from; i < to; i += ZERO_BLOCK.length) {
    const end = Math.min(to, i + ZERO_BLOCK.length)
    if (Buffer.compare(b.subarray(i, end), ZERO_BLOCK.subarray(0, end - i)) !== 0) return false
  }
  return true
}
