// scheduling-core.test.ts: issue 5's features at the level of the core, time as input.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Harness } from './harness.js'
import { idempotentId } from '../src/core/node.js'
import { merge, newRecord } from '../src/core/record.js'
import { occurrenceId } from '../src/core/schedule.js'
import { checkSchedule } from '../sim/checkers.js'
import type { CommandOutcome, ScheduleSpec, SubmitOutcome, TaskRecord } from '../src/core/types.js'
import { spec } from './harness.js'

function submitted (h: Harness, requestId: number): SubmitOutcome {
  const reply = h.replies.get(requestId)
  assert.ok(reply !== undefined && reply.kind === 'submit', `request ${requestId} answered`)
  return (reply as { kind: 'submit', outcomes: SubmitOutcome[] }).outcomes[0]!
}

function commanded (h: Harness, requestId: number): CommandOutcome {
  const reply = h.replies.get(requestId)
  assert.ok(reply !== undefined && reply.kind === 'command', `command ${requestId} answered`)
  return (reply as { kind: 'command', outcome: CommandOutcome }).outcome
}

function record (h: Harness, id: string): TaskRecord | null {
  for (const node of h.nodes.values()) {
    const held = node.record(id)
    if (held !== null) return held
  }
  return null
}

/** Finish every execution not finished yet (in order), as successes. */
function finishAll (h: Harness, finished: Set<number>, ok = true): void {
  h.executions.forEach((execution, index) => {
    if (finished.has(index)) return
    finished.add(index)
    h.finish(execution.node, execution.order.taskId, execution.order.fencingToken, ok)
  })
}

const EVERY_1S: ScheduleSpec = { cron: null, timezone: null, everyMs: 1000, catchUp: 'all', overlap: 'allow' }

test('one idempotency key submitted concurrently to three nodes makes one task', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const requests = ['a', 'b', 'c', 'a', 'b', 'c'].map((node, i) => h.enqueue(node, requestId => ({
    kind: 'SubmitRequested', atMs: h.nowMs, requestId, items: [{ id: `fresh-${i}`, spec: spec({ idempotencyKey: 'order-42' }) }]
  })))
  h.run()
  h.advance(500)
  const outcomes = requests.map(requestId => submitted(h, requestId))
  const ids = new Set(outcomes.map(outcome => outcome.ok ? outcome.record.id : `error ${outcome.error.code}`))
  assert.equal([...ids], [idempotentId('order-42')], 'every answer names the same task')
  assert.ok(outcomes.filter(outcome => outcome.ok && outcome.created).length <= 1, 'at most one answer says created')
  h.advance(500)
  assert.is(h.executions.filter(execution => execution.order.taskId === idempotentId('order-42')).length, 1, 'it runs once')
  const later = submitted(h, h.submitSpec('b', 'fresh-9', { idempotencyKey: 'order-42' }))
  assert.ok(later.ok && !later.created && later.record.id === idempotentId('order-42'), 'a later submit answers the existing task (200)')
})

test('dependencies: a child starts only after its parents succeeded; unknown parents are refused', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'parent-1')).ok)
  assert.ok(submitted(h, h.submitSpec('b', 'child-1', { dependsOn: ['parent-1'] })).ok)
  const refused = submitted(h, h.submitSpec('c', 'child-2', { dependsOn: ['nobody'] }))
  assert.ok(!refused.ok && refused.error.code === 'invalid_input' && refused.error.message.includes('nobody'))
  h.advance(1000)
  assert.equal(h.executions.map(execution => execution.order.taskId), ['parent-1'], 'the child waits')
  const finished = new Set<number>()
  finishAll(h, finished)
  const parentDoneAt = h.nowMs
  h.advance(1000)
  assert.equal(h.executions.map(execution => execution.order.taskId), ['parent-1', 'child-1'], 'the child ran after its parent')
  assert.ok(record(h, 'child-1')!.startedAtMs! >= parentDoneAt)
})

test('dependencies: a child of a dead parent is cancelled with the reason', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'parent-2')).ok)
  assert.ok(submitted(h, h.submitSpec('a', 'child-3', { dependsOn: ['parent-2'] })).ok)
  h.advance(200)
  finishAll(h, new Set(), false)
  h.advance(1500)
  const child = record(h, 'child-3')!
  assert.is(child.state, 'cancelled')
  assert.match(child.error ?? '', /parent-2 ended dead/)
  assert.is(h.executions.filter(execution => execution.order.taskId === 'child-3').length, 0)
})

