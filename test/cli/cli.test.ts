// The `bobsled` CLI end to end: the real binary on real folders (README "CLI").

import assert from 'node:assert/strict'
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { tempDir } from '../helpers/temp-dir.js'
import { cli, cliJson, INDEX, MAIN } from './run-cli.js'

let root: { path: string; remove: () => Promise<void> }
before(async () => {
  root = await tempDir('cli')
})
after(async () => {
  await root?.remove()
})
const dirOf = (name: string): string => join(root.path, name)

describe('point commands', () => {
  test('put, get, del and scan round trip, in the default tree and a named one', async () => {
    const d = dirOf('kv')
    for (const [k, v] of [
      ['user:1', 'ada'],
      ['user:2', 'bob'],
      ['user:3', 'cy'],
      ['zed', 'last'],
    ])
      assert.equal((await cli(['put', '--dir', d, k as string, v as string])).code, 0)
    assert.equal((await cli(['put', '--dir', d, '-t', 'other', 'user:1', 'elsewhere'])).code, 0)

    const got = await cli(['get', '--dir', d, 'user:2'])
    assert.equal(got.code, 0)
    assert.equal(got.stdout, 'bob\n')
    assert.equal((await cli(['get', '--dir', d, '-t', 'other', 'user:1'])).stdout, 'elsewhere\n')

    const scan = await cli(['scan', '--dir', d, '--prefix', 'user:'])
    assert.equal(scan.stdout, 'user:1\tada\nuser:2\tbob\nuser:3\tcy\n')
    const rev = await cliJson(['scan', '--dir', d, '--gte', 'user:2', '--reverse', '--limit', '2'])
    assert.deepEqual(rev.doc, {
      tree: '',
      count: 2,
      entries: [
        { key: 'zed', value: 'last' },
        { key: 'user:3', value: 'cy' },
      ],
    })
    const bounded = await cli(['scan', '--dir', d, '--prefix', 'user:', '--gte', 'user:2', '--lt', 'user:3'])
    assert.equal(bounded.stdout, 'user:2\tbob\n')

    const del = await cliJson(['del', '--dir', d, 'user:2'])
    assert.equal(del.code, 0)
    assert.deepEqual(del.doc, { tree: '', key: 'user:2', removed: true })
    const gone = await cliJson(['get', '--dir', d, 'user:2'])
    assert.equal(gone.code, 3, 'a missing key exits 3')
    assert.deepEqual(gone.doc, { tree: '', key: 'user:2', found: false })
  })

  test('binary keys and values: hex in, 0x-hex out; --raw writes the bytes', async () => {
    const d = dirOf('bin')
    assert.equal((await cli(['put', '--dir', d, '-e', 'hex', '00ff', '0a0b'])).code, 0)
    const g = await cliJson(['get', '--dir', d, '-e', 'hex', '0x00ff'])
    assert.equal((g.doc as { value: string }).value, '0x0a0b')
    const raw = await cli(['get', '--dir', d, '-e', 'base64', 'AP8=', '--raw'])
    assert.equal(raw.stdout, '\n\u000b')
  })
})

