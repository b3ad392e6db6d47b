// The point commands: get, put, del, and scan over a range of one tree.

import { readFile, stat } from 'node:fs/promises'
import {
  InvalidArgumentError,
  LimitError,
  MAX_KEY_BYTES,
  MAX_TREE_NAME_BYTES,
  MAX_VALUE_BYTES_CAP,
  type RangeOptions,
  wrapIoError,
} from '../index.js'
import {
  type ArgEncoding,
  argBytes,
  type CommonOptions,
  EXIT_NOT_FOUND,
  emit,
  openExisting,
  openOrCreate,
  pickTree,
  showBytes,
} from './common.js'

export interface KvOptions extends CommonOptions {
  tree: string | undefined
  encoding: ArgEncoding
}

export async function runGet(key: string, o: KvOptions & { raw: boolean }): Promise<void> {
  const db = await openExisting(o.dir)
  try {
    const t = await pickTree(db, o.tree, false)
    const v = await t.get(argBytes(key, o.encoding, 'key'))
    if (v === undefined) {
      emit(o, { tree: t.name, key, found: false }, () => '')
      process.stderr.write(`bobsled: key ${JSON.stringify(key)} not found\n`)
      process.exitCode = EXIT_NOT_FOUND
      return
    }
    if (o.raw && !o.json) process.stdout.write(v)
    else emit(o, { tree: t.name, key, found: true, value: showBytes(v), bytes: v.length }, () => showBytes(v))
  } finally {
    await db.close()
  }
}

export async function runPut(
  key: string,
  value: string | undefined,
  o: KvOptions & { valueFile: string | undefined },
): Promise<void> {
  if ((value === undefined) === (o.valueFile === undefined))
    throw new InvalidArgumentError('put takes a value argument or --value-file, one of them')
  // Every argument is decoded and held to the published limits before the folder is opened:
  // put creates the database, and a refused put must not leave a new one behind. The
  // database checks again (its key limit is lower on small segments; such a folder exists).
  const k = argBytes(key, o.encoding, 'key')
  if (k.length > MAX_KEY_BYTES) throw new LimitError('key bytes', MAX_KEY_BYTES, k.length)
  const v =
    o.valueFile === undefined
      ? argBytes(value as string, o.encoding, 'value')
      : await readValueFile(o.valueFile, MAX_VALUE_BYTES_CAP)
  if (v.length > MAX_VALUE_BYTES_CAP) throw new LimitError('value bytes', MAX_VALUE_BYTES_CAP, v.length)
  const nameBytes = Buffer.byteLength(o.tree ?? '')
  if (nameBytes > MAX_TREE_NAME_BYTES) throw new LimitError('tree name bytes', MAX_TREE_NAME_BYTES, nameBytes)
  const db = await openOrCreate(o.dir)
  try {
    const t = await pickTree(db, o.tree, true)
    const old = await t.insert(k, v, { durable: true })
    emit(o, { tree: t.name, key, replaced: old !== undefined }, () =>
      old === undefined ? 'inserted' : `replaced ${showBytes(old)}`,
    )
  } finally {
    await db.close()
  }
}

/**
 * The bytes of a file, or of stdin for '-', refused with LimitError once they pass `max`
 * (a file by its size, before reading it; stdin as soon as it has sent more).
 */
async function readValueFile(file: string, max: number): Promise<Uint8Array> {
  if (file !== '-') {
    let size: number
    try {
      size = (await stat(file)).size
    } catch (e) {
      throw wrapIoError(e, 'reading the value file', file)
    }
    if (size > max) throw new LimitError('value bytes', max, size)
    try {
      return new Uint8Array(await readFile(file))
    } catch (e) {
      throw wrapIoError(e, 'reading the value file', file)
    }
  }
  const chunks: Buffer[] = []
  let total = 0
  for await (const c of process.stdin as AsyncIterable<Buffer>) {
    total += c.length
    if (total > max) throw new LimitError('value bytes', max, total)
    chunks.push(c)
  }
  return new Uint8Array(Buffer.concat(chunks, total))
}

export async function runDel(key: string, o: KvOptions): Promise<void> {
  const db = await openExisting(o.dir)
  try {
    const t = await pickTree(db, o.tree, false)
    const old = await t.remove(argBytes(key, o.encoding, 'key'), { durable: true })
    emit(o, { tree: t.name, key, removed: old !== undefined }, () =>
      old === undefined ? 'not found (nothing removed)' : `removed ${showBytes(old)}`,
    )
  } finally {
    await db.close()
  }
}

export interface ScanOptions extends KvOptions {
  prefix: string | undefined
  gte: string | undefined
  lt: string | undefined
  reverse: boolean
  limit: number | undefined
}

export async function runScan(o: ScanOptions): Promise<void> {
  const db = await openExisting(o.dir)
  try {
    const t = await pickTree(db, o.tree, false)
    const enc = (s: string, what: string) => argBytes(s, o.encoding, what)
    const entries: Array<{ key: string; value: string }> = []
    // A prefix is the range [prefix, prefixEnd); with --gte/--lt the range is the intersection.
    let lower = o.gte === undefined ? undefined : enc(o.gte, '--gte')
    let upper = o.lt === undefined ? undefined : enc(o.lt, '--lt')
    if (o.prefix !== undefined) {
      const p = enc(o.prefix, '--prefix')
      const end = prefixEnd(p)
      lower = lower === undefined || Buffer.compare(p, lower) > 0 ? p : lower
      if (end !== undefined) upper = upper === undefined || Buffer.compare(end, upper) < 0 ? end : upper
    }
    const r: RangeOptions = { reverse: o.reverse }
    if (lower !== undefined) r.gte = lower
    if (upper !== undefined) r.lt = upper
    if (o.limit !== undefined) r.limit = o.limit
    // An empty interval (lower ≥ upper) has nothing in it.
    const isEmpty = lower !== undefined && upper !== undefined && Buffer.compare(lower, upper) >= 0
    const it: AsyncIterable<[Uint8Array, Uint8Array]> = isEmpty ? emptyRange() : t.range(r)
    for await (const [k, v] of it) {
      const e = { key: showBytes(k), value: showBytes(v) }
      if (o.json) entries.push(e)
      else process.stdout.write(`${e.key}\t${e.value}\n`)
    }
    if (o.json) emit(o, { tree: t.name, count: entries.length, entries }, () => '')
  } finally {
    await db.close()
  }
}

/** The least key above every key that starts with p; undefined when there is none (all 0xff). */
function prefixEnd(p: Uint8Array): Uint8Array | undefined {
  for (let i = p.length - 1; i >= 0; i--) {
    if (p[i] !== 0xff) {
      const end = p.slice(0, i + 1)
      end[i] = (end[i] as number) + 1
      return end
    }
  }
  return undefined
}

async function* emptyRange(): AsyncGenerator<[Uint8Array, Uint8Array]> {}
