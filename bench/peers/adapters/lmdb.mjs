// lmdb (lmdb-js): LMDB through its own addon. Reads are synchronous; writes are queued and
// committed in batches on a write thread.

import { open } from 'lmdb'
import { packageVersion } from './version.mjs'

export const peer = {
  name: 'lmdb',
  label: `lmdb ${packageVersion('lmdb')}`,
  bulkSetting:
    "open({keyEncoding:'binary', encoding:'binary', separateFlushed:true}); db.batch() of 1000 puts, " +
    'each awaited (committed); then await db.flushed',
  durableSetting:
    'default sync commits (overlappingSync on, Linux default): `const w = db.put(k, v); await w; await w.flushed` ' +
    '(the put promise alone resolves at commit, before the fsync)',
  concurrency:
    '64 async loops; lmdb-js queues their puts and commits whatever is queued in one write transaction ' +
    '(one writer thread, group commit)',
  isGetSync: true,

  async open(dir) {
    const db = open({ path: dir, keyEncoding: 'binary', encoding: 'binary', separateFlushed: true })
    return {
      async writeBatch(keys, values) {
        await db.batch(() => {
          for (let i = 0; i < keys.length; i++) db.put(keys[i], values[i])
        })
      },
      async sync() {
        await db.flushed
      },
      async put(key, value) {
        const written = db.put(key, value)
        await written
        await written.flushed
      },
      get(key) {
        return db.get(key)
      },
      async scan(visit) {
        for (const { key, value } of db.getRange({})) visit(key, value)
      },
      async close() {
        await db.close()
      },
    }
  },
}
