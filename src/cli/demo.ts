import { SingleBar } from 'cli-progress'
import { Log } from '../index.js'

export interface DemoOptions {
  dir: string
  records: number
  sizeBytes: number
  json: boolean
  progress: boolean
}

const mb = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000)

export async function runDemo(o: DemoOptions): Promise<void> {
  const showBar = o.progress && !o.json && process.stderr.isTTY === true
  let log = await Log.open(o.dir)
  const before = log.metrics().recoveredRecords
  const record = new Uint8Array(o.sizeBytes)
  const bar = showBar
    ? new SingleBar({ format: 'appending [{bar}] {percentage}% {value}/{total}' })
    : undefined
  bar?.start(o.records, 0)
  const t0 = performance.now()
  for (let i = 0; i < o.records; i++) {
    // Each record carries its index so a reader can tell records apart.
    record[0] = i & 0xff
    record[1] = (i >>> 8) & 0xff
    record[2] = (i >>> 16) & 0xff
    log.append(record, i)
    if (i % 4096 === 4095) {
      bar?.update(i + 1)
      await log.whenWritable()
    }
  }
  const appendedMs = performance.now() - t0
  const stable = await log.flush()
  const flushedMs = performance.now() - t0
  bar?.update(o.records)
  bar?.stop()
  await log.close()

  log = await Log.open(o.dir)
  const m = log.metrics()
  let verified = 0
  const t1 = performance.now()
  for await (const _ of log.iterFrom(0)) verified++
  const iterMs = performance.now() - t1
  await log.close()

  const summary = {
    dir: o.dir,
    appended: o.records,
    recordBytes: o.sizeBytes,
    recordsBefore: before,
    stableLsn: stable,
    appendMs: Math.round(appendedMs),
    appendAndFlushMs: Math.round(flushedMs),
    appendRecordsPerSec: Math.round(o.records / (flushedMs / 1000)),
    appendMBps: Number(mb(o.records * o.sizeBytes, flushedMs).toFixed(1)),
    recoveredRecords: m.recoveredRecords,
    recoveryMs: Math.round(m.recoveryMs),
    recoveryRecordsPerSec: Math.round(m.recoveredRecords / (m.recoveryMs / 1000)),
    iteratedRecords: verified,
    iterateMs: Math.round(iterMs),
  }
  if (o.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`)
    return
  }
  const lines = [
    `folder            ${o.dir}`,
    `appended          ${o.records.toLocaleString('en')} records of ${o.sizeBytes} B (log held ${before.toLocaleString('en')} before)`,
    `append + flush    ${summary.appendAndFlushMs} ms  (${summary.appendRecordsPerSec.toLocaleString('en')} records/s, ${summary.appendMBps} MB/s of records)`,
    `durable up to LSN ${stable}`,
    `reopened          recovered ${m.recoveredRecords.toLocaleString('en')} records in ${summary.recoveryMs} ms (${summary.recoveryRecordsPerSec.toLocaleString('en')} records/s, every CRC checked)`,
    `iterated          ${verified.toLocaleString('en')} records in ${summary.iterateMs} ms`,
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  if (verified !== m.recoveredRecords) {
    process.stderr.write('bobsled: iteration and recovery disagree\n')
    process.exitCode = 2
  }
}
