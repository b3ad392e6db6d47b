// The LRU's resident list (src/pagecache/resident-list.ts) against a model: a `Map` in use
// order, as the LRU was. Pushes, deletes and moves to the young end, slot ids and page
// objects mixed, ids spread past the first rows; after every step the order oldest to
// newest, the newest-first list, membership and the values agree.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { InvariantError } from '../../src/errors.js'
import { ResidentList } from '../../src/pagecache/resident-list.js'

type Op =
  | { kind: 'push'; pid: number; slot: number; isObject: boolean }
  | { kind: 'delete'; pid: number }
  | { kind: 'move'; pid: number }

const PIDS = 5000
// Mostly a few hot ids (so pages come and go and move), some spread over enough ids to
// grow the columns past their first 1,024 rows.
const pidArb = fc.oneof({ arbitrary: fc.nat(15), weight: 4 }, { arbitrary: fc.nat(PIDS - 1), weight: 1 })

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('push' as const),
    pid: pidArb,
    slot: fc.nat(2 ** 31 - 2),
    isObject: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('delete' as const), pid: pidArb }),
  fc.record({ kind: fc.constant('move' as const), pid: pidArb }),
)

interface Page {
  readonly pid: number
}

function oldestFirst(list: ResidentList<Page>): number[] {
  const out: number[] = []
  for (let pid = list.oldest(); pid >= 0; pid = list.newerThan(pid)) out.push(pid)
  return out
}

/** The model check over random operations, on lists from `make` (a planted bug's too). */
function modelProperty(make: () => ResidentList<Page>): fc.IPropertyWithHooks<[Op[]]> {
  return fc.property(fc.array(opArb, { minLength: 50, maxLength: 300, size: 'max' }), (ops) => {
    const list = make()
    const model = new Map<number, Page | number>()
    for (const op of ops) {
      const was = model.get(op.pid)
      if (op.kind === 'push') {
        const r = op.isObject ? { pid: op.pid } : op.slot
        if (was !== undefined) {
          assert.throws(() => list.push(op.pid, r), InvariantError)
          continue
        }
        list.push(op.pid, r)
        model.set(op.pid, r)
      } else if (op.kind === 'delete') {
        assert.equal(list.delete(op.pid), model.delete(op.pid))
      } else {
        if (was === undefined) {
          assert.throws(() => list.moveToNewest(op.pid), InvariantError)
          continue
        }
        list.moveToNewest(op.pid)
        model.delete(op.pid)
        model.set(op.pid, was)
      }
      assert.equal(list.size, model.size)
      assert.deepEqual(oldestFirst(list), [...model.keys()])
      assert.deepEqual([...list.newestFirst()], [...model.keys()].reverse())
      for (const pid of [op.pid, 0, PIDS - 1]) {
        assert.equal(list.has(pid), model.has(pid))
        assert.equal(list.get(pid), model.get(pid))
      }
    }
  })
}

test('the resident list keeps the order, members and values a Map in use order keeps', () => {
  fc.assert(
    modelProperty(() => new ResidentList<Page>()),
    { numRuns: 300 },
  )
})

test('mutation: a list whose move to the young end is lost fails the model check', () => {
  // The harness must be able to fail: a planted bug (moveToNewest does nothing) is caught.
  const broken = (): ResidentList<Page> => {
    const list = new ResidentList<Page>()
    list.moveToNewest = () => {}
    return list
  }
  const r = fc.check(modelProperty(broken), { numRuns: 300 })
  assert.equal(r.failed, true, 'the planted bug went unnoticed')
})

test('an id far past the rows is not resident, and a page object comes back as itself', () => {
  const list = new ResidentList<Page>()
  assert.equal(list.has(10 ** 9), false)
  assert.equal(list.get(10 ** 9), undefined)
  assert.equal(list.delete(10 ** 9), false)
  assert.equal(list.oldest(), -1)
  const page = { pid: 3 }
  list.push(3, page)
  list.push(2000, 0)
  assert.equal(list.get(3), page)
  assert.equal(list.get(2000), 0)
  assert.deepEqual(oldestFirst(list), [3, 2000])
  assert.throws(() => list.push(-1, 1), InvariantError)
})
