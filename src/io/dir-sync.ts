import { constants as C } from 'node:fs'
import * as fsp from 'node:fs/promises'
import { wrapIoError } from '../errors.js'

const O_DIRECTORY = C.O_DIRECTORY ?? 0
const O_NOFOLLOW = C.O_NOFOLLOW ?? 0

/**
 * fsync of a folder, which is what makes creates, renames and unlinks inside it durable.
 * Windows cannot open a folder for syncing (sled PR #1229), so there it is a no-op and the
 * guarantee is weaker; docs/DESIGN.md says so.
 */
export async function syncDirectory(dirPath: string, label: string, noFollow: boolean): Promise<void> {
  if (process.platform === 'win32') return
  let handle: fsp.FileHandle
  try {
    handle = await fsp.open(dirPath, C.O_RDONLY | O_DIRECTORY | (noFollow ? O_NOFOLLOW : 0))
  } catch (e) {
    throw wrapIoError(e, 'open folder for sync', label)
  }
  try {
    await handle.sync()
  } catch (e) {
    await handle.close().catch(() => {})
    throw wrapIoError(e, 'sync folder', label)
  }
  try {
    await handle.close()
  } catch (e) {
    throw wrapIoError(e, 'close folder', label)
  }
}
