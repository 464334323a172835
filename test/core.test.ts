// core.test.ts: the core state machine driven with time as input (no sleeps, no network).
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Harness } from './harness.js'

const submitReply = (h: Harness, requestId: number) => {
  const reply = h.replies.get(requestId)
  assert.ok(reply !== undefined && reply.kind === 'submit', 'a submit reply arrived')
  return (reply as Extract<typeof reply, { kind: 'submit' }>).outcomes[0]!
}

test('submit is accepted once a write quorum stored it, then the owner claims and runs it once', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const requestId = h.submit('b', 'task-1')
  const outcome = submitReply(h, requestId)
  assert.ok(outcome.ok, 'accepted')
  for (const id of ['a', 'b', 'c']) assert.ok(h.node(id).record('task-1') !== null, `replica ${id} holds it`)
  assert.is(h.executions.length, 1, 'exactly one execution')
  const { node, order } = h.executions[0]!
  assert.is(node, h.node('a').replicaSetOf('task-1')[0], 'the owner runs it')
  assert.is(order.fencingToken, 1)
  h.finish(node, 'task-1', order.fencingToken)
  for (const id of ['a', 'b', 'c']) assert.is(h.node(id).record('task-1')!.state, 'succeeded', `replica ${id} sees the outcome`)
})

test('no quorum and no abort quorum: the outcome is answered as unknown, never 503; the task never appears', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  h.down.add('b'); h.down.add('c')
  const requestId = h.submit('a', 'task-2')
  assert.is(h.replies.get(requestId), undefined, 'no answer before the timeout')
  h.advance(2200) // the submit timeout, then the abort's own timeout: still no quorum for either
  assert.is(h.replies.get(requestId), undefined, 'no 503 while the abort is on a minority: b and c might hold the task')
  h.advance(1000) // up to the replicas' commit fallback
  const outcome = submitReply(h, requestId)
  assert.ok(!outcome.ok && outcome.error.code === 'internal' && outcome.error.message.startsWith('outcome unknown'), 'answered as unknown')
  h.down.clear()
  h.advance(5000)
  assert.is(h.executions.length, 0, 'never executed')
  const read = h.request('c', requestId => ({ kind: 'ReadRequested', atMs: h.nowMs, requestId, id: 'task-2' }))
  h.advance(300)
  const reply = h.replies.get(read)
  assert.ok(reply?.kind === 'read' && reply.record === null, 'reads as absent')
})

test('no quorum, then the abort reaches a quorum: 503, and the task never runs', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  h.down.add('b'); h.down.add('c')
  const requestId = h.submit('a', 'task-2b')
  h.advance(1100) // the submit times out; the abort reaches only a
  h.down.delete('c') // c is back before the fallback: the abort's retry reaches it
  h.advance(1500)
  const outcome = submitReply(h, requestId)
  assert.ok(!outcome.ok && outcome.error.code === 'no_quorum', 'refused with no_quorum once a quorum holds the abort')
  h.down.clear()
  h.advance(5000)
  assert.is(h.executions.length, 0, 'never executed')
})

test('a stale result (lower fencing token) is refused after a takeover with a higher epoch', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  submitReply(h, h.submit('a', 'task-3'))
  const first = h.executions[0]!
  // The owner hangs (paused): the others declare it dead and the next live member takes over.
  h.down.add(first.node)
  h.advance(1000)
  const second = h.executions[1]
  assert.ok(second !== undefined, 'the task was taken over')
  assert.ok(second!.node !== first.node)
  assert.ok(second!.order.fencingToken > first.order.fencingToken, 'with a higher epoch')
  assert.is(second!.order.attempt, 2)
  // The old owner wakes up and reports its late result: it is refused.
  h.down.delete(first.node)
  h.finish(first.node, 'task-3', first.order.fencingToken)
  h.advance(200)
  const stale = h.node(first.node).stats().staleResultsRefused + [...h.nodes.values()].reduce((sum, node) => sum + node.stats().staleWritesRefused, 0)
  assert.ok(stale >= 1, 'the late result was refused')
  h.finish(second!.node, 'task-3', second!.order.fencingToken)
  h.advance(200)
  for (const id of ['a', 'b', 'c']) {
    const record = h.node(id).record('task-3')!
    assert.is(record.state, 'succeeded')
    assert.is(record.epoch, second!.order.fencingToken, `replica ${id} keeps the newer epoch's outcome`)
  }
})

test('a failed attempt is retried after its backoff, then ends dead', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const requestId = h.request('a', rid => ({
    kind: 'SubmitRequested', atMs: h.nowMs, requestId: rid,
    items: [{ id: 'task-4', spec: { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 2, backoff: { kind: 'fixed', delayMs: 500, delayMsMax: 500 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null } }]
  }))
  assert.ok(submitReply(h, requestId).ok)
  const first = h.executions[0]!
  h.finish(first.node, 'task-4', first.order.fencingToken, false)
  assert.is(h.node(first.node).record('task-4')!.state, 'retrying')
  h.advance(400)
  assert.is(h.executions.length, 1, 'not before the backoff')
  h.advance(200)
  assert.is(h.executions.length, 2, 'retried after the backoff')
  const second = h.executions[1]!
  h.finish(second.node, 'task-4', second.order.fencingToken, false)
  assert.is(h.node('a').record('task-4')!.state, 'dead')
  assert.is(h.node('a').record('task-4')!.attempt, 2)
})

test('a delayed task does not start before its time', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const requestId = h.request('a', rid => ({
    kind: 'SubmitRequested', atMs: h.nowMs, requestId: rid,
    items: [{ id: 'task-5', spec: { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: 1000, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 10, delayMsMax: 10 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null } }]
  }))
  const startMs = h.nowMs
  assert.ok(submitReply(h, requestId).ok)
  h.advance(950, 10)
  assert.is(h.executions.length, 0)
  h.advance(100, 10)
  assert.is(h.executions.length, 1)
  assert.ok(h.nowMs - startMs >= 1000)
})

test('a shell task is refused when no member allows the shell executor', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const outcome = submitReply(h, h.submit('a', 'task-6', 'shell'))
  assert.ok(!outcome.ok && outcome.error.code === 'exec_disabled')
})

test('a node still joining refuses submits', () => {
  const h = new Harness(['a'], { joinGraceMs: 1000 })
  const outcome = submitReply(h, h.submit('a', 'task-7'))
  assert.ok(!outcome.ok && outcome.error.code === 'no_quorum')
  h.advance(1000)
  assert.ok(submitReply(h, h.submit('a', 'task-8')).ok)
})

test.run()
