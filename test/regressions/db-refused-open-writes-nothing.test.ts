// B-R9-DB1 (docs/RELIABILITY.md): a database refused at open was changed anyway. The log
// opened first and wrote its recovery's repairs at once (junk past the end zeroed, a
// dirty free slot zeroed, a stale tail journal and orphan blobs removed); the page cache
// or the tree then refused the folder, which was no longer as found (regimen R8: a refused
// open changes 0 bytes). Recovery now only plans its repairs; they are written once every
// layer accepted the open (Forest.open() accepts after checking META and the counter).
//
// Each folder below carries every kind of repair the log plans (a junk slot past the end
// of the log file, an incomplete tail journal, an orphan blob) and the page cache's own (a
// checkpoint temp file), plus damage that one layer refuses. The refused open must leave
// the bytes as they were, and the simulated disk's trace must hold no write, truncate,
// unlink, rename or mkdir. Controls: the same folder without the damage opens and is
// repaired (so the repairs were really planned), and the mutation switch
// unsafeRepairBeforeAccept, which writes them at the end of the log's open, is caught.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Db, open as openDb, openOn } from '../../src/db.js'
import { CorruptionError } from '../../src/errors.js'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { makeLeaf } from '../../src/tree/leaf.js'
import { type Files, filesOf, hashFiles } from '../helpers/db-images.js'

const S = 4096
const OPTIONS = { segmentBytes: S, flushEveryMs: 0 }
const MODIFYING = new Set(['write', 'truncate', 'unlink', 'rename', 'mkdir'])
const ORPHAN_BLOB = 'blobs/00000000000fffff'
const STALE_TEMP = 'checkpoint-0000000000000000.tmp'

type Refusal = 'page cache' | 'tree'

/** A database of two trees, closed cleanly, then damaged so that `by` refuses it. */
async function refusedFolder(by: Refusal, seed: number): Promise<SimDisk> {
  const disk = new SimDisk({ seed, latency: false })
  const db = await openDb('db', { ...OPTIONS, storage: disk.storage('db') })
  const other = await db.openTree('other')
  for (let i = 0; i < 120; i++) {
    await db.insert(`k${i}`, `value ${i}`.padEnd(40, '.'))
    await other.insert(`o${i}`, `${i}`)
  }
  await db.close()
  if (by === 'tree') {
    // META (page 0) becomes a leaf: the page cache opens, the tree refuses.
    const pc = await PageCache.open<TreePage>('db', treeCodec, { ...OPTIONS, storage: disk.storage('db') })
    pc.replace(0, makeLeaf([], []) as unknown as TreePage)
    await pc.close()
  } else {
    // Without its checkpoint the page cache replays the whole log, and a flipped byte in
    // a record below the witness (not walked by the log's open) makes it refuse.
    const storage = disk.storage('db')
    for (const n of await storage.list('')) if (n.startsWith('checkpoint-')) await storage.unlink(n)
    await storage.syncDir('')
    const at = await firstRecordPosition(disk.clone())
    const log = disk.readFileSync('db/log')
    log[at] = (log[at] as number) ^ 0x5a
    disk.writeFileRaw('db/log', log)
  }
  plantRepairs(disk)
  return disk
}

/** Where the first record of the log lies in the log file. */
async function firstRecordPosition(disk: SimDisk): Promise<number> {
  const log = await Log.open('db', { storage: disk.storage('db'), flushEveryMs: 0, deferAccept: true })
  try {
    for await (const r of log.iterFrom(log.firstLsn)) return log.positionOf(r.lsn) as number
    throw new Error('the log holds no record')
  } finally {
    await log.closeRefused()
  }
}

/** Things each layer repairs at an accepted open. */
function plantRepairs(disk: SimDisk): void {
  const log = disk.readFileSync('db/log')
  const grown = new Uint8Array(log.length + S)
  grown.set(log)
  for (let i = log.length; i < grown.length; i++) grown[i] = (i * 31 + 7) & 0xff
  disk.writeFileRaw('db/log', grown)
  disk.writeFileRaw('db/tail.journal', new Uint8Array(40).fill(0x33))
  disk.writeFileRaw(`db/${ORPHAN_BLOB}`, new Uint8Array(100).fill(1))
  disk.writeFileRaw(`db/${STALE_TEMP}`, new Uint8Array(10).fill(2))
}

