// The tail journal's replay trusts nothing: a journal that passes its CRC is still checked
// extent by extent before any byte of the log is written, extents past the log's end are
// skipped, and memory use does not follow the lengths it names (docs/FORMAT.md).

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { CorruptionError } from '../../src/errors.js'
import { FileStorage, type Storage, type StorageFile } from '../../src/io/index.js'
import { writeU32, writeU64 } from '../../src/log/format.js'
import { replayTailJournal, TAIL_JOURNAL, writeTailJournal } from '../../src/log/tail-journal.js'
import { crc32 } from '../../src/util/crc32.js'

const S = 1024
const LOG_ID = 42

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function setup(logBytes: number): Promise<{ storage: Storage; log: StorageFile }> {
  const d = mkdtempSync(join(tmpdir(), 'bobsled-journal-'))
  dirs.push(d)
  const storage = new FileStorage(join(d, 'db'))
  await storage.ensureRoot()
  const log = await storage.openFile('log', 'createOrOpen')
  await log.write(new Uint8Array(logBytes).fill(0xaa), 0, logBytes, 0)
  return { storage, log }
}

/** A journal with a valid CRC over whatever extent headers and body it is given. */
function craft(
  extents: Array<{ position: number; length: number; bytes?: number }>,
  opts: { count?: number; tail?: number } = {},
): Uint8Array {
  const body = extents.reduce((n, e) => n + 12 + (e.bytes ?? e.length), 0) + (opts.tail ?? 0)
  const b = new Uint8Array(32 + body)
  let p = 32
  for (const e of extents) {
    writeU64(b, p, e.position)
    writeU32(b, p + 8, e.length)
    b.fill(0x5c, p + 12, p + 12 + (e.bytes ?? e.length))
    p += 12 + (e.bytes ?? e.length)
  }
  writeU32(b, 0, 0x4a545342)
  b[4] = 1
  writeU64(b, 8, LOG_ID)
  writeU32(b, 16, opts.count ?? extents.length)
  writeU64(b, 20, body)
  writeU32(b, 28, crc32(b, 4, 28, crc32(b, 32, b.length)))
  return b
}

async function plant(storage: Storage, journal: Uint8Array): Promise<void> {
  const f = await storage.openFile(TAIL_JOURNAL, 'create')
  await f.write(journal, 0, journal.length, 0)
  await f.close()
}

async function contentOf(log: StorageFile): Promise<Uint8Array> {
  const b = new Uint8Array(await log.size())
  await log.read(b, 0, b.length, 0)
  return b
}

describe('replayTailJournal', () => {
  test('a journal written by recovery is replayed in place and removed', async () => {
    const { storage, log } = await setup(3 * S)
    await writeTailJournal(storage, LOG_ID, [
      { position: S + 100, bytes: new Uint8Array(50).fill(1) },
      { position: 2 * S, bytes: new Uint8Array(S).fill(2) },
    ])
    assert.equal(await replayTailJournal(storage, log, LOG_ID, S, 'log'), 2)
    const after = await contentOf(log)
    assert.equal(after.length, 3 * S)
    assert.ok(after.subarray(S + 100, S + 150).every((x) => x === 1))
    assert.ok(after.subarray(2 * S).every((x) => x === 2))
    assert.equal(after[S + 99], 0xaa)
    assert.equal(await storage.exists(TAIL_JOURNAL), false)
    await log.close()
  })

  test('extents wholly past the log size rounded up to a segment are skipped; the file grows at most to that slot end', async () => {
    const { storage, log } = await setup(S + 10)
    await plant(
      storage,
      craft([
        { position: S + 500, length: 20 },
        { position: 2 * S, length: 10 },
        { position: 2 ** 40, length: 600 },
        { position: 2 ** 53 - 2 * S, length: 1 },
      ]),
    )
    assert.equal(await replayTailJournal(storage, log, LOG_ID, S, 'log'), 1)
    assert.equal(await log.size(), S + 520)
    assert.equal(await storage.exists(TAIL_JOURNAL), false)
    await log.close()
  })

  /** A valid first extent: nothing of it may be written when a later one is malformed. */
  const V = { position: 100, length: 10 }
  const malformed: Array<[string, Uint8Array]> = [
    ['an extent crossing a slot boundary', craft([V, { position: S - 10, length: 20 }])],
    ['an extent longer than a segment', craft([V, { position: 0, length: S + 1 }])],
    ['an empty extent', craft([V, { position: 0, length: 0 }])],
    ['a position beyond 2^53', craft([V, { position: 2 ** 53, length: 1 }])],
    ['a count larger than the extents', craft([V, { position: 0, length: 8 }], { count: 0x7fffffff })],
    [
      'a count smaller than the extents',
      craft(
        [
          { position: 0, length: 8 },
          { position: 64, length: 8 },
        ],
        { count: 1 },
      ),
    ],
    ['bytes after the last extent', craft([V, { position: 0, length: 8 }], { tail: 5 })],
    ['a length past the end of the journal', craft([V, { position: 0, length: 900, bytes: 10 }])],
  ]
  for (const [what, journal] of malformed) {
    test(`a CRC-valid journal with ${what} is CorruptionError and changes nothing`, async () => {
      const { storage, log } = await setup(2 * S)
      await plant(storage, journal)
      const before = await contentOf(log)
      await assert.rejects(replayTailJournal(storage, log, LOG_ID, S, 'log'), CorruptionError)
      assert.deepEqual(await contentOf(log), before)
      assert.equal(await storage.exists(TAIL_JOURNAL), true)
      await log.close()
    })
  }

  test('a journal that fails its CRC or is of another log is removed without writing', async () => {
    for (const damage of [
      (b: Uint8Array) => (b[40] = (b[40] as number) ^ 1),
      (b: Uint8Array) => writeU64(b, 8, 7),
    ]) {
      const { storage, log } = await setup(S)
      const j = craft([{ position: 100, length: 10 }])
      damage(j)
      await plant(storage, j)
      const before = await contentOf(log)
      assert.equal(await replayTailJournal(storage, log, LOG_ID, S, 'log'), 0)
      assert.deepEqual(await contentOf(log), before)
      assert.equal(await storage.exists(TAIL_JOURNAL), false)
      await log.close()
    }
  })
})
