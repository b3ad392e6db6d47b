// Turns the peers' figures into the raw table, the bobsled/peer ratio table with the issue's
// goals, and bench/RESULTS.md. Every ratio is oriented so that higher = bobsled better.

import { RECORD_BYTES } from './data.mjs'

/** Disk after the 3× overwrite must stay within this multiple of live data (records × 116 B). */
export const DISK_AMPLIFICATION_MAX = 1.5

const MB = 1e6

/**
 * The figures. `higherIsBetter` decides the ratio: bobsled/peer for throughputs,
 * peer/bobsled for times and sizes. `goal(peerName)` is the issue's goal for the ratio against
 * that peer: { min, strict } (ratio > min when strict, else ≥ min), or undefined for none.
 */
export const METRICS = [
  {
    id: 'bulk',
    label: 'bulk load',
    unit: 'rec/s',
    higherIsBetter: true,
    value: (r) => r.bulk.recordsPerSec,
    goal: () => ({ min: 1, strict: true }),
    goalText: 'faster than every peer',
  },
  {
    id: 'durable1',
    label: 'durable writes, 1 writer',
    unit: 'ops/s',
    higherIsBetter: true,
    value: (r) => r.durable1.opsPerSec,
    goal: () => ({ min: 1, strict: true }),
    goalText: 'faster than every peer',
  },
  {
    id: 'durable64',
    label: 'durable writes, 64 writers',
    unit: 'ops/s',
    higherIsBetter: true,
    value: (r) => r.durable64.opsPerSec,
    goal: () => ({ min: 1, strict: true }),
    goalText: 'faster than every peer',
  },
  {
    id: 'reads',
    label: 'random reads',
    unit: 'ops/s',
    higherIsBetter: true,
    value: (r) => r.reads.opsPerSec,
    goal: readGoal,
    goalText: '>= 0.5 x lmdb, faster than classic-level',
  },
  {
    id: 'scan',
    label: 'ordered scan',
    unit: 'rec/s',
    higherIsBetter: true,
    value: (r) => r.scan.recordsPerSec,
    goal: readGoal,
    goalText: '>= 0.5 x lmdb, faster than classic-level',
  },
  {
    id: 'reopen',
    label: 'reopen (open + first get)',
    unit: 'ms',
    higherIsBetter: false,
    value: (r) => r.reopen.ms,
    goal: (peer) => (peer === 'classic-level' ? { min: 1, strict: false } : undefined),
    goalText: "<= classic-level's time",
  },
  {
    id: 'diskLoad',
    label: 'disk after load',
    unit: 'MB',
    higherIsBetter: false,
    value: (r) => r.diskAfterLoad.allocated / MB,
    goal: () => undefined,
    goalText: '',
  },
  {
    id: 'diskOverwrite',
    label: 'disk after 3x overwrite',
    unit: 'MB',
    higherIsBetter: false,
    value: (r) => r.diskAfterOverwrite.allocated / MB,
    goal: () => undefined,
    goalText: `bobsled <= ${DISK_AMPLIFICATION_MAX} x live data (absolute, below)`,
  },
  {
    id: 'rss',
    label: 'peak RSS',
    unit: 'MB',
    higherIsBetter: false,
    value: (r) => r.peakRssBytes / MB,
    goal: () => undefined,
    goalText: '',
  },
]

function readGoal(peer) {
  if (peer === 'lmdb') return { min: 0.5, strict: false }
  if (peer === 'classic-level') return { min: 1, strict: true }
  return undefined
}

