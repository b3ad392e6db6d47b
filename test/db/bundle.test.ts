// The package's entry (package.json "exports") is dist/bobsled.js, the engine bundled into one
// ES module by scripts/bundle.mjs after tsc: Node's module loader costs ~70 KB of RSS per
// module (docs/DESIGN.md, "Peak RSS"). This checks that the bundle is whole (it imports only
// Node's own modules) and is a working database: write, close, reopen, read back.

import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/temp-dir.js'

// From dist/test/db/ to dist/bobsled.js.
const BUNDLE = new URL('../../bobsled.js', import.meta.url)

test('the bundled package entry imports only node: modules and is a working database after a reopen', async () => {
  const text = readFileSync(fileURLToPath(BUNDLE), 'utf8')
  const specifiers = [...text.matchAll(/\bfrom\s*["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/g)].map(
    (m) => m[1] ?? m[2],
  )
  assert.ok(specifiers.length > 0, 'the bundle imports Node modules')
  assert.deepEqual(
    specifiers.filter((s) => !s?.startsWith('node:')),
    [],
    'the bundle imports nothing but node: modules',
  )
  const pkg = JSON.parse(
    readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8'),
  )
  assert.equal(pkg.exports['.'].default, './dist/bobsled.js')

  const bobsled = await import(BUNDLE.href)
  const dir = (await tempDir('bundle')).path
  const db = await bobsled.open(dir)
  for (let i = 0; i < 500; i++) await db.insert(`k${i}`, `v${i}`)
  await db.close()
  const again = await bobsled.open(dir)
  assert.equal(await again.len(), 500)
  assert.equal(new TextDecoder().decode(await again.get('k321')), 'v321')
  await assert.rejects(again.insert(42, 'x'), (e: unknown) => e instanceof bobsled.InvalidArgumentError)
  await again.close()
})
