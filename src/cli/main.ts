#!/usr/bin/env node
// The `bobsled` command: one file per command (bbolt's cmd/ layout), this one wires them up.
// Imports only the public API (src/index.ts) and cli files (test/tidy.test.ts checks).
//
// Exit codes: 0 ok; 1 damage found (verify, a damaged export, corruption met by any command);
// 2 usage or any other error (locked, not a database, IO); 3 `get` of a missing key.

import { InvalidArgumentError as CliArgumentError, Command, CommanderError, Option } from 'commander'
import { isBobsledError } from '../index.js'
import { runBench } from './bench.js'
import { EXIT_DAMAGE, EXIT_ERROR, EXIT_OK, parseEncoding } from './common.js'
import { runDemo } from './demo.js'
import { runDump } from './dump.js'
import { runInfo } from './info.js'
import { runDel, runGet, runPut, runScan } from './kv.js'
import { runStats } from './stats.js'
import { runExport, runImport } from './transfer.js'
import { runVerify } from './verify.js'

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n <= 0) throw new CliArgumentError(`${name} must be a positive integer`)
    return n
  }
}

function encoding(v: string): string {
  try {
    return parseEncoding(v)
  } catch (e) {
    throw new CliArgumentError((e as Error).message)
  }
}

const DEFAULT_DIR = './bobsled-data'

/** The options every database command takes. */
function dbCommand(
  name: string,
  description: string,
  opts: { tree?: boolean; progress?: boolean } = {},
): Command {
  const c = program
    .command(name)
    .description(description)
    .option('-d, --dir <path>', 'database folder', DEFAULT_DIR)
    .option('--json', 'print one JSON document on stdout')
  if (opts.tree) c.option('-t, --tree <name>', 'a named tree (default: the default tree)')
  if (opts.progress)
    c.option('--no-progress', 'no progress bar (there is none off a terminal or with --json)')
  return c
}

function kvCommand(name: string, description: string): Command {
  return dbCommand(name, description, { tree: true }).addOption(
    new Option(
      '-e, --encoding <enc>',
      'how keys and values on the command line are written: utf8, hex, base64',
    )
      .default('utf8')
      .argParser(encoding),
  )
}

const common = (o: { dir: string; json?: boolean }) => ({ dir: o.dir, json: o.json === true })

const program = new Command()
program
  .name('bobsled')
  .description('bobsled: an embedded, crash-safe, log-structured key-value database for Node.js')
  .showHelpAfterError()
  .exitOverride()

dbCommand('stats', 'space on disk and in memory, explained; entries per tree', { tree: true }).action((o) =>
  runStats({ ...common(o), tree: o.tree }),
)

dbCommand('verify', 'check every CRC on the log and the order of every tree; exit 1 when damaged', {
  progress: true,
}).action((o) => runVerify({ ...common(o), progress: o.progress }))

dbCommand('dump', 'print every key and value, tree by tree (text, or 0x-hex when not printable)', {
  tree: true,
}).action((o) => runDump({ ...common(o), tree: o.tree }))

kvCommand('get', 'print the value of a key (exit 3 when it is not there)')
  .argument('<key>')
  .option('--raw', 'write the value bytes exactly as stored')
  .action((key: string, o) =>
    runGet(key, { ...common(o), tree: o.tree, encoding: o.encoding, raw: o.raw === true }),
  )

kvCommand('put', 'set a key to a value (durable when the command returns)')
  .argument('<key>')
  .argument('[value]')
  .option('--value-file <file>', 'the value is the bytes of this file (- for stdin), for large values')
  .action((key: string, value: string | undefined, o) =>
    runPut(key, value, { ...common(o), tree: o.tree, encoding: o.encoding, valueFile: o.valueFile }),
  )

kvCommand('del', 'remove a key (durable when the command returns)')
  .argument('<key>')
  .action((key: string, o) => runDel(key, { ...common(o), tree: o.tree, encoding: o.encoding }))