describe('export and import', () => {
  test('export, import into a fresh folder: identical dump and checksum, also through stdin', async () => {
    const src = dirOf('exp-src')
    await cli(['put', '--dir', src, 'a', '1'])
    await cli(['put', '--dir', src, '-e', 'hex', '00', 'ff00'])
    await cli(['put', '--dir', src, '-t', 'users', 'u1', '{"name":"ada"}'])
    await cli(['put', '--dir', src, '-t', 'empty', 'x', 'y'])
    await cli(['del', '--dir', src, '-t', 'empty', 'x'])
    const file = join(root.path, 'exp.ndjson')
    const exp = await cliJson(['export', '--dir', src, '--out', file])
    assert.equal(exp.code, 0, exp.stderr)
    assert.equal((exp.doc as { records: number }).records, 3)
    const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
    assert.deepEqual(JSON.parse(lines[0] as string).trees, ['', 'empty', 'users'])
    assert.equal(JSON.parse(lines[0] as string).format, 'bobsled-export')
    assert.equal(JSON.parse(lines.at(-1) as string).records, 3)

    const dst = dirOf('exp-dst')
    const imp = await cliJson(['import', '--dir', dst, file])
    assert.equal(imp.code, 0, imp.stderr)
    assert.equal((imp.doc as { checksumVerified: boolean }).checksumVerified, true)
    const a = await cliJson(['dump', '--dir', src])
    const b = await cliJson(['dump', '--dir', dst])
    assert.deepEqual((b.doc as { trees: unknown }).trees, (a.doc as { trees: unknown }).trees)
    assert.equal((b.doc as { trees: unknown[] }).trees.length, 3, 'the empty tree came along')

    const viaStdout = await cli(['export', '--dir', src])
    const dst2 = dirOf('exp-dst2')
    const imp2 = await cli(['import', '--dir', dst2, '-'], viaStdout.stdout)
    assert.equal(imp2.code, 0, imp2.stderr)
    const c = await cliJson(['dump', '--dir', dst2])
    assert.deepEqual((c.doc as { trees: unknown }).trees, (a.doc as { trees: unknown }).trees)
  })

  test('a truncated or altered export is refused before anything is written', async () => {
    const src = dirOf('trunc-src')
    for (let i = 0; i < 4; i++) await cli(['put', '--dir', src, `k${i}`, `v${i}`])
    const file = join(root.path, 'full.ndjson')
    assert.equal((await cli(['export', '--dir', src, '-o', file])).code, 0)
    const text = readFileSync(file, 'utf8')
    const lines = text.trimEnd().split('\n')

    const cut = join(root.path, 'cut.ndjson')
    writeFileSync(cut, `${lines.slice(0, -1).join('\n')}\n`) // the trailer is gone
    const dst = dirOf('trunc-dst')
    const r = await cliJson(['import', '--dir', dst, cut])
    assert.equal(r.code, 1)
    assert.equal((r.doc as { error: { code: string } }).error.code, 'BOBSLED_CORRUPTION')
    assert.match(r.stderr, /truncated/)
    await assert.rejects(fs.stat(dst), 'nothing was created')

    const mid = join(root.path, 'mid.ndjson')
    writeFileSync(mid, text.slice(0, Math.floor(text.length / 2))) // cut inside a line
    assert.equal((await cli(['import', '--dir', dst, mid])).code, 1)

    const altered = join(root.path, 'altered.ndjson')
    writeFileSync(altered, text.replace('"v":"djE="', '"v":"djI="')) // v1 → v2
    const alt = await cli(['import', '--dir', dst, altered])
    assert.equal(alt.code, 1)
    assert.match(alt.stderr, /checksum/)
    await assert.rejects(fs.stat(dst), 'nothing was created')
  })
})

/**
 * An export file with the given entries and a correct trailer (count and checksum computed
 * here, independently of the CLI), so that each broken rule below is caught by its own check.
 */
function exportText(
  header: Record<string, unknown>,
  entries: Array<[string, string, string]>,
  extra = '',
): string {
  const trees = header.trees as string[]
  let crc = 0
  const feed = (b: Buffer): void => {
    const frame = Buffer.alloc(4)
    frame.writeUInt32BE(b.length)
    crc = zlibCrc32(frame, crc)
    if (b.length > 0) crc = zlibCrc32(b, crc)
  }
  // The checksum covers every tree of the header in its order, then each tree's entries as
  // they appear: entries out of place still give a trailer that matches them.
  const byTree = new Map(trees.map((t) => [t, [] as Array<[string, string]>]))
  for (const [t, k, v] of entries) byTree.get(t)?.push([k, v])
  for (const t of trees) {
    feed(Buffer.from(t))
    for (const [k, v] of byTree.get(t) ?? []) {
      feed(Buffer.from(k))
      feed(Buffer.from(v))
    }
  }
  const lines = [JSON.stringify({ format: 'bobsled-export', version: 1, allTrees: true, ...header })]
  for (const [t, k, v] of entries)
    lines.push(
      JSON.stringify({ t, k: Buffer.from(k).toString('base64'), v: Buffer.from(v).toString('base64') }),
    )
  lines.push(JSON.stringify({ end: true, records: entries.length, checksum: crc >>> 0 }))
  return `${lines.join('\n')}\n${extra}`
}

