#!/usr/bin/env node
// The `bobsled` command. Imports only the public API (src/index.ts).

import { InvalidArgumentError as CliArgumentError, Command } from 'commander'
import { runDemo } from './demo.js'
import { runInfo } from './info.js'

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n <= 0) throw new CliArgumentError(`${name} must be a positive integer`)
    return n
  }
}

const program = new Command()
program
  .name('bobsled')
  .description('bobsled: an embedded, crash-safe, log-structured store for Node.js')
  .showHelpAfterError()

program
  .command('demo')
  .description('append records to a log, flush, reopen it and report what was recovered and how fast')
  .option('-d, --dir <path>', 'database folder', './bobsled-data')
  .option('-n, --records <count>', 'records to append', positiveInt('--records'), 1_000_000)
  .option('-s, --size <bytes>', 'bytes per record', positiveInt('--size'), 100)
  .option('--json', 'print a JSON summary instead of text')
  .option('--no-progress', 'no progress bar')
  .action(async (o) => {
    await runDemo({
      dir: o.dir,
      records: o.records,
      sizeBytes: o.size,
      json: o.json === true,
      progress: o.progress,
    })
  })

program
  .command('info')
  .description('open a log (running recovery), verify every record and print what it holds')
  .argument('[dir]', 'database folder', './bobsled-data')
  .option('--json', 'print JSON')
  .action(async (dir: string, o) => {
    await runInfo({ dir, json: o.json === true })
  })

program.parseAsync(process.argv).catch((e: unknown) => {
  const err = e as { code?: string; message?: string }
  process.stderr.write(`bobsled: ${err.message ?? String(e)}${err.code ? ` [${err.code}]` : ''}\n`)
  process.exitCode = err.code === 'BOBSLED_CORRUPTION' ? 3 : err.code === 'BOBSLED_LOCKED' ? 4 : 1
})