/** Raw figures the table prints but no ratio uses. */
const EXTRA_ROWS = [
  { label: 'random reads, awaited get()', unit: 'ops/s', value: (r) => r.readsAwaited?.opsPerSec },
  {
    label: 'disk after 3x overwrite, closed',
    unit: 'MB',
    value: (r) => r.diskAfterOverwriteClosed.allocated / MB,
  },
  {
    label: 'space amp. after 3x overwrite',
    unit: 'x live',
    value: (r) => r.diskAfterOverwrite.allocated / r.liveBytes,
  },
  { label: '3x overwrite (bulk setting)', unit: 'rec/s', value: (r) => r.overwrite.recordsPerSec },
  // disk.mjs: the disk's ceiling for one durable write at a time, measured by each peer's process
  // just before and after its durable runs (mean of the two).
  {
    label: 'disk ceiling: O_DSYNC 128 B writes, 1 writer',
    unit: 'ops/s',
    value: (r) => r.diskCeiling?.dsync,
  },
  {
    label: 'disk ceiling: write + fdatasync, 1 writer',
    unit: 'ops/s',
    value: (r) => r.diskCeiling?.fdatasync,
  },
  {
    label: 'durable writes, 1 writer / O_DSYNC ceiling',
    unit: 'x disk',
    value: (r) => (r.diskCeiling ? r.durable1.opsPerSec / r.diskCeiling.dsync : undefined),
  },
]

export function fmt(v, unit) {
  if (v === undefined || Number.isNaN(v)) return '-'
  if (unit === 'ms' || unit === 'MB') return v >= 100 ? v.toFixed(0) : v.toFixed(1)
  if (unit === 'x live' || unit === 'x disk') return v.toFixed(2)
  return Math.round(v).toLocaleString('en-US')
}

function verdict(ratio, goal) {
  if (goal === undefined) return ''
  if (ratio === undefined) return 'n/a'
  const ok = goal.strict ? ratio > goal.min : ratio >= goal.min
  return ok ? 'PASS' : 'MISS'
}

function goalLabel(goal) {
  if (goal === undefined) return ''
  return `${goal.strict ? '>' : '>='} ${goal.min}`
}

/**
 * Everything the report shows, computed once. `results` maps peer name → figures (or
 * undefined when skipped/failed); `order` is the peers in run order.
 */
export function summarize(results, order) {
  const bob = results.bobsled
  const others = order.filter((p) => p !== 'bobsled')
  const raw = [...METRICS, ...EXTRA_ROWS].map((m) => ({
    label: m.label,
    unit: m.unit,
    cells: order.map((p) => (results[p] ? m.value(results[p]) : undefined)),
  }))
  const ratios = METRICS.map((m) => {
    const cells = others.map((p) => {
      const peerValue = results[p] ? m.value(results[p]) : undefined
      const bobValue = bob ? m.value(bob) : undefined
      let ratio
      if (peerValue !== undefined && bobValue !== undefined && bobValue > 0 && peerValue > 0) {
        ratio = m.higherIsBetter ? bobValue / peerValue : peerValue / bobValue
      }
      const goal = m.goal(p)
      return { peer: p, ratio, goal, verdict: results[p] ? verdict(ratio, goal) : '' }
    })
    const meaning = m.higherIsBetter
      ? `bobsled ${m.unit} / peer ${m.unit}`
      : `peer ${m.unit} / bobsled ${m.unit}`
    return { label: m.label, meaning, goalText: m.goalText, cells }
  })
  let disk
  if (bob) {
    const amplification = bob.diskAfterOverwrite.allocated / bob.liveBytes
    disk = {
      bytes: bob.diskAfterOverwrite.allocated,
      liveBytes: bob.liveBytes,
      amplification,
      verdict: amplification <= DISK_AMPLIFICATION_MAX ? 'PASS' : 'MISS',
    }
  }
  return { raw, ratios, disk, others }
}

function textTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells) =>
    cells.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ')
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

function mdTable(header, rows) {
  const esc = (c) => String(c).replaceAll('|', '\\|')
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n')
}

function rawRows(summary) {
  return summary.raw.map((row) => [row.label, row.unit, ...row.cells.map((v) => fmt(v, row.unit))])
}

function ratioRows(summary) {
  return summary.ratios.map((row) => [
    row.label,
    row.meaning,
    ...row.cells.map((c) => {
      const r = c.ratio === undefined ? '-' : c.ratio.toFixed(2)
      const g = c.goal === undefined ? '' : ` (${goalLabel(c.goal)}) ${c.verdict}`
      return r + g
    }),
    row.goalText,
  ])
}