describe('export format rules', () => {
  test('import refuses another version or format and each broken rule, writing nothing; a well-formed file loads', async () => {
    const dst = dirOf('rules-dst')
    const file = join(root.path, 'rules.ndjson')
    const good: Array<[string, string, string]> = [
      ['', 'a', '1'],
      ['', 'b', '2'],
      ['users', 'u1', 'ada'],
    ]
    const cases: Array<[string, string, number, string, RegExp]> = [
      [
        'version 2',
        exportText({ trees: ['', 'users'], version: 2 }, good),
        2,
        'BOBSLED_VERSION',
        /version 2/,
      ],
      [
        'another format',
        exportText({ trees: ['', 'users'], format: 'csv' }, good),
        2,
        'BOBSLED_INVALID_ARGUMENT',
        /not a bobsled export/,
      ],
      [
        'keys out of order',
        exportText({ trees: ['', 'users'] }, [good[1], good[0], good[2]] as never),
        1,
        'BOBSLED_CORRUPTION',
        /strictly ascending/,
      ],
      [
        'a repeated key',
        exportText({ trees: ['', 'users'] }, [good[0], good[0], good[2]] as never),
        1,
        'BOBSLED_CORRUPTION',
        /strictly ascending/,
      ],
      [
        'trees interleaved',
        exportText({ trees: ['', 'users'] }, [good[0], good[2], good[1]] as never),
        1,
        'BOBSLED_CORRUPTION',
        /again after a later tree/,
      ],
      [
        'a tree not in the header',
        exportText({ trees: [''] }, good),
        1,
        'BOBSLED_CORRUPTION',
        /not in the header/,
      ],
      [
        'repeated tree names in the header',
        exportText({ trees: ['', 'users', 'users'] }, good),
        1,
        'BOBSLED_CORRUPTION',
        /distinct names/,
      ],
      [
        'data after the trailer',
        exportText({ trees: ['', 'users'] }, good, '{"t":"","k":"eg==","v":"eg=="}\n'),
        1,
        'BOBSLED_CORRUPTION',
        /after the trailer/,
      ],
    ]
    for (const [name, text, exit, code, message] of cases) {
      writeFileSync(file, text)
      const r = await cliJson(['import', '--dir', dst, file])
      assert.equal(r.code, exit, `${name}: ${r.stderr}`)
      assert.equal((r.doc as { error: { code: string } }).error.code, code, name)
      assert.match(r.stderr, message, name)
      await assert.rejects(fs.stat(dst), `${name}: the database was created`)
    }
    // The control: the same helper's well-formed file imports, checksum and all.
    writeFileSync(file, exportText({ trees: ['', 'users'] }, good))
    const ok = await cliJson(['import', '--dir', dst, file])
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal((ok.doc as { checksumVerified: boolean }).checksumVerified, true)
    assert.equal((await cli(['get', '--dir', dst, '-t', 'users', 'u1'])).stdout, 'ada\n')
  })
})

