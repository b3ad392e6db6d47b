import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'

/** A fresh folder under the OS temp folder; `remove()` deletes it and everything in it. */
export async function tempDir(label: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const p = await fs.mkdtemp(path.join(os.tmpdir(), `bobsled-${label}-`))
  return { path: p, remove: () => fs.rm(p, { recursive: true, force: true }) }
}

/** Copies a folder's files in one synchronous step (a SIGKILL's view of it), LOCK excepted. */
export function copyFolderNow(from: string, to: string): void {
  mkdirSync(to, { recursive: true })
  for (const e of readdirSync(from, { withFileTypes: true })) {
    if (e.name === 'LOCK') continue
    if (e.isDirectory()) copyFolderNow(path.join(from, e.name), path.join(to, e.name))
    else writeFileSync(path.join(to, e.name), readFileSync(path.join(from, e.name)))
  }
}
