// failover.test.ts: design.md section 4 at the core level, with time as input: takeover,
// hinted handoff through anti-entropy, digest sync, join pull, drain handoff, restart.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Harness } from './harness.js'

function submitMany (h: Harness, node: string, ids: string[]): void {
  const requestId = h.request(node, rid => ({
    kind: 'SubmitRequested', atMs: h.nowMs, requestId: rid,
    items: ids.map(id => ({ id, spec: { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 1, backoff: { kind: 'fixed' as const, delayMs: 10, delayMsMax: 10 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null } }))
  }))
  // With a replica down, a submit is answered once a hint holds the missing copy (a tick or so).
  for (let waited = 0; !h.replies.has(requestId) && waited < 2000; waited += 50) h.advance(50)
  const reply = h.replies.get(requestId)
  assert.ok(reply?.kind === 'submit' && reply.outcomes.every(outcome => outcome.ok), 'all accepted')
}

/** Finish every execution handed out so far; returns how many ran per task. */
function finishAll (h: Harness, runs: Map<string, number>): void {
  for (;;) {
    const batch = h.executions.splice(0)
    if (batch.length === 0) return
    for (const { node, order } of batch) {
      runs.set(order.taskId, (runs.get(order.taskId) ?? 0) + 1)
      if (!h.down.has(node)) h.finish(node, order.taskId, order.fencingToken)
    }
  }
}

test('a replica that was down while its task finished catches up by anti-entropy and runs nothing again', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e'])
  h.meet()
  const ids = Array.from({ length: 60 }, (_, i) => `t${i}`)
  h.down.add('e')
  h.advance(1000) // e is dead to the others
  submitMany(h, 'a', ids)
  const runs = new Map<string, number>()
  finishAll(h, runs)
  h.down.delete('e')
  h.advance(2000) // heartbeats, then a sync round triggered by the membership change
  finishAll(h, runs)
  h.advance(6000) // one periodic round more
  finishAll(h, runs)
  for (const id of ids) {
    assert.is(runs.get(id), 1, `${id} ran once`)
    for (const node of h.node('a').replicaSetOf(id)) assert.is(h.node(node).record(id)?.state, 'succeeded', `${node} holds ${id} as succeeded`)
    assert.ok(h.agree(id, h.node('a').replicaSetOf(id)), `replicas of ${id} agree`)
  }
  assert.ok(h.node('e').stats().syncRounds > 0)
})

test('replicas that missed the final write converge after healing (digest sync, no reads needed)', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  submitMany(h, 'a', ['x1'])
  const [run] = h.executions.splice(0)
  const isolated = ['a', 'b', 'c'].find(id => id !== run!.node)!
  // The outcome is written while one replica is cut off (not long enough to be declared dead).
  h.down.add(isolated)
  h.finish(run!.node, 'x1', run!.order.fencingToken)
  h.advance(200)
  h.down.clear()
  assert.is(h.node(isolated).record('x1')?.state, 'running', 'the isolated replica missed the outcome')
  h.advance(7000)
  assert.is(h.node(isolated).record('x1')?.state, 'succeeded', 'and caught up')
  assert.ok(h.agree('x1'), 'replicas agree')
})

test('a joining node pulls the records of the ranges it now holds; about 1/N of the tasks change owner', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const ids = Array.from({ length: 400 }, (_, i) => `j${i}`)
  submitMany(h, 'b', ids)
  const runs = new Map<string, number>()
  finishAll(h, runs)
  const ownersBefore = new Map(ids.map(id => [id, h.node('a').replicaSetOf(id)[0]]))
  h.addNode('d')
  h.advance(3000)
  let moved = 0
  for (const id of ids) {
    const set = h.node('a').replicaSetOf(id)
    if (set[0] !== ownersBefore.get(id)) moved++
    if (set.includes('d')) assert.is(h.node('d').record(id)?.state, 'succeeded', `d pulled ${id}`)
  }
  const fraction = moved / ids.length
  console.log(`    join: ${(fraction * 100).toFixed(1)}% of tasks changed owner (expected about 25%)`)
  assert.ok(fraction > 0.12 && fraction < 0.4, `moved ${fraction}`)
  for (const id of ids) assert.is(runs.get(id), 1)
})

