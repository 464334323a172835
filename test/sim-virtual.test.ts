// sim-virtual.test.ts: the deterministic simulator and the checkers it shares with local mode.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { checkQueue, checkReplicas, checkSchedule } from '../sim/checkers.js'
import { simulate } from '../sim/virtual.js'
import type { VirtualOptions } from '../sim/virtual.js'

const base: VirtualOptions = { nodes: 5, tasks: 200, replicas: 3, seed: 1, faults: false, policy: 'ring', bug: 'none', phaseMs: 12_000 }

test('queue checker: lost, duplicated, unexpected, with retries and indeterminate submits', () => {
  const report = checkQueue({
    accepted: ['a', 'b', 'c', 'd'],
    terminal: new Map([['a', 'succeeded'], ['b', 'dead'], ['c', 'running']]),
    executions: new Map([['a', 2], ['b', 3], ['x', 1], ['y', 1]]),
    recorded: new Map([['b', 3]]),
    refused: ['x']
  })
  assert.is(report.completed, 1)
  assert.is(report.failed, 1)
  assert.equal(report.lostIds.sort(), ['c', 'd'])
  assert.equal(report.duplicatedIds, ['a'], 'b ran three times for three recorded attempts: not a duplicate')
  assert.equal(report.unexpectedIds, ['x'], 'y was never answered: indeterminate, may run')
})

test('schedule checker: each tick matched to a distinct run; missed and extra reported', () => {
  const report = checkSchedule({ expected: [1000, 2000, 3000, 4000], actual: [1010, 2005, 2010, 4500], toleranceMs: 100 })
  assert.is(report.matched, 2)
  assert.equal(report.missed, [3000, 4000])
  assert.equal(report.extra, [2010, 4500])
  const excused = checkSchedule({ expected: [1000, 2000], actual: [1000], toleranceMs: 50, excused: [{ fromMs: 1500, toMs: 2500 }] })
  assert.equal(excused.missed, [])
})

test('replica checker: divergent copies are reported', () => {
  const report = checkReplicas({ replicas: new Map([['t1', [{ node: 'a', version: 'x' }, { node: 'b', version: 'x' }]], ['t2', [{ node: 'a', version: 'x' }, { node: 'b', version: null }]]]) })
  assert.is(report.divergent, 1)
  assert.equal(report.divergentIds, ['t2'])
})

test('without faults: every task succeeds, nothing runs twice, replicas agree', () => {
  const result = simulate(base)
  assert.equal(result.violations, [], JSON.stringify(result.violations[0]))
  assert.is(result.queue.accepted, 200)
  assert.is(result.queue.lost, 0)
  assert.is(result.queue.duplicated, 0)
  assert.is(result.replicas.divergent, 0)
})

test('50 fault-free seeds: no invariant violated (invariant 8: nothing executes twice)', () => {
  for (let seed = 1000; seed < 1050; seed++) {
    const result = simulate({ ...base, seed, nodes: 7, tasks: 150 })
    assert.equal(result.violations, [], `seed ${seed}: ${JSON.stringify(result.violations[0])}`)
    assert.is(result.queue.duplicated, 0)
  }
})

test('schedules without faults: every tick fires exactly once (invariant 3)', () => {
  for (let seed = 1; seed <= 5; seed++) {
    const result = simulate({ ...base, seed, tasks: 100, nodes: 7, schedules: 3 })
    assert.equal(result.violations, [], `seed ${seed}: ${JSON.stringify(result.violations[0] ?? null)}`)
    assert.ok(result.schedules.expected > 10, `seed ${seed}: ${result.schedules.expected} ticks expected`)
    assert.is(result.schedules.extra, 0)
    assert.is(result.schedules.missed, 0)
  }
})

