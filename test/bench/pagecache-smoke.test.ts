// The page cache benchmark still runs: `--quick` (tiny sizes) must exit 0 and print every
// figure line, the info lines, the summary and, with --json, a JSON summary; and it must
// leave no temp folder. Timing is never asserted here (STYLE.md, "Tests").

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { type NodeRun, runNode } from '../helpers/run-node.js'

const BENCH = fileURLToPath(new URL('../../bench/pagecache.js', import.meta.url))
// The issue's goals, with each peak-RSS line followed by its calibrated line.
const FIGURES = ['space-amp', 'peak-rss', 'rss-cal', 'rss-dflt', 'dflt-cal', 'open']
const INFOS = ['overwrite', 'cleaning', 'per-page', 'peak-rss', 'rss-dflt', 'open']

const run = (args: string[]): Promise<NodeRun> => runNode(['--expose-gc', BENCH, ...args])

test('bench:pagecache --quick prints one line per figure and exits 0', { timeout: 60_000 }, async () => {
  const { code, stdout, stderr } = await run(['--quick', '--json'])
  assert.equal(code, 0, `exit code ${code}\n${stdout}\n${stderr}`)
  const lines = stdout.split('\n')
  for (const name of FIGURES) {
    const re = new RegExp(
      // A calibrated line's measured value (bobsled's peak less the calibration's) and ratio
      // may come out negative in a run this small.
      `^${name}\\s+\\S+( \\S+)? -?[\\d.]+ \\S+\\s+\\S+( \\S+)? [\\d.]+ \\S+\\s+ratio -?[\\d.]+\\s+goal <= [\\d.]+\\s+(PASS|MISS)$`,
    )
    assert.equal(lines.filter((l) => re.test(l)).length, 1, `one figure line for ${name} in:\n${stdout}`)
  }
  for (const name of INFOS) {
    assert.ok(
      lines.some((l) => l.startsWith(`${name} `)),
      `an info line for ${name} in:\n${stdout}`,
    )
  }
  assert.ok(
    lines.some((l) =>
      /^summary: \d+\/4 PASS.*; calibrated \(not issue goals\): \d+\/2 within allowance/.test(l),
    ),
    `summary line in:\n${stdout}`,
  )
  const json = JSON.parse(stdout.slice(stdout.indexOf('\n{') + 1)) as {
    quick: boolean
    figures: Array<{ name: string; ratio: number; isIssueGoal: boolean }>
  }
  assert.equal(json.quick, true)
  assert.deepEqual(
    json.figures.map((f) => f.name),
    FIGURES,
  )
  for (const f of json.figures)
    assert.ok(Number.isFinite(f.ratio) && (f.ratio > 0 || !f.isIssueGoal), `${f.name} ratio ${f.ratio}`)
  assert.deepEqual(
    json.figures.filter((f) => !f.isIssueGoal).map((f) => f.name),
    ['rss-cal', 'dflt-cal'],
    'only the calibrated lines are outside the issue goals',
  )
  const dir = /dir (\S+),/.exec(lines[0] ?? '')?.[1]
  assert.ok(dir !== undefined, 'the header names the temp folder')
  assert.equal(existsSync(dir), false, 'the temp folder is removed')
})
