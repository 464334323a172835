// sim-report.test.ts: the local simulator's report (sim/report.ts) on a small made-up run:
// the queue verdicts, latencies, failover, under-replication, and the three renderings.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { PublicRecord } from '../src/api/present.js'
import { buildReport, histogram, renderHtml, renderTable, summarize, type RunData } from '../sim/report.js'

const T0 = Date.parse('2030-01-01T00:00:00.000Z')
const at = (ms: number): string => new Date(T0 + ms).toISOString()
const PEERS = ['peer-a', 'peer-b', 'peer-c']

function record (id: string, state: PublicRecord['state'], createdMs: number, runs: Array<[string, number]>, finishedMs: number | null): PublicRecord {
  const history: PublicRecord['history'] = [{ state: 'queued', at: at(createdMs), node: PEERS[0]!, attempt: 0 }]
  runs.forEach(([node, startMs], index) => history.push({ state: 'running', at: at(startMs), node, attempt: index + 1 }))
  if (finishedMs !== null && state === 'succeeded') history.push({ state: 'succeeded', at: at(finishedMs), node: runs[runs.length - 1]![0], attempt: runs.length })
  return {
    id, type: 'simwork', payload: null, state, priority: 0, attempt: runs.length, maxAttempts: 3, owner: runs[runs.length - 1]?.[0] ?? null,
    replicas: PEERS, runAt: at(createdMs), createdAt: at(createdMs), startedAt: runs.length === 0 ? null : at(runs[runs.length - 1]![1]),
    finishedAt: finishedMs === null ? null : at(finishedMs), result: null, error: null, history, timeout: null,
    backoff: { type: 'fixed', delay: 1000, maxDelay: 1000 }, epoch: runs.length
  }
}

function run (): RunData {
  // a: normal. b: running on peer-b when it was killed at 1000, re-run on peer-c at 3500.
  // c: ran twice (duplicated). d: never finished (lost).
  const records = new Map<string, PublicRecord>([
    ['a', record('a', 'succeeded', 0, [['peer-a', 10]], 210)],
    ['b', record('b', 'succeeded', 500, [['peer-b', 600], ['peer-c', 3500]], 3700)],
    ['c', record('c', 'succeeded', 700, [['peer-c', 720]], 920)],
    ['d', record('d', 'queued', 800, [], null)]
  ])
  return {
    options: { nodes: 3, replicas: 3, capacity: null, tasks: 4, rate: 10, duration: '200ms', faults: 'kill:2@1s,restart@5s', randomFaults: false, seed: 1, settleMs: 10_000 },
    startedAtMs: T0,
    workloadEndMs: 800,
    healedAtMs: 6000,
    endedAtMs: 10_000,
    nodes: PEERS.map((peerId, i) => ({ index: i + 1, peerId, restarts: i === 1 ? 1 : 0 })),
    submit: { attempts: 7, batches: 5, refused: 1, unreachable: 0, indeterminate: 2, answerMs: [5, 10, 20, 40, 5000] },
    accepted: ['a', 'b', 'c', 'd'].map((id, i) => ({ id, marker: `t${i + 1}`, atMs: T0 + i * 200 + 10, node: 1 })),
    refusedMarkers: ['t5'],
    indeterminateMarkers: ['t6', 't7'],
    records,
    // t3 (c) twice; t5 refused yet ran: unexpected; t6 unanswered and ran: recovered; t9 never submitted: unexpected.
    executions: new Map([['t1', 1], ['t2', 1], ['t3', 2], ['t5', 1], ['t6', 1], ['t9', 1]]),
    timeline: [{ atMs: 0, kind: 'workload', text: 'workload started' }, { atMs: 1000, kind: 'kill', text: 'kill node 2 <pid>' }],
    faultWindows: [{ label: 'kill:2@1s', kind: 'kill', nodes: [2], fromMs: 1000, toMs: 6000 }],
    settled: false,
    workloadComplete: true,
    interrupted: false
  }
}

test('report: queue verdicts from records and the execution log', () => {
  const report = buildReport(run())
  assert.is(report.accepted, 4)
  assert.is(report.completed, 3)
  assert.is(report.lost, 1)
  assert.equal(report.lostIds, ['d'])
  assert.is(report.duplicated, 1)
  assert.equal(report.duplicatedIds, ['c'])
  assert.is(report.unexpected, 2, 'a refused submit that ran, and a marker never submitted')
  assert.equal(report.unexpectedMarkers.sort(), ['t5', 't9'])
  assert.is(report.recovered, 1)
  assert.equal(report.states, { succeeded: 3, queued: 1 })
  assert.is(report.exitCode, 1, 'lost > 0')
})

test('report: latency, failover, per node, under-replication', () => {
  const report = buildReport(run())
  assert.equal(report.latencyMs.submitToStart, { count: 3, p50: 20, p95: 3000, p99: 3000, max: 3000, mean: 1010 })
  assert.is(report.latencyMs.submitToDone.max, 3200)
  assert.equal(report.failover, [{ fault: 'kill:2@1s', node: 2, atMs: 1000, runningTasks: 1, takenOver: 1, firstMs: 2500, p50Ms: 2500, maxMs: 2500 }])
  assert.equal(report.perNode.nodes.map(node => [node.node, node.runs, node.executed, node.restarts]), [[1, 1, 1, 0], [2, 1, 0, 1], [3, 2, 2, 0]])
  assert.is(report.perNode.executedMax, 2)
  assert.is(report.perNode.executedAvg, 1)
  // R = 3 of 3 nodes: every task has node 2 as a replica. Down 1000..6000 (ms since start).
  // a: done at 210, none. b: 1000..3700 = 2.7 s. c: done at 920, none. d: unfinished, 1000..6000 = 5 s.
  assert.is(report.underReplicatedTaskSeconds, 7.7)
  assert.equal(report.submit.answerMs.max, 5000)
  assert.is(report.throughput.series.length, 10)
  assert.is(report.throughput.series[0]!.accepted, 4)
  assert.is(report.throughput.series[3]!.completed, 1)
})

test('report: percentiles and histogram', () => {
  assert.equal(summarize([]), { count: 0, p50: null, p95: null, p99: null, max: null, mean: null })
  const values = Array.from({ length: 100 }, (_, i) => i + 1)
  const summary = summarize(values)
  assert.equal([summary.p50, summary.p95, summary.p99, summary.max], [50, 95, 99, 100])
  const { bucketMs, counts } = histogram(values)
  assert.is(bucketMs, 5)
  assert.is(counts.reduce((sum, count) => sum + count, 0), 100)
})

test('report: table, JSON and a self-contained HTML page', () => {
  const report = buildReport(run())
  const text = renderTable(report)
  assert.match(text, /lost\s+1/)
  assert.match(text, 'FAILED: 1 accepted task was lost')
  assert.match(text, /kill:2@1s\s+2\s+1\s+1\s+2500/)
  assert.equal(JSON.parse(JSON.stringify(report)).failover, report.failover)
  const html = renderHtml(report)
  assert.match(html, /^<!doctype html>/)
  assert.is((html.match(/<svg /g) ?? []).length, 3, 'throughput, latency histogram, executions per node')
  assert.match(html, 'kill node 2 &lt;pid&gt;', 'text is escaped')
  assert.not.match(html, /<script|src=|href=/, 'no scripts, no external resources')
})

test.run()
