// Runs every compiled *.test.js under dist/test with Node's test runner. Node 20 has no
// glob in `node --test`, and a plain folder argument would also run helper scripts.
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'

const root = 'dist/test'
const files = readdirSync(root, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.test.js'))
  .map((f) => join(root, f))
  .sort()
const args = ['--test', '--test-concurrency=2', ...process.argv.slice(2), ...files]
const r = spawnSync(process.execPath, args, { stdio: 'inherit' })
process.exit(r.status ?? 1)
