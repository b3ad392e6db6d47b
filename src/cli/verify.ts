// `bobsled verify`: checks every CRC on the log and the structure of every tree.
//
// Two passes, both through the public API: (1) the log alone, opened with verifyOnOpen so
// recovery checks the CRC of every message, then read end to end, which checks every record
// and blob; (2) the database, which reads every key of every tree, checks that keys come in
// strictly increasing order, then computes db.checksum(). Damage is reported, not repaired.
// A checkpoint the open skipped (bad CRC, foreign) is a note, not damage: it is a redundant
// snapshot, the log it summarises was checked, and the closing checkpoint replaces it.

import { isBobsledError, Log } from '../index.js'
import { type CommonOptions, checkExists, EXIT_DAMAGE, emit, fmt, openExisting, progress } from './common.js'

interface Problem {
  pass: 'log' | 'trees'
  code: string
  message: string
  file?: string
  offset?: number
  lsn?: number
  tree?: string
}

/** Damage is a corruption error; a broken invariant met while reading data is reported too. */
function isDamage(e: unknown): boolean {
  return isBobsledError(e) && (e.code === 'BOBSLED_CORRUPTION' || e.code === 'BOBSLED_INVARIANT')
}

function problemOf(pass: Problem['pass'], e: unknown, tree?: string): Problem {
  const err = e as { code: string; message: string; file?: string; offset?: number; lsn?: number }
  const p: Problem = { pass, code: err.code, message: err.message }
  if (err.file !== undefined) p.file = err.file
  if (err.offset !== undefined) p.offset = err.offset
  if (err.lsn !== undefined) p.lsn = err.lsn
  if (tree !== undefined) p.tree = tree
  return p
}

export async function runVerify(o: CommonOptions & { progress: boolean }): Promise<void> {
  const problems: Problem[] = []
  const t0 = performance.now()
  const log = { checked: false, records: 0, blobs: 0, bytes: 0 }
  // Log.open would create a missing log: verify must never make a database.
  checkExists(o.dir)
  try {
    // deferAccept: this pass only reads; what recovery would repair is left as found
    // (close() of an open never accepted writes nothing).
    const l = await Log.open(o.dir, { verifyOnOpen: true, flushEveryMs: 0, deferAccept: true })
    try {
      for await (const r of l.iterFrom(0)) {
        log.records++
        log.bytes += r.data.length
        if (r.isBlob) log.blobs++
      }
    } finally {
      await l.close()
    }
    log.checked = true
  } catch (e) {
    if (!isDamage(e)) throw e
    problems.push(problemOf('log', e))
  }

  const trees: Array<{ name: string; entries: number }> = []
  // Not damage: what the open skipped and rebuilt from the log (a checkpoint with a bad CRC).
  const notes: string[] = []
  let checksum: number | undefined
  if (problems.length === 0) {
    try {
      const db = await openExisting(o.dir)
      try {
        for (const skipped of (await db.stats()).store?.recovery.skippedCheckpoints ?? [])
          notes.push(`checkpoint skipped at open, the log replayed instead: ${skipped}`)
        const names = ['', ...(await db.treeNames())]
        const bar = progress(o, 'verifying trees', names.length)
        for (const [i, name] of names.entries()) {
          const t = name === '' ? db : await db.openTree(name)
          let entries = 0
          let prev: Uint8Array | undefined
          try {
            for await (const [k] of t.range()) {
              if (prev !== undefined && Buffer.compare(prev, k) >= 0) {
                problems.push({
                  pass: 'trees',
                  code: 'BOBSLED_CORRUPTION',
                  message: `keys out of order after entry ${entries}: 0x${Buffer.from(prev).toString('hex')} then 0x${Buffer.from(k).toString('hex')}`,
                  tree: name,
                })
                break
              }
              prev = k
              entries++
            }
          } catch (e) {
            if (!isDamage(e)) throw e
            problems.push(problemOf('trees', e, name))
          }
          trees.push({ name, entries })
          bar.update(i + 1)
        }
        bar.stop()
        if (problems.length === 0) checksum = await db.checksum()
      } finally {
        await db.close().catch(() => {})
      }
    } catch (e) {
      if (!isDamage(e)) throw e
      problems.push(problemOf('trees', e))
    }
  }

  const ok = problems.length === 0
  const doc = {
    dir: o.dir,
    ok,
    log,
    trees,
    checksum: checksum ?? null,
    problems,
    notes,
    ms: Math.round(performance.now() - t0),
  }
  emit(o, doc, () => {
    const lines: string[] = []
    if (log.checked)
      lines.push(
        `log     ${fmt(log.records)} records (${fmt(log.blobs)} blobs, ${fmt(log.bytes)} bytes), every CRC checked`,
      )
    for (const t of trees)
      lines.push(`tree    ${t.name === '' ? '(default)' : t.name}: ${fmt(t.entries)} entries in order`)
    if (checksum !== undefined) lines.push(`checksum ${checksum.toString(16).padStart(8, '0')}`)
    for (const n of notes) lines.push(`note    ${n}`)
    for (const p of problems) {
      const where = [
        p.tree !== undefined ? `tree ${JSON.stringify(p.tree)}` : undefined,
        p.file !== undefined ? `file ${p.file}` : undefined,
        p.offset !== undefined ? `offset ${p.offset}` : undefined,
        p.lsn !== undefined ? `LSN ${p.lsn}` : undefined,
      ].filter((x) => x !== undefined)
      lines.push(`DAMAGE  [${p.code}] ${p.message}${where.length > 0 ? ` (${where.join(', ')})` : ''}`)
    }
    lines.push(ok ? `ok (${doc.ms} ms)` : `damage found: ${problems.length} problem(s)`)
    return lines.join('\n')
  })
  if (!ok) process.exitCode = EXIT_DAMAGE
}
