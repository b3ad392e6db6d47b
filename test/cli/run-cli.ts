// Runs the real `bobsled` binary (dist/src/cli/main.js) as a child process.

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
export const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url))

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

export function cli(args: string[], input?: string | Buffer): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
    })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input)
  })
}

/** Runs the command and parses stdout as the one JSON document --json promises. */
export async function cliJson(
  args: string[],
  input?: string | Buffer,
): Promise<CliResult & { doc: unknown }> {
  const r = await cli([...args, '--json'], input)
  let doc: unknown
  try {
    doc = JSON.parse(r.stdout)
  } catch {
    throw new Error(`stdout of bobsled ${args.join(' ')} is not one JSON document:\n${r.stdout}\n${r.stderr}`)
  }
  return { ...r, doc }
}
