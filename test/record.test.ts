import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { canonicalText, merge, newRecord } from '../src/core/record.js'
import type { StoredState, TaskRecord } from '../src/core/types.js'
import { prng } from './prng.js'

const STATES: StoredState[] = ['pending', 'queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled', 'aborted']

function randomRecord (random: () => number): TaskRecord {
  const base = newRecord({
    id: 'task-1',
    spec: { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 10, delayMsMax: 10 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null },
    atMs: 1000,
    coordinator: 'a',
    replicas: ['a', 'b', 'c']
  })
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!
  const historyLength = 1 + Math.floor(random() * 3)
  return {
    ...base,
    state: pick(STATES),
    epoch: Math.floor(random() * 3),
    attempt: Math.floor(random() * 3),
    owner: pick([null, 'a', 'b']),
    committed: random() < 0.5,
    result: pick([null, 1, 'x']),
    history: Array.from({ length: historyLength }, (_, i) => ({ state: 'queued' as const, atMs: i, node: pick(['a', 'b']), attempt: 0 }))
  }
}

const same = (a: TaskRecord, b: TaskRecord): boolean => canonicalText(a) === canonicalText(b) && a.committed === b.committed

test('merge is commutative, associative and idempotent over seeded random records', () => {
  const random = prng(42)
  for (let i = 0; i < 5000; i++) {
    const a = randomRecord(random)
    const b = randomRecord(random)
    const c = randomRecord(random)
    assert.ok(same(merge(a, b), merge(b, a)), 'commutative')
    assert.ok(same(merge(merge(a, b), c), merge(a, merge(b, c))), 'associative')
    assert.ok(same(merge(a, a), a), 'idempotent')
  }
})

test('terminal beats non-terminal; a higher epoch beats a lower one; committed is OR-ed', () => {
  const random = prng(7)
  const base = randomRecord(random)
  const running = { ...base, state: 'running' as const, epoch: 5, attempt: 2, committed: true }
  const succeeded = { ...base, state: 'succeeded' as const, epoch: 1, attempt: 1, committed: false }
  assert.is(merge(running, succeeded).state, 'succeeded')
  assert.is(merge(running, succeeded).committed, true)
  const older = { ...base, state: 'running' as const, epoch: 1, committed: false }
  const newer = { ...base, state: 'running' as const, epoch: 2, committed: false }
  assert.is(merge(older, newer).epoch, 2)
})

test('a delayed task starts pending with its runAt', () => {
  const record = newRecord({
    id: 't',
    spec: { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: 500, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 0, delayMsMax: 0 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null },
    atMs: 1000, coordinator: 'a', replicas: ['a']
  })
  assert.is(record.state, 'pending')
  assert.is(record.runAtMs, 1500)
})

test.run()
