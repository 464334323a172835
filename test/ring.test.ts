import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { buildRing, replicaSet, ringShares, writeQuorum } from '../src/core/ring.js'

const peers = (n: number, prefix = 'peer'): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
const keys = Array.from({ length: 20_000 }, (_, i) => `task-${i}`)

test('replica set: R distinct members, owner first, deterministic', () => {
  const ring = buildRing(peers(10))
  for (const key of keys.slice(0, 1000)) {
    const set = replicaSet(ring, key, 3)
    assert.is(set.length, 3)
    assert.is(new Set(set).size, 3)
    assert.equal(replicaSet(buildRing(peers(10).reverse()), key, 3), set, 'member order does not matter')
  }
})

test('R is capped by the number of members; a one-node ring works with R = 1', () => {
  assert.equal(replicaSet(buildRing(['solo']), 'x', 3), ['solo'])
  assert.is(replicaSet(buildRing(peers(2)), 'x', 3).length, 2)
  assert.equal(replicaSet(buildRing([]), 'x', 3), [])
})

test('write quorum is a majority', () => {
  assert.equal([1, 2, 3, 4, 5].map(writeQuorum), [1, 2, 2, 3, 3])
})

test('a join moves about 1/N of the keys (owner changes), measured', () => {
  for (const n of [4, 10, 20]) {
    const before = buildRing(peers(n))
    const after = buildRing([...peers(n), 'newcomer'])
    let moved = 0
    for (const key of keys) if (replicaSet(before, key, 1)[0] !== replicaSet(after, key, 1)[0]) moved++
    const fraction = moved / keys.length
    const expected = 1 / (n + 1)
    assert.ok(Math.abs(fraction - expected) < expected * 0.35, `n=${n}: moved ${fraction.toFixed(3)}, expected about ${expected.toFixed(3)}`)
    // Every moved key moved to the newcomer: consistent hashing moves nothing else.
    for (const key of keys.slice(0, 2000)) {
      const ownerAfter = replicaSet(after, key, 1)[0]
      if (replicaSet(before, key, 1)[0] !== ownerAfter) assert.is(ownerAfter, 'newcomer')
    }
  }
})

test('virtual positions even out ownership: max/avg share below 1.5 with 64 positions', () => {
  const n = 20
  const shares = [...ringShares(buildRing(peers(n))).values()]
  const sum = shares.reduce((a, b) => a + b, 0)
  assert.ok(Math.abs(sum - 1) < 1e-9, `shares sum to 1 (${sum})`)
  const ratio = Math.max(...shares) / (1 / n)
  assert.ok(ratio < 1.5, `max/avg ${ratio.toFixed(2)}`)
  const single = [...ringShares(buildRing(peers(n), 1)).values()]
  assert.ok(Math.max(...single) / (1 / n) > ratio, 'one position per peer is worse')
})

test.run()
