// The exclusive lock on a database folder (reliability-regimen §6.2). Node has no flock
// (nodejs/node#54446), so it is built from two layers:
//  (b) Linux only, taken first: a listening abstract-namespace unix socket named after the
//      folder's dev:ino. The kernel holds it, refuses a second binder with EADDRINUSE and
//      frees it the instant the holder dies, even by SIGKILL. It is per network namespace,
//      so two containers sharing a volume are covered only by (a).
//  (a) Everywhere: a LOCK file created with O_EXCL naming its holder. A holder that died
//      leaves it behind; it is stale when the pid is dead or reused, and is taken over by
//      rename-aside then O_EXCL create. No time thresholds: after kill -9 the next open must
//      succeed on its first try (R11(c)).
// A refused opener changes nothing in the folder: it only binds a socket and reads LOCK.

import { randomBytes } from 'node:crypto'
import { constants as C } from 'node:fs'
import * as fsp from 'node:fs/promises'
import * as net from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { DatabaseLockedError, errnoCode, IoError, wrapIoError } from '../errors.js'
import { syncDirectory } from './dir-sync.js'
import type { StorageLock } from './storage.js'

export const LOCK_FILE_NAME = 'LOCK'
const STALE_PREFIX = 'LOCK.stale-'
// A LOCK file is a few hundred bytes; reading more would let a planted file waste memory.
const LOCK_FILE_MAX_BYTES = 4096
// Without the socket layer a corrupt LOCK may belong to a live opener between its create
// and its write (microseconds apart); re-reading after this pause tells the two apart.
const CORRUPT_RECHECK_MS = 100
const TAKEOVER_ATTEMPTS = 3

const O_NOFOLLOW = C.O_NOFOLLOW ?? 0
const O_NONBLOCK = C.O_NONBLOCK ?? 0

/** What the LOCK file holds. Field names are part of the on-disk format (docs/FORMAT.md). */
export interface LockRecord {
  pid: number
  hostname: string
  /** /proc/sys/kernel/random/boot_id; null where there is none. */
  bootId: string | null
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); null off Linux. */
  startTime: string | null
  token: string
}

type Holder = { kind: 'missing' } | { kind: 'corrupt'; bytes: string } | { kind: 'ok'; record: LockRecord }

let ownFacts: Promise<{ hostname: string; bootId: string | null; startTime: string | null }> | undefined

function machineFacts(): Promise<{ hostname: string; bootId: string | null; startTime: string | null }> {
  ownFacts ??= (async () => ({
    hostname: os.hostname(),
    bootId: await readBootId(),
    startTime: (await readProcStat(process.pid))?.startTime ?? null,
  }))()
  return ownFacts
}

