// The segment accountant's space policy with blob files (B-PC5): dead blob bytes count as
// space a segment gives back when it goes, live blob bytes count as live data, a relinked
// blob moves without dying, and dead blobs beyond the Inactive head ask for a seal.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SegmentAccountant } from '../../src/segments/index.js'

const S = 1000
const policy = { cleanAtSpaceRatio: 1.25, cleanToSpaceRatio: 1.1, slackSegments: 2 }

function withSegments(n: number): SegmentAccountant {
  const sa = new SegmentAccountant(S, policy)
  for (let i = 0; i < n; i++) sa.track(i * S, 'active')
  sa.stabilize((n - 1) * S - 1, (n - 1) * S)
  return sa
}

test('blob bytes: linked is live, unlinked is dead unless relinked, and a freed segment takes its dead ones', () => {
  const sa = withSegments(3)
  sa.added(2 * S + 10, 30, true)
  sa.blobLinked(2 * S + 10, 5000)
  assert.equal(sa.liveBlobBytes, 5000)
  assert.equal(sa.liveDataBytes, 5030)
  // Relinked into another segment: still live, nothing dead.
  sa.removed(2 * S + 10, 30)
  sa.blobUnlinked(2 * S + 10, 5000, false)
  sa.added(S + 10, 30, true)
  sa.blobLinked(S + 10, 5000)
  assert.equal(sa.deadBlobBytes, 0)
  assert.equal(sa.get(S)?.liveBlobBytes, 5000)
  // Replaced: the file is dead with the segment of its newest pointer.
  sa.removed(S + 10, 30)
  sa.blobUnlinked(S + 10, 5000, true)
  assert.equal(sa.get(S)?.deadBlobBytes, 5000)
  assert.equal(sa.spaceBytes, 3 * S + 5000)
  sa.freed(S)
  assert.equal(sa.deadBlobBytes, 0)
  assert.equal(sa.spaceBytes, 2 * S)
})

test('a segment holding live blob bytes may not be freed', () => {
  const sa = withSegments(2)
  sa.added(10, 30, true)
  sa.blobLinked(10, 500)
  sa.removed(10, 30)
  assert.throws(() => sa.freed(0), /live fragments/)
})

test('dead blob bytes put the space over budget and make a head segment worth more than its slot', () => {
  const sa = withSegments(4)
  sa.added(3 * S + 10, 100, true)
  assert.equal(sa.overBudget(), true, '4 slots for 100 live bytes')
  // Live blobs raise what the budget allows.
  sa.blobLinked(3 * S + 10, 10_000)
  assert.equal(sa.overBudget(), false)
  // Dead blobs in the second segment: picking stops once the space is back under the
  // stop level, counting each segment's slot and dead blobs.
  sa.added(S + 10, 30, true)
  sa.blobLinked(S + 10, 8000)
  sa.removed(S + 10, 30)
  sa.blobUnlinked(S + 10, 8000, true)
  assert.equal(sa.overBudget(), true)
  assert.equal(sa.needsSeal(), false, 'the Inactive head holds the dead blobs')
  const picked = sa.pickForCleaning()
  assert.deepEqual(
    picked.map((s) => s.base),
    [0, S, 2 * S],
  )
})

test('dead blobs whose pointer is in the segment being written ask for a seal', () => {
  const sa = withSegments(2)
  sa.added(S + 10, 30, true)
  sa.blobLinked(S + 10, 4000)
  sa.removed(S + 10, 30)
  sa.blobUnlinked(S + 10, 4000, true)
  sa.added(S + 50, 30, true)
  sa.blobLinked(S + 50, 1000)
  assert.equal(sa.overBudget(), true)
  assert.equal(sa.needsSeal(), true)
  // Once sealed and stable, the segment is Inactive and the seal is no longer needed.
  sa.track(2 * S, 'active')
  sa.stabilize(2 * S - 1, 2 * S)
  assert.equal(sa.needsSeal(), false)
  assert.deepEqual(
    sa.pickForCleaning().map((s) => s.base),
    [0, S],
  )
})

test('settleDeadBlobs(): dead = what the log says a segment keeps, less its live blobs', () => {
  const sa = withSegments(3)
  sa.added(10, 30, true)
  sa.blobLinked(10, 700)
  sa.settleDeadBlobs(
    new Map([
      [0, 1700],
      [S, 400],
    ]),
  )
  assert.equal(sa.get(0)?.deadBlobBytes, 1000)
  assert.equal(sa.get(S)?.deadBlobBytes, 400)
  assert.equal(sa.get(2 * S)?.deadBlobBytes, 0)
  assert.equal(sa.deadBlobBytes, 1400)
  // Missing blob files (the log keeps less than the live pages name) give no dead bytes.
  sa.settleDeadBlobs(new Map())
  assert.equal(sa.deadBlobBytes, 0)
})
