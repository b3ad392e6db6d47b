// The resident pages in use order (the page cache's LRU): a doubly linked list threaded
// through typed-array columns indexed by page id, oldest to newest, with each page's arena
// slot id beside its links. A page that is an object (a codec without an arena, or a page
// too large for one) sits in a `Map` of its own; its order is still the list's.
//
// Why not a `Map` in use order, as it was: its table is one heap object of ~3.6 MiB at 58k
// resident pages, in V8's large-object space, and every rehash (growth, or the deleted
// entries a move to the young end leaves behind) allocates the next one beside it: 5–7 MiB
// of large objects at the peak of the peak-RSS bench, each new table a survivor of the
// scavenge after it (docs/DESIGN.md, "Peak RSS", the resident-list round). Columns cost
// 12 B a row in array buffers the collector never walks, and moving a page costs no
// allocation at all.
//
// What must stay true: a page id is in the list exactly when its slot column is non-zero;
// `count` is the number of such ids; links name resident ids only (pid + 1, 0: none).

import { InvariantError } from '../errors.js'
import { assert } from '../util/assert.js'
import { widen } from './page-table.js'

/** Rows of a fresh list; rows double when a higher page id comes (as the page table's). */
const INITIAL_ROWS = 1024
/** A link or end naming no page (links are pid + 1, so a zeroed column means "none"). */
const NONE = 0
/** Slot column: not resident (0), resident as an object in `objects` (-1), else slot + 1. */
const NOT_RESIDENT = 0
const OBJECT = -1
/** Page ids the Uint32 links can name (pid + 1 must fit). */
const MAX_PID = 2 ** 32 - 2
/** Slot ids the Int32 column can hold (slot + 1 must fit). */
const MAX_SLOT = 2 ** 31 - 2

export class ResidentList<T> {
  private rows = 0
  /** The next older / newer resident page (pid + 1; NONE at the ends). */
  private older = new Uint32Array(0)
  private newer = new Uint32Array(0)
  /** NOT_RESIDENT, OBJECT, or the page's arena slot id + 1. */
  private slots = new Int32Array(0)
  private readonly objects = new Map<number, T>()
  private oldestLink = NONE
  private newestLink = NONE
  private count = 0

  get size(): number {
    return this.count
  }

  has(pid: number): boolean {
    return pid < this.rows && (this.slots[pid] as number) !== NOT_RESIDENT
  }

  /** The page's arena slot id, or the page itself; undefined when not resident. */
  get(pid: number): T | number | undefined {
    if (pid >= this.rows) return undefined
    const s = this.slots[pid] as number
    if (s === NOT_RESIDENT) return undefined
    return s === OBJECT ? this.objects.get(pid) : s - 1
  }

  /**
   * Makes a page resident at the young end: `r` is its arena slot id (a number) or the page
   * itself (any other value). The page must not be resident already.
   */
  push(pid: number, r: T | number): void {
    // Messages built only on failure: this runs per write and page-in (util/assert.ts).
    if (!(Number.isSafeInteger(pid) && pid >= 0 && pid <= MAX_PID)) throw new InvariantError(`page id ${pid}`)
    this.grow(pid)
    if (this.slots[pid] !== NOT_RESIDENT) throw new InvariantError(`page ${pid} is resident already`)
    if (typeof r === 'number') {
      if (!(Number.isSafeInteger(r) && r >= 0 && r <= MAX_SLOT)) throw new InvariantError(`slot id ${r}`)
      this.slots[pid] = r + 1
    } else {
      this.slots[pid] = OBJECT
      this.objects.set(pid, r)
    }
    this.link(pid)
    this.count++
  }

  /** Removes a page; false when it was not resident. */
  delete(pid: number): boolean {
    if (!this.has(pid)) return false
    if (this.slots[pid] === OBJECT) this.objects.delete(pid)
    this.slots[pid] = NOT_RESIDENT
    this.unlink(pid)
    this.count--
    return true
  }

  /** Moves a resident page to the young end. */
  moveToNewest(pid: number): void {
    if (!this.has(pid)) throw new InvariantError(`page ${pid} is not resident`)
    if (this.newestLink === pid + 1) return
    this.unlink(pid)
    this.link(pid)
  }

  /** The least recently used page, or -1 when none is resident. */
  oldest(): number {
    return this.oldestLink - 1
  }

  /** The next younger resident page after `pid`, or -1 at the young end. */
  newerThan(pid: number): number {
    return (this.newer[pid] as number) - 1
  }

  /** The resident page ids, most recently used first, in a new array. */
  newestFirst(): Float64Array {
    const out = new Float64Array(this.count)
    let i = 0
    for (let l = this.newestLink; l !== NONE; l = this.older[l - 1] as number) out[i++] = l - 1
    assert(i === this.count, 'the resident list holds as many pages as it counts')
    return out
  }

  /** Bytes of the columns (allocated, used or not). */
  get bytes(): number {
    return this.rows * (4 + 4 + 4)
  }

  private link(pid: number): void {
    const l = pid + 1
    this.older[pid] = this.newestLink
    this.newer[pid] = NONE
    if (this.newestLink === NONE) this.oldestLink = l
    else this.newer[this.newestLink - 1] = l
    this.newestLink = l
  }

  private unlink(pid: number): void {
    const o = this.older[pid] as number
    const n = this.newer[pid] as number
    if (o === NONE) this.oldestLink = n
    else this.newer[o - 1] = n
    if (n === NONE) this.newestLink = o
    else this.older[n - 1] = o
    this.older[pid] = NONE
    this.newer[pid] = NONE
  }

  private grow(pid: number): void {
    if (pid < this.rows) return
    const rows = Math.max(INITIAL_ROWS, 2 * this.rows, pid + 1)
    this.older = widen(this.older, new Uint32Array(rows))
    this.newer = widen(this.newer, new Uint32Array(rows))
    this.slots = widen(this.slots, new Int32Array(rows))
    this.rows = rows
  }
}