test('drain: a leaving node stops claiming, finishes its runs, hands its records off, and nothing runs twice', () => {
  const h = new Harness(['a', 'b', 'c', 'd'])
  h.meet()
  const ids = Array.from({ length: 80 }, (_, i) => `d${i}`)
  submitMany(h, 'a', ids)
  const running = h.executions.filter(run => run.node === 'd').length
  h.request('d', () => ({ kind: 'LeaveRequested', atMs: h.nowMs }))
  const runs = new Map<string, number>()
  finishAll(h, runs) // includes d's running tasks: they finish normally
  h.request('d', () => ({ kind: 'LeaveCompleted', atMs: h.nowMs }))
  h.down.add('d')
  h.advance(2000)
  finishAll(h, runs)
  h.advance(2000)
  finishAll(h, runs)
  for (const id of ids) {
    assert.is(runs.get(id), 1, `${id} ran once`)
    const set = h.node('a').replicaSetOf(id)
    assert.not.ok(set.includes('d'), 'd is off the ring')
    for (const node of set) assert.is(h.node(node).record(id)?.state, 'succeeded', `${node} holds ${id}`)
  }
  assert.ok(running > 0, 'd was running tasks when it started draining')
})

test('an owner that crashes mid-run and restarts re-claims its run with the next attempt', () => {
  const h = new Harness(['a', 'b', 'c'], { deadAfterMs: 5000, suspectAfterMs: 2000 })
  h.meet()
  submitMany(h, 'a', ['r1'])
  const first = h.executions.splice(0)[0]!
  h.crash(first.node)
  h.advance(300) // shorter than the dead timeout: nobody else takes over
  assert.is(h.executions.length, 0)
  h.restart(first.node)
  h.advance(2000)
  const second = h.executions.splice(0)[0]
  assert.ok(second !== undefined, 're-claimed after the restart')
  assert.is(second!.node, first.node)
  assert.is(second!.order.attempt, 2)
  assert.ok(second!.order.fencingToken > first.order.fencingToken)
  h.finish(second!.node, 'r1', second!.order.fencingToken)
  h.advance(200)
  assert.is(h.node('a').record('r1')?.state, 'succeeded')
})

test('a whole cluster crashes and restarts from its disks: every accepted task finishes', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const ids = Array.from({ length: 50 }, (_, i) => `w${i}`)
  submitMany(h, 'c', ids)
  const runs = new Map<string, number>()
  // Half the runs finish, then everything dies at once.
  const batch = h.executions.splice(0)
  for (const { node, order } of batch.slice(0, Math.floor(batch.length / 2))) {
    runs.set(order.taskId, 1)
    h.finish(node, order.taskId, order.fencingToken)
  }
  for (const id of ['a', 'b', 'c']) h.crash(id)
  h.advance(100)
  for (const id of ['a', 'b', 'c']) h.restart(id, { joinGraceMs: 500 })
  h.meet()
  for (let i = 0; i < 20; i++) {
    h.advance(500)
    finishAll(h, runs)
  }
  for (const id of ids) assert.is(h.node('a').record(id)?.state ?? h.node('b').record(id)?.state, 'succeeded', `${id} finished`)
})

test('a finished run whose outcome is still on its way to a quorum is not claimed again', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  submitMany(h, 'a', ['o1'])
  const [run] = h.executions.splice(0)
  // Replicas are slow to answer the outcome write: the owner finishes while they are cut off...
  const others = ['a', 'b', 'c'].filter(id => id !== run!.node)
  for (const id of others) h.down.add(id)
  h.finish(run!.node, 'o1', run!.order.fencingToken)
  // ...and meanwhile its view changes (which makes it reconsider every active task).
  h.advance(400)
  for (const id of others) h.down.delete(id)
  h.advance(3000)
  assert.is(h.executions.length, 0, 'no second execution')
  assert.is(h.node(others[0]!).record('o1')?.state, 'succeeded')
})

