// The checksum worker: stamps the CRCs of a sealed buffer's messages on another core, so
// that bulk appends only copy bytes on the main thread (docs/DESIGN.md, "Checksums off the
// main thread"). The main thread hands over a private copy of the buffer's bytes (moved,
// not cloned); the worker stamps the CRCs in it and moves it back, and that copy is what
// gets written. Copying is ~0.1 ns a byte; the CRC it saves is ~0.5.

import { isMainThread, parentPort, Worker } from 'node:worker_threads'
import { wordsOf } from '../util/crc32.js'
import { stampMessageCrcs } from './format.js'

interface Job {
  id: number
  bytes: Uint8Array
  from: number
  to: number
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort
  port.on('message', (job: Job) => {
    const ok = stampMessageCrcs(job.bytes, wordsOf(job.bytes), job.from, job.to)
    port.postMessage({ id: job.id, ok, bytes: job.bytes }, [job.bytes.buffer as ArrayBuffer])
  })
}

/** The main thread's handle on one checksum worker (one per log, started lazily). */
export class Checksummer {
  private readonly worker: Worker
  private nextId = 0
  private readonly pending = new Map<
    number,
    { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }
  >()
  private failure: Error | undefined

  constructor() {
    this.worker = new Worker(new URL('./checksum-worker.js', import.meta.url))
    this.worker.unref()
    this.worker.on('message', (m: { id: number; ok: boolean; bytes: Uint8Array }) => {
      const p = this.pending.get(m.id)
      if (p === undefined) return
      this.pending.delete(m.id)
      if (m.ok) p.resolve(m.bytes)
      else p.reject(new Error('the checksum worker found a region that is not whole messages'))
    })
    const fail = (e: Error): void => {
      this.failure ??= e
      for (const p of this.pending.values()) p.reject(e)
      this.pending.clear()
    }
    this.worker.on('error', fail)
    this.worker.on('exit', (code) => fail(new Error(`the checksum worker exited with code ${code}`)))
  }

  /**
   * Stamps the CRCs of the messages in [from, to) of `bytes`, which must own its whole
   * ArrayBuffer: it is moved to the worker and the stamped bytes come back.
   */
  stamp(bytes: Uint8Array, from: number, to: number): Promise<Uint8Array> {
    if (this.failure !== undefined) return Promise.reject(this.failure)
    const id = this.nextId++
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      // While jobs are pending the worker must keep the process alive; unref when idle.
      if (this.pending.size === 1) this.worker.ref()
      this.worker.postMessage({ id, bytes, from, to } satisfies Job, [bytes.buffer as ArrayBuffer])
    }).finally(() => {
      if (this.pending.size === 0) this.worker.unref()
    })
  }

  async close(): Promise<void> {
    await this.worker.terminate()
  }
}