describe('large values', () => {
  test('put --value-file (file and stdin), get --raw, export/import and verify with 2 MiB values; over the limit exits 2', async () => {
    const d = dirOf('large')
    // Printable bytes, so that stdout (read as text here) compares exactly.
    const big = Buffer.alloc(2 * 1024 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789')
    const file = join(root.path, 'big.bin')
    writeFileSync(file, big)
    const put = await cli(['put', '--dir', d, 'big', '--value-file', file])
    assert.equal(put.code, 0, put.stderr)
    const fromStdin = await cli(['put', '--dir', d, 'big2', '--value-file', '-'], big.subarray(7))
    assert.equal(fromStdin.code, 0, fromStdin.stderr)
    await cli(['put', '--dir', d, 'small', 's'])
    assert.equal((await cli(['get', '--dir', d, 'big', '--raw'])).stdout, big.toString())
    assert.equal((await cli(['get', '--dir', d, 'big2', '--raw'])).stdout, big.subarray(7).toString())
    assert.ok(readdirSync(join(d, 'blobs')).length >= 2, 'the values are blob files')
    const ok = await cliJson(['verify', '--dir', d])
    assert.equal(ok.code, 0, ok.stdout)

    const exp = join(root.path, 'large.ndjson')
    assert.equal((await cli(['export', '--dir', d, '-o', exp])).code, 0)
    const d2 = dirOf('large-imported')
    const imp = await cliJson(['import', '--dir', d2, exp])
    assert.equal(imp.code, 0, imp.stderr)
    assert.equal((imp.doc as { checksumVerified: boolean }).checksumVerified, true)
    assert.equal((await cli(['get', '--dir', d2, 'big', '--raw'])).stdout, big.toString())

    // One byte over the limit: refused by its size before it is read, nothing written.
    const huge = join(root.path, 'huge.bin')
    writeFileSync(huge, '')
    await fs.truncate(huge, 64 * 1024 * 1024 + 1)
    const over = await cliJson(['put', '--dir', d, 'huge', '--value-file', huge])
    assert.equal(over.code, 2)
    assert.match(over.stdout + over.stderr, /BOBSLED_LIMIT/)
    assert.equal((await cli(['get', '--dir', d, 'huge'])).code, 3)
    const both = await cli(['put', '--dir', d, 'k', 'v', '--value-file', file])
    assert.equal(both.code, 2)
  })

  test('verify writes nothing: a damaged blob is reported, junk past the log end is left as found', async () => {
    const d = dirOf('verify-ro')
    const file = join(root.path, 'blob-ro.bin')
    writeFileSync(file, Buffer.alloc(600 * 1024, 'verify-ro '))
    assert.equal((await cli(['put', '--dir', d, 'big', '--value-file', file])).code, 0)
    // A sound log as far as its messages go (recovery would zero the junk at the end) whose
    // blob file is damaged: found only when the log pass reads the blob back.
    const [blob] = readdirSync(join(d, 'blobs'))
    const blobPath = join(d, 'blobs', blob as string)
    const b = readFileSync(blobPath)
    b[b.length >> 1] = (b[b.length >> 1] as number) ^ 0x10
    writeFileSync(blobPath, b)
    writeFileSync(join(d, 'log'), Buffer.concat([readFileSync(join(d, 'log')), Buffer.alloc(64, 0x5a)]))
    const before = folderBytes(d)
    const bad = await cliJson(['verify', '--dir', d])
    assert.equal(bad.code, 1, bad.stdout)
    assert.equal((bad.doc as { problems: Array<{ pass: string }> }).problems[0]?.pass, 'log')
    assert.deepEqual(folderBytes(d), before, 'verify changed nothing')
  })
})

/** Every file of a folder tree and its bytes, for an exact before/after comparison. */
function folderBytes(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue
    const p = join(e.parentPath ?? e.path, e.name)
    out.set(p, readFileSync(p).toString('base64'))
  }
  return out
}

describe('verify', () => {
  test('exit 0 on a healthy database, 1 after one byte of record data is flipped', async () => {
    const d = dirOf('verify')
    const marker = 'MARKER-0123456789abcdef'
    await cli(['put', '--dir', d, 'k1', marker])
    await cli(['put', '--dir', d, '-t', 't', 'k2', 'v2'])
    const ok = await cliJson(['verify', '--dir', d])
    assert.equal(ok.code, 0, ok.stdout)
    assert.equal((ok.doc as { ok: boolean }).ok, true)

    // The database is closed: find the value's bytes in the log and flip one.
    const log = join(d, 'log')
    const bytes = flipInLog(log, marker, 5)
    // Junk past the last message of the log's last segment: recovery would zero it.
    writeFileSync(log, Buffer.concat([bytes, Buffer.alloc(64, 0x5a)]))
    const before = folderBytes(d)

    const bad = await cliJson(['verify', '--dir', d])
    assert.deepEqual(folderBytes(d), before, 'verify changed nothing in the damaged folder')
    assert.equal(bad.code, 1)
    const doc = bad.doc as { ok: boolean; problems: Array<{ code: string; file?: string }> }
    assert.equal(doc.ok, false)
    assert.equal(doc.problems[0]?.code, 'BOBSLED_CORRUPTION')
    const text = await cli(['verify', '--dir', d])
    assert.equal(text.code, 1)
    assert.match(text.stdout, /DAMAGE/)
  })
})