kvCommand('scan', 'print the entries of a key range in order')
  .option('-p, --prefix <prefix>', 'keys starting with prefix')
  .option('--gte <key>', 'keys ≥ key')
  .option('--lt <key>', 'keys < key')
  .option('-r, --reverse', 'descending order')
  .option('-l, --limit <n>', 'at most n entries', positiveInt('--limit'))
  .action((o) =>
    runScan({
      ...common(o),
      tree: o.tree,
      encoding: o.encoding,
      prefix: o.prefix,
      gte: o.gte,
      lt: o.lt,
      reverse: o.reverse === true,
      limit: o.limit,
    }),
  )

dbCommand('export', 'write every entry as a checked NDJSON stream (README "CLI")', {
  tree: true,
  progress: true,
})
  .option('-o, --out <file>', 'output file, - for stdout', '-')
  .action((o) => runExport({ ...common(o), tree: o.tree, out: o.out, progress: o.progress }))

dbCommand('import', 'load an export (checked whole before anything is written) in batches', {
  progress: true,
})
  .argument('<file>', 'an export file, - for stdin')
  .action((file: string, o) => runImport(file, { ...common(o), progress: o.progress }))

program
  .command('bench')
  .description('a quick benchmark: insert, batched insert, durable insert, get, scan, reopen')
  .option('-d, --dir <path>', 'an empty or new folder to run in (default: a temporary one, deleted after)')
  .option('-n, --records <count>', 'records', positiveInt('--records'), 50_000)
  .option('-s, --size <bytes>', 'bytes per value', positiveInt('--size'), 100)
  .option('--json', 'print one JSON document on stdout')
  .option('--no-progress', 'no progress bar')
  .action((o) =>
    runBench({
      dir: o.dir,
      records: o.records,
      valueBytes: o.size,
      json: o.json === true,
      progress: o.progress,
    }),
  )

dbCommand('demo', 'insert records into a database, flush, reopen it, read everything back and say how fast', {
  progress: true,
})
  .option('-n, --records <count>', 'records to insert', positiveInt('--records'), 200_000)
  .option('-s, --size <bytes>', 'bytes per value', positiveInt('--size'), 100)
  .action((o) => runDemo({ ...common(o), records: o.records, sizeBytes: o.size, progress: o.progress }))

program
  .command('info')
  .description('open the log alone (running recovery), read every record and print what it holds')
  .argument('[dir]', 'database folder', DEFAULT_DIR)
  .option('--json', 'print one JSON document on stdout')
  .action((dir: string, o) => runInfo({ dir, json: o.json === true }))

function fail(e: unknown): void {
  const wantsJson = process.argv.includes('--json')
  if (e instanceof CommanderError) {
    // Commander has already printed its message (and the help) on stderr.
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.exitCode === 0) {
      process.exitCode = 0
      return
    }
    if (wantsJson) {
      const error = { code: 'BOBSLED_USAGE', message: e.message.replace(/^error: /, '') }
      process.stdout.write(`${JSON.stringify({ error })}\n`)
    }
    process.exitCode = EXIT_ERROR
    return
  }
  const typed = isBobsledError(e)
  const err = e as Error & { code?: string }
  const code = typed ? (err.code as string) : 'UNEXPECTED'
  process.stderr.write(`bobsled: ${err.message ?? String(e)} [${code}]\n`)
  if (!typed && err.stack !== undefined) process.stderr.write(`${err.stack}\n`)
  if (wantsJson) {
    const error: Record<string, unknown> = { code, name: err.name, message: err.message }
    for (const k of ['file', 'offset', 'lsn', 'path', 'holderPid'] as const) {
      const v = (e as Record<string, unknown>)[k]
      if (v !== undefined) error[k] = v
    }
    process.stdout.write(`${JSON.stringify({ error })}\n`)
  }
  process.exitCode = code === 'BOBSLED_CORRUPTION' ? EXIT_DAMAGE : EXIT_ERROR
}

// A reader that stops early (`bobsled dump | head`) closes the pipe: that is not an error.
// Every write command makes its change durable before it prints, so nothing is lost here.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(EXIT_OK)
})

program.parseAsync(process.argv).catch(fail)
