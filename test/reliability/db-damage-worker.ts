// Worker of the Db damage catalogue (db-damage.test.ts, regimen R8 with the checkpoint as
// the snapshot): builds one database on the simulated disk, then for each case damages or
// crafts a copy of its folder, opens it with open() and reads and writes every tree. The
// parent thread watches this one, so a synchronous endless loop (a cycle walked forever) is
// a hang too.
//
// Two families of cases:
//  - damage: what a disk or a careless user does to the checkpoint files (delete, flip,
//    cut, zero, another database's, an older life's, stray temp files). A checkpoint is
//    an optimisation: the open must give the model's data exactly, or a CorruptionError.
//  - crafted: structurally hostile content that passes every CRC (written through the page
//    cache or re-encoded checkpoints): cycles in index nodes, children that do not exist or
//    are not tree pages, chains deeper than any tree, huge page ids, a catalog naming
//    garbage roots, fragment lists that are too long or name other pages' records. CRC-32
//    is not a MAC, so the data may differ from the model; what is gated is the outcome:
//    a CorruptionError or data, within the deadline, never an untyped error.

import { parentPort, workerData } from 'node:worker_threads'
import { type Db, open, type Tree } from '../../src/db.js'
import { isBobsledError } from '../../src/errors.js'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import {
  type Checkpoint,
  type CheckpointSource,
  checkpointName,
  encodeCheckpoint,
  openCheckpoint,
  readPage,
} from '../../src/pagecache/checkpoint.js'
import { PageCache } from '../../src/pagecache/index.js'
import { encodePageRecord, PageRecordKind } from '../../src/pagecache/records.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { makeLeaf } from '../../src/tree/leaf.js'
import { makeIndex } from '../../src/tree/node.js'
import { Prng } from '../../src/util/prng.js'
import { type Files, filesOf, hashFiles, plant } from '../helpers/db-images.js'
import { describeError, TimeoutError, withTimeout } from '../helpers/log-faults.js'

export interface DamageInput {
  from: number
  /** Run only these cases, by name (BOBSLED_SEED picks the seed of the image, not a case). */
  only: readonly string[] | undefined
  /** Run only the cases of this family. */
  family: 'damage' | 'crafted' | undefined
  seed: number
  caseTimeoutMs: number
  /** Mutation switch: the open under test ignores every checkpoint problem it can see by
   * serving an empty database instead (a "silent empty db"); the gates must catch it. */
  isSelfCheck: boolean
}

export type DamageKind = 'exact' | 'detected_open' | 'detected_later' | 'changed' | 'bad'

export interface DamageEnd {
  t: 'end'
  i: number
  name: string
  family: 'damage' | 'crafted'
  kind: DamageKind
  detail: string
  /** A refused open changed the folder. */
  refusedModified: boolean
  fellBack: boolean
}

const SEGMENT_BYTES = 8 * 1024
const OPTIONS = {
  segmentBytes: SEGMENT_BYTES,
  cacheCapacity: 64 * 1024,
  flushEveryMs: 0,
  nodeMaxBytes: 512,
  nodeMaxEntries: 16,
}
const TREES = ['', 'a', 'b'] as const
const HUGE_PID = 2 ** 40

type Model = Map<string, Map<string, string>>

interface Base {
  life1: Files
  life2: Files
  foreign: Files
  model: Model
}

const key = (i: number): string => `k${String(i).padStart(5, '0')}`

async function openDisk(disk: SimDisk): Promise<Db> {
  return open('db', { ...OPTIONS, storage: disk.storage('db') })
}

async function treeOf(db: Db, name: string): Promise<Db | Tree> {
  return name === '' ? db : db.openTree(name)
}

