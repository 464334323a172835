// wire-codec.test.ts: records as bytes (wire.ts's positional layout) and stored entries
// (store.ts) round-trip exactly; cached bytes follow the record object, never a copy of it;
// records in the older map form still load; bad layouts are refused with a reason.
import { crc32 } from 'node:zlib'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { pack, unpack } from 'msgpackr'
import type { PeerMessage } from '../src/core/protocol.js'
import { newRecord } from '../src/core/record.js'
import type { TaskRecord } from '../src/core/types.js'
import { encodeEvents, encodePeerMessage, encodeRecord, validateEvents, validatePeerMessage, validateStoredEntry } from '../src/net/wire.js'
import { decodeEntry, encodeEntry } from '../src/store/store.js'
import { Harness } from './harness.js'

const peers = ['12D3KooWJtzX4DybBvTsGLgu6bskBYFcpDeoayzZM2TMZjWD52M9', '12D3KooWSqoeqa9KYU6hGASYWretEB237CUAyeAfwQqPNLyzYjEL', '12D3KooWBXLwaCFNjKiqnKraZCn1PrE2Yg4SDSURxvCwLcNTdfLg']

const queued = newRecord({
  id: 'task-1',
  spec: { type: 'noop', payload: { nested: [1, 'two', null], text: 'é✓' }, priority: -3, runAtMs: null, delayMs: null, maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 100, delayMsMax: 1000 }, timeoutMs: 5000, idempotencyKey: 'key', dependsOn: ['task-0'] },
  atMs: 1000, coordinator: peers[2]!, replicas: peers
})
const running: TaskRecord = {
  ...queued, state: 'running', epoch: 7, attempt: 2, owner: peers[0]!, committed: true, startedAtMs: 1500,
  history: [...queued.history, { state: 'retrying', atMs: 1200, node: peers[1]!, attempt: 1, error: 'boom' }, { state: 'running', atMs: 1500, node: peers[0]!, attempt: 2 }]
}
/** Peers outside the replica set are written as strings, not indexes. */
const elsewhere: TaskRecord = {
  ...running, state: 'succeeded', owner: 'peer-outside', coordinator: 'another-peer', result: { ok: [1.5, -0, 2 ** 53 - 1] }, error: null, finishedAtMs: 1600, scheduleId: 'every-minute@1000',
  history: [...running.history, { state: 'succeeded', atMs: 1600, node: 'peer-outside', attempt: 2 }]
}

test('every record-carrying message round-trips through encodePeerMessage', () => {
  const samples: PeerMessage[] = [
    { kind: 'store', rid: 1, record: queued },
    { kind: 'store', rid: 0, record: elsewhere },
    { kind: 'stored', rid: 300, id: 'task-1', ok: true, record: null },
    { kind: 'stored', rid: 0, id: 't'.repeat(40), ok: false, record: null },
    { kind: 'claimed', rid: 2 ** 32, id: 'é'.repeat(150), ok: true, record: null },
    { kind: 'claimed', rid: 65_535, id: '✓', ok: false, record: null },
    { kind: 'stored', rid: 2 ** 40, id: 'task-1', ok: false, record: running },
    { kind: 'claim', rid: 70_000, record: running },
    { kind: 'claimed', rid: 2, id: 'task-1', ok: false, record: elsewhere },
    { kind: 'readReply', rid: 3, records: [queued, running, elsewhere] },
    { kind: 'listReply', rid: 4, records: [] },
    { kind: 'decide', ids: ['task-1'], commit: true },
    { kind: 'want', ids: ['task-1'] }
  ]
  for (const message of samples) {
    const result = validatePeerMessage(unpack(encodePeerMessage(message)))
    assert.ok(result.ok, `${message.kind}: ${result.ok ? '' : result.reason}`)
    assert.equal(result.ok && result.value, message)
  }
})

test('every message the core sends in a simulated run round-trips through encodePeerMessage', () => {
  const h = new Harness(['a', 'b', 'c'])
  const seen = new Set<string>()
  for (const node of h.nodes.values()) {
    const drain = node.drain.bind(node)
    node.drain = () => {
      const effects = drain()
      for (const effect of effects) {
        if (effect.kind !== 'Send') continue
        const result = validatePeerMessage(unpack(encodePeerMessage(effect.message)))
        assert.ok(result.ok, `${effect.message.kind}: ${result.ok ? '' : result.reason}`)
        assert.equal(result.ok && result.value, effect.message)
        seen.add(effect.message.kind)
      }
      return effects
    }
  }
  h.meet()
  h.submit('a', 'w1')
  h.advance(6000)
  for (const kind of ['store', 'stored', 'claim', 'claimed']) assert.ok(seen.has(kind), `saw ${kind}`)
})

