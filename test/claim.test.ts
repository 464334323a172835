// claim.test.ts: whose promises a claim needs (core/claim.ts), and the ring walk that skips dead members.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { claimOutcome, claimQuorum } from '../src/core/claim.js'
import { buildRing, replicaSetAt } from '../src/core/ring.js'
import { keyPosition } from '../src/core/hash.js'

const dead = (...ids: string[]) => (peer: string): boolean => ids.includes(peer)

test('no stand-ins while the live members of the set are a majority', () => {
  const quorum = claimQuorum(['a', 'b', 'c'], ['b', 'c', 'd'], dead('a'))
  assert.equal(quorum.targets, ['a', 'b', 'c'])
  assert.equal(quorum.standIns, [])
  assert.is(claimOutcome(quorum, new Set(['b']), new Set()), 'open')
  assert.is(claimOutcome(quorum, new Set(['b', 'c']), new Set()), 'won')
  assert.is(claimOutcome(quorum, new Set(['b']), new Set(['c'])), 'open', 'a member declared dead may still answer')
  assert.is(claimOutcome(quorum, new Set(['b']), new Set(['a', 'c'])), 'lost')
})

test('two of three dead: the live member and a stand-in make the quorum, never stand-ins alone', () => {
  const quorum = claimQuorum(['a', 'b', 'c'], ['c', 'd', 'e'], dead('a', 'b'))
  assert.equal(quorum.targets, ['a', 'b', 'c', 'd', 'e'])
  assert.equal(quorum.required, ['c'])
  assert.is(quorum.needed, 2)
  assert.is(claimOutcome(quorum, new Set(['c']), new Set()), 'open')
  assert.is(claimOutcome(quorum, new Set(['d', 'e']), new Set()), 'open', 'the live replica must have promised')
  assert.is(claimOutcome(quorum, new Set(['c', 'e']), new Set()), 'won')
  assert.is(claimOutcome(quorum, new Set(['d', 'e']), new Set(['c', 'a'])), 'lost', 'the live replica refused')
  assert.is(claimOutcome(quorum, new Set(['c']), new Set(['d', 'e'])), 'open', 'the dead could still answer')
  assert.is(claimOutcome(quorum, new Set(['c']), new Set(['a', 'b', 'd', 'e'])), 'lost')
  assert.is(claimOutcome(quorum, new Set(['c', 'a']), new Set()), 'won', 'a majority of the set wins as always')
})

test('replicaSetAt with a filter: the first live members clockwise, which the set becomes once the dead are removed', () => {
  const members = ['a', 'b', 'c', 'd', 'e']
  const ring = buildRing(members, 16)
  for (let i = 0; i < 200; i++) {
    const key = keyPosition(`task-${i}`)
    const set = replicaSetAt(ring, key, 3)
    const gone = set.slice(0, 2)
    const live = replicaSetAt(ring, key, 3, member => !gone.includes(member))
    assert.equal(live, replicaSetAt(buildRing(members.filter(member => !gone.includes(member)), 16), key, 3))
    assert.ok(live.includes(set[2]!))
  }
  assert.equal(replicaSetAt(ring, 0, 3, () => false), [])
})

test.run()