test('an outcome that misses its write quorum is not applied by the cut-off owner, and loses to the newer run', () => {
  const h = new Harness(['a', 'b', 'c'])
  h.meet()
  const requestId = h.request('a', rid => ({
    kind: 'SubmitRequested', atMs: h.nowMs, requestId: rid,
    items: [{ id: 'w1', spec: { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 3, backoff: { kind: 'fixed' as const, delayMs: 10, delayMsMax: 10 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null } }]
  }))
  assert.ok(h.replies.get(requestId)?.kind === 'submit')
  const [first] = h.executions.splice(0)
  const owner = first!.node
  const others = ['a', 'b', 'c'].filter(id => id !== owner)
  // The owner finishes while cut off from both replicas: its write times out.
  for (const id of others) h.down.add(id)
  h.finish(owner, 'w1', first!.order.fencingToken)
  h.advance(1200)
  assert.is(h.node(owner).record('w1')!.state, 'running', 'the outcome without a quorum is not applied locally')
  // The owner is cut off in turn; the others take over and the newer run fails (retrying).
  h.down.clear(); h.down.add(owner)
  h.advance(1500)
  const takeover = h.executions.splice(0).find(run => run.order.taskId === 'w1')
  assert.ok(takeover !== undefined && takeover.order.fencingToken > first!.order.fencingToken, 'taken over with a newer epoch')
  h.finish(takeover!.node, 'w1', takeover!.order.fencingToken, false)
  h.down.delete(owner) // the old owner's write reaches the replicas now: refused
  h.advance(3000)
  const runs = new Map<string, number>()
  finishAll(h, runs)
  h.advance(6000)
  for (const id of ['a', 'b', 'c']) {
    const record = h.node(id).record('w1')!
    assert.ok(record.epoch > first!.order.fencingToken, `${id}: the outcome comes from the newer epoch (got ${record.state} e${record.epoch})`)
    assert.is(record.state, 'succeeded')
  }
})

test('hinted handoff: a task accepted on W replicas while the third is down survives losing those W', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e'])
  h.meet()
  const replicas = h.node('a').replicaSetOf('h1')
  const [r1, r2, r3] = replicas as [string, string, string]
  const submitter = ['a', 'b', 'c', 'd', 'e'].find(id => !replicas.includes(id))!
  h.crash(r3) // not yet suspected: the submit still targets it
  submitMany(h, submitter, ['h1'])
  assert.ok(h.disks.get(r3)!.get('h1') === undefined, 'the third replica never got it')
  h.advance(1000) // r3 suspected, dead; a sync round copies the record past the replica set
  const holders = [...h.nodes.keys()].filter(id => !replicas.includes(id) && h.node(id).record('h1') !== null)
  assert.ok(holders.length > 0, 'a live member past the replica set holds a hinted copy')
  h.crash(r1); h.crash(r2) // lost for good: fewer than R of the replicas
  h.disks.get(r1)!.clear(); h.disks.get(r2)!.clear()
  h.restart(r3)
  h.advance(12_000) // the lost ones leave the ring; the hint holder is now a replica
  const runs = new Map<string, number>()
  finishAll(h, runs)
  h.advance(6000)
  finishAll(h, runs)
  const live = [...h.nodes.keys()].filter(id => !h.down.has(id))
  assert.ok(live.some(id => h.node(id).record('h1')?.state === 'succeeded'), 'the task survived and finished')
})

test('a node restarted from its disk puts the peers its records name on its ring until they are heard or removed', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e'])
  h.meet()
  submitMany(h, 'a', ['m1'])
  const set = h.node('a').replicaSetOf('m1')
  const member = set[0]!
  h.crash(member)
  for (const id of ['a', 'b', 'c', 'd', 'e']) if (id !== member) h.down.add(id) // it comes back alone, hearing no one
  h.restart(member)
  assert.equal(h.node(member).replicaSetOf('m1'), set, 'same replica set as before the crash, not one built from the peers it hears')
})

for (const [label, apartMs, withinMs] of [['together', 0, 2500], ['a moment apart', 150, 1000]] as const) {
test(`stand-ins on: two of five crash ${label}: runs whose replica set lost both are taken over when they are declared dead, not when the ring drops them`, () => {
  // removeAfterMs 10 s, deadAfterMs 600 ms: a takeover that waits for the ring shows as seconds.
  // Capacity for every task at once, so that no claim waits for a free slot.
  const h = new Harness(['a', 'b', 'c', 'd', 'e'], { capacity: 256, standIns: true })
  h.meet()
  const ids = Array.from({ length: 200 }, (_, i) => `k${i}`)
  submitMany(h, 'a', ids)
  const first = h.executions.splice(0)
  // Crash two nodes that share a replica set with a run on one of them.
  const both = first.find(run => run.node !== 'a' && h.node('a').replicaSetOf(run.order.taskId).filter(id => id !== run.node && id !== 'a').length > 0)!
  const other = h.node('a').replicaSetOf(both.order.taskId).find(id => id !== both.node && id !== 'a')!
  const victims = new Set([both.node, other])
  // Killed together, two nodes are still declared dead up to a heartbeat apart: a claim that
  // starts in between must not wait for its timeout to pick up its stand-ins.
  const crashedAtMs = h.nowMs
  h.crash(both.node)
  if (apartMs > 0) h.advance(apartMs)
  h.crash(other)
  const lost = first.filter(run => victims.has(run.node))
  for (const { node, order } of first) if (!victims.has(node)) h.finish(node, order.taskId, order.fencingToken)
  const doubly = lost.filter(run => h.node('a').replicaSetOf(run.order.taskId).filter(id => victims.has(id)).length === 2)
  assert.ok(doubly.length > 0, 'some run lost two of its three replicas')
  const rerunAtMs = new Map<string, number>()
  for (let elapsed = 0; elapsed < 3000; elapsed += 50) {
    h.advance(50)
    for (const { node, order } of h.executions.splice(0)) {
      if (!rerunAtMs.has(order.taskId)) rerunAtMs.set(order.taskId, h.nowMs - crashedAtMs)
      h.finish(node, order.taskId, order.fencingToken)
    }
  }
  for (const run of lost) {
    const afterMs = rerunAtMs.get(run.order.taskId)
    assert.ok(afterMs !== undefined && afterMs < withinMs, `${run.order.taskId} (replicas ${h.node('a').replicaSetOf(run.order.taskId).join(',')}) re-ran ${afterMs} ms after the crash`)
  }
})
}