function diskLine(summary) {
  const d = summary.disk
  if (!d) return `disk after 3x overwrite <= ${DISK_AMPLIFICATION_MAX} x live data: n/a (bobsled not run)`
  return (
    `disk after 3x overwrite: bobsled ${(d.bytes / MB).toFixed(1)} MB / live ${(d.liveBytes / MB).toFixed(1)} MB` +
    ` (records x ${RECORD_BYTES} B) = ${d.amplification.toFixed(2)} x (goal <= ${DISK_AMPLIFICATION_MAX}) ${d.verdict}`
  )
}

export function printReport(summary, order, labels) {
  const names = order.map((p) => labels[p] ?? p)
  console.log('\nraw figures (same machine, same data, one process per peer)\n')
  console.log(textTable(['figure', 'unit', ...names], rawRows(summary)))
  console.log('\nratios bobsled/peer: higher = bobsled better (column "ratio =" says what is divided)\n')
  const ratioHeader = ['figure', 'ratio =', ...summary.others.map((p) => `vs ${p}`), 'goal']
  console.log(textTable(ratioHeader, ratioRows(summary)))
  console.log(`\n${diskLine(summary)}`)
}

export function markdown(summary, order, labels, header) {
  const names = order.map((p) => labels[p] ?? p)
  const ratioHeader = ['figure', 'ratio =', ...summary.others.map((p) => `vs ${p}`), 'goal']
  const settings = header.settings
    .map(
      (s) =>
        `- **${s.label}**\n  - bulk: ${s.bulk}\n  - durable: ${s.durable}\n  - 64 writers: ${s.concurrency}`,
    )
    .join('\n')
  const skipped = header.skipped.map((s) => `- ${s}`).join('\n')
  return `# Peer benchmark (\`npm run bench:peers\`)

Generated by \`bench/peers/run.mjs\`; rerun to refresh. Issue 4's benchmark: bobsled against lmdb,
classic-level and better-sqlite3, same run, same machine, same data.

- date: ${header.date}
- machine: ${header.machine}
- node: ${header.node}
- load average (1, 5, 15 min): ${header.loadStart} at start, ${header.loadEnd} at end
- seed: ${header.seed} (sfc32 via splitmix32, \`bench/peers/data.mjs\`)
- records: ${header.records.toLocaleString('en-US')} × (16 B random key + 100 B random value), batches of 1000
- random reads: ${header.reads.toLocaleString('en-US')}; durable writes: ${header.durableMs} ms per run
- command: \`${header.command}\`
${skipped ? `\nNot run:\n${skipped}\n` : ''}
## Raw figures

Disk = allocated bytes of the database folder (st_blocks, as \`du\`), measured with the database
open right after the final sync unless marked closed. Reopen = open at the durable setting +
first get, page cache warm. Peak RSS = \`process.resourceUsage().maxRSS\` of the peer's own
process (includes the harness's 16 B × records key array; for lmdb it includes resident pages
of the memory-mapped file).

${mdTable(['figure', 'unit', ...names], rawRows(summary))}

## Ratios bobsled/peer (higher = bobsled better)

Throughputs: bobsled / peer. Times and sizes: peer / bobsled. PASS/MISS only where issue 4 sets
a goal for that peer.

${mdTable(ratioHeader, ratioRows(summary))}

${diskLine(summary)}

## Settings per peer

${settings}

## Workloads

1. Bulk load: all records in batches of 1000, each batch awaited, at the peer's bulk setting,
   then the one call that makes them durable; records/s over the whole thing.
2. Durable writes: overwrites of random loaded keys, each awaited until the peer says it is
   durable, for a fixed time with 1 writer and then with 64 concurrent async loops; ops/s.
3. Random reads of loaded keys (every read must hit); 4. full ordered scan (count and order
   checked); 5. reopen; 6. disk after the load and after overwriting every key 3× (bulk
   setting); 7. peak RSS. Around the durable runs each peer's process also measures the disk's
   ceiling for one durable write at a time (\`bench/peers/disk.mjs\`: 128 B \`writeSync()\`s to a
   pre-extended O_DSYNC file, and write + \`fdatasync\` appends), so a durable figure can be read
   against what the disk allowed at that moment.
${header.notes ? `\n## Notes\n\n${header.notes}\n` : ''}`
}
