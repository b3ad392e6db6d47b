// `bobsled export` and `bobsled import`: a streamed, versioned, self-checking text format.
//
// The export format, version 1 (NDJSON, one JSON document per line, UTF-8):
//
//   {"format":"bobsled-export","version":1,"created":"<ISO time>","trees":["","users"],"allTrees":true}
//   {"t":"","k":"<base64 key>","v":"<base64 value>"}        one line per entry
//   {"end":true,"records":<count>,"checksum":<uint32>}
//
// Records come grouped by tree in the header's order ("" is the default tree), keys strictly
// ascending within a tree. The checksum is the CRC-32 (IEEE) db.checksum() computes over the
// same trees: for each tree in order its name, then each key and value, every piece framed by
// its length as 4 bytes big-endian. A file without the trailer is truncated and refused; a
// wrong count or checksum is damage. Import checks the whole file before it writes anything.

import { once } from 'node:events'
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs'
import { open as openFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { pipeline } from 'node:stream/promises'
import { crc32 } from 'node:zlib'
import {
  CorruptionError,
  type Db,
  InvalidArgumentError,
  isBobsledError,
  type Tree,
  VersionError,
  wrapIoError,
} from '../index.js'
import {
  type CommonOptions,
  emit,
  fmt,
  openExisting,
  openOrCreate,
  perSec,
  pickTrees,
  progress,
} from './common.js'

export const EXPORT_FORMAT = 'bobsled-export'
export const EXPORT_VERSION = 1
/** Entries per applyBatch during import (well under MAX_BATCH_OPS). */
const IMPORT_BATCH_OPS_MAX = 1000
/** Key and value bytes per applyBatch during import. */
const IMPORT_BATCH_BYTES_MAX = 4 * 1024 * 1024

const utf8 = new TextEncoder()

/** The running db.checksum()-compatible CRC (see the format note above). */
class ExportChecksum {
  crc = 0
  readonly #frame = Buffer.alloc(4)
  feed(b: Uint8Array): void {
    this.#frame.writeUInt32BE(b.length, 0)
    this.crc = crc32(this.#frame, this.crc)
    // Node 20's zlib.crc32 returns 0 for some empty inputs (an empty TextEncoder result)
    // instead of the running value; nothing to add is nothing to add.
    if (b.length > 0) this.crc = crc32(b, this.crc)
  }
}

interface Header {
  format: string
  version: number
  trees: string[]
  allTrees: boolean
}

// ---- export ----

export async function runExport(
  o: CommonOptions & { tree: string | undefined; out: string; progress: boolean },
): Promise<void> {
  const db = await openExisting(o.dir)
  const toStdout = o.out === '-'
  let out: NodeJS.WritableStream & { writableFinished: boolean; destroy(): void }
  try {
    out = toStdout ? process.stdout : (await openFile(o.out, 'w', 0o600)).createWriteStream()
  } catch (e) {
    await db.close()
    throw wrapIoError(e, 'creating the export file', o.out)
  }
  // A write error (disk full, a closed pipe) rejects the next write instead of crashing.
  let writeError: unknown
  out.on('error', (e) => {
    writeError = e
  })
  const t0 = performance.now()
  try {
    const trees = await pickTrees(db, o.tree)
    // The bar needs a total: counting costs one extra scan, so only when a bar is shown.
    const showBar = !toStdout && !o.json && o.progress && process.stderr.isTTY === true
    let total = 0
    if (showBar) for (const t of trees) for await (const _ of t.range().keys()) total++
    const bar = progress({ json: !showBar }, 'exporting', total)
    const write = async (line: string): Promise<void> => {
      if (writeError !== undefined) throw wrapIoError(writeError, 'writing the export', o.out)
      if (!out.write(line)) await once(out as NodeJS.EventEmitter, 'drain')
    }
    const header = {
      format: EXPORT_FORMAT,
      version: EXPORT_VERSION,
      created: new Date().toISOString(),
      trees: trees.map((t) => t.name),
      allTrees: o.tree === undefined,
    }
    await write(`${JSON.stringify(header)}\n`)
    const sum = new ExportChecksum()
    let records = 0
    for (const t of trees) {
      sum.feed(utf8.encode(t.name))
      const tn = JSON.stringify(t.name)
      for await (const [k, v] of t.range()) {
        sum.feed(k)
        sum.feed(v)
        await write(`{"t":${tn},"k":"${b64(k)}","v":"${b64(v)}"}\n`)
        if (++records % 4096 === 0) bar.update(records)
      }
    }
    await write(`${JSON.stringify({ end: true, records, checksum: sum.crc >>> 0 })}\n`)
    bar.update(records)
    bar.stop()
    if (!toStdout) {
      out.end()
      await once(out as NodeJS.EventEmitter, 'finish')
    }
    const ms = performance.now() - t0
    const doc = {
      dir: o.dir,
      out: o.out,
      trees: header.trees,
      records,
      checksum: sum.crc >>> 0,
      ms: Math.round(ms),
    }
    // On stdout the export itself is the output: the summary goes to stderr.
    if (toStdout) {
      if (!o.json) process.stderr.write(`exported ${fmt(records)} records\n`)
    } else
      emit(
        o,
        doc,
        () =>
          `exported ${fmt(records)} records from ${header.trees.length} tree(s) to ${o.out} in ${doc.ms} ms`,
      )
  } finally {
    if (!toStdout && !out.writableFinished) out.destroy()
    await db.close()
  }
}

function b64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64')
}

// ---- import ----

interface Checked {
  header: Header
  records: number
  checksum: number
}

function damaged(file: string, line: number, why: string): CorruptionError {
  return new CorruptionError(`${file} line ${line}: ${why}`, { file })
}

function parseLine(file: string, n: number, line: string): Record<string, unknown> {
  try {
    const x = JSON.parse(line) as unknown
    if (x !== null && typeof x === 'object' && !Array.isArray(x)) return x as Record<string, unknown>
  } catch {
    // Reported below with the line number.
  }
  throw damaged(file, n, 'not a JSON object (a damaged or truncated export)')
}

function checkHeader(file: string, h: Record<string, unknown>): Header {
  if (h.format !== EXPORT_FORMAT)
    throw new InvalidArgumentError(`${file} is not a bobsled export (no "format":"${EXPORT_FORMAT}" header)`)
  if (h.version !== EXPORT_VERSION)
    throw new VersionError(
      `${file} is export version ${String(h.version)}; this build reads version ${EXPORT_VERSION}`,
    )
  const trees = h.trees
  if (
    !Array.isArray(trees) ||
    !trees.every((t) => typeof t === 'string') ||
    new Set(trees).size !== trees.length
  )
    throw damaged(file, 1, 'the header\'s "trees" must be a list of distinct names')
  return { format: EXPORT_FORMAT, version: EXPORT_VERSION, trees, allTrees: h.allTrees === true }
}

function decode64(file: string, n: number, x: unknown, what: string): Uint8Array {
  if (typeof x !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(x) || x.length % 4 !== 0)
    throw damaged(file, n, `${what} is not base64`)
  return new Uint8Array(Buffer.from(x, 'base64'))
}

interface ExportRecord {
  tree: number
  key: Uint8Array
  value: Uint8Array
}

/**
 * Reads the export at path from end to end, checking every rule of the format, and calls
 * onRecord (awaited: the file is read only as fast as onRecord goes) for each record.
 */
async function readExport(
  path: string,
  onHeader: (h: Header) => Promise<void>,
  onRecord: (r: ExportRecord) => Promise<void>,
): Promise<Checked> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY })
  let n = 0
  let header: Header | undefined
  let trailer: Record<string, unknown> | undefined
  let records = 0
  let tree = -1
  let prevKey: Uint8Array | undefined
  const sum = new ExportChecksum()
  const enterTree = (to: number): void => {
    // Trees with no records still count in the checksum, in header order.
    while (tree < to) {
      tree++
      sum.feed(utf8.encode((header as Header).trees[tree] as string))
      prevKey = undefined
    }
  }
  for await (const line of lines) {
    n++
    if (line.length === 0) continue
    if (trailer !== undefined) throw damaged(path, n, 'data after the trailer')
    const x = parseLine(path, n, line)
    if (header === undefined) {
      header = checkHeader(path, x)
      await onHeader(header)
      continue
    }
    if (x.end === true) {
      trailer = x
      continue
    }
    const t = header.trees.indexOf(x.t as string)
    if (typeof x.t !== 'string' || t < 0)
      throw damaged(path, n, `tree ${JSON.stringify(x.t)} is not in the header`)
    if (t < tree) throw damaged(path, n, `tree ${JSON.stringify(x.t)} again after a later tree`)
    enterTree(t)
    const key = decode64(path, n, x.k, 'k')
    const value = decode64(path, n, x.v, 'v')
    if (prevKey !== undefined && Buffer.compare(prevKey, key) >= 0)
      throw damaged(path, n, 'keys are not in strictly ascending order')
    prevKey = key
    sum.feed(key)
    sum.feed(value)
    records++
    await onRecord({ tree: t, key, value })
  }
  if (header === undefined) throw new InvalidArgumentError(`${path} is empty: not a bobsled export`)
  if (trailer === undefined)
    throw new CorruptionError(
      `${path} is truncated: no trailer after line ${n} (${fmt(records)} records read)`,
      {
        file: path,
      },
    )
  enterTree(header.trees.length - 1)
  if (trailer.records !== records)
    throw damaged(path, n, `the trailer counts ${String(trailer.records)} records, the file holds ${records}`)
  const checksum = sum.crc >>> 0
  if (trailer.checksum !== checksum)
    throw damaged(path, n, `checksum ${String(trailer.checksum)} in the trailer, ${checksum} computed`)
  return { header, records, checksum }
}

