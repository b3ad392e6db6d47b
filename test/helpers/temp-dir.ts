import * as fs from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'

/** A fresh folder under the OS temp folder; `remove()` deletes it and everything in it. */
export async function tempDir(label: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const p = await fs.mkdtemp(path.join(os.tmpdir(), `bobsled-${label}-`))
  return { path: p, remove: () => fs.rm(p, { recursive: true, force: true }) }
}