/** Two lives of one database (so there is an older checkpoint), and another database. */
async function buildBase(seed: number): Promise<Base> {
  const rng = new Prng(seed)
  const model: Model = new Map(TREES.map((t) => [t, new Map<string, string>()]))
  const disk = new SimDisk({ seed, latency: false })
  const write = async (db: Db, n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const tname = TREES[rng.int(TREES.length)] as string
      const t = await treeOf(db, tname)
      const k = key(rng.int(900))
      const m = model.get(tname) as Map<string, string>
      if (rng.int(8) === 0) {
        await t.remove(k)
        m.delete(k)
      } else {
        const v = `${k}:${i}:${'x'.repeat(rng.int(60))}`
        await t.insert(k, v)
        m.set(k, v)
      }
    }
  }
  let db = await openDisk(disk)
  await write(db, 1000)
  await db.close()
  const life1 = filesOf(disk)
  db = await openDisk(disk)
  await write(db, 500)
  await db.close()
  const life2 = filesOf(disk)
  const other = new SimDisk({ seed: seed ^ 0x0f0f, latency: false })
  const odb = await openDisk(other)
  for (let i = 0; i < 400; i++) await odb.insert(key(i), `other ${i}`)
  await odb.close()
  const foreign = filesOf(other)
  // The model must be what a clean open of life 2 reads, or the harness itself is wrong.
  const back = await readAll(await openDisk(plant(life2, seed)))
  if (!sameModel(back, model)) throw new Error('the base image does not read back as its model')
  return { life1, life2, foreign, model }
}

async function readAll(db: Db): Promise<Model> {
  const out: Model = new Map()
  try {
    for (const name of TREES) {
      const t = await treeOf(db, name)
      const m = new Map<string, string>()
      const dec = new TextDecoder()
      for await (const [k, v] of t.range()) m.set(dec.decode(k), dec.decode(v))
      out.set(name, m)
    }
  } finally {
    await db.close().catch(() => {})
  }
  return out
}

function sameModel(a: Model, b: Model): boolean {
  for (const name of TREES) {
    const x = a.get(name) ?? new Map()
    const y = b.get(name) ?? new Map()
    if (x.size !== y.size) return false
    for (const [k, v] of x) if (y.get(k) !== v) return false
  }
  return true
}

// ---- checkpoint files ----

const checkpointOf = (files: Files): string => {
  const names = [...files.keys()].filter((n) => /^checkpoint-[0-9a-f]{16}$/.test(n)).sort()
  if (names.length === 0) throw new Error('the image has no checkpoint')
  return names[names.length - 1] as string
}

function logIdOf(files: Files): number {
  const conf = files.get('conf') as Uint8Array
  const v = new DataView(conf.buffer, conf.byteOffset, conf.byteLength)
  return v.getUint32(20, true) * 0x1_0000_0000 + v.getUint32(16, true)
}

function parsed(files: Files): Checkpoint {
  const name = checkpointOf(files)
  const ck = openCheckpoint((files.get(name) as Uint8Array).slice(), logIdOf(files), name)
  if (typeof ck === 'string') throw new Error(`the image's checkpoint is unusable: ${ck}`)
  return ck
}

/** Re-encodes the newest checkpoint with every CRC valid, after `edit` changed its table. */
function recode(
  files: Files,
  edit: (pages: Map<number, { frags: number[]; blobBytes: number }>, ck: Checkpoint) => void,
  o: { nextPid?: number; replayFrom?: number; summary?: number[] } = {},
): Files {
  const ck = parsed(files)
  const pages = new Map<number, { frags: number[]; blobBytes: number }>()
  for (let pid = 0; pid < ck.nextPid; pid++) {
    const p = readPage(ck, pid)
    if (p !== undefined) pages.set(pid, { frags: p.frags, blobBytes: p.blobBytes })
  }
  edit(pages, ck)
  const source: CheckpointSource = { page: (pid) => pages.get(pid), raw: () => undefined }
  const bytes = encodeCheckpoint(
    logIdOf(files),
    o.replayFrom ?? ck.replayFrom,
    o.nextPid ?? ck.nextPid,
    source,
    o.summary ?? ck.summary,
    ck.liveBlobBytes,
  )
  const out = new Map(files)
  out.set(ck.name, bytes.slice())
  return out
}

function withFile(files: Files, name: string, bytes: Uint8Array | undefined): Files {
  const out = new Map(files)
  if (bytes === undefined) out.delete(name)
  else out.set(name, bytes)
  return out
}

function edited(files: Files, name: string, f: (b: Uint8Array) => Uint8Array): Files {
  return withFile(files, name, f((files.get(name) as Uint8Array).slice()))
}

// ---- crafting through the page cache ----

type Crafter = (pc: PageCache<TreePage>, meta: MetaPage) => Promise<void>
interface MetaPage {
  kind: 'meta'
  defaultRoot: number
  trees: Map<string, number>
}

