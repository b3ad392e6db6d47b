// The SIGKILL harness's child runner: starts `node <args>` (its pid to `onSpawn`, for
// probes), hands every stdout line to the caller, and kills the child `killAfterMs` after
// it prints OPEN; armed before open, after its start, or ('at-opening') after it prints
// OPENING, for a child that says when it calls open (node takes a few hundred ms to load:
// a timer from the start lands before it). A child may also die of a SIGKILL it sent
// itself (a kill point, src/util/kill-points.ts): `env` arms those, and the child's stderr
// comes back so the caller can tell which fired.

import { spawn } from 'node:child_process'

/**
 * Resolves once the child died of a SIGKILL and every line it wrote has been read
 * ('close', not 'exit'), telling whether it had printed OPEN, with its stderr; rejects if it
 * exits any other way.
 */
export function runUntilKilled(
  args: string[],
  killAfterMs: number,
  killBeforeOpen: boolean | 'at-opening',
  onLine: (line: string) => void,
  env?: NodeJS.ProcessEnv,
  onSpawn?: (pid: number) => void,
): Promise<{ opened: boolean; stderr: string }> {
  return new Promise<{ opened: boolean; stderr: string }>((resolve, reject) => {
    let opened = false
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(env ? { env } : {}),
    })
    if (child.pid !== undefined) onSpawn?.(child.pid)
    let out = ''
    let err = ''
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      timer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    }
    if (killBeforeOpen === true) arm()
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      let nl = out.indexOf('\n')
      while (nl >= 0) {
        const line = out.slice(0, nl)
        out = out.slice(nl + 1)
        nl = out.indexOf('\n')
        if (line === 'OPEN') {
          opened = true
          arm()
        } else if (line === 'OPENING') {
          if (killBeforeOpen === 'at-opening') arm()
        } else onLine(line)
      }
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code}: ${err}`))
      else resolve({ opened, stderr: err })
    })
  })
}