test('cancel: a delayed task never runs; a running one is stopped and its late result refused', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'later', { delayMs: 5000 })).ok)
  const cancelled = commanded(h, h.command('b', 'later', 'cancel'))
  assert.ok(cancelled.ok && cancelled.record.state === 'cancelled')
  h.advance(6000)
  assert.is(h.executions.length, 0, 'the cancelled delayed task never ran')

  assert.ok(submitted(h, h.submitSpec('a', 'busy')).ok)
  h.advance(100)
  const run = h.executions.find(execution => execution.order.taskId === 'busy')!
  const stop = commanded(h, h.command('c', 'busy', 'cancel'))
  assert.ok(stop.ok && stop.record.state === 'cancelled')
  assert.ok(h.aborts.some(abort => abort.taskId === 'busy' && abort.node === run.node), 'the running execution was told to stop')
  h.finish(run.node, 'busy', run.order.fencingToken, true)
  h.advance(500)
  for (const id of ['a', 'b', 'c']) assert.is(h.node(id).record('busy')!.state, 'cancelled', `cancel is final on ${id}`)
  const again = commanded(h, h.command('a', 'busy', 'cancel'))
  assert.ok(again.ok && again.record.state === 'cancelled', 'cancelling twice answers the cancelled record')
  const missing = commanded(h, h.command('a', 'nope', 'cancel'))
  assert.ok(!missing.ok && missing.error.code === 'not_found')
})

test('cancel wins over a racing completion in every merge order', () => {
  const base = newRecord({ id: 'race', spec: spec(), atMs: 1, coordinator: 'a', replicas: ['a', 'b', 'c'] })
  const running: TaskRecord = { ...base, state: 'running', epoch: 3, attempt: 1, committed: true }
  const succeeded: TaskRecord = { ...running, state: 'succeeded', finishedAtMs: 5 }
  const cancelled: TaskRecord = { ...base, state: 'cancelled', epoch: 1, committed: true, finishedAtMs: 4 }
  assert.is(merge(succeeded, cancelled).state, 'cancelled')
  assert.is(merge(cancelled, succeeded).state, 'cancelled')
  assert.is(merge(merge(running, succeeded), cancelled).state, 'cancelled')
})

test('retry: a dead task runs again with a new generation and a fresh attempt budget', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'flaky', { maxAttempts: 2 })).ok)
  const finished = new Set<number>()
  h.advance(100)
  finishAll(h, finished, false)
  h.advance(100)
  finishAll(h, finished, false)
  assert.is(record(h, 'flaky')!.state, 'dead')
  const notDead = commanded(h, h.command('b', 'flaky-missing', 'retry'))
  assert.ok(!notDead.ok && notDead.error.code === 'not_found')
  const retried = commanded(h, h.command('b', 'flaky', 'retry'))
  assert.ok(retried.ok && retried.record.state === 'queued' && retried.record.generation === 1)
  h.advance(100)
  assert.is(h.executions.length, 3)
  assert.is(h.executions[2]!.order.attempt, 3, 'attempts keep counting')
  finishAll(h, finished, false)
  assert.is(record(h, 'flaky')!.state, 'retrying', 'a fresh budget of maxAttempts')
  h.advance(100)
  finishAll(h, finished, true)
  h.advance(100)
  for (const id of ['a', 'b', 'c']) assert.is(h.node(id).record('flaky')!.state, 'succeeded')
  const conflict = commanded(h, h.command('a', 'flaky', 'retry'))
  assert.ok(!conflict.ok && conflict.error.code === 'conflict', 'a succeeded task is not retried')
})

test('exponential backoff has jitter from the record, the same on every replica', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const backoff = { kind: 'exponential' as const, delayMs: 1000, delayMsMax: 60_000 }
  for (let i = 0; i < 8; i++) assert.ok(submitted(h, h.submitSpec('a', `jit-${i}`, { maxAttempts: 3, backoff })).ok)
  h.advance(100)
  const failedAt = h.nowMs
  finishAll(h, new Set(), false)
  const delays = Array.from({ length: 8 }, (_, i) => record(h, `jit-${i}`)!.runAtMs - failedAt)
  for (const delay of delays) assert.ok(delay >= 500 && delay <= 1000, `delay ${delay} within [base/2, base]`)
  assert.ok(new Set(delays).size > 1, 'the delays differ between tasks')
})