/** The modifying ops the disk recorded on the database folder since tracing began. */
function modifyingOps(disk: SimDisk): string[] {
  return disk.trace
    .filter((r) => MODIFYING.has(r.kind) && r.path.startsWith('db'))
    .map((r) => `${r.kind} ${r.name}${r.position === undefined ? '' : `@${r.position}`}`)
}

/** Opens with open(), or (mutation check) over a page cache whose log repairs at once. */
function openFolder(disk: SimDisk, isMutated: boolean): Promise<Db> {
  if (!isMutated) return openDb('db', { ...OPTIONS, storage: disk.storage('db') })
  return PageCache.open<TreePage>('db', treeCodec, {
    ...OPTIONS,
    storage: disk.storage('db'),
    deferAccept: true,
    unsafeRepairBeforeAccept: true,
  }).then((pc) => openOn(pc))
}

/** Opens a refused folder; returns what changed and the modifying ops traced. */
async function refusedOpen(
  by: Refusal,
  seed: number,
  isMutated: boolean,
): Promise<{ changed: boolean; ops: string[] }> {
  const disk = await refusedFolder(by, seed)
  const before: Files = filesOf(disk)
  disk.setTracing(true)
  await assert.rejects(openFolder(disk, isMutated), CorruptionError, `${by} refuses the folder`)
  disk.setTracing(false)
  return { changed: hashFiles(filesOf(disk)) !== hashFiles(before), ops: modifyingOps(disk) }
}

for (const by of ['page cache', 'tree'] as const) {
  test(`a database refused by the ${by} is left as found: no byte changed, no modifying op`, async () => {
    for (const seed of [1, 2, 3]) {
      const r = await refusedOpen(by, seed, false)
      console.log(
        `RELIABILITY db-refused-open-writes-nothing by=${by.replace(' ', '_')} changed=${r.changed ? 1 : 0} modifying_ops=${r.ops.length} seed=${seed}`,
      )
      assert.deepEqual(r.ops, [], `seed=${seed}: the refused open wrote`)
      assert.equal(r.changed, false, `seed=${seed}: the refused open changed the folder`)
    }
  })
}

test('control: without the damage the same folder opens, and then every planned repair is written', async () => {
  const disk = new SimDisk({ seed: 4, latency: false })
  const db = await openDb('db', { ...OPTIONS, storage: disk.storage('db') })
  await db.insert('k', 'v')
  await db.close()
  const logBytes = disk.readFileSync('db/log').length
  plantRepairs(disk)
  disk.setTracing(true)
  const again = await openDb('db', { ...OPTIONS, storage: disk.storage('db') })
  disk.setTracing(false)
  assert.equal(new TextDecoder().decode(await again.get('k')), 'v')
  await again.close()
  const ops = modifyingOps(disk)
  assert.ok(ops.length > 0, 'an accepted open writes its repairs')
  const log = disk.readFileSync('db/log')
  assert.ok(
    log.subarray(logBytes).every((b) => b === 0),
    'the junk slot past the log was zeroed',
  )
  assert.equal(disk.existsSync('db/tail.journal'), false, 'the incomplete tail journal was removed')
  assert.equal(disk.existsSync(`db/${ORPHAN_BLOB}`), false, 'the orphan blob was removed')
  assert.equal(disk.existsSync(`db/${STALE_TEMP}`), false, 'the checkpoint temp file was removed')
})

test('mutation check: repairs written before the open is accepted are caught', async () => {
  for (const by of ['page cache', 'tree'] as const) {
    const r = await refusedOpen(by, 1, true)
    console.log(
      `RELIABILITY db-refused-open-writes-nothing-mutation by=${by.replace(' ', '_')} changed=${r.changed ? 1 : 0} modifying_ops=${r.ops.length}`,
    )
    assert.equal(r.changed, true, `${by}: the early repairs changed the folder`)
    assert.ok(r.ops.length > 0, `${by}: the trace shows the early repairs`)
  }
})
