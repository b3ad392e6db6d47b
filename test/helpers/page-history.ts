// The model shared by the page cache's crash tests (model test, power loss, SIGKILL): a
// history of logical page writes in LSN order over a base state, and the check that a
// recovered page cache equals the base with SOME prefix of that history applied, a prefix
// at least as long as the acknowledged one. Each entry is one write call (a single write or
// a whole batch), so "some prefix" also checks batch atomicity. Internal writes (relocation,
// consolidation) change no page's content and are not part of the history.

import type { PageCache } from '../../src/pagecache/index.js'
import type { ListPage } from './list-codec.js'

/** A page's items, or undefined when the page is free. */
export type Items = readonly string[] | undefined

export interface HistoryEntry {
  /** The entry's last LSN (a batch's last record); entries are kept in this order. */
  lsn: number
  writes: Array<[pid: number, items: Items]>
}

export class PageHistory {
  /** State every later entry applies to: known to be on disk (after a recovery or at the start). */
  base = new Map<number, readonly string[]>()
  entries: HistoryEntry[] = []
  /** Entries [0, ackedCount) are acknowledged: a flush issued after them resolved. */
  ackedCount = 0

  /** The current model state (base + every entry). */
  readonly now = new Map<number, readonly string[]>()

  record(lsn: number, writes: Array<[number, Items]>): void {
    const last = this.entries[this.entries.length - 1]
    if (last !== undefined && lsn <= last.lsn) {
      throw new Error(`history: LSN ${lsn} recorded after ${last.lsn}; writes must be in LSN order`)
    }
    this.entries.push({ lsn, writes })
    for (const [pid, items] of writes) {
      if (items === undefined) this.now.delete(pid)
      else this.now.set(pid, items)
    }
  }

  /** A flush that was issued after `count` entries resolved: they are acknowledged. */
  ackCount(count: number): void {
    this.ackedCount = Math.max(this.ackedCount, count)
  }

  /** Every entry with an LSN ≤ `lsn` is acknowledged (flush() resolved with `lsn`). */
  ackLsn(lsn: number): void {
    let n = this.ackedCount
    while (n < this.entries.length && (this.entries[n] as HistoryEntry).lsn <= lsn) n++
    this.ackedCount = n
  }

  /** A clean close acknowledged everything. */
  ackAll(): void {
    this.ackedCount = this.entries.length
  }

  /** After a check, the recovered state is the new base with an empty history. */
  rebase(state: Map<number, readonly string[]>): void {
    this.base = new Map(state)
    this.entries = []
    this.ackedCount = 0
    this.now.clear()
    for (const [pid, items] of state) this.now.set(pid, items)
  }

  /**
   * The length of the history prefix `state` equals, searching from the acknowledged
   * length up; a string describing the first difference when no such prefix exists.
   */
  matchPrefix(state: Map<number, readonly string[]>): number | string {
    const cur = new Map(this.base)
    for (let k = 0; k < this.ackedCount; k++) apply(cur, this.entries[k] as HistoryEntry)
    let firstDiff: string | undefined
    for (let k = this.ackedCount; k <= this.entries.length; k++) {
      if (k > this.ackedCount) apply(cur, this.entries[k - 1] as HistoryEntry)
      const diff = difference(cur, state)
      if (diff === undefined) return k
      firstDiff ??= `against the acknowledged prefix (${this.ackedCount} of ${this.entries.length} entries): ${diff}`
    }
    return firstDiff as string
  }
}

function apply(state: Map<number, readonly string[]>, e: HistoryEntry): void {
  for (const [pid, items] of e.writes) {
    if (items === undefined) state.delete(pid)
    else state.set(pid, items)
  }
}

const show = (items: Items): string => {
  if (items === undefined) return 'free'
  const s = JSON.stringify(items.map((i) => (i.length > 24 ? `${i.slice(0, 12)}…(${i.length})` : i)))
  return s.length > 200 ? `${s.slice(0, 200)}…` : s
}

/** The first page on which two states differ, or undefined when they are equal. */
export function difference(
  want: Map<number, readonly string[]>,
  got: Map<number, readonly string[]>,
): string | undefined {
  const pids = [...new Set([...want.keys(), ...got.keys()])].sort((a, b) => a - b)
  for (const pid of pids) {
    const a = want.get(pid)
    const b = got.get(pid)
    if (a === undefined || b === undefined || a.length !== b.length || a.some((x, i) => x !== b[i])) {
      return `page ${pid}: model ${show(a)}, store ${show(b)}`
    }
  }
  return undefined
}