test('a paused owner whose run was taken over through stand-ins cannot record its late result', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e'], { standIns: true })
  h.meet()
  submitMany(h, 'a', ['p1'])
  const run = h.executions.splice(0)[0]!
  const set = h.node('a').replicaSetOf(run.order.taskId)
  assert.is(run.node, set[0], 'the owner runs it')
  // The owner and its first successor pause past the dead timeout: the last replica takes over.
  h.down.add(set[0]!)
  h.down.add(set[1]!)
  h.advance(2000)
  const takeover = h.executions.splice(0).find(candidate => candidate.order.taskId === run.order.taskId)
  assert.ok(takeover !== undefined, 'taken over')
  assert.is(takeover!.node, set[2])
  assert.ok(takeover!.order.fencingToken > run.order.fencingToken)
  // Only the owner comes back, with its stale result: the live replica and the stand-ins refuse it.
  h.down.delete(set[0]!)
  h.finish(set[0]!, run.order.taskId, run.order.fencingToken)
  h.advance(1000)
  h.finish(takeover!.node, run.order.taskId, takeover!.order.fencingToken)
  h.advance(7000)
  // Its outcome write cannot reach a quorum past the newer promises: it is dropped, not recorded.
  assert.ok(h.node(set[0]!).stats().staleResultsRefused >= 1, 'the late result is refused')
  for (const id of [set[0]!, set[2]!]) assert.is(h.node(id).record(run.order.taskId)?.epoch, takeover!.order.fencingToken, `${id} holds the newer run's outcome`)
})

test('no stand-ins on the minority side: two of five left cannot take over a run whose set lost two', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e'], { capacity: 256, standIns: true })
  h.meet()
  submitMany(h, 'a', Array.from({ length: 100 }, (_, i) => `m${i}`))
  const first = h.executions.splice(0)
  for (const { node, order } of first) if (node === 'a') h.finish(node, order.taskId, order.fencingToken)
  // A run on another node whose set is {runner, x, a}: cut a off with one more node (a partition
  // of 2 | 3). The other side may still hold a majority of that set, so a must wait.
  const run = first.find(candidate => candidate.node !== 'a' && h.node('a').replicaSetOf(candidate.order.taskId).includes('a'))!
  const set = h.node('a').replicaSetOf(run.order.taskId)
  const partner = ['b', 'c', 'd', 'e'].find(id => !set.includes(id))!
  for (const id of ['b', 'c', 'd', 'e'].filter(id => id !== partner)) h.down.add(id)
  h.advance(3000)
  assert.not.ok(h.executions.some(candidate => candidate.order.taskId === run.order.taskId), 'not taken over by the minority side')
})

test('stand-ins off (the default): a run whose set lost two of three waits for the ring to drop them', () => {
  const h = new Harness(['a', 'b', 'c', 'd', 'e'], { capacity: 256 })
  h.meet()
  submitMany(h, 'a', Array.from({ length: 100 }, (_, i) => `s${i}`))
  const first = h.executions.splice(0)
  const run = first.find(candidate => candidate.node !== 'a' && h.node('a').replicaSetOf(candidate.order.taskId).filter(id => id !== candidate.node && id !== 'a').length > 0)!
  const other = h.node('a').replicaSetOf(run.order.taskId).find(id => id !== run.node && id !== 'a')!
  h.crash(run.node)
  h.crash(other)
  for (const { node, order } of first) if (node !== run.node && node !== other) h.finish(node, order.taskId, order.fencingToken)
  h.advance(3000)
  assert.not.ok(h.executions.some(candidate => candidate.order.taskId === run.order.taskId), 'no majority of its set: not taken over yet')
  h.advance(10_000)
  assert.ok(h.executions.some(candidate => candidate.order.taskId === run.order.taskId), 'taken over once the ring dropped the dead (removeAfterMs)')
})

test.run()