test('a schedule fires each tick exactly once while its owner crashes (catch-up all)', () => {
  const h = new Harness(['a', 'b', 'c', 'd'])
  h.meet()
  const createdAt = h.nowMs
  assert.ok(submitted(h, h.submitSpec('a', 'sched', { schedule: EVERY_1S })).ok)
  const finished = new Set<number>()
  const tickOwner = (): string => [...h.nodes.keys()].find(id => !h.down.has(id) && h.node(id).replicaSetOf('sched')[0] === id) ?? ''
  for (let i = 0; i < 4; i++) {
    h.advance(1000, 20)
    finishAll(h, finished)
  }
  const owner = h.node('a').replicaSetOf('sched')[0]!
  h.crash(owner)
  for (let i = 0; i < 8; i++) {
    h.advance(1000, 20)
    finishAll(h, finished)
  }
  const endAt = h.nowMs
  // The last tick's occurrence may still be on its way (a dead replica: a hint holds its copy first).
  h.advance(1000, 20)
  finishAll(h, finished)
  assert.ok(tickOwner() !== owner)
  const runs = h.executions.map(execution => execution.order.taskId).filter(id => id.startsWith('sched@'))
  assert.is(new Set(runs).size, runs.length, 'no occurrence ran twice')
  const expected = Array.from({ length: Math.floor((endAt - createdAt) / 1000) }, (_, k) => createdAt + (k + 1) * 1000)
  const ran = runs.map(id => Date.parse(id.slice('sched@'.length))).filter(tick => tick <= endAt)
  const report = checkSchedule({ expected, actual: ran, toleranceMs: 0 })
  assert.is(report.extra.length, 0, 'no extra occurrence')
  assert.is(report.missed.length, 0, `no missed occurrence (catch-up all fires the ticks of the failover window): missed ${report.missed.map(tick => tick - createdAt).join(',')}; ran ${ran.map(tick => tick - createdAt).join(',')}`)
  assert.is(occurrenceId('sched', createdAt + 1000), runs[0])
})

test('catch-up latest fires only the newest missed tick; pause and resume skip the paused ticks', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'latest', { schedule: { ...EVERY_1S, catchUp: 'latest' } })).ok)
  h.advance(1000, 20)
  assert.is(h.executions.length, 1)
  const paused = commanded(h, h.command('b', 'latest', 'pause'))
  assert.ok(paused.ok && paused.record.schedule!.paused)
  h.advance(5000, 20)
  assert.is(h.executions.length, 1, 'nothing fires while paused')
  const resumed = commanded(h, h.command('c', 'latest', 'resume'))
  assert.ok(resumed.ok && !resumed.record.schedule!.paused)
  h.advance(1000, 20)
  assert.is(h.executions.length, 2, 'after resume the next tick fires, the paused ones do not')
  const notSchedule = commanded(h, h.command('a', h.executions[0]!.order.taskId, 'pause'))
  assert.ok(!notSchedule.ok && notSchedule.error.code === 'conflict')
  const deleted = commanded(h, h.command('a', 'latest', 'cancel'))
  assert.ok(deleted.ok && deleted.record.state === 'cancelled')
  h.advance(3000, 20)
  assert.is(h.executions.length, 2, 'a deleted schedule fires no more')
})

test('overlap forbid skips a tick while the previous occurrence still runs', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'solo', { schedule: { ...EVERY_1S, overlap: 'forbid' } })).ok)
  h.advance(3500, 20)
  assert.is(h.executions.length, 1, 'ticks 2 and 3 were skipped: occurrence 1 still runs')
  finishAll(h, new Set())
  h.advance(1000, 20)
  assert.is(h.executions.length, 2)
  const schedule = record(h, 'solo')!.schedule!
  assert.ok(schedule.skipped >= 2, `skipped ${schedule.skipped}`)
})

test('cron schedules fire on their calendar ticks in their time zone', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const cron: ScheduleSpec = { cron: '*/2 * * * * *', timezone: 'Europe/Berlin', everyMs: null, catchUp: 'all', overlap: 'allow' }
  assert.ok(submitted(h, h.submitSpec('a', 'cron', { schedule: cron })).ok)
  h.advance(6100, 20)
  const ticks = h.executions.map(execution => Date.parse(execution.order.taskId.slice('cron@'.length)))
  assert.ok(ticks.length === 3, `3 ticks in 6 s, got ${ticks.length}`)
  for (const tick of ticks) assert.is(tick % 2000, 0, 'on even seconds')
})