/** Opens the page cache under the Db on a copy, lets `craft` write pages, closes. */
async function craftPages(files: Files, seed: number, craft: Crafter): Promise<Files> {
  const disk = plant(files, seed)
  const pc = await PageCache.open<TreePage>('db', treeCodec, {
    storage: disk.storage('db'),
    segmentBytes: SEGMENT_BYTES,
    flushEveryMs: 0,
    cleaning: false,
  })
  const meta = (await pc.get(0)) as unknown as MetaPage
  if (meta?.kind !== 'meta') throw new Error('page 0 is not META')
  await craft(pc, meta)
  await pc.close()
  return filesOf(disk)
}

async function indexAt(
  pc: PageCache<TreePage>,
  pid: number,
): Promise<{ keys: Uint8Array[]; children: number[] }> {
  const p = (await pc.get(pid)) as unknown as { kind: string; keys: Uint8Array[]; children: number[] }
  if (p?.kind !== 'index') throw new Error(`page ${pid} is not an index node (the image is too small)`)
  return { keys: [...p.keys], children: [...p.children] }
}

/** Replaces child `slot` (negative: from the end) of the index page `pid` with `child`. */
async function setChild(pc: PageCache<TreePage>, pid: number, slot: number, child: number): Promise<void> {
  const n = await indexAt(pc, pid)
  n.children[slot < 0 ? n.children.length + slot : slot] = child
  pc.replace(pid, makeIndex(n.keys, n.children) as unknown as TreePage)
}

function setMeta(pc: PageCache<TreePage>, meta: MetaPage, f: (m: MetaPage) => void): void {
  const m: MetaPage = { kind: 'meta', defaultRoot: meta.defaultRoot, trees: new Map(meta.trees) }
  f(m)
  pc.replace(0, m as unknown as TreePage)
}

const rootOf = (meta: MetaPage, name: string): number =>
  name === '' ? meta.defaultRoot : (meta.trees.get(name) as number)

// ---- the catalogue ----

interface Case {
  name: string
  family: 'damage' | 'crafted'
  make: (b: Base, seed: number) => Promise<Files>
}

const flipAt = (at: (len: number) => number) => (b: Uint8Array) => {
  const i = at(b.length)
  b[i] = (b[i] as number) ^ 0x10
  return b
}