test('schedules under faults: 20 seeds, no extra and no missed occurrence, nothing lost', () => {
  let occurrences = 0
  for (let seed = 1; seed <= 20; seed++) {
    const result = simulate({ ...base, seed, nodes: 7, tasks: 200, faults: true, phaseMs: 30_000, schedules: 3 })
    assert.equal(result.violations, [], `seed ${seed}: ${JSON.stringify(result.violations[0] ?? null)}`)
    assert.is(result.schedules.extra, 0, `seed ${seed}`)
    assert.is(result.schedules.missed, 0, `seed ${seed}`)
    assert.is(result.queue.lost, 0, `seed ${seed}`)
    occurrences += result.schedules.occurrences
  }
  console.log(`    schedules under faults: 20 seeds, ${occurrences} occurrences, 0 extra, 0 missed`)
})

test('same seed, same result: two runs give identical JSON', () => {
  const options = { ...base, seed: 7, faults: true, nodes: 7 }
  assert.is(JSON.stringify(simulate(options)), JSON.stringify(simulate(options)))
})

test('scale: 200 nodes and 5,000 tasks take the scaled membership model and pass every check', () => {
  const result = simulate({ ...base, nodes: 200, tasks: 5000, seed: 3 })
  assert.is(result.membership.model, 'scaled', 'the default above 50 nodes')
  assert.ok(result.membership.heartbeatMs > 500, 'heartbeats stretched')
  assert.equal(result.violations, [], JSON.stringify(result.violations[0]))
  assert.is(result.queue.accepted, 5000)
  assert.is(result.queue.lost, 0)
  assert.is(result.queue.duplicated, 0)
  assert.is(result.replicas.tasks, 5000)
  assert.is(result.replicas.divergent, 0)
})

test('small runs keep the gossip model; the scaled one is as deterministic', () => {
  assert.is(simulate(base).membership.model, 'gossip')
  const options: VirtualOptions = { ...base, seed: 7, faults: true, nodes: 60, tasks: 500, membership: 'scaled' }
  assert.is(JSON.stringify(simulate(options)), JSON.stringify(simulate(options)))
})

test('the checkers catch a broken variant: replicas that ack without persisting lose tasks under crashes', () => {
  let caught = 0
  for (let seed = 1; seed <= 40 && caught === 0; seed++) {
    const result = simulate({ ...base, seed, faults: true, nodes: 5, tasks: 300, bug: 'ack-without-persist', phaseMs: 20_000 })
    if (result.violations.length > 0 || result.queue.lost > 0) caught++
  }
  assert.ok(caught > 0, 'a lying disk is caught within 40 seeds')
})

test('the checkers catch a broken variant: accepting before the quorum loses tasks', () => {
  let caught = 0
  for (let seed = 1; seed <= 12 && caught === 0; seed++) {
    const result = simulate({ ...base, seed, faults: true, nodes: 5, tasks: 300, bug: 'accept-before-quorum', phaseMs: 20_000 })
    if (result.violations.some(violation => violation.invariant.startsWith('1:'))) caught++
  }
  assert.ok(caught > 0, 'early acceptance is caught within a dozen seeds')
})

test('60 faulted seeds (crashes, permanent loss of < R, partitions, pauses, loss) and one fresh seed: nothing lost, no invariant violated', () => {
  const fresh = 1_000_000 + Math.floor(Math.random() * 1_000_000_000)
  console.log(`  fresh faulted seed ${fresh}; replay: taskmesh sim --virtual --seed ${fresh} --nodes 7 --tasks 500`)
  for (const seed of [...Array.from({ length: 60 }, (_, i) => i + 1), fresh]) {
    const result = simulate({ ...base, seed, faults: true, nodes: 7, tasks: 500, phaseMs: 30_000 })
    const replay = `taskmesh sim --virtual --seed ${seed} --nodes 7 --tasks 500`
    assert.equal(result.violations, [], `seed ${seed} (${replay}): ${JSON.stringify(result.violations[0])}`)
    assert.is(result.queue.lost, 0, `seed ${seed} (${replay}): lost`)
  }
})

test.run()
