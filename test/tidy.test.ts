// Keeps the layering visible: a module imports only from its own layer or the layers
// below it (docs/DESIGN.md, "Layers"). Also bans TODOs without an issue number.

import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const SRC = join(ROOT, 'src')

// Lower rank = lower layer. util and errors are shared foundations.
const RANK: Record<string, number> = {
  util: 0,
  'errors.ts': 0,
  io: 1,
  log: 2,
  segments: 3,
  pagecache: 4,
  tree: 5,
  'db.ts': 6,
  'index.ts': 10,
  'testing.ts': 10,
  cli: 11,
}

function layerOf(file: string): string {
  // Imports name the compiled .js file; the layer table speaks of sources.
  const rel = relative(SRC, file).replace(/\.js$/, '.ts')
  return rel.split('/')[0] as string
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : []
  })
}

test('every source file imports only its own layer or lower ones', () => {
  const violations: string[] = []
  for (const file of walk(SRC)) {
    const from = layerOf(file)
    const fromRank = RANK[from]
    assert.notEqual(fromRank, undefined, `unknown layer for ${relative(ROOT, file)}: add it to RANK`)
    const text = readFileSync(file, 'utf8')
    for (const m of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), m[1] as string)
      const to = layerOf(target)
      const toRank = RANK[to]
      if (toRank === undefined) violations.push(`${relative(ROOT, file)} imports unknown ${m[1]}`)
      else if (toRank > (fromRank as number))
        violations.push(`${relative(ROOT, file)} (${from}) imports up into ${to}`)
      else if (from === 'cli' && to !== 'cli' && to !== 'index.ts') {
        violations.push(`${relative(ROOT, file)}: the CLI imports only the public API`)
      }
    }
  }
  assert.deepEqual(violations, [])
})

test('no TODO without an issue number', () => {
  const bad = walk(SRC).filter((f) => /TODO(?!\(#\d+\))/.test(readFileSync(f, 'utf8')))
  assert.deepEqual(
    bad.map((f) => relative(ROOT, f)),
    [],
  )
})