/** Reads every page of `pc` (paging in as needed). */
export async function readState(pc: PageCache<ListPage>): Promise<Map<number, readonly string[]>> {
  const out = new Map<number, readonly string[]>()
  for (const pid of [...pc.pageIds()]) {
    const p = await pc.get(pid)
    if (p !== undefined) out.set(pid, [...p.items])
  }
  return out
}

/** The page table as fragments per page id (for the recover-twice comparison). */
export function pageTable(pc: PageCache<ListPage>): string {
  const rows: string[] = []
  for (const pid of pc.pageIds()) rows.push(`${pid}:${(pc.fragmentsOf(pid) ?? []).join(',')}`)
  return rows.join(' ')
}

/**
 * Accounting invariants: no background failure, the segments' live bytes, fragments, live
 * and dead blob bytes sum to the totals, and the totals equal the page table's fragments
 * and blob bases. Blob bytes per segment are also checked against the log's own record of
 * which segment keeps which blob file (its newest pointer): what a segment keeps must be
 * exactly its live blob bytes (from the page table) plus its dead ones (B-PC5). Returns a
 * problem or undefined.
 */
export function accountingProblem(pc: PageCache<ListPage>): string | undefined {
  const st = pc.stats()
  if (st.backgroundError !== undefined) return `background error: ${st.backgroundError}`
  let bytes = 0
  let frags = 0
  let liveBlob = 0
  let deadBlob = 0
  const segs = pc.segments()
  for (const s of segs) {
    if (s.liveBytes < 0 || s.liveFragments < 0) return `segment ${s.base} below zero`
    if (s.liveBlobBytes < 0 || s.deadBlobBytes < 0) return `segment ${s.base} below zero blob bytes`
    bytes += s.liveBytes
    frags += s.liveFragments
    liveBlob += s.liveBlobBytes
    deadBlob += s.deadBlobBytes
  }
  if (bytes !== st.liveBytes) return `segments hold ${bytes} live bytes, stats say ${st.liveBytes}`
  if (liveBlob !== st.liveBlobBytes)
    return `segments hold ${liveBlob} live blob bytes, stats say ${st.liveBlobBytes}`
  if (deadBlob !== st.deadBlobBytes)
    return `segments hold ${deadBlob} dead blob bytes, stats say ${st.deadBlobBytes}`
  let tableBytes = 0
  let tableFrags = 0
  const tableBlobs = new Map<number, number>()
  for (const pid of pc.pageIds()) {
    const f = pc.fragmentsOf(pid) ?? []
    for (let i = 1; i < f.length; i += 2) tableBytes += f[i] as number
    tableFrags += f.length / 2
    const blob = pc.blobBytesOf(pid) ?? 0
    if (blob > 0) {
      const base = Math.floor((f[0] as number) / st.segmentBytes) * st.segmentBytes
      tableBlobs.set(base, (tableBlobs.get(base) ?? 0) + blob)
    }
  }
  if (tableBytes !== st.liveBytes) return `page table holds ${tableBytes} bytes, stats say ${st.liveBytes}`
  if (tableFrags !== frags) return `page table holds ${tableFrags} fragments, segments ${frags}`
  const kept = pc.log.blobBytesBySegment()
  for (const s of segs) {
    const table = tableBlobs.get(s.base) ?? 0
    if (table !== s.liveBlobBytes) {
      return `segment ${s.base}: page table bases name ${table} blob bytes, accounting says ${s.liveBlobBytes} live`
    }
    const logKeeps = kept.get(s.base) ?? 0
    if (logKeeps !== s.liveBlobBytes + s.deadBlobBytes) {
      return (
        `segment ${s.base}: the log's pointers keep ${logKeeps} blob bytes, accounting says ` +
        `${s.liveBlobBytes} live + ${s.deadBlobBytes} dead`
      )
    }
    kept.delete(s.base)
  }
  for (const [base, b] of kept) return `segment ${base} keeps ${b} blob bytes but is not accounted`
  return undefined
}

/** The log's own record of which blob ids live pointers name (its private slot table). */
function blobIdsOfLog(pc: PageCache<ListPage>): Set<number> {
  const slots = (pc.log as unknown as { slots: { blobsBySegment: Map<number, number[]> } }).slots
  const ids = new Set<number>()
  for (const list of slots.blobsBySegment.values()) for (const id of list) ids.add(id)
  return ids
}

/**
 * Blob files no log pointer names: nothing would ever delete them. `list` lists a folder
 * of the database ('blobs').
 */
export async function orphanBlobs(
  pc: PageCache<ListPage>,
  list: (dir: string) => Promise<string[]>,
): Promise<string[]> {
  const names = await list('blobs').catch(() => [] as string[])
  const known = blobIdsOfLog(pc)
  return names.filter((n) => /^[0-9a-f]{16}$/.test(n) && !known.has(Number.parseInt(n, 16)))
}
