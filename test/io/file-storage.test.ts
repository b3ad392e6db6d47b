import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, constants as fsConstants } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { InvalidArgumentError, IoError, NotADatabaseError } from '../../src/errors.js'
import { FileStorage, openStorage } from '../../src/io/index.js'
import { tempDir } from '../helpers/temp-dir.js'

const isPosix = process.platform !== 'win32'

let tmp: { path: string; remove: () => Promise<void> }
let n = 0
before(async () => {
  tmp = await tempDir('fs')
})
after(async () => {
  await tmp.remove()
})

/** A storage on a fresh folder that does not exist yet. */
function freshStorage(options?: { fileMode?: number; dirMode?: number }): FileStorage {
  return new FileStorage(path.join(tmp.path, `db${n++}`), options)
}

const bytes = (len: number, seed: number) =>
  Uint8Array.from({ length: len }, (_, i) => (i * 31 + seed) & 0xff)

describe('FileStorage', () => {
  test('positional writes read back, and a read past the end is short', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('log', 'create')
    const a = bytes(5000, 1)
    const b = bytes(300, 7)
    await f.write(a, 0, a.length, 0)
    await f.write(b, 100, 200, 10_000)
    assert.equal(await f.size(), 10_200)
    const back = new Uint8Array(5000)
    assert.equal(await f.read(back, 0, 5000, 0), 5000)
    assert.deepEqual(back, a)
    const hole = new Uint8Array(100).fill(9)
    assert.equal(await f.read(hole, 0, 100, 6000), 100)
    assert.deepEqual(hole, new Uint8Array(100), 'the gap between writes reads as zeros')
    const tail = new Uint8Array(500)
    assert.equal(await f.read(tail, 0, 500, 10_000), 200, 'short only at the end of the file')
    assert.deepEqual(tail.subarray(0, 200), b.subarray(100, 300))
    assert.equal(await f.read(tail, 0, 10, 20_000), 0)
    await f.datasync()
    await f.close()
    const onDisk = await fs.readFile(path.join(s.location, 'log'))
    assert.deepEqual(new Uint8Array(onDisk.subarray(0, 5000)), a)
  })

  test('writeSynced writes through a second O_DSYNC descriptor of the same file', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('log', 'create')
    const a = bytes(3000, 3)
    await f.write(a, 0, 1000, 0)
    await f.writeSynced(a, 1000, 2000, 1000)
    await f.writeSynced(a, 0, 10, 5000)
    assert.equal(await f.size(), 5010)
    const back = new Uint8Array(3000)
    assert.equal(await f.read(back, 0, 3000, 0), 3000)
    assert.deepEqual(back, a)
    await f.close()
    await f.close()
    const ro = await s.openFile('log', 'read')
    await assert.rejects(ro.writeSynced(a, 0, 1, 0), IoError)
    await ro.close()
  })

  test('writeSyncedNow writes on the calling thread once the O_DSYNC descriptor is open', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('log', 'create')
    const now = f.writeSyncedNow?.bind(f)
    assert.ok(now !== undefined, 'real files offer the synchronous path')
    const a = bytes(3000, 5)
    // The first call only starts opening the descriptor, writes nothing and says so.
    assert.equal(now(a, 0, 1000, 0), false)
    assert.equal(await f.size(), 0)
    // Once writeSynced() has the descriptor (it awaits the same opening), the path is there.
    await f.writeSynced(a, 0, 1000, 0)
    if (fsConstants.O_DSYNC !== undefined) {
      assert.equal(now(a, 1000, 2000, 1000), true)
      const back = new Uint8Array(3000)
      assert.equal(await f.read(back, 0, 3000, 0), 3000)
      assert.deepEqual(back, a)
      assert.throws(() => now(a, 0, 10, -1), InvalidArgumentError)
    } else {
      assert.equal(now(a, 1000, 2000, 1000), false, 'never inline without O_DSYNC')
    }
    const closing = f.close()
    // close() has begun: the descriptor is never used again, even before it is closed.
    assert.throws(() => now(a, 0, 10, 0), IoError)
    await closing
    const ro = await s.openFile('log', 'read')
    assert.throws(() => ro.writeSyncedNow?.(a, 0, 1, 0), IoError)
    await ro.close()
  })

  test('readNow reads on the calling thread what read() reads: short only at the end, closed is an error', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('log', 'create')
    const readNow = f.readNow?.bind(f)
    assert.ok(readNow !== undefined, 'real files offer the synchronous read')
    const a = bytes(20_000, 9)
    await f.write(a, 0, a.length, 0)
    for (const [pos, len] of [
      [0, 1],
      [17, 4096],
      [4095, 9000],
      [19_990, 10],
    ] as const) {
      const now = new Uint8Array(len + 4).fill(0xee)
      const later = new Uint8Array(len + 4).fill(0xee)
      assert.equal(readNow(now, 2, len, pos), len)
      assert.equal(await f.read(later, 2, len, pos), len)
      assert.deepEqual(now, later, `${len} bytes at ${pos}`)
      assert.deepEqual(now.subarray(2, 2 + len), a.subarray(pos, pos + len))
    }
    const tail = new Uint8Array(500)
    assert.equal(readNow(tail, 0, 500, 19_800), 200, 'short only at the end of the file')
    assert.deepEqual(tail.subarray(0, 200), a.subarray(19_800))
    assert.equal(readNow(tail, 0, 10, 50_000), 0)
    assert.throws(() => readNow(tail, 0, 10, -1), InvalidArgumentError)
    assert.throws(() => readNow(tail, 400, 200, 0), InvalidArgumentError, 'past the buffer')
    const closing = f.close()
    // close() has begun: the descriptor may be closed and reused by then, never read.
    assert.throws(
      () => readNow(tail, 0, 10, 0),
      (e) => e instanceof IoError && e.syscallCode === 'EBADF',
    )
    await closing
    const ro = await s.openFile('log', 'read')
    const back = new Uint8Array(100)
    assert.equal(ro.readNow?.(back, 0, 100, 100), 100, 'a read-only file reads too')
    assert.deepEqual(back, a.subarray(100, 200))
    await ro.close()
  })

  test('writeSynced never writes a file swapped in under the same name', { skip: !isPosix }, async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('log', 'create')
    await fs.rename(path.join(s.location, 'log'), path.join(s.location, 'moved'))
    await fs.writeFile(path.join(s.location, 'log'), 'intruder')
    const b = bytes(10, 1)
    // The second descriptor is refused; the write goes through the first one, and syncs.
    await f.writeSynced(b, 0, 10, 0)
    assert.equal(await fs.readFile(path.join(s.location, 'log'), 'utf8'), 'intruder')
    assert.deepEqual(new Uint8Array(await fs.readFile(path.join(s.location, 'moved'))), b)
    await f.close()
  })

  test('truncate shrinks and extends with zeros', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('t', 'createOrOpen')
    await f.write(bytes(1000, 3), 0, 1000, 0)
    await f.truncate(10)
    assert.equal(await f.size(), 10)
    await f.truncate(100)
    const back = new Uint8Array(100)
    assert.equal(await f.read(back, 0, 100, 0), 100)
    assert.deepEqual(back.subarray(0, 10), bytes(10, 3))
    assert.deepEqual(back.subarray(10), new Uint8Array(90))
    await f.close()
  })

  test('rename, unlink, exists, list, mkdir and syncDir', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    await s.ensureRoot()
    await (await s.openFile('b.tmp', 'create')).close()
    await (await s.openFile('a', 'create')).close()
    await s.mkdir('blobs')
    await s.mkdir('blobs')
    await (await s.openFile('blobs/42', 'create')).close()
    assert.deepEqual(await s.list(''), ['a', 'b.tmp', 'blobs'])
    assert.deepEqual(await s.list('blobs'), ['42'])
    await s.rename('b.tmp', 'b')
    await s.rename('b', 'a')
    assert.deepEqual(await s.list(''), ['a', 'blobs'])
    assert.equal(await s.exists('b'), false)
    assert.equal(await s.exists('blobs/42'), true)
    await s.unlink('blobs/42')
    assert.equal(await s.exists('blobs/42'), false)
    await s.syncDir('')
    await s.syncDir('blobs')
    await assert.rejects(s.unlink('nope'), (e) => e instanceof IoError && e.syscallCode === 'ENOENT')
  })

  test('open modes: create refuses an existing file, read and readwrite need one', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    await (await s.openFile('x', 'create')).close()
    await assert.rejects(s.openFile('x', 'create'), (e) => e instanceof IoError && e.syscallCode === 'EEXIST')
    await assert.rejects(s.openFile('y', 'read'), (e) => e instanceof IoError && e.syscallCode === 'ENOENT')
    await assert.rejects(
      s.openFile('y', 'readwrite'),
      (e) => e instanceof IoError && e.syscallCode === 'ENOENT',
    )
    const r = await s.openFile('x', 'read')
    await assert.rejects(r.write(new Uint8Array(1), 0, 1, 0), IoError)
    await r.close()
    await assert.rejects(r.read(new Uint8Array(1), 0, 1, 0), IoError, 'ops after close are typed errors')
    await r.close()
    await assert.rejects(s.openFile('blobs', 'read'), IoError)
    await s.mkdir('blobs')
    await assert.rejects(s.openFile('blobs', 'read'), IoError, 'a folder is not a file')
  })

  test('close() waits for reads in flight: each reads its own file, and close settles last', async () => {
    // Reads run on the raw descriptor (not counted by the FileHandle): closed under a read,
    // the descriptor's number could go to the next open and the read would read that file.
    const s = freshStorage()
    await s.ensureRoot()
    const a = bytes(1024 * 1024, 3)
    const w = await s.openFile('a', 'create')
    await w.write(a, 0, a.length, 0)
    await w.close()
    const other = bytes(64 * 1024, 200)
    const w2 = await s.openFile('b', 'create')
    await w2.write(other, 0, other.length, 0)
    await w2.close()
    for (let round = 0; round < 30; round++) {
      const f = await s.openFile('a', 'read')
      const order: string[] = []
      // Enough large reads that some are still queued for the thread pool when close runs.
      const reads = Array.from({ length: 64 }, async (_, i) => {
        const at = (i % 15) * 65_536
        const out = new Uint8Array(131_072)
        const n = await f.read(out, 0, out.length, at)
        order.push('read')
        assert.equal(n, out.length)
        assert.ok(Buffer.from(out).equals(a.subarray(at, at + out.length)), `read ${i} of round ${round}`)
      })
      const closing = f.close().then(() => order.push('close'))
      // Likely to reuse the closed descriptor's number while reads are still queued.
      const g = await s.openFile('b', 'read')
      await Promise.all([...reads, closing])
      await g.close()
      assert.equal(order.at(-1), 'close', `round ${round}: close() settled after every read`)
    }
  })

  test('created files are 0600 and folders 0700 whatever the umask', { skip: !isPosix }, async () => {
    const old = process.umask(0)
    try {
      const s = freshStorage()
      await s.ensureRoot()
      await (await s.openFile('f', 'create')).close()
      await (await s.openFile('g', 'createOrOpen')).close()
      await s.mkdir('sub')
      const lock = await s.lock()
      assert.equal((await fs.stat(s.location)).mode & 0o777, 0o700)
      assert.equal((await fs.stat(path.join(s.location, 'sub'))).mode & 0o777, 0o700)
      assert.equal((await fs.stat(path.join(s.location, 'f'))).mode & 0o777, 0o600)
      assert.equal((await fs.stat(path.join(s.location, 'g'))).mode & 0o777, 0o600)
      assert.equal((await fs.stat(path.join(s.location, 'LOCK'))).mode & 0o777, 0o600)
      await lock.release()
    } finally {
      process.umask(old)
    }
  })

  test('the mode options hold even under a strict umask', { skip: !isPosix }, async () => {
    const old = process.umask(0o077)
    try {
      const s = freshStorage({ fileMode: 0o640, dirMode: 0o750 })
      await s.ensureRoot()
      await (await s.openFile('f', 'create')).close()
      await s.mkdir('sub')
      assert.equal((await fs.stat(s.location)).mode & 0o777, 0o750)
      assert.equal((await fs.stat(path.join(s.location, 'sub'))).mode & 0o777, 0o750)
      assert.equal((await fs.stat(path.join(s.location, 'f'))).mode & 0o777, 0o640)
    } finally {
      process.umask(old)
    }
  })

  test('a symlink planted as a file name is refused and its target untouched', {
    skip: !isPosix,
  }, async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const target = path.join(tmp.path, `target${n++}`)
    await fs.writeFile(target, 'precious')
    await fs.symlink(target, path.join(s.location, 'seg'))
    for (const mode of ['read', 'readwrite', 'create', 'createOrOpen'] as const) {
      await assert.rejects(s.openFile('seg', mode), IoError, `mode ${mode}`)
    }
    await assert.rejects(
      s.openFile('seg', 'readwrite'),
      (e) => e instanceof IoError && e.syscallCode === 'ELOOP',
    )
    assert.equal(await fs.readFile(target, 'utf8'), 'precious')
    assert.equal((await fs.lstat(path.join(s.location, 'seg'))).isSymbolicLink(), true)
  })

  test('a FIFO planted in the folder is refused without hanging', { skip: !isPosix }, async (t) => {
    const s = freshStorage()
    await s.ensureRoot()
    try {
      execFileSync('mkfifo', [path.join(s.location, 'fifo')])
    } catch {
      t.skip('mkfifo is not available')
      return
    }
    await assert.rejects(s.openFile('fifo', 'read'), IoError)
    await assert.rejects(s.openFile('fifo', 'readwrite'), IoError)
  })

  test('names that escape the folder are rejected before touching the disk', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const outside = path.join(s.location, '..', 'escaped')
    for (const name of [
      '../escaped',
      '/etc/passwd',
      'a/../../escaped',
      '..',
      '.',
      '',
      'a//b',
      'a\\b',
      'C:x',
    ]) {
      await assert.rejects(s.openFile(name, 'createOrOpen'), InvalidArgumentError, JSON.stringify(name))
    }
    await assert.rejects(s.rename('../escaped', 'x'), InvalidArgumentError)
    await assert.rejects(s.rename('x', '../escaped'), InvalidArgumentError)
    await assert.rejects(s.unlink('../escaped'), InvalidArgumentError)
    await assert.rejects(s.mkdir('../escaped'), InvalidArgumentError)
    await assert.rejects(s.list('..'), InvalidArgumentError)
    await assert.rejects(s.syncDir('/'), InvalidArgumentError)
    await assert.rejects(fs.stat(outside), (e: NodeJS.ErrnoException) => e.code === 'ENOENT')
  })

  test('a root that is a regular file is not a database', async () => {
    const file = path.join(tmp.path, `plain${n++}`)
    await fs.writeFile(file, 'not a database')
    const s = new FileStorage(file)
    await assert.rejects(s.ensureRoot(), NotADatabaseError)
    assert.equal(await fs.readFile(file, 'utf8'), 'not a database')
  })

  test('ensureRoot creates missing parents; a missing root is a typed error before it', async () => {
    const s = openStorage(path.join(tmp.path, `deep${n++}`, 'a', 'b'))
    await assert.rejects(s.openFile('x', 'create'), (e) => e instanceof IoError && e.syscallCode === 'ENOENT')
    await s.ensureRoot()
    await (await s.openFile('x', 'create')).close()
    assert.deepEqual(await s.list(''), ['x'])
  })

  test("a parent that refuses new folders is a typed ENOENT, not a hang (Node's recursive mkdir loops under /proc)", {
    skip: !existsSync('/proc/self'),
  }, async () => {
    for (const root of ['/proc/bobsled-nope', '/proc/bobsled-nope/a/b']) {
      const s = new FileStorage(root)
      const outcome = await Promise.race([
        s.ensureRoot().then(
          () => 'created',
          (e) => e,
        ),
        new Promise((resolve) => setTimeout(() => resolve('hung'), 3000).unref()),
      ])
      assert.ok(outcome instanceof IoError, `${root}: ${String(outcome)}`)
      assert.equal(outcome.syscallCode, 'ENOENT', root)
    }
  })

  test('argument checks are typed', async () => {
    const s = freshStorage()
    await s.ensureRoot()
    const f = await s.openFile('x', 'create')
    await assert.rejects(f.write(new Uint8Array(4), 2, 4, 0), InvalidArgumentError)
    await assert.rejects(f.read(new Uint8Array(4), 0, 4, -1), InvalidArgumentError)
    await assert.rejects(f.truncate(-1), InvalidArgumentError)
    await f.close()
    assert.throws(() => new FileStorage(''), InvalidArgumentError)
    assert.throws(() => new FileStorage('x', { fileMode: 0o1777 }), InvalidArgumentError)
  })
})
