// Small valid log folders built on the simulated disk, as maps of file name → bytes, for
// tests that damage them (mutated-files). Each shape comes with its model: the records a
// reader must return, read back from the pristine image and checked against what was
// appended (self-checking records, crash/log-records.ts).

import { createHash } from 'node:crypto'
import { SimDisk } from '../../src/io/index.js'
import { Log } from '../../src/log/index.js'
import { encodeRecord } from '../crash/log-records.js'
import { checkRun } from './log-faults.js'

export const IMAGE_SEGMENT_BYTES = 1024

/** The folder's files by name relative to it ('log', 'conf', 'blobs/…'). */
export type Files = Map<string, Uint8Array>

export interface ModelRecord {
  lsn: number
  id: number
  data: Uint8Array
}

export interface DbImage {
  shape: 'clean' | 'truncated' | 'crashed'
  files: Files
  model: ModelRecord[]
  /** A clean close wrote the witness file: every byte of the log is witnessed. */
  isWitnessed: boolean
  /** The log id, from conf (CRC-fixing mutations that keep identity need it). */
  logId: number
}

export function filesOf(disk: SimDisk, root = 'db'): Files {
  const out: Files = new Map()
  const walk = (dir: string, rel: string): void => {
    for (const name of disk.listSync(dir)) {
      const p = `${dir}/${name}`
      const r = rel === '' ? name : `${rel}/${name}`
      let isDir = true
      try {
        disk.listSync(p)
      } catch {
        isDir = false
      }
      if (isDir) walk(p, r)
      else out.set(r, disk.readFileSync(p))
    }
  }
  walk(root, '')
  return out
}

export function hashFiles(files: Files): string {
  const h = createHash('sha256')
  for (const name of [...files.keys()].sort()) {
    h.update(`${name}\0`)
    h.update(files.get(name) as Uint8Array)
    h.update('\0')
  }
  return h.digest('hex')
}

export function plant(files: Files, seed: number): SimDisk {
  const disk = new SimDisk({ seed, latency: false })
  for (const [name, bytes] of files) disk.writeFileRaw(`db/${name}`, bytes)
  return disk
}

export function openOn(disk: SimDisk): Promise<Log> {
  return Log.open('db', { storage: disk.storage('db'), segmentBytes: IMAGE_SEGMENT_BYTES, flushEveryMs: 0 })
}

async function readBack(files: Files, seed: number): Promise<ModelRecord[]> {
  const log = await openOn(plant(files, seed))
  const out: ModelRecord[] = []
  try {
    for await (const r of log.iterFrom(0)) out.push({ lsn: r.lsn, id: r.id, data: r.data.slice() })
  } finally {
    await log.close()
  }
  return out
}

function logIdOf(files: Files): number {
  const conf = files.get('conf') as Uint8Array
  const v = new DataView(conf.buffer, conf.byteOffset, conf.byteLength)
  return v.getUint32(20, true) * 0x1_0000_0000 + v.getUint32(16, true)
}

/**
 * Builds one shape:
 *  - clean: several segments, a batch, two blobs, closed cleanly (witness file written);
 *  - truncated: a longer log cut with truncateBefore (first LSN > 0, slots reused), a batch
 *    and a blob after, closed cleanly;
 *  - crashed: acknowledged and unacknowledged records, then a simulated power loss (no
 *    witness file; the tail beyond the last witness may be torn).
 */
export async function buildImage(shape: DbImage['shape'], seed: number): Promise<DbImage> {
  const disk = new SimDisk({ seed, latency: false })
  const log = await openOn(disk)
  let seq = 0
  const one = (pad: number, id = seq % 5): void => {
    log.append(encodeRecord(seq++, 0, 1, pad), id)
  }
  const batch = (n: number): void => {
    log.appendBatch(
      Array.from({ length: n }, (_, i) => encodeRecord(seq + i, i, n, 30 + i * 7)),
      9,
    )
    seq += n
  }
  const blob = async (): Promise<void> => {
    await log.appendLarge(encodeRecord(seq++, 0, 1, log.maxInlineBytes + 300 + (seq % 7) * 50), 3)
  }
  let files: Files
  if (shape === 'clean') {
    for (let i = 0; i < 12; i++) one(10 + ((i * 53) % 180))
    await log.flush()
    batch(4)
    await blob()
    for (let i = 0; i < 16; i++) one(60 + ((i * 71) % 140))
    await blob()
    one(5)
    await log.close()
    files = filesOf(disk)
  } else if (shape === 'truncated') {
    for (let i = 0; i < 40; i++) one(80 + ((i * 37) % 120))
    await log.flush()
    await log.truncateBefore(log.segmentBases()[3] as number)
    batch(3)
    await blob()
    for (let i = 0; i < 20; i++) one(50 + ((i * 29) % 150))
    await log.close()
    files = filesOf(disk)
  } else {
    for (let i = 0; i < 20; i++) one(40 + ((i * 37) % 150))
    batch(3)
    await log.flush()
    await blob()
    for (let i = 0; i < 8; i++) one(90)
    await log.makeDurable(log.maxReservedLsn)
    files = filesOf(disk.crash({ seed: seed ^ 0x5eed }))
  }
  const model = await readBack(files, seed)
  const c = checkRun(
    model.map((r) => r.data),
    Number.MAX_SAFE_INTEGER,
  )
  if ('violation' in c) throw new Error(`${shape} image seed=${seed}: ${c.violation}`)
  if (shape !== 'crashed' && c.last !== seq - 1) throw new Error(`${shape} image lost records`)
  return { shape, files, model, isWitnessed: shape !== 'crashed', logId: logIdOf(files) }
}
