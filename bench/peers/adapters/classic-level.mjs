// classic-level: LevelDB (the copy bundled in the package) through abstract-level. Every
// operation is async and runs on libuv's thread pool.

import { ClassicLevel } from 'classic-level'
import { packageVersion } from './version.mjs'

const SCAN_CHUNK_RECORDS = 1000

export const peer = {
  name: 'classic-level',
  label: `classic-level ${packageVersion('classic-level')}`,
  bulkSetting:
    "keyEncoding/valueEncoding 'view'; db.batch([...1000 puts]) with default {sync:false}, each awaited; " +
    'then one put with {sync:true} (LevelDB syncs only the current .log file: see RESULTS.md)',
  durableSetting: 'db.put(k, v, {sync:true}) (LevelDB fdatasync()s its .log before the write returns)',
  concurrency:
    "64 async loops; each put is a libuv thread-pool job (4 threads by default), LevelDB's writer queue " +
    'merges the writers that meet there into one log write + one sync',
  // getSync() (abstract-level 3) is the peer's fastest single-key read, so the reads figure
  // uses it; the awaited get() is reported beside it.
  isGetSync: true,

  async open(dir) {
    const db = new ClassicLevel(dir, { keyEncoding: 'view', valueEncoding: 'view' })
    await db.open()
    let lastKey
    let lastValue
    return {
      async writeBatch(keys, values) {
        const ops = new Array(keys.length)
        for (let i = 0; i < keys.length; i++) ops[i] = { type: 'put', key: keys[i], value: values[i] }
        await db.batch(ops)
        lastKey = keys[keys.length - 1]
        lastValue = values[values.length - 1]
      },
      async sync() {
        // classic-level has no flush(): a synced write of the last record is the durability point.
        if (lastKey !== undefined) await db.put(lastKey, lastValue, { sync: true })
      },
      async put(key, value) {
        await db.put(key, value, { sync: true })
      },
      get(key) {
        return db.getSync(key)
      },
      getAwaited(key) {
        return db.get(key)
      },
      async scan(visit) {
        // nextv() with highWaterMarkBytes >= size × entry bytes: the README's fast path.
        const it = db.iterator({ highWaterMarkBytes: SCAN_CHUNK_RECORDS * 128 })
        try {
          for (;;) {
            const entries = await it.nextv(SCAN_CHUNK_RECORDS)
            if (entries.length === 0) break
            for (const [key, value] of entries) visit(key, value)
          }
        } finally {
          await it.close()
        }
      },
      async close() {
        await db.close()
      },
    }
  },
}