/** Copies stdin to a private temporary file, so the whole export is checked before any write. */
async function spoolStdin(): Promise<{ path: string; remove: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'bobsled-import-'))
  const path = join(dir, 'stdin.ndjson')
  await pipeline(process.stdin, createWriteStream(path, { mode: 0o600 }))
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

async function isEmptyDb(db: Db): Promise<boolean> {
  return (await db.isEmpty()) && (await db.treeNames()).length === 0
}

export async function runImport(file: string, o: CommonOptions & { progress: boolean }): Promise<void> {
  const t0 = performance.now()
  const spooled = file === '-' ? await spoolStdin() : undefined
  const path = spooled?.path ?? file
  const shown = file === '-' ? '(stdin)' : file
  try {
    // Pass 1: the whole file, nothing written. A truncated or damaged export stops here.
    const checked = await readExport(
      path,
      async () => {},
      async () => {},
    ).catch((e: unknown) => {
      throw isBobsledError(e) ? e : wrapIoError(e, 'reading the export', shown)
    })
    const db = await openOrCreate(o.dir)
    try {
      const wasEmpty = await isEmptyDb(db)
      const trees: Tree[] = []
      const bar = progress(o, 'importing', checked.records)
      let ops: ExportRecord[] = []
      let opsBytes = 0
      let done = 0
      // Awaiting each batch pauses the file reader: memory stays at one batch (backpressure).
      const applyOps = async (): Promise<void> => {
        if (ops.length === 0) return
        const batch = ops
        await db.applyBatch((b) => {
          for (const r of batch) b.insert(r.key, r.value, trees[r.tree])
        })
        done += batch.length
        bar.update(done)
        ops = []
        opsBytes = 0
      }
      // Pass 2: the same checks again (the file could change in between), and the writes.
      await readExport(
        path,
        async (h) => {
          for (const name of h.trees) trees.push(name === '' ? db : await db.openTree(name))
        },
        async (r) => {
          ops.push(r)
          opsBytes += r.key.length + r.value.length
          if (ops.length >= IMPORT_BATCH_OPS_MAX || opsBytes >= IMPORT_BATCH_BYTES_MAX) await applyOps()
        },
      )
      await applyOps()
      bar.stop()
      await db.flush()
      // End to end: a complete export into an empty database must give the same checksum.
      let verified = false
      if (wasEmpty && checked.header.allTrees) {
        const got = await db.checksum()
        if (got !== checked.checksum)
          throw new CorruptionError(
            `after import the database checksum is ${got}, the export's is ${checked.checksum}`,
            {},
          )
        verified = true
      }
      const ms = performance.now() - t0
      const doc = {
        dir: o.dir,
        file: shown,
        trees: checked.header.trees,
        records: checked.records,
        checksum: checked.checksum,
        checksumVerified: verified,
        ms: Math.round(ms),
        recordsPerSec: perSec(checked.records, ms),
      }
      emit(
        o,
        doc,
        () =>
          `imported ${fmt(checked.records)} records into ${checked.header.trees.length} tree(s) of ${o.dir} in ${doc.ms} ms` +
          (verified
            ? ' (database checksum matches the export)'
            : wasEmpty
              ? ' (an export of some trees: no whole-database checksum to compare)'
              : ' (merged into existing data: no whole-database checksum to compare)'),
      )
    } finally {
      await db.close()
    }
  } finally {
    spooled?.remove()
  }
}
