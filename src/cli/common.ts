// What every command shares: opening a database folder, naming trees, showing bytes,
// printing one result (text or one JSON document), progress bars, and exit codes.

import { readdirSync, statSync } from 'node:fs'
import { SingleBar } from 'cli-progress'
import {
  type Db,
  InvalidArgumentError,
  NotADatabaseError,
  type OpenOptions,
  open,
  type Tree,
  wrapIoError,
} from '../index.js'

/**
 * Exit codes of every command (README "CLI"). 1 is kept for damage so a script can tell
 * "the data is bad" from "the command could not run".
 */
export const EXIT_OK = 0
export const EXIT_DAMAGE = 1
export const EXIT_ERROR = 2
/** `get` of a key that is not there. */
export const EXIT_NOT_FOUND = 3

export interface CommonOptions {
  dir: string
  json: boolean
}

/** Opens the database in dir, creating it when it does not exist (put, import). */
export function openOrCreate(dir: string, options?: OpenOptions): Promise<Db> {
  return open(dir, options)
}

/**
 * Opens an existing database; a missing or empty folder is a NotADatabaseError instead of
 * a fresh database, so a typo in --dir never creates one behind the user's back.
 */
export async function openExisting(dir: string, options?: OpenOptions): Promise<Db> {
  checkExists(dir)
  return open(dir, options)
}

/** Throws NotADatabaseError when dir is missing, not a folder, or empty. */
export function checkExists(dir: string): void {
  let entries: string[]
  try {
    if (!statSync(dir).isDirectory()) throw new NotADatabaseError(`${dir} is not a folder`, { file: dir })
    entries = readdirSync(dir)
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'ENOENT')
      throw new NotADatabaseError(`no database at ${dir} (the folder does not exist)`, { file: dir })
    // A file where the path needs a folder (`--dir some.txt/db`): not a database either.
    if (code === 'ENOTDIR')
      throw new NotADatabaseError(`no database at ${dir} (a part of the path is a file)`, { file: dir })
    // Anything else the OS says (EACCES, ELOOP, EIO) is a typed error, not a stack trace.
    throw wrapIoError(e, 'inspecting the database folder', dir)
  }
  if (entries.length === 0)
    throw new NotADatabaseError(`no database at ${dir} (the folder is empty)`, { file: dir })
}

/** The default tree and every named tree, in the order dump and export list them. */
export async function allTrees(db: Db): Promise<Tree[]> {
  const trees: Tree[] = [db]
  for (const name of await db.treeNames()) trees.push(await db.openTree(name))
  return trees
}

/**
 * The tree --tree names ('' or absent: the default tree). Reading commands never create a
 * tree: a name that does not exist is an error.
 */
export async function pickTree(db: Db, name: string | undefined, create: boolean): Promise<Tree> {
  if (name === undefined || name === '') return db
  if (!create && !(await db.treeNames()).includes(name))
    throw new InvalidArgumentError(
      `no tree named ${JSON.stringify(name)} (see \`bobsled stats\` for the trees)`,
    )
  return db.openTree(name)
}

/** The trees --tree selects for whole-database commands (all of them when absent). */
export async function pickTrees(db: Db, name: string | undefined): Promise<Tree[]> {
  return name === undefined ? allTrees(db) : [await pickTree(db, name, false)]
}

export type ArgEncoding = 'utf8' | 'hex' | 'base64'

export function parseEncoding(v: string): ArgEncoding {
  if (v !== 'utf8' && v !== 'hex' && v !== 'base64')
    throw new InvalidArgumentError(`--encoding must be utf8, hex or base64, got ${JSON.stringify(v)}`)
  return v
}

/** A key or value given on the command line, in the chosen encoding. */
export function argBytes(s: string, encoding: ArgEncoding, what: string): Uint8Array {
  if (encoding === 'utf8') return new TextEncoder().encode(s)
  if (encoding === 'hex') {
    const h = s.startsWith('0x') ? s.slice(2) : s
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(h)) throw new InvalidArgumentError(`${what} is not valid hex: ${s}`)
    return new Uint8Array(Buffer.from(h, 'hex'))
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) throw new InvalidArgumentError(`${what} is not valid base64: ${s}`)
  return new Uint8Array(Buffer.from(s, 'base64'))
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Bytes as a person reads them: the UTF-8 text when it is printable, else `0x` and hex.
 * Printable text never starts with "0x", so the two forms cannot be confused.
 */
export function showBytes(b: Uint8Array): string {
  let text: string | undefined
  try {
    text = strictUtf8.decode(b)
  } catch {
    text = undefined
  }
  if (text !== undefined && !text.startsWith('0x') && !hasControlChars(text)) return text
  return `0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`
}

/** Control characters (C0, DEL, C1) would garble a terminal or a line-based tool. */
function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true
  }
  return false
}

/** Writes the result: one JSON document, or the text lines. */
export function emit(o: { json: boolean }, doc: unknown, text: () => string): void {
  if (o.json) process.stdout.write(`${JSON.stringify(doc)}\n`)
  else {
    const t = text()
    if (t.length > 0) process.stdout.write(t.endsWith('\n') ? t : `${t}\n`)
  }
}

export interface Progress {
  update(done: number): void
  stop(): void
}

/** A progress bar on stderr, only on a terminal and never with --json. */
export function progress(o: { json: boolean; progress?: boolean }, label: string, total: number): Progress {
  if (o.json || o.progress === false || process.stderr.isTTY !== true) return { update() {}, stop() {} }
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% {value}/{total}`,
    stream: process.stderr,
  })
  bar.start(total, 0)
  return { update: (done) => bar.update(done), stop: () => bar.stop() }
}

export const fmt = (n: number): string => Math.round(n).toLocaleString('en')

/** Operations per second, rounded. */
export const perSec = (count: number, ms: number): number => Math.round(count / (Math.max(ms, 0.001) / 1000))

/** Bytes for a person: B, KiB, MiB or GiB. */
export function mib(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`
}

/** For commands that make a database of their own (bench): dir must not hold anything yet. */
export function checkEmptyOrMissing(dir: string): void {
  let entries: string[]
  try {
    entries = readdirSync(dir)
  } catch (e) {
    const code = (e as { code?: string }).code
    if (code === 'ENOENT') return
    if (code === 'ENOTDIR')
      throw new InvalidArgumentError(`${dir} is not a folder (a part of the path is a file)`)
    throw wrapIoError(e, 'inspecting the benchmark folder', dir)
  }
  if (entries.length > 0)
    throw new InvalidArgumentError(`${dir} is not empty: give a new folder (the benchmark writes over it)`)
}