async function readBootId(): Promise<string | null> {
  try {
    const id = (await fsp.readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim()
    return id === '' ? null : id
  } catch {
    return null
  }
}

/** State and start time of a process from /proc, or undefined off Linux or if it is gone. */
async function readProcStat(pid: number): Promise<{ state: string; startTime: string } | undefined> {
  if (process.platform !== 'linux') return undefined
  let text: string
  try {
    text = await fsp.readFile(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // comm (field 2) is in parentheses and may itself contain spaces and ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const state = rest[0]
  const startTime = rest[19]
  if (state === undefined || startTime === undefined) return undefined
  return { state, startTime }
}

/** Is the process alive? A zombie (killed, not yet reaped by its parent) counts as dead. */
async function isAlive(pid: number): Promise<{ alive: boolean; startTime: string | null }> {
  try {
    process.kill(pid, 0)
  } catch (e) {
    // EPERM: it exists but belongs to another user.
    if (errnoCode(e) === 'ESRCH') return { alive: false, startTime: null }
  }
  const stat = await readProcStat(pid)
  if (stat !== undefined && (stat.state === 'Z' || stat.state === 'X'))
    return { alive: false, startTime: null }
  return { alive: true, startTime: stat?.startTime ?? null }
}

function parseRecord(text: string): LockRecord | undefined {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== 'object') return undefined
  const r = v as Record<string, unknown>
  const nullableString = (x: unknown) => x === null || typeof x === 'string'
  if (!Number.isSafeInteger(r.pid) || (r.pid as number) <= 0) return undefined
  if (typeof r.hostname !== 'string' || typeof r.token !== 'string') return undefined
  if (!nullableString(r.bootId) || !nullableString(r.startTime)) return undefined
  return {
    pid: r.pid as number,
    hostname: r.hostname,
    bootId: r.bootId as string | null,
    startTime: r.startTime as string | null,
    token: r.token,
  }
}

async function readHolder(lockPath: string): Promise<Holder> {
  let handle: fsp.FileHandle
  try {
    handle = await fsp.open(lockPath, C.O_RDONLY | O_NOFOLLOW | O_NONBLOCK)
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { kind: 'missing' }
    throw wrapIoError(e, 'read lock file', lockPath)
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new IoError(`lock file ${lockPath} is not a regular file`, { file: lockPath })
    const buf = Buffer.alloc(LOCK_FILE_MAX_BYTES)
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0)
    const text = buf.subarray(0, bytesRead).toString('utf8')
    const record = parseRecord(text)
    return record === undefined ? { kind: 'corrupt', bytes: text } : { kind: 'ok', record }
  } catch (e) {
    throw wrapIoError(e, 'read lock file', lockPath)
  } finally {
    await handle.close().catch(() => {})
  }
}

type Verdict = { stale: true } | { stale: false; reason: string; pid: number | undefined }

async function judge(
  holder: Holder,
  lockPath: string,
  socketHeld: boolean,
): Promise<Verdict | { retry: true }> {
  if (holder.kind === 'missing') return { retry: true }
  if (holder.kind === 'corrupt') {
    // A crash between create and write leaves an empty or partial LOCK. With the socket
    // held nobody else can be mid-create, so it is stale at once.
    if (socketHeld) return { stale: true }
    await new Promise((resolve) => setTimeout(resolve, CORRUPT_RECHECK_MS))
    const again = await readHolder(lockPath)
    if (again.kind === 'corrupt' && again.bytes === holder.bytes) return { stale: true }
    return { retry: true }
  }
  const r = holder.record
  const me = await machineFacts()
  if (r.hostname !== me.hostname) {
    return { stale: false, reason: `held by pid ${r.pid} on host ${r.hostname}`, pid: r.pid }
  }
  // Same host name, other boot: the holder's kernel is gone (a reboot after power loss).
  if (r.bootId !== null && me.bootId !== null && r.bootId !== me.bootId) return { stale: true }
  if (r.pid === process.pid) {
    if (r.startTime === null || me.startTime === null || r.startTime === me.startTime) {
      return { stale: false, reason: 'already open in this process', pid: r.pid }
    }
    return { stale: true }
  }
  const live = await isAlive(r.pid)
  if (!live.alive) return { stale: true }
  if (r.startTime !== null && live.startTime !== null && r.startTime !== live.startTime) {
    return { stale: true }
  }
  return { stale: false, reason: `held by pid ${r.pid}`, pid: r.pid }
}

/**
 * Creates LOCK holding `record` (O_EXCL: the claim) and returns its handle, written but not
 * yet synced (syncLockFile). On a failure the file is gone again.
 */
async function writeNewLockFile(
  lockPath: string,
  record: LockRecord,
  fileMode: number,
): Promise<fsp.FileHandle> {
  let handle: fsp.FileHandle
  try {
    handle = await fsp.open(lockPath, C.O_WRONLY | C.O_CREAT | C.O_EXCL | O_NOFOLLOW, fileMode)
  } catch (e) {
    throw wrapIoError(e, 'create lock file', lockPath)
  }
  const write = async (): Promise<void> => {
    const bytes = Buffer.from(JSON.stringify(record) + '\n', 'utf8')
    let done = 0
    while (done < bytes.length) {
      const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, done)
      if (bytesWritten === 0) throw new IoError(`write of lock file ${lockPath} made no progress`)
      done += bytesWritten
    }
  }
  try {
    // Independent steps on one file: a round trip each at every open, so side by side.
    const [mode, content] = await Promise.allSettled([handle.chmod(fileMode), write()])
    if (mode.status === 'rejected') throw mode.reason
    if (content.status === 'rejected') throw content.reason
    return handle
  } catch (e) {
    await handle.close().catch(() => {})
    await fsp.unlink(lockPath).catch(() => {})
    throw wrapIoError(e, 'write lock file', lockPath)
  }
}

