// The disk's own ceiling for one durable write at a time, from Node, measured in the same run
// as the peers (the machine is shared and its disk's flush rate drifts, so a durable-write
// figure means little without the ceiling it met). No engine can commit one write at a time
// faster than this: a peer near it is capped by the disk, not by its code.
//
// Two ways a single writer can make 128 bytes durable:
//   dsync      writeSync() at the next offset of a file opened O_DSYNC and pre-extended (zeros
//              written and synced first), so each write changes no metadata: one syscall,
//              no thread-pool hop. The best this disk does from Node.
//   fdatasync  writeSync() appending to a fresh file, then fdatasyncSync(): two syscalls, and
//              the file's size changes with every write.

import * as fs from 'node:fs'
import * as path from 'node:path'

const WRITE_BYTES = 128
const PREEXTEND_BYTES = 64 * 1024 * 1024

function timed(ms, step) {
  let ops = 0
  const t0 = performance.now()
  const end = t0 + ms
  while (performance.now() < end) {
    step(ops)
    ops++
  }
  return ops / ((performance.now() - t0) / 1000)
}

/** Ops/s of both ways, `ms` each, in a scratch folder under `dir` (removed afterwards). */
export function diskCeiling(dir, ms) {
  const scratch = fs.mkdtempSync(path.join(dir, 'bobsled-disk-'))
  const record = Buffer.alloc(WRITE_BYTES, 0x5a)
  try {
    const pre = path.join(scratch, 'dsync')
    let fd = fs.openSync(pre, 'w')
    const zeros = Buffer.alloc(1024 * 1024)
    for (let at = 0; at < PREEXTEND_BYTES; at += zeros.length) fs.writeSync(fd, zeros, 0, zeros.length, at)
    fs.fsyncSync(fd)
    fs.closeSync(fd)
    fd = fs.openSync(pre, fs.constants.O_WRONLY | fs.constants.O_DSYNC)
    const dsync = timed(ms, (i) => {
      fs.writeSync(fd, record, 0, WRITE_BYTES, (i * WRITE_BYTES) % PREEXTEND_BYTES)
    })
    fs.closeSync(fd)

    fd = fs.openSync(path.join(scratch, 'append'), 'w')
    const fdatasync = timed(ms, () => {
      fs.writeSync(fd, record, 0, WRITE_BYTES)
      fs.fdatasyncSync(fd)
    })
    fs.closeSync(fd)
    return { dsync, fdatasync }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}
