// The structural checker: walks every tree of a page store and checks the invariants
// btree.ts states, plus that every page in the store is reachable exactly once (no leaks,
// no sharing). The property tests run it after every step; `bobsled verify` can too.

import { InvariantError } from '../errors.js'
import type { PageStore } from '../pagecache/page-store.js'
import { decodePage, encodePage } from './codec.js'
import { COUNTER_PID, META_PID } from './forest.js'
import { compareBytes } from './keys.js'
import { leafEntries } from './leaf.js'
import type { TreeConfig } from './limits.js'
import { entryCount, isBlobLeaf, needsSplit, type TreePage } from './node.js'

export interface VerifyReport {
  /** Keys per tree; the default tree is "". */
  keys: Map<string, number>
  pages: number
  depth: Map<string, number>
}

export async function verifyForest(store: PageStore<TreePage>, c: TreeConfig): Promise<VerifyReport> {
  const fail = (why: string): never => {
    throw new InvariantError(`verify: ${why}`)
  }
  const seen = new Set<number>()
  const visit = async (pid: number): Promise<TreePage> => {
    if (seen.has(pid)) fail(`page ${pid} is reachable twice`)
    seen.add(pid)
    const p = await store.get(pid)
    if (p === undefined) return fail(`page ${pid} is referenced but missing`)
    const bytes = encodePage(p)
    if (bytes.length > store.maxPageBytes) {
      // Only a leaf of one entry may be larger, stored as a blob (isBlobLeaf).
      if (p.kind !== 'leaf' || p.count !== 1) fail(`page ${pid} has ${bytes.length} bytes, over a page`)
      if (bytes.length > store.maxLargePageBytes)
        fail(`page ${pid} has ${bytes.length} bytes, over a large page`)
    }
    if ((p.kind === 'leaf' || p.kind === 'index') && p.bytes !== bytes.length) {
      fail(`page ${pid} says ${p.bytes} bytes but encodes to ${bytes.length}`)
    }
    // A leaf's bytes are its in-memory form too: they must parse back to the same entries.
    if (p.kind === 'leaf') {
      const back = decodePage(bytes)
      if (back.kind !== 'leaf' || back.count !== p.count) fail(`page ${pid}: its bytes do not parse back`)
    }
    return p
  }
  const meta = await visit(META_PID)
  if (meta.kind !== 'meta') return fail('page 0 is not META')
  const counter = await visit(COUNTER_PID)
  if (counter.kind !== 'counter') fail('page 1 is not the ID-generator page')
  const report: VerifyReport = { keys: new Map(), pages: 0, depth: new Map() }
  const trees: [string, number][] = [['', meta.defaultRoot], ...meta.trees]
  for (const [name, root] of trees) {
    let keys = 0
    let leafDepth = -1
    const walk = async (
      pid: number,
      lo: Uint8Array | undefined,
      hi: Uint8Array | undefined,
      depth: number,
    ): Promise<void> => {
      const n = await visit(pid)
      const where = `tree "${name}" page ${pid}`
      if (n.kind !== 'leaf' && n.kind !== 'index') return fail(`${where} is a ${n.kind} page`)
      if (needsSplit(n, c)) fail(`${where} should have split (${n.bytes} bytes, ${entryCount(n)} entries)`)
      const nodeKeys = n.kind === 'leaf' ? leafEntries(n).keys : n.keys
      for (let i = 0; i < nodeKeys.length; i++) {
        const k = nodeKeys[i] as Uint8Array
        if (i > 0 && compareBytes(nodeKeys[i - 1] as Uint8Array, k) >= 0)
          fail(`${where}: keys out of order at ${i}`)
        if (lo !== undefined && compareBytes(k, lo) < 0) fail(`${where}: key ${i} below the parent's bound`)
        if (hi !== undefined && compareBytes(k, hi) >= 0)
          fail(`${where}: key ${i} at or above the parent's bound`)
      }
      if (n.kind === 'leaf') {
        if (pid === root && isBlobLeaf(n, c)) fail(`${where}: a root holds a blob leaf`)
        if (n.count !== nodeKeys.length) fail(`${where} says ${n.count} entries but holds ${nodeKeys.length}`)
        if (nodeKeys.length === 0 && pid !== root) fail(`${where} is an empty leaf`)
        if (leafDepth === -1) leafDepth = depth
        else if (leafDepth !== depth) fail(`${where}: leaf at depth ${depth}, others at ${leafDepth}`)
        keys += nodeKeys.length
        return
      }
      if (n.children.length < 2) {
        // A root index may have one child when that child is a blob leaf (never a root).
        const only = n.children.length === 1 ? await store.get(n.children[0] as number) : undefined
        if (pid !== root || only === undefined || !isBlobLeaf(only, c))
          fail(`${where}: index node with ${n.children.length} child`)
      }
      for (let i = 0; i < n.children.length; i++) {
        await walk(
          n.children[i] as number,
          i === 0 ? lo : n.keys[i - 1],
          i < n.keys.length ? n.keys[i] : hi,
          depth + 1,
        )
      }
    }
    await walk(root, undefined, undefined, 0)
    report.keys.set(name, keys)
    report.depth.set(name, leafDepth)
  }
  const stored = [...store.pageIds()]
  for (const pid of stored) if (!seen.has(pid)) fail(`page ${pid} is in the store but in no tree (leaked)`)
  if (stored.length !== seen.size) fail(`${seen.size} pages reachable, ${stored.length} stored`)
  report.pages = seen.size
  return report
}