test('per-type limit: at most N runs of a type at once on a node', () => {
  const h = new Harness(['a'], { replicas: 1, capacity: 4, typeLimits: { noop: 1 } }, ['noop', 'other'])
  h.meet()
  for (let i = 0; i < 3; i++) assert.ok(submitted(h, h.submitSpec('a', `lim-${i}`)).ok)
  assert.ok(submitted(h, h.submitSpec('a', 'other-1', { type: 'other' })).ok)
  h.advance(100)
  assert.equal(h.executions.map(execution => execution.order.type).sort(), ['noop', 'other'], 'one noop at a time, other types unaffected')
  const finished = new Set<number>()
  finishAll(h, finished)
  h.advance(100)
  assert.is(h.executions.filter(execution => execution.order.type === 'noop').length, 2)
})

test('priorities: higher first, and a long wait ages a low priority ahead', () => {
  const h = new Harness(['a'], { replicas: 1, capacity: 1 })
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'block')).ok)
  h.advance(50)
  assert.ok(submitted(h, h.submitSpec('a', 'low')).ok)
  assert.ok(submitted(h, h.submitSpec('a', 'high', { priority: 5 })).ok)
  const finished = new Set<number>()
  finishAll(h, finished)
  h.advance(50)
  assert.is(h.executions[1]!.order.taskId, 'high')
  finishAll(h, finished)
  h.advance(50)
  // Aging: `old` has waited 2 minutes, `newer` (priority +1) just arrived; old goes first.
  assert.ok(submitted(h, h.submitSpec('a', 'block-2')).ok)
  h.advance(50)
  assert.ok(submitted(h, h.submitSpec('a', 'old', { runAtMs: h.nowMs - 120_000 })).ok)
  assert.ok(submitted(h, h.submitSpec('a', 'newer', { priority: 1 })).ok)
  finishAll(h, finished)
  h.advance(50)
  assert.is(h.executions[h.executions.length - 1]!.order.taskId, 'old')
})

test('retention: a finished task is removed from every replica after its period, and not brought back', () => {
  const h = new Harness(['a', 'b', 'c'], { retentionMs: 2000, syncIntervalMs: 500 })
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'short-lived')).ok)
  h.advance(100)
  finishAll(h, new Set())
  h.advance(1000)
  for (const id of ['a', 'b', 'c']) assert.ok(h.node(id).record('short-lived') !== null)
  h.advance(2000)
  for (const id of ['a', 'b', 'c']) {
    assert.is(h.node(id).record('short-lived'), null, `gone from ${id}`)
    assert.ok(!h.disks.get(id)!.has('short-lived'), `gone from ${id}'s disk`)
  }
  h.advance(2000)
  for (const id of ['a', 'b', 'c']) assert.is(h.node(id).record('short-lived'), null, 'anti-entropy does not resurrect it')
})

test('progress reported by a running handler reaches the replicas', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'long')).ok)
  h.advance(100)
  const run = h.executions[0]!
  h.request(run.node, () => ({ kind: 'ProgressReported', atMs: h.nowMs, taskId: 'long', epoch: run.order.fencingToken, progress: 40 }))
  h.advance(100)
  for (const id of ['a', 'b', 'c']) assert.is(h.node(id).record('long')!.progress, 40)
  h.request(run.node, () => ({ kind: 'ProgressReported', atMs: h.nowMs, taskId: 'long', epoch: run.order.fencingToken - 1, progress: 90 }))
  assert.is(h.node(run.node).record('long')!.progress, 40, 'a stale epoch cannot report')
})

test('a task whose type no node runs stays queued and says why', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  assert.ok(submitted(h, h.submitSpec('a', 'orphan', { type: 'gpu' })).ok)
  h.advance(500)
  const reply = h.replies.get(h.request('b', requestId => ({ kind: 'ReadRequested', atMs: h.nowMs, requestId, id: 'orphan' })))
  assert.ok(reply?.kind === 'read' && reply.record?.state === 'queued')
  assert.match((reply as { waiting: string | null }).waiting ?? '', /no live node can run tasks of type "gpu"/)
})

test.run()
