// The folder at open: a `log` file missing next to a `conf` is refused before anything is
// created when something proves the file existed (a close witness of a non-empty log, a
// blob file); a `conf` alone (a crash during the first open) opens as an empty log.

import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { CorruptionError } from '../../src/errors.js'
import { Log } from '../../src/log/index.js'

const dirs: string[] = []
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'bobsled-folder-'))
  dirs.push(d)
  return join(d, 'db')
}

/** Every file and folder under `dir` (LOCK excluded) with its bytes. */
function snapshot(dir: string, prefix = ''): Map<string, string> {
  const out = new Map<string, string>()
  for (const name of readdirSync(dir)) {
    if (name === 'LOCK') continue
    const p = join(dir, name)
    if (statSync(p).isDirectory()) {
      out.set(`${prefix}${name}/`, '')
      for (const [k, v] of snapshot(p, `${prefix}${name}/`)) out.set(k, v)
    } else out.set(`${prefix}${name}`, readFileSync(p).toString('hex'))
  }
  return out
}

async function withRecords(dir: string, hasBlob: boolean): Promise<void> {
  const log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
  log.append(new Uint8Array(100).fill(1))
  if (hasBlob) await log.appendLarge(new Uint8Array(3000).fill(2))
  await log.close()
}

describe('open with the log file missing', () => {
  for (const [what, hasBlob, remove] of [
    ['a clean close witnessed records', false, []],
    ['blob files exist (no witness)', true, ['witness']],
  ] as const) {
    test(`refused with CorruptionError when ${what}, and the folder is left byte for byte`, async () => {
      const dir = tempDir()
      await withRecords(dir, hasBlob)
      rmSync(join(dir, 'log'))
      for (const name of remove) rmSync(join(dir, name))
      const before = snapshot(dir)
      await assert.rejects(Log.open(dir, { segmentBytes: 4096 }), (e) => {
        assert.ok(e instanceof CorruptionError, String(e))
        assert.match(e.message, /log file is missing/)
        return true
      })
      assert.deepEqual(snapshot(dir), before)
    })
  }

  test('conf alone (a crash in the first open) opens as an empty log and creates the file', async () => {
    const dir = tempDir()
    const first = await Log.open(dir, { segmentBytes: 4096 })
    await first.close()
    for (const name of ['log', 'witness', 'blobs']) rmSync(join(dir, name), { recursive: true, force: true })
    const log = await Log.open(dir, { segmentBytes: 4096, flushEveryMs: 0 })
    const got = []
    for await (const r of log.iterFrom()) got.push(r)
    assert.equal(got.length, 0)
    const lsn = log.append(new Uint8Array([7]))
    await log.flush()
    assert.deepEqual((await log.read(lsn)).data, new Uint8Array([7]))
    await log.close()
    assert.ok(statSync(join(dir, 'log')).size > 0)
  })
})
