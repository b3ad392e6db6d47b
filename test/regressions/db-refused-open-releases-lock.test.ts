// A refused open left the folder locked (found by R13's I/O errors inside recovery,
// test/sim/db-recover-idempotent.test.ts: EIO at one of the last ops of recovery, then the
// reopen in the same process got DatabaseLockedError). open() built the page cache, which
// takes the folder's lock, and the tree above it then refused the pages (damage, or an I/O
// error reading META); nothing closed the page cache. openOn() now releases it on failure,
// writing nothing (no checkpoint of the refused table, no witness: Log.closeRefused()).

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { open } from '../../src/db.js'
import { CorruptionError } from '../../src/errors.js'
import { SimDisk } from '../../src/io/index.js'
import { PageCache } from '../../src/pagecache/index.js'
import { type TreePage, treeCodec } from '../../src/tree/index.js'
import { makeLeaf } from '../../src/tree/leaf.js'
import { filesOf, hashFiles } from '../helpers/db-images.js'

const OPTIONS = { segmentBytes: 8 * 1024, flushEveryMs: 0 }

test('a Db open refused above the page cache releases the lock and writes nothing', async () => {
  const disk = new SimDisk({ seed: 7, latency: false })
  const db = await open('db', { ...OPTIONS, storage: disk.storage('db') })
  await db.insert('k', 'v')
  await db.close()
  // META (page 0) becomes a leaf: the page cache opens, the tree refuses.
  const pc = await PageCache.open<TreePage>('db', treeCodec, { ...OPTIONS, storage: disk.storage('db') })
  pc.replace(0, makeLeaf([], []) as unknown as TreePage)
  await pc.close()
  const before = hashFiles(filesOf(disk))
  for (let attempt = 0; attempt < 3; attempt++) {
    await assert.rejects(
      open('db', { ...OPTIONS, storage: disk.storage('db') }),
      CorruptionError,
      `attempt ${attempt}`,
    )
  }
  assert.equal(hashFiles(filesOf(disk)), before, 'the refused opens changed the folder')
})