function damageCases(): Case[] {
  const ck = (b: Base): string => checkpointOf(b.life2)
  const cases: Omit<Case, 'family'>[] = [
    { name: 'checkpoint deleted', make: async (b) => withFile(b.life2, ck(b), undefined) },
    { name: 'checkpoint emptied', make: async (b) => withFile(b.life2, ck(b), new Uint8Array(0)) },
    {
      name: 'checkpoint cut in half',
      make: async (b) => edited(b.life2, ck(b), (x) => x.slice(0, x.length >> 1)),
    },
    {
      name: 'checkpoint cut by 4 bytes',
      make: async (b) => edited(b.life2, ck(b), (x) => x.slice(0, x.length - 4)),
    },
    {
      name: 'checkpoint zeroed',
      make: async (b) => edited(b.life2, ck(b), (x) => new Uint8Array(x.length)),
    },
    {
      name: 'checkpoint extended by junk',
      make: async (b) =>
        edited(b.life2, ck(b), (x) => {
          const y = new Uint8Array(x.length + 700)
          y.set(x)
          y.fill(0x5a, x.length)
          return y
        }),
    },
    {
      name: 'checkpoint magic flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt(() => 2),
        ),
    },
    {
      name: 'checkpoint version flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt(() => 8),
        ),
    },
    {
      name: 'checkpoint nextPid flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt(() => 44),
        ),
    },
    {
      name: 'checkpoint index flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt(() => 80 + 9),
        ),
    },
    {
      name: 'checkpoint body flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt((n) => n >> 1),
        ),
    },
    {
      name: 'checkpoint summary flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt((n) => n - 7),
        ),
    },
    {
      name: 'checkpoint trailing CRC flipped',
      make: async (b) =>
        edited(
          b.life2,
          ck(b),
          flipAt((n) => n - 1),
        ),
    },
    {
      name: 'checkpoint of another database under this name',
      make: async (b) => withFile(b.life2, ck(b), b.foreign.get(checkpointOf(b.foreign)) as Uint8Array),
    },
    {
      name: 'checkpoint of another database, newer name, beside ours',
      make: async (b) =>
        withFile(b.life2, checkpointName(2 ** 40), b.foreign.get(checkpointOf(b.foreign)) as Uint8Array),
    },
    {
      name: 'checkpoint of an older life instead of the newest',
      make: async (b) => {
        const old = checkpointOf(b.life1)
        return withFile(withFile(b.life2, ck(b), undefined), old, b.life1.get(old) as Uint8Array)
      },
    },
    {
      name: 'checkpoint of an older life beside the newest',
      make: async (b) => {
        const old = checkpointOf(b.life1)
        return withFile(b.life2, old, b.life1.get(old) as Uint8Array)
      },
    },
    {
      name: 'checkpoint of an older life under the newest name',
      make: async (b) => withFile(b.life2, ck(b), b.life1.get(checkpointOf(b.life1)) as Uint8Array),
    },
    {
      name: 'checkpoint of an older life under a newer name',
      make: async (b) =>
        withFile(b.life2, checkpointName(2 ** 40), b.life1.get(checkpointOf(b.life1)) as Uint8Array),
    },
    {
      name: 'newest checkpoint damaged, older life beside it',
      make: async (b) => {
        const old = checkpointOf(b.life1)
        return withFile(
          edited(
            b.life2,
            ck(b),
            flipAt((n) => n >> 1),
          ),
          old,
          b.life1.get(old) as Uint8Array,
        )
      },
    },
    {
      name: 'newest and older checkpoints both damaged',
      make: async (b) => {
        const old = checkpointOf(b.life1)
        const o = flipAt((n) => n >> 2)((b.life1.get(old) as Uint8Array).slice())
        return withFile(
          edited(
            b.life2,
            ck(b),
            flipAt((n) => n >> 1),
          ),
          old,
          o,
        )
      },
    },
    {
      name: 'junk temp file of a newer checkpoint',
      make: async (b) => withFile(b.life2, `${checkpointName(2 ** 41)}.tmp`, new Uint8Array(333).fill(7)),
    },
    {
      name: 'valid temp file, final name missing',
      make: async (b) => withFile(withFile(b.life2, ck(b), undefined), `${ck(b)}.tmp`, b.life2.get(ck(b))),
    },
    {
      name: 'temp file of another database',
      make: async (b) =>
        withFile(b.life2, `${checkpointName(2 ** 41)}.tmp`, b.foreign.get(checkpointOf(b.foreign))),
    },
    {
      name: 'checkpoint replaced by a directory-like junk name',
      make: async (b) => withFile(b.life2, 'checkpoint-zzzz', new Uint8Array(64).fill(1)),
    },
  ]
  return cases.map((c) => ({ ...c, family: 'damage' as const }))
}

