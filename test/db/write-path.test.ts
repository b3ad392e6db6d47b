// The write path's synchronous completion (Forest.write taking a free mutex and committing
// in one step, Tree.insert/remove without async layers): every failure still comes back as
// a typed rejection, leaves the data as it was, and hands the writer mutex on, so the next
// write neither hangs nor sees a half-done one.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ClosedError, InvalidArgumentError, IoError, LimitError } from '../../src/index.js'
import { Mutex } from '../../src/tree/mutex.js'
import { dbFixture, dec, eachBackend, enc } from './fixtures.js'

/** Fails the test instead of hanging when a write never settles (a mutex left held). */
function settlesSoon<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle in 2 s (writer mutex held?)`)), 2000)
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

/** Calls f, which must not throw synchronously, and returns its promise. */
function callAsync<T>(f: () => Promise<T>): Promise<T> {
  let p: Promise<T> | undefined
  assert.doesNotThrow(() => {
    p = f()
  }, 'errors come back as rejections, never thrown at the call')
  assert.ok(p instanceof Promise)
  return p
}

eachBackend(
  'bad inputs to insert() and remove() are typed rejections, not throws, and change nothing',
  async (backend) => {
    const { db } = await dbFixture(backend)
    await db.insert('k', 'v')
    await assert.rejects(
      callAsync(() => db.insert(new Uint8Array(1 << 20), 'x')),
      LimitError,
    )
    await assert.rejects(
      callAsync(() => db.insert('k', 'v', 7 as never)),
      InvalidArgumentError,
    )
    await assert.rejects(
      callAsync(() => db.insert(null as never, 'v')),
      InvalidArgumentError,
    )
    await assert.rejects(
      callAsync(() => db.remove('k', 'no' as never)),
      InvalidArgumentError,
    )
    assert.equal(await db.getString('k'), 'v')
    assert.equal(dec(await settlesSoon(db.insert('k', 'w'), 'the next insert')), 'v')
  },
)

eachBackend(
  'bad options, bad keys and a closed database are typed rejections from every method, never throws',
  async (backend) => {
    const { db } = await dbFixture(backend)
    await db.insert('k', 'v')
    const bad = 'no' as never
    const calls: Array<[string, () => Promise<unknown>]> = [
      ['popMin', () => db.popMin(bad)],
      ['popMax', () => db.popMax(bad)],
      ['compareAndSwap', () => db.compareAndSwap('k', 'v', 'w', bad)],
      ['compareAndSwap key', () => db.compareAndSwap(null as never, 'v', 'w')],
      ['updateAndFetch', () => db.updateAndFetch('k', 'not a function' as never)],
      ['fetchAndUpdate', () => db.fetchAndUpdate('k', (old) => old, bad)],
      ['applyBatch', () => db.applyBatch('not a function' as never)],
      ['applyBatch opts', () => db.applyBatch((b) => b.insert('k', 'x'), bad)],
      ['insertJSON', () => db.insertJSON('k', 1, bad)],
      ['clear', () => db.clear(bad)],
    ]
    for (const [what, call] of calls) {
      await assert.rejects(callAsync(call), InvalidArgumentError, what)
    }
    assert.equal(await db.getString('k'), 'v')
    assert.equal(await db.len(), 1)
    // The reads that take a key, and the calls that only check the database is open.
    for (const [what, call] of [
      ['getLt', () => db.getLt(null as never)],
      ['getGt', () => db.getGt(null as never)],
      ['containsKey', () => db.containsKey(null as never)],
    ] as Array<[string, () => Promise<unknown>]>) {
      await assert.rejects(callAsync(call), InvalidArgumentError, what)
    }
    await db.close()
    for (const [what, call] of [
      ['treeNames', () => db.treeNames()],
      ['generateId', () => db.generateId()],
      ['popMin', () => db.popMin()],
      ['getLt', () => db.getLt('k')],
    ] as Array<[string, () => Promise<unknown>]>) {
      await assert.rejects(callAsync(call), ClosedError, what)
    }
  },
)

eachBackend(
  'a plan that throws under the mutex rejects, changes nothing, and lets the next write in',
  async (backend) => {
    const { db } = await dbFixture(backend)
    await db.insert('k', 'v')
    const boom = new Error('update failed')
    await assert.rejects(
      callAsync(() =>
        db.fetchAndUpdate('k', () => {
          throw boom
        }),
      ),
      (e) => e === boom,
    )
    assert.equal(await db.getString('k'), 'v')
    // Queued behind one that fails: both settle, in call order.
    const failing = db.fetchAndUpdate('k', () => {
      throw boom
    })
    const next = db.insert('k', 'w')
    await assert.rejects(failing, (e) => e === boom)
    assert.equal(dec(await settlesSoon(next, 'the insert queued behind the failing write')), 'v')
    assert.equal(await db.getString('k'), 'w')
  },
)

test('a store that refuses the commit: a typed rejection, the old value kept, the mutex handed on', async () => {
  const { db, store } = await dbFixture('memory')
  await db.insert('k', 'v')
  const link = store.link.bind(store)
  const replace = store.replace.bind(store)
  const fault = (): never => {
    throw new IoError('injected write fault')
  }
  store.link = fault
  store.replace = fault
  await assert.rejects(
    callAsync(() => db.insert('k', 'w')),
    IoError,
  )
  await assert.rejects(
    callAsync(() => db.remove('k')),
    IoError,
  )
  assert.equal(await db.getString('k'), 'v', 'a commit that threw changed nothing')
  store.link = link
  store.replace = replace
  assert.equal(dec(await settlesSoon(db.insert('k', 'w'), 'the insert after the fault')), 'v')
  assert.equal(await db.getString('k'), 'w')
})

test('a store that is not writable (whenWritable rejects): the write rejects with that error and the mutex is free', async () => {
  const { db, store } = await dbFixture('memory')
  await db.insert('k', 'v')
  const whenWritable = store.whenWritable.bind(store)
  store.whenWritable = () => Promise.reject(new IoError('injected backpressure fault'))
  await assert.rejects(
    callAsync(() => db.insert('k', 'w')),
    IoError,
  )
  // Three at once: the first takes the free mutex, the others queue behind it.
  const all = await Promise.allSettled([db.insert('a', '1'), db.insert('b', '2'), db.remove('k')])
  assert.deepEqual(
    all.map((r) => r.status),
    ['rejected', 'rejected', 'rejected'],
  )
  store.whenWritable = whenWritable
  assert.equal(dec(await settlesSoon(db.insert('k', 'w'), 'the insert after the fault')), 'v')
  assert.equal(await db.get('a'), undefined)
})

eachBackend(
  'writes issued without awaiting commit in call order and each returns the value before it',
  async (backend) => {
    const { db } = await dbFixture(backend)
    const ps: Promise<Uint8Array | undefined>[] = []
    for (let i = 0; i < 50; i++) ps.push(db.insert(enc('k'), enc(String(i))))
    const olds = await Promise.all(ps)
    assert.deepEqual(olds.map(dec), [undefined, ...Array.from({ length: 49 }, (_, i) => String(i))])
    assert.equal(await db.getString('k'), '49')
  },
)

test('Mutex: FIFO hand-over, tryLock refused while anyone holds or waits, unlock of a free mutex refused', async () => {
  const m = new Mutex()
  assert.equal(m.tryLock(), true)
  assert.equal(m.tryLock(), false)
  const order: number[] = []
  const a = m.lock().then(() => order.push(1))
  const b = m.lock().then(() => order.push(2))
  m.unlock()
  // Handed to the first waiter: a tryLock between the unlock and its turn cannot barge in.
  assert.equal(m.tryLock(), false)
  await a
  m.unlock()
  await b
  assert.deepEqual(order, [1, 2])
  m.unlock()
  assert.equal(m.isLocked, false)
  assert.throws(() => m.unlock(), /free mutex/)
  assert.equal(m.tryLock(), true)
})
