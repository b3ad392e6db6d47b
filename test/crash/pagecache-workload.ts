// The page cache SIGKILL workload's wire format and options, shared by the child that runs
// it (test/crash/pagecache-writer-child.ts) and the parent that checks each recovery
// (test/crash/pagecache-sigkill.test.ts). The child writes one call at a time, so the
// order of its lines is LSN order:
//   I <json ops>   before a write call: what it will write (a batch is one line)
//   L <lsn>        after the call returned: its (last) LSN
//   X              the call was refused (B-PC3: the page's large write is in flight)
//   F <lsn>        `await pc.flush()` returned `lsn`: every write at or below is acknowledged
//   S <relocated> <cleaned> <checkpoints> <busy>   the child's page cache stats so far
// The parent derives each page's items from the ops, so the lines stay short even for
// blob-sized pages.

import type { PageCacheOptions } from '../../src/pagecache/index.js'

/** 4 KiB segments: a page over ~1 KiB (a quarter segment) is written as a blob file. */
export const SEGMENT_BYTES = 4096

/** Tiny cache and segments, frequent checkpoints: cleaning relocates pages all the time. */
export const PAGE_CACHE_OPTIONS: PageCacheOptions = {
  segmentBytes: SEGMENT_BYTES,
  cacheCapacity: 2000,
  consolidateAfter: 3,
  checkpointEveryBytes: 4 * SEGMENT_BYTES,
}

/** r: replace with one item, l: link one item, f: free; `big` pads the item to blob size. */
export type PageOp =
  | { k: 'r'; pid: number; s: string; big?: number }
  | { k: 'l'; pid: number; s: string }
  | { k: 'f'; pid: number }

/** The item a replace or link writes (a large one is padded to `big` characters). */
export function itemOf(op: { s: string; big?: number }): string {
  return op.big === undefined ? op.s : op.s.padEnd(op.big, 'L')
}

/**
 * The pages a write call changes, as [pid, items | undefined when freed], applying `ops` in
 * order over `now` (a batch may touch a page twice).
 */
export function writesOf(
  now: ReadonlyMap<number, readonly string[]>,
  ops: readonly PageOp[],
): Array<[number, readonly string[] | undefined]> {
  const state = new Map<number, readonly string[] | undefined>()
  for (const op of ops) {
    const cur = state.has(op.pid) ? state.get(op.pid) : now.get(op.pid)
    if (op.k === 'r') state.set(op.pid, [itemOf(op)])
    else if (op.k === 'l') state.set(op.pid, [...(cur ?? []), op.s])
    else state.set(op.pid, undefined)
  }
  return [...state]
}
