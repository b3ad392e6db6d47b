// Log.read() from disk: it reads a window at the record's position (and then the rest of a
// longer body), never the whole segment; every check still holds (CRC over the whole body,
// the slot re-checked after each read so a truncation racing the read is reported as such).

import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { CorruptionError, InvalidArgumentError } from '../../src/errors.js'
import { FileStorage, SimDisk, type Storage, type StorageFile } from '../../src/io/index.js'
import { Log, messageHeaderBytes } from '../../src/log/index.js'
import { READ_WINDOW_BYTES } from '../../src/log/record-reader.js'
import { ForwardingStorage, forwardFile } from '../helpers/forwarding-storage.js'

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bobsled-read-'))
  dirs.push(d)
  return join(d, 'db')
}

const recordOf = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

/** Records the reads of the `log` file and can hold one of them until released. */
class ReadProbe extends ForwardingStorage {
  reads: Array<{ position: number; length: number }> = []
  isWatching = false
  /** Index (among watched reads) of the read to hold; -1: none. */
  holdAt = -1
  private release: (() => void) | undefined
  private held: Promise<void> | undefined
  reached: Promise<void> = new Promise(() => {})
  private onReached: () => void = () => {}

  constructor(inner: Storage) {
    super(inner)
  }

  arm(holdAt: number): void {
    this.reads = []
    this.isWatching = true
    this.holdAt = holdAt
    this.held = new Promise((r) => {
      this.release = r
    })
    this.reached = new Promise((r) => {
      this.onReached = r
    })
  }

  letGo(): void {
    this.release?.()
  }

  override async openFile(name: string, mode: Parameters<Storage['openFile']>[1]): Promise<StorageFile> {
    const f = await this.inner.openFile(name, mode)
    if (name !== 'log') return f
    return forwardFile(f, {
      read: async (buffer, offset, length, position) => {
        if (this.isWatching) {
          const k = this.reads.length
          this.reads.push({ position, length })
          if (k === this.holdAt) {
            this.onReached()
            await this.held
          }
        }
        return f.read(buffer, offset, length, position)
      },
    })
  }
}

describe('read() reads a window, not a segment', () => {
  test('records of every size around the window come back intact from disk, each with at most two reads of its own bytes', async () => {
    const dir = tempDir()
    const S = 64 * 1024
    const probe = new ReadProbe(new FileStorage(dir))
    const sizes = [
      0,
      1,
      100,
      READ_WINDOW_BYTES - 40,
      READ_WINDOW_BYTES - 8,
      READ_WINDOW_BYTES,
      10_000,
      16_000,
    ]
    let log = await Log.open(dir, { storage: probe, segmentBytes: S, flushEveryMs: 0 })
    const lsns = sizes.map((n, i) => log.append(recordOf(n, i), i + 1))
    await log.flush()
    await log.close()
    log = await Log.open(dir, { storage: probe, segmentBytes: S, flushEveryMs: 0 })
    for (let i = 0; i < sizes.length; i++) {
      const n = sizes[i] as number
      probe.arm(-1)
      const r = await log.read(lsns[i] as number)
      assert.equal(r.id, i + 1)
      assert.deepEqual(r.data, recordOf(n, i), `record of ${n} bytes`)
      const bytesRead = probe.reads.reduce((k, x) => k + x.length, 0)
      assert.ok(probe.reads.length <= 2, `${probe.reads.length} reads for a record of ${n} bytes`)
      assert.ok((probe.reads[0]?.length ?? 0) <= READ_WINDOW_BYTES, 'the first read is one window')
      assert.ok(bytesRead <= Math.max(READ_WINDOW_BYTES, n + 32), `${bytesRead} bytes read for ${n}`)
    }
    await log.close()
  })

  test('a size hint reads the message in one read of its size; a wrong hint costs a read, never the record', async () => {
    const dir = tempDir()
    const S = 64 * 1024
    const probe = new ReadProbe(new FileStorage(dir))
    const sizes = [0, 100, READ_WINDOW_BYTES - 8, READ_WINDOW_BYTES + 20, 10_000]
    let log = await Log.open(dir, { storage: probe, segmentBytes: S, flushEveryMs: 0 })
    const lsns = sizes.map((n, i) => log.append(recordOf(n, i), i + 1))
    await log.flush()
    await log.close()
    log = await Log.open(dir, { storage: probe, segmentBytes: S, flushEveryMs: 0 })
    for (let i = 0; i < sizes.length; i++) {
      const n = sizes[i] as number
      const lsn = lsns[i] as number
      // A message's size on the log: from its LSN to the next one (the last: header + body).
      const exact = i + 1 < lsns.length ? (lsns[i + 1] as number) - lsn : messageHeaderBytes(n, 0, i + 1) + n
      for (const [hint, maxReads] of [
        [exact, 1],
        [exact - 1, 2],
        [1, 2],
        // Past the end of the file a read returns short, and readFully tries once more.
        [exact + 5000, 2],
        [10 * S, 2],
      ] as const) {
        probe.arm(-1)
        const r = await log.read(lsn, hint)
        assert.equal(r.id, i + 1)
        assert.deepEqual(r.data, recordOf(n, i), `record of ${n} bytes, hint ${hint}`)
        assert.ok(probe.reads.length <= maxReads, `${probe.reads.length} reads for ${n} bytes, hint ${hint}`)
        // At least a whole header is read (MAX_MESSAGE_HEADER_BYTES = 32).
        if (hint === exact) assert.equal(probe.reads[0]?.length, Math.max(exact, 32))
      }
    }
    await assert.rejects(log.read(lsns[0] as number, -1), InvalidArgumentError)
    await assert.rejects(log.read(lsns[0] as number, 1.5), InvalidArgumentError)
    await log.close()
  })

  test('damage in the body past the first window is found by the CRC', async () => {
    const dir = tempDir()
    const S = 64 * 1024
    let log = await Log.open(dir, { segmentBytes: S, flushEveryMs: 0 })
    const lsn = log.append(recordOf(12_000, 7))
    log.append(recordOf(10, 8))
    await log.close()
    // The first segment sits in slot 0, so the LSN is the file offset.
    const fd = openSync(join(dir, 'log'), 'r+')
    const at = lsn + 9000
    const b = Buffer.alloc(1)
    readSync(fd, b, 0, 1, at)
    b[0] = (b[0] as number) ^ 0x10
    writeSync(fd, b, 0, 1, at)
    closeSync(fd)
    // Recovery trusts records below the witness without their CRC; read() checks it.
    log = await Log.open(dir, { segmentBytes: S, flushEveryMs: 0 })
    await assert.rejects(log.read(lsn), (e) => e instanceof CorruptionError && /CRC/.test(e.message))
    await log.close()
  })
})

