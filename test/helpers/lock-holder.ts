// Child process for lock tests: takes the lock on the folder given as argv[2], says
// "LOCKED <pid>" on stdout, then waits to be killed (or releases on "release" from stdin).

import { FileStorage } from '../../src/io/index.js'

const dir = process.argv[2]
// `node --test dist/test/` also runs every .js under a test/ folder, this one included, with
// no arguments: that run must pass quietly.
if (dir === undefined) process.exit(0)
const storage = new FileStorage(dir)
try {
  const lock = await storage.lock()
  process.stdout.write(`LOCKED ${process.pid}\n`)
  process.stdin.on('data', async (chunk) => {
    if (chunk.toString().includes('release')) {
      await lock.release()
      process.stdout.write('RELEASED\n')
      process.exit(0)
    }
  })
  // Keeps the process alive: the lock's socket is unref()ed on purpose.
  setInterval(() => {}, 60_000)
} catch (e) {
  process.stdout.write(`REFUSED ${(e as { code?: string }).code ?? String(e)}\n`)
  process.exit(1)
}
