// The SIGKILL harness's child runner: starts `node <args>`, hands every stdout line to the
// caller, and kills the child `killAfterMs` after it prints OPEN (or after its start).

import { spawn } from 'node:child_process'

/**
 * Resolves once the child died of the SIGKILL and every line it wrote has been read
 * ('close', not 'exit'); rejects if it exits any other way.
 */
export function runUntilKilled(
  args: string[],
  killAfterMs: number,
  killBeforeOpen: boolean,
  onLine: (line: string) => void,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    let timer: NodeJS.Timeout | undefined
    const arm = (): void => {
      timer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    }
    if (killBeforeOpen) arm()
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      let nl = out.indexOf('\n')
      while (nl >= 0) {
        const line = out.slice(0, nl)
        out = out.slice(nl + 1)
        nl = out.indexOf('\n')
        if (line === 'OPEN') arm()
        else onLine(line)
      }
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString()
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer)
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code}: ${err}`))
      else resolve()
    })
  })
}