describe('read() racing truncateBefore', () => {
  for (const [what, holdAt, size] of [
    ['the window read', 0, 100],
    ['the read of the rest of the body', 1, 6000],
  ] as const) {
    test(`a slot zeroed during ${what} is reported as truncated, never as corruption or wrong data`, async () => {
      const S = 32 * 1024
      const disk = new SimDisk({ seed: holdAt + 1 })
      const probe = new ReadProbe(disk.storage('db'))
      const log = await Log.open('db', { storage: probe, segmentBytes: S, flushEveryMs: 0 })
      const lsn = log.append(recordOf(size, 3))
      // Fill the first segment and a few more, so it can be dropped.
      for (let i = 0; i < 100; i++) log.append(recordOf(1500, i))
      await log.flush()
      const bases = log.segmentBases()
      assert.ok(bases.length > 2)
      assert.deepEqual((await log.read(lsn)).data, recordOf(size, 3), 'readable before the truncation')
      probe.arm(holdAt)
      const reading = log.read(lsn).then(
        (r) => r,
        (e: unknown) => e,
      )
      await probe.reached
      await log.truncateBefore(bases[2] as number)
      probe.letGo()
      const got = await reading
      assert.ok(got instanceof InvalidArgumentError, `got ${String(got)}`)
      assert.match(got.message, /truncated segment/)
      await log.close()
    })
  }

  test('a slot reused by a later segment during the read is not read as the old record', async () => {
    const S = 4 * 1024
    const disk = new SimDisk({ seed: 9 })
    const probe = new ReadProbe(disk.storage('db'))
    const log = await Log.open('db', { storage: probe, segmentBytes: S, flushEveryMs: 0 })
    const lsn = log.append(recordOf(200, 1))
    for (let i = 0; i < 12; i++) log.append(recordOf(900, i))
    await log.flush()
    probe.arm(0)
    const reading = log.read(lsn).then(
      (r) => r,
      (e: unknown) => e,
    )
    await probe.reached
    await log.truncateBefore(log.segmentBases()[2] as number)
    // New segments take the freed slots.
    for (let i = 0; i < 12; i++) log.append(recordOf(900, 100 + i))
    await log.flush()
    probe.letGo()
    const got = await reading
    assert.ok(got instanceof InvalidArgumentError, `got ${String(got)}`)
    await log.close()
  })
})
