// The kill-point switch itself (src/util/kill-points.ts): off unless the environment arms it,
// a SIGKILL at the point with its name and seed on stderr, BOBSLED_KILL_ONLY, replay by seed,
// and a loud refusal of a malformed setting. Each case is a child process: the switch is
// read once, when the module loads.

import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { KILL_ODDS, KILL_POINT_LINE_PREFIX, KILL_POINT_NAMES } from '../../src/util/kill-points.js'

const MODULE = new URL('../../src/util/kill-points.js', import.meta.url).href
const SRC = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'src')

/** Runs `body` in a child that imported the module as `k`, with `env` added to its environment. */
function child(env: Record<string, string>, body: string) {
  const code = `const k = await import(${JSON.stringify(MODULE)}); ${body}; console.log('survived')`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, BOBSLED_KILL_POINTS: '', BOBSLED_KILL_SEED: '', BOBSLED_KILL_ONLY: '', ...env },
    encoding: 'utf8',
    timeout: 20_000,
  })
  return { signal: r.signal, stdout: r.stdout, stderr: r.stderr, status: r.status }
}

test('kill points are off unless BOBSLED_KILL_POINTS is set, and every name is unique', () => {
  assert.equal(KILL_ODDS, 0, 'the test runner itself must not run with kill points armed')
  assert.equal(new Set(KILL_POINT_NAMES).size, KILL_POINT_NAMES.length)
  // No name may be a prefix of another: BOBSLED_KILL_ONLY=<name> aims at exactly one point.
  for (const a of KILL_POINT_NAMES)
    for (const b of KILL_POINT_NAMES) assert.ok(a === b || !b.startsWith(a), `${a} is a prefix of ${b}`)
  const r = child({}, "for (let i = 0; i < 1000; i++) k.maybeKill('log.sync.before')")
  assert.equal(r.signal, null)
  assert.match(r.stdout, /survived/)
})

test('at odds 1/1 the first evaluated point SIGKILLs the process and names itself and the seed', () => {
  const r = child({ BOBSLED_KILL_POINTS: '1', BOBSLED_KILL_SEED: '42' }, "k.maybeKill('log.blob.synced')")
  assert.equal(r.signal, 'SIGKILL')
  assert.doesNotMatch(r.stdout, /survived/)
  assert.ok(
    r.stderr.includes(`${KILL_POINT_LINE_PREFIX}log.blob.synced odds=1/1 seed=42 evaluation=1`),
    r.stderr,
  )
})

test('BOBSLED_KILL_ONLY lets other points pass and kills at the one named', () => {
  const r = child(
    { BOBSLED_KILL_POINTS: '1', BOBSLED_KILL_ONLY: 'tree.id,pagecache.checkpoint.renamed' },
    "k.maybeKill('log.sync.before'); k.maybeKill('pagecache.checkpoint.dir-synced'); k.maybeKill('pagecache.checkpoint.renamed')",
  )
  assert.equal(r.signal, 'SIGKILL')
  assert.ok(r.stderr.includes(`${KILL_POINT_LINE_PREFIX}pagecache.checkpoint.renamed `), r.stderr)
})

test('the same seed kills at the same evaluation; the kill seed is random without one', () => {
  const loop = "for (let i = 0; i < 100000; i++) k.maybeKill('log.write.issued')"
  const a = child({ BOBSLED_KILL_POINTS: '500', BOBSLED_KILL_SEED: '7' }, loop)
  const b = child({ BOBSLED_KILL_POINTS: '500', BOBSLED_KILL_SEED: '7' }, loop)
  assert.equal(a.signal, 'SIGKILL')
  const at = (s: string): string => (s.match(/evaluation=(\d+)/) as RegExpMatchArray)[1] as string
  assert.equal(at(a.stderr), at(b.stderr))
  const c = child({ BOBSLED_KILL_POINTS: '500' }, loop)
  assert.match(c.stderr, /seed=\d+ evaluation=\d+/)
})

test('a malformed BOBSLED_KILL_POINTS refuses to load instead of testing nothing', () => {
  for (const bad of ['abc', '-3', '1.5']) {
    const r = child({ BOBSLED_KILL_POINTS: bad }, '')
    assert.equal(r.signal, null)
    assert.notEqual(r.status, 0)
    assert.match(r.stderr, /BOBSLED_KILL_POINTS must be an integer/)
  }
})

test('every named point has a call site, and every call site is behind the KILL_ODDS test', () => {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => {
      const p = join(dir, n)
      return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : []
    })
  const used = new Set<string>()
  const unguarded: string[] = []
  for (const file of walk(SRC)) {
    if (file.endsWith('kill-points.ts')) continue
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = line.match(/maybeKill\('([^']+)'\)/)
      if (m === null) continue
      used.add(m[1] as string)
      if (!/if \(KILL_ODDS[ )&]/.test(line)) unguarded.push(`${file}: ${line.trim()}`)
    }
  }
  assert.deepEqual(
    KILL_POINT_NAMES.filter((n) => !used.has(n)),
    [],
  )
  assert.deepEqual(unguarded, [])
})
