import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import * as fs from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'

/** Folders made by tempDir() in this process and not removed yet. */
const made = new Set<string>()
let isExitHooked = false

/**
 * A fresh folder under the OS temp folder; `remove()` deletes it and everything in it.
 * Whatever a test leaves is deleted when its process exits (a full run used to leave
 * ~1,000 folders and gigabytes in /tmp); BOBSLED_KEEP_TMP=1 keeps them for a post-mortem.
 */
export async function tempDir(label: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const p = await fs.mkdtemp(path.join(os.tmpdir(), `bobsled-${label}-`))
  made.add(p)
  if (!isExitHooked && process.env.BOBSLED_KEEP_TMP !== '1') {
    isExitHooked = true
    process.on('exit', () => {
      for (const d of made) rmSync(d, { recursive: true, force: true })
    })
  }
  return {
    path: p,
    remove: async () => {
      made.delete(p)
      await fs.rm(p, { recursive: true, force: true })
    },
  }
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