/**
 * Makes a claimed LOCK durable: datasync, close, sync the folder (its new entry, and the
 * stale leftovers removed). Nothing in the lock protocol waits for this (a LOCK lost or torn
 * by a power cut names a holder of another boot, or fails to parse: both are stale), so the
 * opener runs it beside its first reads (`ready`). A failed datasync or close removes the
 * file; after a failed folder sync it is left for release().
 */
async function syncLockFile(dir: string, lockPath: string, handle: fsp.FileHandle): Promise<void> {
  try {
    await handle.datasync()
    await handle.close()
  } catch (e) {
    await handle.close().catch(() => {})
    await fsp.unlink(lockPath).catch(() => {})
    throw wrapIoError(e, 'write lock file', lockPath)
  }
  await syncDirectory(dir, dir, false)
}

function lockedError(dir: string, reason: string, pid: number | undefined): DatabaseLockedError {
  return new DatabaseLockedError(`database folder ${dir} is locked: ${reason}`, { path: dir, holderPid: pid })
}

async function takeSocket(dir: string): Promise<net.Server | undefined> {
  let st: { dev: bigint; ino: bigint }
  try {
    st = await fsp.stat(dir, { bigint: true })
  } catch (e) {
    throw wrapIoError(e, 'stat database folder', dir)
  }
  const server = net.createServer((socket) => socket.destroy())
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ path: `\0bobsled:${st.dev}:${st.ino}`, exclusive: true }, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (e) {
    if (errnoCode(e) === 'EADDRINUSE') {
      const holder = await readHolder(path.join(dir, LOCK_FILE_NAME)).catch(() => undefined)
      const pid = holder?.kind === 'ok' ? holder.record.pid : undefined
      const me = await machineFacts()
      const mine = holder?.kind === 'ok' && pid === process.pid && holder.record.hostname === me.hostname
      throw lockedError(dir, mine ? 'already open in this process' : `held by pid ${pid ?? 'unknown'}`, pid)
    }
    // Sandboxes may forbid unix sockets; the LOCK file still protects, only the last race
    // between two openers of a stale lock is left open.
    return undefined
  }
  server.on('error', () => {})
  server.unref()
  return server
}

function closeServer(server: net.Server | undefined): Promise<void> {
  if (server === undefined) return Promise.resolve()
  return new Promise((resolve) => server.close(() => resolve()))
}

class FolderLock implements StorageLock {
  private released = false
  constructor(
    private readonly dir: string,
    private readonly token: string,
    private readonly server: net.Server | undefined,
    readonly ready: Promise<void>,
  ) {
    // A failure is the opener's to report (it awaits ready); release() only waits it out.
    ready.catch(() => {})
  }

  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    // The claim's own syncs end first: nothing of this lock is in flight once this resolves.
    await this.ready.catch(() => {})
    // LOCK goes before the socket: a newcomer then never finds the socket free while a LOCK
    // naming this live process is still there.
    try {
      const lockPath = path.join(this.dir, LOCK_FILE_NAME)
      const holder = await readHolder(lockPath)
      // Only our own file: anyone else's LOCK here means we were judged stale and replaced.
      if (holder.kind === 'ok' && holder.record.token === this.token) {
        try {
          await fsp.unlink(lockPath)
        } catch (e) {
          throw wrapIoError(e, 'remove lock file', lockPath)
        }
        await syncDirectory(this.dir, this.dir, false)
      }
    } finally {
      await closeServer(this.server)
    }
  }
}