/** Flips one bit `offset` bytes into the first copy of `marker` in a closed database's log; returns the new bytes. */
function flipInLog(log: string, marker: string, offset: number): Buffer {
  const bytes = readFileSync(log)
  const at = bytes.indexOf(marker)
  assert.ok(at > 0, 'the value is stored in the log')
  bytes[at + offset] = (bytes[at + offset] as number) ^ 0x01
  writeFileSync(log, bytes)
  return bytes
}

describe('corruption met by any command', () => {
  test('get, dump, stats, scan, export, put and info on a damaged log exit 1 with BOBSLED_CORRUPTION, changing nothing', async () => {
    const d = dirOf('damaged')
    const marker = 'DAMAGED-0123456789abcdef'
    assert.equal((await cli(['put', '--dir', d, 'k1', marker])).code, 0)
    assert.equal((await cli(['put', '--dir', d, 'k2', 'v2'])).code, 0)
    const log = join(d, 'log')
    flipInLog(log, marker, 3)
    const before = folderBytes(d)
    for (const args of [
      ['get', '--dir', d, 'k2'],
      ['dump', '--dir', d],
      ['stats', '--dir', d],
      ['scan', '--dir', d],
      ['export', '--dir', d, '-o', join(root.path, 'damaged.ndjson')],
      ['put', '--dir', d, 'k3', 'v3'],
      ['info', d],
    ]) {
      const r = await cliJson(args)
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`)
      const error = (r.doc as { error: { code: string; file?: string } }).error
      assert.equal(error.code, 'BOBSLED_CORRUPTION', args[0])
      assert.equal(error.file, log, `${args[0]} names the damaged file`)
      assert.match(r.stderr, /\[BOBSLED_CORRUPTION\]/, args[0])
    }
    assert.deepEqual(folderBytes(d), before, 'a refused open changed the damaged folder')
  })
})

describe('verify notes a skipped checkpoint', () => {
  test('a checkpoint with a flipped byte is a note (exit 0, the data intact), not damage', async () => {
    const d = dirOf('bad-checkpoint')
    assert.equal((await cli(['put', '--dir', d, 'k1', 'v1'])).code, 0)
    assert.equal((await cli(['put', '--dir', d, '-t', 't', 'k2', 'v2'])).code, 0)
    const clean = await cliJson(['verify', '--dir', d])
    assert.deepEqual((clean.doc as { notes: string[] }).notes, [], 'a clean folder has no notes')
    const [checkpoint] = readdirSync(d).filter((f) => f.startsWith('checkpoint-'))
    assert.ok(checkpoint !== undefined, 'a clean close wrote a checkpoint')
    const path = join(d, checkpoint)
    const b = readFileSync(path)
    b[b.length >> 1] = (b[b.length >> 1] as number) ^ 0x10
    writeFileSync(path, b)
    const r = await cliJson(['verify', '--dir', d])
    assert.equal(r.code, 0, r.stdout)
    const doc = r.doc as { ok: boolean; notes: string[]; trees: Array<{ entries: number }> }
    assert.equal(doc.ok, true)
    assert.equal(doc.notes.length, 1, JSON.stringify(doc.notes))
    assert.match(doc.notes[0] as string, new RegExp(`checkpoint skipped.*${checkpoint}`))
    assert.deepEqual(
      doc.trees.map((t) => t.entries),
      [1, 1],
    )
    assert.equal((await cli(['get', '--dir', d, '-t', 't', 'k2'])).stdout, 'v2\n')
  })
})

describe('--json and errors', () => {
  test('every command prints one JSON document', async () => {
    const d = dirOf('json')
    const file = join(root.path, 'json.ndjson')
    for (const args of [
      ['put', '--dir', d, 'a', '1'],
      ['get', '--dir', d, 'a'],
      ['scan', '--dir', d],
      ['dump', '--dir', d],
      ['stats', '--dir', d],
      ['verify', '--dir', d],
      ['export', '--dir', d, '-o', file],
      ['import', '--dir', dirOf('json-imp'), file],
      ['del', '--dir', d, 'a'],
      ['info', d],
      ['demo', '--dir', dirOf('json-demo'), '-n', '2000'],
      ['bench', '-n', '500'],
    ]) {
      const r = await cliJson(args)
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(typeof r.doc, 'object')
    }
  })

  test('a second opener gets BOBSLED_LOCKED (exit 2) while another process holds the database', async () => {
    const d = dirOf('locked')
    await cli(['put', '--dir', d, 'a', '1'])
    const holder: ChildProcess = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { open } = await import(${JSON.stringify(INDEX)}); await open(${JSON.stringify(d)}); ` +
          `process.stdout.write('open\\n'); setInterval(() => {}, 60000)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    )
    try {
      await new Promise<void>((resolve, reject) => {
        holder.stdout?.on('data', (c: Buffer) => {
          if (c.toString().includes('open')) resolve()
        })
        holder.on('exit', (code) => reject(new Error(`the holder exited (${code})`)))
      })
      const r = await cliJson(['get', '--dir', d, 'a'])
      assert.equal(r.code, 2)
      assert.equal((r.doc as { error: { code: string } }).error.code, 'BOBSLED_LOCKED')
      assert.match(r.stderr, /locked.*\[BOBSLED_LOCKED\]/)
    } finally {
      holder.kill('SIGKILL')
    }
  })

  test('a folder that is not a database, a missing one, and bad arguments are typed errors', async () => {
    const foreign = dirOf('foreign')
    await fs.mkdir(foreign)
    writeFileSync(join(foreign, 'notes.txt'), 'hello')
    const r = await cli(['stats', '--dir', foreign])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /\[BOBSLED_NOT_A_DATABASE\]/)

    const missing = await cliJson(['dump', '--dir', dirOf('no-such-folder')])
    assert.equal(missing.code, 2)
    assert.equal((missing.doc as { error: { code: string } }).error.code, 'BOBSLED_NOT_A_DATABASE')
    await assert.rejects(fs.stat(dirOf('no-such-folder')), 'reading commands never create a database')

    const usage = await cli(['scan', '--dir', foreign, '--limit', 'lots'])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /--limit must be a positive integer/)
    assert.equal((await cli(['frobnicate'])).code, 2)
    const noTree = await cli(['get', '--dir', dirOf('json'), '-t', 'nope', 'a'])
    assert.equal(noTree.code, 2)
    assert.match(noTree.stderr, /no tree named "nope".*\[BOBSLED_INVALID_ARGUMENT\]/)
  })

  test('info never creates a log: a missing or empty folder is BOBSLED_NOT_A_DATABASE', async () => {
    const missing = dirOf('info-missing')
    const r = await cliJson(['info', missing])
    assert.equal(r.code, 2, r.stderr)
    assert.equal((r.doc as { error: { code: string } }).error.code, 'BOBSLED_NOT_A_DATABASE')
    await assert.rejects(fs.stat(missing), 'info created the folder')
    const empty = dirOf('info-empty')
    await fs.mkdir(empty)
    assert.equal((await cli(['info', empty])).code, 2)
    assert.deepEqual(readdirSync(empty), [], 'info wrote into the empty folder')
  })

  test('a path through a file is a typed error with no stack trace, for database commands and bench', async () => {
    const file = join(root.path, 'plain.txt')
    writeFileSync(file, 'not a folder')
    for (const args of [
      ['get', '--dir', join(file, 'db'), 'k'],
      ['stats', '--dir', join(file, 'db')],
      ['verify', '--dir', join(file, 'db')],
      ['info', join(file, 'db')],
    ]) {
      const r = await cliJson(args)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(
        (r.doc as { error: { code: string } }).error.code,
        'BOBSLED_NOT_A_DATABASE',
        args.join(' '),
      )
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${args.join(' ')} printed a stack trace`)
    }
    for (const dir of [file, join(file, 'x')]) {
      const r = await cliJson(['bench', '-n', '10', '--dir', dir])
      assert.equal(r.code, 2, r.stderr)
      assert.equal((r.doc as { error: { code: string } }).error.code, 'BOBSLED_INVALID_ARGUMENT')
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'bench printed a stack trace')
    }
    const demo = await cliJson(['demo', '--dir', dirOf('demo-small'), '-s', '2'])
    assert.equal(demo.code, 2, demo.stderr)
    assert.equal((demo.doc as { error: { code: string } }).error.code, 'BOBSLED_INVALID_ARGUMENT')
    assert.doesNotMatch(demo.stderr, /\n\s+at /, 'demo printed a stack trace')
  })

  test('a refused put creates no database: bad encoding, over-limit key, value or tree name', async () => {
    const d = dirOf('put-refused')
    const value = join(root.path, 'over.bin')
    writeFileSync(value, '')
    await fs.truncate(value, 64 * 1024 * 1024 + 1)
    for (const [args, code] of [
      [['-e', 'hex', 'zz', '00'], 'BOBSLED_INVALID_ARGUMENT'],
      [['-e', 'hex', '00', 'not-hex'], 'BOBSLED_INVALID_ARGUMENT'],
      [['k'.repeat(4097), 'v'], 'BOBSLED_LIMIT'],
      [['-t', 't'.repeat(129), 'k', 'v'], 'BOBSLED_LIMIT'],
      [['k', '--value-file', value], 'BOBSLED_LIMIT'],
    ] as const) {
      const r = await cliJson(['put', '--dir', d, ...args])
      assert.equal(r.code, 2, r.stderr)
      assert.equal((r.doc as { error: { code: string } }).error.code, code, args.join(' ').slice(0, 80))
      await assert.rejects(fs.stat(d), `put ${args.join(' ').slice(0, 80)} created the database`)
    }
    // At the limits it is accepted, and the key reads back.
    const atLimit = await cli(['put', '--dir', d, '-t', 't'.repeat(128), 'k'.repeat(4096), 'v'])
    assert.equal(atLimit.code, 0, atLimit.stderr)
    assert.equal((await cli(['get', '--dir', d, '-t', 't'.repeat(128), 'k'.repeat(4096)])).stdout, 'v\n')
  })
})