function craftedCases(): Case[] {
  const pages = (c: Crafter) => (b: Base, seed: number) => craftPages(b.life2, seed, c)
  const cases: Omit<Case, 'family'>[] = [
    {
      name: 'index node: last child is the root (cycle)',
      make: pages(async (pc, m) => setChild(pc, rootOf(m, 'a'), -1, rootOf(m, 'a'))),
    },
    {
      name: 'index node: first child is the root (cycle on the leftmost path)',
      make: pages(async (pc, m) => setChild(pc, rootOf(m, 'a'), 0, rootOf(m, 'a'))),
    },
    {
      name: 'index node below the root points back to the root',
      make: pages(async (pc, m) => {
        const root = await indexAt(pc, rootOf(m, 'a'))
        const child = root.children[0] as number
        const p = (await pc.get(child)) as unknown as { kind: string }
        if (p.kind === 'index') await setChild(pc, child, 0, rootOf(m, 'a'))
        else await setChild(pc, rootOf(m, 'a'), 1, rootOf(m, 'a'))
      }),
    },
    {
      name: 'index node: a child that does not exist',
      make: pages(async (pc, m) => setChild(pc, rootOf(m, 'a'), 1, 77_777)),
    },
    {
      name: 'index node: a child with a huge page id',
      make: pages(async (pc, m) => setChild(pc, rootOf(m, ''), 0, HUGE_PID)),
    },
    {
      name: 'index node: a child that is the META page',
      make: pages(async (pc, m) => setChild(pc, rootOf(m, 'b'), 0, 0)),
    },
    {
      name: 'index node: a child that is the ID-generator page',
      make: pages(async (pc, m) => setChild(pc, rootOf(m, 'b'), -1, 1)),
    },
    {
      name: 'index node: two children are the same page',
      make: pages(async (pc, m) => {
        const n = await indexAt(pc, rootOf(m, 'a'))
        await setChild(pc, rootOf(m, 'a'), 1, n.children[0] as number)
      }),
    },
    {
      name: 'tree deeper than any sane bound (a chain of 100 index nodes)',
      make: pages(async (pc, m) => {
        const enc = new TextEncoder()
        let next = pc.allocate()
        pc.replace(next, makeLeaf([enc.encode('zz')], [enc.encode('deep')]) as unknown as TreePage)
        for (let d = 0; d < 100; d++) {
          const leaf = pc.allocate()
          pc.replace(leaf, makeLeaf([enc.encode('zz~')], [enc.encode('side')]) as unknown as TreePage)
          const pid = d === 99 ? rootOf(m, 'b') : pc.allocate()
          pc.replace(pid, makeIndex([enc.encode('zz~')], [next, leaf]) as unknown as TreePage)
          next = pid
        }
      }),
    },
    {
      name: 'catalog: a tree whose root does not exist',
      make: pages(async (pc, m) => setMeta(pc, m, (x) => x.trees.set('a', 55_555))),
    },
    {
      name: 'catalog: a tree whose root has a huge page id',
      make: pages(async (pc, m) => setMeta(pc, m, (x) => x.trees.set('b', HUGE_PID))),
    },
    {
      name: 'catalog: the default root is the META page',
      make: pages(async (pc, m) => setMeta(pc, m, (x) => (x.defaultRoot = 0))),
    },
    {
      name: 'catalog: a tree whose root is the ID-generator page',
      make: pages(async (pc, m) => setMeta(pc, m, (x) => x.trees.set('a', 1))),
    },
    {
      name: 'catalog: two trees share a root',
      make: pages(async (pc, m) => setMeta(pc, m, (x) => x.trees.set('a', rootOf(m, 'b')))),
    },
    {
      name: 'catalog: a tree whose root is an inner page of another tree',
      make: pages(async (pc, m) => {
        const n = await indexAt(pc, rootOf(m, ''))
        setMeta(pc, m, (x) => x.trees.set('b', n.children[0] as number))
      }),
    },
    {
      name: 'META page replaced by a leaf',
      make: pages(async (pc) => {
        pc.replace(0, makeLeaf([], []) as unknown as TreePage)
      }),
    },
    {
      name: 'ID-generator page freed',
      make: pages(async (pc) => {
        pc.free(1)
      }),
    },
    {
      name: 'a root page freed',
      make: pages(async (pc, m) => {
        pc.free(rootOf(m, 'a'))
      }),
    },
    {
      name: 'log: a page record with a huge page id',
      make: async (b, seed) => {
        const disk = plant(b.life2, seed)
        const log = await Log.open('db', {
          storage: disk.storage('db'),
          segmentBytes: SEGMENT_BYTES,
          flushEveryMs: 0,
        })
        log.append(
          encodePageRecord(PageRecordKind.Replace, HUGE_PID, treeCodec.encode(makeLeaf([], []) as never)),
        )
        await log.close()
        return filesOf(disk)
      },
    },
    {
      name: 'log: a page record with page id 2^53 - 1',
      make: async (b, seed) => {
        const disk = plant(b.life2, seed)
        const log = await Log.open('db', {
          storage: disk.storage('db'),
          segmentBytes: SEGMENT_BYTES,
          flushEveryMs: 0,
        })
        log.append(encodePageRecord(PageRecordKind.Free, Number.MAX_SAFE_INTEGER))
        await log.close()
        return filesOf(disk)
      },
    },
    {
      name: 'log: a record that is not a page record',
      make: async (b, seed) => {
        const disk = plant(b.life2, seed)
        const log = await Log.open('db', {
          storage: disk.storage('db'),
          segmentBytes: SEGMENT_BYTES,
          flushEveryMs: 0,
        })
        log.append(new Uint8Array([9, 9, 9, 9]))
        await log.close()
        return filesOf(disk)
      },
    },
    {
      name: 'checkpoint (CRC valid): nextPid 2^40 with a small file',
      make: async (b) =>
        edited(b.life2, checkpointOf(b.life2), (x) => {
          const v = new DataView(x.buffer, x.byteOffset, x.byteLength)
          v.setUint32(44, 256, true)
          return fixHeaderCrc(x)
        }),
    },
    {
      name: 'checkpoint (CRC valid): a page with a fragment chain of 5,000',
      make: async (b) =>
        recode(b.life2, (p, ck) => {
          const e = p.get(2) as { frags: number[] }
          const frags: number[] = []
          for (let k = 0; k < 5000; k++) frags.push(k, 40)
          e.frags = frags.filter((_, i) => i % 2 === 1 || (frags[i] as number) < ck.replayFrom)
        }),
    },
    {
      name: 'checkpoint (CRC valid): two pages swap their fragments',
      make: async (b) =>
        recode(b.life2, (p) => {
          const x = p.get(2) as { frags: number[] }
          const y = p.get(3) as { frags: number[] }
          ;[x.frags, y.frags] = [y.frags, x.frags]
        }),
    },
    {
      name: 'checkpoint (CRC valid): a page whose fragments name the META record',
      make: async (b) =>
        recode(b.life2, (p) => {
          ;(p.get(2) as { frags: number[] }).frags = [...(p.get(0) as { frags: number[] }).frags]
        }),
    },
    {
      name: 'checkpoint (CRC valid): a page with a huge page id',
      make: async (b) => {
        const ck = parsed(b.life2)
        // nextPid is what bounds the index: a huge id needs a huge file, so the file is
        // refused for its lengths; the id next to the end is the largest that fits.
        return recode(
          b.life2,
          (p) => {
            p.set(ck.nextPid + 20_000 - 1, { ...(p.get(2) as { frags: number[]; blobBytes: number }) })
          },
          { nextPid: ck.nextPid + 20_000 },
        )
      },
    },
    {
      name: 'checkpoint (CRC valid): every page dropped (a silent empty table)',
      make: async (b) => recode(b.life2, (p) => p.clear(), { summary: [] }),
    },
    {
      name: 'checkpoint (CRC valid): the cut claims LSN 2^50',
      make: async (b) => recode(b.life2, () => {}, { replayFrom: 2 ** 50 }),
    },
    {
      name: 'checkpoint (CRC valid): the cut at LSN 0 with every page kept',
      make: async (b) => recode(b.life2, () => {}, { replayFrom: 1 }),
    },
  ]
  return cases.map((c) => ({ ...c, family: 'crafted' as const }))
}

