// Child process of the ownership tests (test/reliability/ownership.test.ts): opens the log
// in the folder given as argv[2] and reports on stdout, one line each:
//   READY                     with --wait, before it waits for "go" on stdin
//   OPEN <pid> <ms> <n>       the log is open (took <ms>) and <n> records are flushed
//   ERR <code> <ms>           Log.open failed: the BobsledError code, or UNTYPED:<name>
//   ACKED <n>                 with --churn: records 0..n-1 of this pid are flushed
//   CLOSED                    after "close" on stdin
// Options: --records <n> appends and flushes n records `owner <pid> <i>` after the open;
// --churn keeps appending (every other round flushed) until killed or told to close.

import { isBobsledError } from '../../src/errors.js'
import { Log } from '../../src/log/index.js'

const [dir, ...flags] = process.argv.slice(2)
// `node --test` over a whole dist/test folder also runs helper scripts with no arguments:
// that run must pass quietly.
if (dir === undefined) process.exit(0)

function option(name: string): string | undefined {
  const i = flags.indexOf(name)
  return i >= 0 ? flags[i + 1] : undefined
}

const say = (line: string): void => {
  // Pipes are synchronous on Linux: a line written is in the pipe before any SIGKILL.
  process.stdout.write(`${line}\n`)
}
const enc = (s: string): Uint8Array => new TextEncoder().encode(s)

const commands: Array<(line: string) => void> = []
let pending = ''
process.stdin.on('data', (chunk: Buffer) => {
  pending += chunk.toString()
  let nl = pending.indexOf('\n')
  while (nl >= 0) {
    const line = pending.slice(0, nl).trim()
    pending = pending.slice(nl + 1)
    for (const c of commands.splice(0)) c(line)
    nl = pending.indexOf('\n')
  }
})
const nextCommand = (): Promise<string> => new Promise((resolve) => commands.push(resolve))

if (flags.includes('--wait')) {
  say('READY')
  while ((await nextCommand()) !== 'go') {}
}

const t0 = performance.now()
let log: Log
try {
  log = await Log.open(dir, { flushEveryMs: 0 })
} catch (e) {
  const code = isBobsledError(e) ? e.code : `UNTYPED:${e instanceof Error ? e.name : typeof e}`
  say(`ERR ${code} ${(performance.now() - t0).toFixed(2)}`)
  if (!isBobsledError(e)) process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`)
  process.exit(0)
}
const openMs = performance.now() - t0
const records = Number(option('--records') ?? 0)
let next = 0
for (; next < records; next++) log.append(enc(`owner ${process.pid} ${next}`))
if (records > 0) await log.flush()
say(`OPEN ${process.pid} ${openMs.toFixed(2)} ${records}`)

let isClosing = false
// The lock's socket is unref()ed on purpose: this timer keeps the holder alive.
const keepAlive = setInterval(() => {}, 60_000)

if (flags.includes('--churn')) {
  void (async () => {
    for (let round = 0; !isClosing; round++) {
      for (let i = 0; i < 8; i++) log.append(enc(`owner ${process.pid} ${next++}`))
      if (round % 2 === 1) {
        const upTo = next
        await log.flush()
        say(`ACKED ${upTo}`)
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
    }
  })()
}

while ((await nextCommand()) !== 'close') {}
isClosing = true
await log.close()
clearInterval(keepAlive)
say('CLOSED')
process.exit(0)
