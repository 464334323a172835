// wire.test.ts: every message the core can send passes the edge validator unchanged after a
// msgpack round trip, and junk never throws past it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pack, unpack } from 'msgpackr'
import type { PeerMessage } from '../src/core/protocol.js'
import { newRecord } from '../src/core/record.js'
import { validateHeartbeat, validatePeerMessage } from '../src/net/wire.js'
import { Harness } from './harness.js'
import { prng } from './prng.js'

const record = newRecord({
  id: 'task-1',
  spec: { type: 'noop', payload: { nested: [1, 'two', null] }, priority: 3, runAtMs: null, delayMs: null, maxAttempts: 2, backoff: { kind: 'exponential', delayMs: 100, delayMsMax: 1000 }, timeoutMs: 5000, idempotencyKey: null, dependsOn: [], schedule: null },
  atMs: 1000, coordinator: 'peer-a', replicas: ['peer-a', 'peer-b']
})

const samples: PeerMessage[] = [
  { kind: 'store', rid: 1, record },
  { kind: 'stored', rid: 1, id: 'task-1', ok: true, record: null },
  { kind: 'stored', rid: 1, id: 'task-1', ok: false, record },
  { kind: 'decide', ids: ['task-1'], commit: true },
  { kind: 'claim', rid: 2, record: { ...record, state: 'running', epoch: 1, attempt: 1, owner: 'peer-a' } },
  { kind: 'claimed', rid: 2, id: 'task-1', ok: true, record: null },
  { kind: 'read', rid: 3, ids: ['task-1'] },
  { kind: 'readReply', rid: 3, records: [record] },
  { kind: 'list', rid: 4, query: { state: 'queued', type: null, scheduleId: null, limit: 10, cursor: null } },
  { kind: 'listReply', rid: 4, records: [record] },
  { kind: 'sync', rid: 5, digests: [0, 4294967295, 12345] },
  { kind: 'syncKeys', rid: 5, buckets: [1, 63], keys: [['task-1', [0, 1, 1, 2, 3]]] },
  { kind: 'want', ids: ['task-1'] },
  { kind: 'ask', ids: ['task-1'] }
]

test('every message kind survives msgpack and validation unchanged', () => {
  const kinds = new Set<string>()
  for (const message of samples) {
    const result = validatePeerMessage(unpack(pack(message)))
    assert.ok(result.ok, `${message.kind}: ${result.ok ? '' : result.reason}`)
    assert.equal(result.ok && result.value, message)
    kinds.add(message.kind)
  }
  assert.is(kinds.size, 13, 'all thirteen message kinds')
})

test('every message the core sends in a simulated run passes validation', () => {
  const h = new Harness(['a', 'b', 'c'])
  const seen = new Set<string>()
  for (const node of h.nodes.values()) {
    const drain = node.drain.bind(node)
    node.drain = () => {
      const effects = drain()
      for (const effect of effects) {
        if (effect.kind !== 'Send') continue
        const result = validatePeerMessage(unpack(pack(effect.message)))
        assert.ok(result.ok, `${effect.message.kind}: ${result.ok ? '' : result.reason}`)
        seen.add(effect.message.kind)
      }
      return effects
    }
  }
  h.meet()
  h.submit('a', 'w1')
  h.advance(6000)
  for (const kind of ['store', 'stored', 'claim', 'claimed', 'sync', 'syncKeys']) assert.ok(seen.has(kind), `saw ${kind}`)
})

test('random junk is refused with a reason, never thrown', () => {
  const random = prng(99)
  const junk = (depth: number): unknown => {
    const r = random()
    if (depth > 3 || r < 0.2) return [null, 1, -1, 'x', true, 1e308, NaN][Math.floor(random() * 7)]
    if (r < 0.5) return Array.from({ length: Math.floor(random() * 4) }, () => junk(depth + 1))
    const o: Record<string, unknown> = {}
    for (const key of ['kind', 'rid', 'record', 'ids', 'digests', 'keys', '__proto__', 'id', 'state']) if (random() < 0.5) o[key] = junk(depth + 1)
    if (random() < 0.5) o.kind = samples[Math.floor(random() * samples.length)]!.kind
    return o
  }
  for (let i = 0; i < 5000; i++) {
    const value = junk(0)
    const result = validatePeerMessage(value)
    if (result.ok) assert.ok(typeof result.value.kind === 'string')
    assert.not.throws(() => validateHeartbeat(value, 'peer-a'))
  }
})

test('a heartbeat is believed only from the peer that signed it', () => {
  const heartbeat = { protocol: 1, peerId: 'peer-a', api: 'http://127.0.0.1:7070', addrs: [], load: { running: 0, queued: 0, capacity: 8, durationMsEwma: 0 }, types: ['noop'], leaving: false, left: false, sequence: 1 }
  assert.ok(validateHeartbeat(heartbeat, 'peer-a').ok)
  const forged = validateHeartbeat(heartbeat, 'peer-b')
  assert.ok(!forged.ok && /signing peer/.test(forged.reason))
})

test.run()