function fixHeaderCrc(x: Uint8Array): Uint8Array {
  const v = new DataView(x.buffer, x.byteOffset, x.byteLength)
  v.setUint32(72, (crc32Of(x, 0, 72) ^ 0xffffffff) >>> 0, true)
  return x
}

function crc32Of(b: Uint8Array, start: number, end: number): number {
  let c = 0xffffffff
  for (let i = start; i < end; i++) {
    c ^= b[i] as number
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1
  }
  return (c ^ 0xffffffff) >>> 0
}

export const CASES: readonly Case[] = [...damageCases(), ...craftedCases()]

// ---- examining one case ----

const isCorruption = (e: unknown): boolean => isBobsledError(e) && e.code === 'BOBSLED_CORRUPTION'

/** Reads every tree (range both ways, get of every model key, len), then writes to each. */
async function exercise(
  db: Db,
  model: Model,
  family: Case['family'],
): Promise<{ got: Model; wrote: string }> {
  const got: Model = new Map()
  const dec = new TextDecoder()
  for (const name of TREES) {
    const t = await treeOf(db, name)
    const m = new Map<string, string>()
    for await (const [k, v] of t.range()) m.set(dec.decode(k), dec.decode(v))
    const rev: string[] = []
    for await (const [k] of t.range({ reverse: true })) rev.push(dec.decode(k))
    if (rev.reverse().join() !== [...m.keys()].join()) throw new Wrong(`tree "${name}": reverse scan differs`)
    for (const k of (model.get(name) as Map<string, string>).keys()) {
      const v = await t.get(k)
      if ((v === undefined ? undefined : dec.decode(v)) !== m.get(k))
        throw new Wrong(`tree "${name}": get(${k}) differs from the scan`)
    }
    if ((await t.len()) !== m.size) throw new Wrong(`tree "${name}": len() differs from the scan`)
    got.set(name, m)
  }
  // Writes walk the same paths (descend, rebalance, clear's walk of every page).
  let wrote = ''
  if (family === 'crafted' || sameModel(got, model)) {
    for (const name of TREES) {
      const t = await treeOf(db, name)
      await t.insert('k00450', 'new')
      await t.remove('k00001')
    }
    await (await treeOf(db, 'a')).clear()
    await db.dropTree('b')
    await db.applyBatch((batch) => batch.insert('k00002', 'x').remove('k00003'))
    await db.flush()
    wrote = 'writes ok'
  }
  return { got, wrote }
}

