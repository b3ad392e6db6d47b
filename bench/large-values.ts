// Large values (`npm run bench:large`): what a durable insert and a get of a 1, 8 and 64 MiB
// value cost through the Db (a blob leaf: docs/DESIGN.md, "Tree: large values"), each as a
// ratio to raw Node file I/O of the same bytes measured in the same run:
//   raw write — the value written to a new file, datasync, folder sync (what a blob costs
//               at least: the Db adds its pointer's batch and that batch's datasync);
//   raw read  — the file read whole with one readFile (page cache warm on both sides; the
//               Db reads its blob after a reopen, so the page comes from the blob file).
// Also: bytes on disk over value bytes after the insert, and the blob files written while
// 1,000 small keys go in around the value (0 = the value is never copied by its neighbours).
// Rounds alternate bobsled and baseline; each side keeps its best round. MiB = 2^20 bytes.
// Flags: --rounds=N (default 3), --max=MiB (largest size, default 64).

import { randomFillSync } from 'node:crypto'
import * as fs from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as os from 'node:os'
import * as path from 'node:path'
import { open } from '../src/index.js'

const MiB = 1024 * 1024
const arg = (name: string, d: number): number => {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`))
  return a === undefined ? d : Number(a.slice(name.length + 3))
}
const rounds = arg('rounds', 3)
const maxMiB = arg('max', 64)

async function rawWrite(dir: string, value: Uint8Array): Promise<number> {
  const t0 = performance.now()
  const f = await fsp.open(path.join(dir, 'raw'), 'wx', 0o600)
  await f.write(value, 0, value.length, 0)
  await f.datasync()
  await f.close()
  const d = await fsp.open(dir, 'r')
  await d.sync()
  await d.close()
  return performance.now() - t0
}

async function rawRead(dir: string): Promise<number> {
  const t0 = performance.now()
  await fsp.readFile(path.join(dir, 'raw'))
  return performance.now() - t0
}

interface DbRound {
  insertMs: number
  getMs: number
  diskOverValue: number
  neighbourBlobWrites: number
}

async function dbRound(dir: string, value: Uint8Array): Promise<DbRound> {
  let db = await open(dir)
  const t0 = performance.now()
  await db.insert('big', value, { durable: true })
  const insertMs = performance.now() - t0
  const diskOverValue = (await db.sizeOnDisk()) / value.length
  await db.close()
  db = await open(dir)
  const t1 = performance.now()
  const got = await db.get('big')
  const getMs = performance.now() - t1
  if (got?.length !== value.length) throw new Error('the value did not read back')
  // Neighbours: a copy of the value would be a new blob file (an old one goes only when
  // cleaning drops its pointer's segment).
  const blobsBefore = blobFiles(dir)
  for (let i = 0; i < 1000; i++) await db.insert(`${i % 2 === 0 ? 'a' : 'c'}${i}`, `small ${i}`)
  await db.flush()
  const neighbourBlobWrites = blobFiles(dir) - blobsBefore
  await db.close()
  return { insertMs, getMs, diskOverValue, neighbourBlobWrites }
}

function blobFiles(dir: string): number {
  try {
    return fs.readdirSync(path.join(dir, 'blobs')).length
  } catch {
    return 0
  }
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bobsled-bench-large-'))
try {
  console.log(
    `large-values load_average=${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join('/')} rounds=${rounds}`,
  )
  for (const mib of [1, 8, 64].filter((m) => m <= maxMiB)) {
    const value = randomFillSync(new Uint8Array(mib * MiB))
    let best: DbRound | undefined
    let rawW = Number.POSITIVE_INFINITY
    let rawR = Number.POSITIVE_INFINITY
    for (let r = 0; r < rounds; r++) {
      const rawDir = fs.mkdtempSync(path.join(root, 'raw-'))
      const dbDir = path.join(root, `db-${mib}-${r}`)
      const rawFirst = r % 2 === 0
      if (rawFirst) rawW = Math.min(rawW, await rawWrite(rawDir, value))
      const d = await dbRound(dbDir, value)
      if (!rawFirst) rawW = Math.min(rawW, await rawWrite(rawDir, value))
      rawR = Math.min(rawR, await rawRead(rawDir))
      best = {
        insertMs: Math.min(best?.insertMs ?? Number.POSITIVE_INFINITY, d.insertMs),
        getMs: Math.min(best?.getMs ?? Number.POSITIVE_INFINITY, d.getMs),
        diskOverValue: d.diskOverValue,
        neighbourBlobWrites: Math.max(best?.neighbourBlobWrites ?? 0, d.neighbourBlobWrites),
      }
      fs.rmSync(rawDir, { recursive: true, force: true })
      fs.rmSync(dbDir, { recursive: true, force: true })
    }
    const b = best as DbRound
    console.log(
      `large-values size=${mib}MiB insert_durable_ms=${b.insertMs.toFixed(1)} raw_write_sync_ms=${rawW.toFixed(1)} ` +
        `insert_over_raw=${(b.insertMs / rawW).toFixed(2)} get_ms=${b.getMs.toFixed(1)} raw_read_ms=${rawR.toFixed(1)} ` +
        `get_over_raw=${(b.getMs / rawR).toFixed(2)} disk_over_value=${b.diskOverValue.toFixed(3)} ` +
        `neighbour_blob_writes=${b.neighbourBlobWrites}`,
    )
  }
} finally {
  fs.rmSync(root, { recursive: true, force: true })
}