/** Takes the lock on `dir` (a real path) or rejects with DatabaseLockedError. */
export async function lockFolder(dir: string, fileMode: number): Promise<StorageLock> {
  const server = process.platform === 'linux' ? await takeSocket(dir) : undefined
  try {
    const me = await machineFacts()
    const record: LockRecord = {
      pid: process.pid,
      hostname: me.hostname,
      bootId: me.bootId,
      startTime: me.startTime,
      token: randomBytes(16).toString('hex'),
    }
    const handle = await claimLockFile(dir, record, fileMode, server !== undefined)
    const lockPath = path.join(dir, LOCK_FILE_NAME)
    // The opener releases the lock when `ready` rejects (release() removes a LOCK still there).
    return new FolderLock(dir, record.token, server, syncLockFile(dir, lockPath, handle))
  } catch (e) {
    await closeServer(server)
    throw e
  }
}

/** Creates LOCK (taking over a stale one) and returns its handle, written, not yet synced. */
async function claimLockFile(
  dir: string,
  record: LockRecord,
  fileMode: number,
  socketHeld: boolean,
): Promise<fsp.FileHandle> {
  const lockPath = path.join(dir, LOCK_FILE_NAME)
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS; attempt++) {
    let handle: fsp.FileHandle
    try {
      handle = await writeNewLockFile(lockPath, record, fileMode)
    } catch (e) {
      if (!(e instanceof IoError && e.syscallCode === 'EEXIST')) throw e
      const holder = await readHolder(lockPath)
      const verdict = await judge(holder, lockPath, socketHeld)
      if ('retry' in verdict) continue
      if (!verdict.stale) throw lockedError(dir, verdict.reason, verdict.pid)
      // Rename-aside is the atomic claim: of two openers judging the same stale LOCK, only
      // one rename finds it; the other gets ENOENT and starts over.
      const aside = path.join(dir, STALE_PREFIX + record.token + '-' + attempt)
      try {
        await fsp.rename(lockPath, aside)
      } catch (e2) {
        if (errnoCode(e2) === 'ENOENT') continue
        throw wrapIoError(e2, 'move stale lock file aside', lockPath)
      }
      const moved = await readHolder(aside)
      const sameFile =
        holder.kind === 'ok'
          ? moved.kind === 'ok' && moved.record.token === holder.record.token
          : holder.kind === 'corrupt' && moved.kind === 'corrupt' && moved.bytes === holder.bytes
      if (!sameFile) {
        // Between our read and our rename another opener replaced the stale LOCK with its
        // own live one (possible only without the socket). Put it back and step aside.
        await fsp.rename(aside, lockPath).catch(() => {})
        const pid = moved.kind === 'ok' ? moved.record.pid : undefined
        throw lockedError(dir, `held by pid ${pid ?? 'unknown'}`, pid)
      }
      continue
    }
    try {
      await removeStaleLeftovers(dir)
    } catch (e) {
      await handle.close().catch(() => {})
      await fsp.unlink(lockPath).catch(() => {})
      throw e
    }
    return handle
  }
  throw lockedError(dir, `could not claim ${LOCK_FILE_NAME} after ${TAKEOVER_ATTEMPTS} attempts`, undefined)
}

/** Stale LOCK files moved aside, ours or left by an opener that crashed mid-takeover. */
async function removeStaleLeftovers(dir: string): Promise<void> {
  let names: string[]
  try {
    names = await fsp.readdir(dir)
  } catch (e) {
    throw wrapIoError(e, 'list database folder', dir)
  }
  for (const name of names) {
    if (!name.startsWith(STALE_PREFIX)) continue
    try {
      await fsp.unlink(path.join(dir, name))
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw wrapIoError(e, 'remove stale lock file', name)
    }
  }
}
