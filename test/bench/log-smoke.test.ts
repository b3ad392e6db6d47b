// The log benchmark still runs: `--smoke` (tiny sizes) must exit 0 and print every figure
// line, the summary and, with --json, a JSON summary; and it must leave no temp folder.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type NodeRun, runNode } from '../helpers/run-node.js'

const BENCH = fileURLToPath(new URL('../../bench/log.js', import.meta.url))
const FIGURES = ['bulk-100B', 'bulk-4K', 'durable-1', 'durable-64', 'reopen-1M', 'read-random', 'reopen-1GiB']

const run = (args: string[]): Promise<NodeRun> => runNode([BENCH, ...args])

test('bench:log --smoke prints one line per figure and exits 0', { timeout: 60_000 }, async () => {
  const { code, stdout, stderr } = await run(['--smoke', '--json'])
  assert.equal(code, 0, `exit code ${code}\n${stdout}\n${stderr}`)
  const lines = stdout.split('\n')
  for (const name of FIGURES) {
    const re = new RegExp(
      `^${name}\\s+bobsled [\\d.]+M? \\S+\\s+\\S+ [\\d.]+M? \\S+\\s+ratio [\\d.]+\\s+goal >= [\\d.]+\\s+(PASS|MISS)$`,
    )
    assert.equal(lines.filter((l) => re.test(l)).length, 1, `one line for ${name} in:\n${stdout}`)
  }
  assert.ok(
    lines.some((l) => /^summary: \d+\/7 PASS/.test(l)),
    `summary line in:\n${stdout}`,
  )
  const json = JSON.parse(stdout.slice(stdout.indexOf('\n{') + 1)) as {
    smoke: boolean
    figures: Array<{ name: string; ratio: number }>
  }
  assert.equal(json.smoke, true)
  assert.deepEqual(
    json.figures.map((f) => f.name),
    FIGURES,
  )
  for (const f of json.figures)
    assert.ok(Number.isFinite(f.ratio) && f.ratio > 0, `${f.name} ratio ${f.ratio}`)
  const dir = /dir (\S+),/.exec(lines[0] ?? '')?.[1]
  assert.ok(dir !== undefined, 'the header names the temp folder')
  assert.equal(existsSync(dir), false, 'the temp folder is removed')
})
