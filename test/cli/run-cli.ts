// Runs the real `bobsled` binary (dist/src/cli/main.js) as a child process.

import { fileURLToPath } from 'node:url'
import { type NodeRun, runNode } from '../helpers/run-node.js'

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))
export const INDEX = fileURLToPath(new URL('../../src/index.js', import.meta.url))

export type CliResult = NodeRun

export function cli(args: string[], input?: string | Buffer): Promise<CliResult> {
  return runNode([MAIN, ...args], input)
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
