// Self-checking records for crash tests: every byte derives from (seq, index, batch size),
// so a phantom or torn record can never pass verification.

const HEADER = 12

export function encodeRecord(
  seq: number,
  indexInBatch: number,
  batchSize: number,
  padBytes: number,
): Uint8Array {
  const b = new Uint8Array(HEADER + padBytes)
  const v = new DataView(b.buffer)
  v.setUint32(0, seq)
  v.setUint16(4, indexInBatch)
  v.setUint16(6, batchSize)
  v.setUint32(8, padBytes)
  for (let i = 0; i < padBytes; i++) b[HEADER + i] = (seq * 31 + i * 7) & 0xff
  return b
}

export interface DecodedRecord {
  seq: number
  indexInBatch: number
  batchSize: number
}

/** Returns undefined when the bytes are not exactly a record this module wrote. */
export function decodeRecord(b: Uint8Array): DecodedRecord | undefined {
  if (b.length < HEADER) return undefined
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength)
  const seq = v.getUint32(0)
  const indexInBatch = v.getUint16(4)
  const batchSize = v.getUint16(6)
  const pad = v.getUint32(8)
  if (b.length !== HEADER + pad || batchSize === 0 || indexInBatch >= batchSize) return undefined
  for (let i = 0; i < pad; i++) if (b[HEADER + i] !== ((seq * 31 + i * 7) & 0xff)) return undefined
  return { seq, indexInBatch, batchSize }
}

/**
 * Checks a recovered sequence of records: sequence numbers 0..n-1 in order (a prefix of
 * what was appended), no phantom bytes, batches whole. Returns n, or a description of the
 * first violation.
 */
export function checkPrefix(records: Uint8Array[]): { count: number } | { violation: string } {
  let expect = 0
  for (let i = 0; i < records.length; i++) {
    const d = decodeRecord(records[i] as Uint8Array)
    if (d === undefined)
      return { violation: `record ${i} is not a record that was written (phantom or torn)` }
    if (d.seq !== expect)
      return { violation: `record ${i} has seq ${d.seq}, expected ${expect} (not a prefix)` }
    if (d.indexInBatch === 0 && d.batchSize > 1 && i + d.batchSize > records.length) {
      return { violation: `batch at seq ${d.seq} of ${d.batchSize} records is torn` }
    }
    expect++
  }
  return { count: expect }
}