/** util-linux `script`: runs a command on a pseudo-terminal (the progress bar's condition). */
const hasScript = ((): boolean => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

/** `bobsled <args>` on a pseudo-terminal: stdout and stderr both land in the returned text. */
function cliOnTerminal(args: string[]): Promise<{ code: number | null; text: string }> {
  const quote = (a: string): string => `'${a.replaceAll("'", "'\\''")}'`
  const command = [process.execPath, MAIN, ...args].map(quote).join(' ')
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let text = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      text += d
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      text += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, text }))
  })
}

describe('progress bars', () => {
  test('long work shows a bar on a terminal only, never with --no-progress or --json', {
    skip: !hasScript && 'no `script` (util-linux) to make a terminal',
  }, async () => {
    const d = dirOf('progress')
    const bar = /inserting \[=+\] 100% 3000\/3000/
    const onTerminal = await cliOnTerminal(['demo', '--dir', d, '-n', '3000'])
    assert.equal(onTerminal.code, 0, onTerminal.text)
    assert.match(onTerminal.text, bar, 'no progress bar on a terminal')
    const exp = await cliOnTerminal(['export', '--dir', d, '-o', join(root.path, 'progress.ndjson')])
    assert.equal(exp.code, 0, exp.text)
    assert.match(exp.text, /exporting \[=+\] 100% 3000\/3000/, 'no progress bar for export on a terminal')

    const off = await cliOnTerminal(['demo', '--dir', d, '-n', '3000', '--no-progress'])
    assert.equal(off.code, 0, off.text)
    assert.doesNotMatch(off.text, /inserting \[/, '--no-progress showed a bar')
    const json = await cliOnTerminal(['demo', '--dir', d, '-n', '3000', '--json'])
    assert.equal(json.code, 0, json.text)
    assert.doesNotMatch(json.text, /inserting \[/, '--json showed a bar')
    const piped = await cli(['demo', '--dir', d, '-n', '3000'])
    assert.equal(piped.code, 0, piped.stderr)
    assert.equal(piped.stderr, '', 'a bar (or anything) on stderr off a terminal')
  })
})