class Wrong extends Error {}

async function examine(
  c: Case,
  files: Files,
  b: Base,
  seed: number,
): Promise<Omit<DamageEnd, 't' | 'i' | 'name' | 'family'>> {
  const disk = plant(files, seed)
  const before = hashFiles(filesOf(disk))
  let db: Db
  try {
    db = input.isSelfCheck ? await openSilentlyEmpty(disk) : await openDisk(disk)
  } catch (e) {
    const modified = hashFiles(filesOf(disk)) !== before
    if (!isCorruption(e))
      return { kind: 'bad', detail: `open: ${describeError(e)}`, refusedModified: modified, fellBack: false }
    return { kind: 'detected_open', detail: (e as Error).message, refusedModified: modified, fellBack: false }
  }
  const stats = (await db.stats()) as { store?: { recovery?: { skippedCheckpoints?: string[] } } }
  const fellBack = (stats.store?.recovery?.skippedCheckpoints?.length ?? 0) > 0
  const base = { refusedModified: false, fellBack }
  try {
    const { got } = await exercise(db, b.model, c.family)
    if (sameModel(got, b.model)) return { ...base, kind: 'exact', detail: '' }
    return c.family === 'crafted'
      ? { ...base, kind: 'changed', detail: 'CRC-valid content changed the data' }
      : { ...base, kind: 'bad', detail: 'silent wrong data: the trees differ from the model, no error' }
  } catch (e) {
    if (e instanceof Wrong)
      return c.family === 'crafted'
        ? { ...base, kind: 'changed', detail: e.message }
        : { ...base, kind: 'bad', detail: `silent wrong data: ${e.message}` }
    if (!isCorruption(e)) return { ...base, kind: 'bad', detail: `after open: ${describeError(e)}` }
    return { ...base, kind: 'detected_later', detail: (e as Error).message }
  } finally {
    await db.close().catch(() => {})
  }
}

/**
 * The planted bug of the self-check: an open that answers a checkpoint it cannot use with
 * an empty database (the "silent empty db" R8 forbids) instead of a full log scan.
 */
async function openSilentlyEmpty(disk: SimDisk): Promise<Db> {
  const s = disk.storage('db')
  const names = await s.list('')
  const cks = names.filter((n) => n.startsWith('checkpoint-'))
  let isBroken = cks.length === 0
  for (const n of cks) {
    const f = await s.openFile(n, 'read')
    const size = await f.size()
    const buf = new Uint8Array(size)
    if (size > 0) await f.read(buf, 0, size, 0)
    await f.close()
    if (n.endsWith('.tmp') || typeof openCheckpoint(buf, logIdOf(filesOf(disk)), n) === 'string')
      isBroken = true
  }
  if (isBroken)
    return open('db', { ...OPTIONS, storage: new SimDisk({ seed: 1, latency: false }).storage('db') })
  return openDisk(disk)
}

const input = workerData as DamageInput
const port = parentPort

let strays: string[] = []
process.on('uncaughtException', (e) => strays.push(`uncaughtException: ${describeError(e)}`))
process.on('unhandledRejection', (e) => strays.push(`unhandledRejection: ${describeError(e)}`))

async function main(): Promise<void> {
  if (port === null) throw new Error('db-damage-worker runs as a worker thread')
  const b = await buildBase(input.seed)
  for (let i = input.from; i < CASES.length; i++) {
    const c = CASES[i] as Case
    if (input.only !== undefined && !input.only.includes(c.name)) continue
    if (input.family !== undefined && c.family !== input.family) continue
    port.postMessage({ t: 'start', i })
    strays = []
    let r: Omit<DamageEnd, 't' | 'i' | 'name' | 'family'>
    try {
      const files = await c.make(b, input.seed)
      r = await withTimeout(examine(c, files, b, input.seed), input.caseTimeoutMs, c.name)
    } catch (e) {
      r = {
        kind: 'bad',
        detail: e instanceof TimeoutError ? `hang: ${e.message}` : `harness: ${describeError(e)}`,
        refusedModified: false,
        fellBack: false,
      }
    }
    await new Promise<void>((res) => setImmediate(res))
    if (strays.length > 0) r = { ...r, kind: 'bad', detail: strays.join('; ') }
    const end: DamageEnd = { t: 'end', i, name: c.name, family: c.family, ...r }
    port.postMessage(end)
  }
  port.postMessage({ t: 'done' })
}

await main()
