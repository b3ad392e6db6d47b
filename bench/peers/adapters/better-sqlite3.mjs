// better-sqlite3 used as a key-value store: one WITHOUT ROWID table (k BLOB PRIMARY KEY, v BLOB).
// Its API is synchronous: every call blocks the event loop until SQLite returns.

import * as path from 'node:path'
import Database from 'better-sqlite3'
import { packageVersion } from './version.mjs'

export const peer = {
  name: 'better-sqlite3',
  label: `better-sqlite3 ${packageVersion('better-sqlite3')}`,
  bulkSetting:
    'journal_mode=WAL, synchronous=NORMAL; one transaction of 1000 INSERT OR REPLACE per batch; ' +
    'then PRAGMA wal_checkpoint(TRUNCATE) (syncs WAL and database file)',
  durableSetting:
    'journal_mode=WAL + synchronous=FULL; one autocommit INSERT OR REPLACE per write (WAL fsync per commit)',
  concurrency:
    'API is synchronous: the 64 async loops take turns on the main thread, one autocommit (one fsync) at a ' +
    'time; no group commit, so 64 writers ~ 1 writer',
  isGetSync: true,

  async open(dir, mode) {
    const db = new Database(path.join(dir, 'kv.sqlite'))
    db.pragma('journal_mode = WAL')
    db.pragma(mode === 'durable' ? 'synchronous = FULL' : 'synchronous = NORMAL')
    db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID')
    const upsert = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)')
    const select = db.prepare('SELECT v FROM kv WHERE k = ?').pluck()
    const scanAll = db.prepare('SELECT k, v FROM kv ORDER BY k').raw()
    const writeBatch = db.transaction((keys, values) => {
      for (let i = 0; i < keys.length; i++) upsert.run(keys[i], values[i])
    })
    return {
      async writeBatch(keys, values) {
        writeBatch(keys, values)
      },
      async sync() {
        db.pragma('wal_checkpoint(TRUNCATE)')
      },
      put(key, value) {
        upsert.run(key, value)
      },
      get(key) {
        return select.get(key)
      },
      async scan(visit) {
        for (const [key, value] of scanAll.iterate()) visit(key, value)
      },
      async close() {
        db.close()
      },
    }
  },
}
