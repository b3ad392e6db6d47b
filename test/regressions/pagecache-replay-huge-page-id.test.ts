// A page record naming a huge page id early in a large log. Replay rejects a page id too
// far beyond the pages the rest of the log could still create, before it grows the page
// table for it: the table is typed-array columns, so a row for page 2^24 + 2^19 is an
// allocation of some 1 GB (and, for larger ids in larger logs, V8's RangeError instead of
// the CorruptionError a damaged file gets). The bound used to count every byte of LSN left
// as a possible page; a page record takes at least 10.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CorruptionError } from '../../src/errors.js'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { PageTable } from '../../src/pagecache/page-table.js'
import { encodePageRecord, PageRecordKind } from '../../src/pagecache/records.js'
import { listCodec } from '../helpers/list-codec.js'

const SEGMENT_BYTES = 64 * 1024
const HUGE_PID = 2 ** 24 + 2 ** 19

const OPTS = { segmentBytes: SEGMENT_BYTES, flushEveryMs: 0 }

/** A log of `records` on a fresh simulated disk, closed. */
async function logOf(seed: number, records: readonly Uint8Array[]): Promise<SimDisk> {
  const disk = new SimDisk({ seed })
  const log = await Log.open('db', { storage: disk.storage('db'), ...OPTS })
  for (const r of records) log.append(r)
  await log.close()
  return disk
}

/**
 * Opens a page cache on `disk` with PageTable.grow() seen by `spy` first (it may throw in
 * grow's place); the open must reject as `matches` says.
 */
async function openRejects(
  disk: SimDisk,
  spy: (pid: number) => void,
  matches: (e: unknown) => boolean,
): Promise<void> {
  const grow = PageTable.prototype.grow
  PageTable.prototype.grow = function (this: PageTable, pid: number) {
    spy(pid)
    return grow.call(this, pid)
  }
  try {
    await assert.rejects(PageCache.open('db', listCodec, { storage: disk.storage('db'), ...OPTS }), matches)
  } finally {
    PageTable.prototype.grow = grow
  }
}

test('replay rejects a huge page id early in a 1 MiB log before growing the page table for it', async () => {
  // About 1 MiB of ordinary records after it: the old bound allowed a page per LSN left.
  const body = new Uint8Array(1000).fill(7)
  const disk = await logOf(11, [
    encodePageRecord(PageRecordKind.Replace, HUGE_PID, new Uint8Array(8)),
    ...Array.from({ length: 1100 }, (_, i) => encodePageRecord(PageRecordKind.Replace, i % 50, body)),
  ])
  let largestRow = -1
  await openRejects(
    disk,
    (pid) => {
      largestRow = Math.max(largestRow, pid)
    },
    (e: unknown) => e instanceof CorruptionError && /page/.test(e.message),
  )
  assert.ok(largestRow < 2 ** 20, `the page table grew to page ${largestRow} before the open failed`)
})

test("a page table that cannot be allocated for a replayed page id is the file's CorruptionError, not V8's RangeError", async () => {
  const disk = await logOf(12, [
    encodePageRecord(PageRecordKind.Replace, 0, new Uint8Array(8)),
    encodePageRecord(PageRecordKind.Replace, 5000, new Uint8Array(8)),
  ])
  // Stands in for an id within the bound of a multi-GB log, whose rows this process cannot
  // allocate: V8 throws "Array buffer allocation failed".
  await openRejects(
    disk,
    (pid) => {
      if (pid >= 4096) throw new RangeError('Array buffer allocation failed')
    },
    (e: unknown) =>
      e instanceof CorruptionError && /page 5000/.test(e.message) && e.cause instanceof RangeError,
  )
})