test('a record is packed once per object, smaller than as a map; a changed copy gets its own bytes', () => {
  const bytes = encodeRecord(running)
  assert.is(encodeRecord(running), bytes, 'the same bytes for the same object')
  assert.ok(bytes.byteLength * 2 < pack(running).byteLength, `${bytes.byteLength} bytes vs ${pack(running).byteLength} as a map`)
  const committed = { ...running, committed: false }
  assert.is.not(encodeRecord(committed), bytes)
  const decoded = validatePeerMessage(unpack(encodePeerMessage({ kind: 'claim', rid: 1, record: committed })))
  assert.ok(decoded.ok && decoded.value.kind === 'claim' && decoded.value.record.committed === false)
})

test('a decoded record is stored with (a copy of) the bytes it came in', () => {
  const frame = Buffer.from(encodePeerMessage({ kind: 'store', rid: 1, record: elsewhere }))
  const incoming = validatePeerMessage(unpack(frame))
  assert.ok(incoming.ok && incoming.value.kind === 'store')
  const record = (incoming.value as Extract<PeerMessage, { kind: 'store' }>).record
  const expected = [...encodeRecord(elsewhere)]
  assert.equal([...encodeRecord(record)], expected)
  frame.fill(0) // the frame's buffer is reused or freed: the cached bytes must not change
  assert.equal([...encodeRecord(record)], expected)
})

test('stored entries round-trip at every size of promised and record', () => {
  for (const promised of [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
    const entry = { record: running, promised }
    assert.equal(decodeEntry(encodeEntry(entry)), entry, `promised ${promised}`)
  }
  for (const size of [10, 300, 70_000]) {
    const entry = { record: { ...queued, payload: 'x'.repeat(size) }, promised: 3 }
    assert.equal(decodeEntry(encodeEntry(entry)), entry, `payload of ${size}`)
  }
})

test('entries stored as msgpack maps (before the record layout) still load', () => {
  const entry = { record: running, promised: 9 }
  const body = pack(entry)
  const value = new Uint8Array(body.byteLength + 4)
  new DataView(value.buffer).setUint32(0, crc32(body) >>> 0)
  value.set(body, 4)
  assert.equal(decodeEntry(value), entry)
})

test('a corrupt entry is absent, not an error', () => {
  const value = encodeEntry({ record: queued, promised: 1 }).slice()
  value[value.byteLength - 20]! ^= 0x01
  assert.is(decodeEntry(value), null)
})

test('bad record bytes are refused with a reason', () => {
  const layout = unpack(encodeRecord(running)) as unknown[]
  const variants: Array<[string, unknown[]]> = [
    ['another layout version', [2, ...layout.slice(1)]],
    ['a missing field', layout.slice(0, -1)],
    ['a replica index out of range', layout.map((value, index) => index === 13 ? 3 : value)],
    ['a fractional replica index', layout.map((value, index) => index === 15 ? 0.5 : value)],
    ['a bad history entry', layout.map((value, index) => index === 26 ? [['running', 1, 0]] : value)]
  ]
  for (const [what, bad] of variants) {
    const result = validatePeerMessage({ kind: 'store', rid: 1, record: pack(bad) })
    assert.ok(!result.ok, what)
  }
  assert.ok(!validatePeerMessage({ kind: 'store', rid: 1, record: Uint8Array.of(0xc1) }).ok, 'not msgpack')
  assert.throws(() => validateStoredEntry({ record: Uint8Array.of(0x90), promised: 0 }))
})

test('task events round-trip in their compact gossip form, and the older form still reads', () => {
  const events = [
    { id: 'task-1', state: 'queued' as const, attempt: 0, atMs: 1_795_000_000_000, node: peers[0]! },
    { id: 'task-2', state: 'running' as const, attempt: 1, atMs: 1_795_000_000_250, node: peers[1]! },
    { id: 'task-1', state: 'succeeded' as const, attempt: 1, atMs: 1_794_999_999_999, node: peers[0]! }
  ]
  const compact = unpack(pack(encodeEvents(events)))
  assert.equal(validateEvents(compact), { ok: true, value: events })
  const many = Array.from({ length: 100 }, (_, i) => ({ ...events[i % 3]!, id: `t${1e20 + i}` }))
  assert.equal(validateEvents(unpack(pack(encodeEvents(many)))), { ok: true, value: many })
  assert.ok(pack(encodeEvents(many)).byteLength * 2 < pack(many).byteLength, `${pack(encodeEvents(many)).byteLength} vs ${pack(many).byteLength} bytes`)
  assert.equal(validateEvents(unpack(pack(events))), { ok: true, value: events })
  assert.equal(validateEvents(encodeEvents([])), { ok: true, value: [] })
  const bad = { nodes: [peers[0]], base: 0, events: [['task-1', 'queued', 0, 0, 1]] }
  assert.ok(!validateEvents(bad).ok, 'a node index out of range')
})

test.run()
