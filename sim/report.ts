// report.ts: what a local simulator run (sim/local.ts) found. buildReport turns the run's raw
// observations (accepted submits, final records, the execution log, the fault windows) into
// numbers; renderTable, JSON.stringify and renderHtml show them. Pure functions over plain data:
// no clock, no I/O, so a saved run can be re-reported and the numbers tested.
import type { PublicRecord } from '../src/api/present.js'
import { formatDurationMs } from '../src/core/duration.js'
import { buildRing, replicaSet } from '../src/core/ring.js'
import { checkQueue } from './checkers.js'
import type { AcceptedTask, SubmitStats } from './workload.js'

const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'dead', 'cancelled'])
const IDS_LISTED_MAX = 20
const HISTOGRAM_BUCKETS = 30
const EXAMPLES_MAX = 5

export interface RunOptions {
  nodes: number
  replicas: number
  capacity: number | null
  tasks: number
  /** Tasks per second; null = unlimited. */
  rate: number | null
  /** As written, e.g. `exp:200ms`. */
  duration: string
  /** The schedule as it would be written (a random one spelled out), `none` for none. */
  faults: string
  randomFaults: boolean
  seed: number
  settleMs: number
}

/** Something that happened, at ms since the workload started. */
export interface TimelineEntry {
  atMs: number
  kind: 'workload' | 'kill' | 'restart' | 'pause' | 'resume' | 'slow' | 'partition' | 'lag' | 'loss' | 'heal' | 'settle' | 'error'
  text: string
}

/** A time a node (or a partition's paused side) was unavailable, ms since the workload started. */
export interface FaultWindow {
  /** The fault as written, e.g. `kill:2@5s`. */
  label: string
  kind: 'kill' | 'pause' | 'slow' | 'partition' | 'lag' | 'loss'
  nodes: number[]
  /** Scheduled time the fault was injected. */
  fromMs: number
  /** When it healed (a killed node: healthy again); null when it never did during the run. */
  toMs: number | null
}

export interface RunData {
  options: RunOptions
  /** Epoch ms at which the workload started: every `atMs` of the run counts from here. */
  startedAtMs: number
  /** When the workload's last task was accepted, the last fault healed, and the run ended (ms since start). */
  workloadEndMs: number
  healedAtMs: number
  endedAtMs: number
  nodes: Array<{ index: number, peerId: string, restarts: number }>
  submit: SubmitStats
  accepted: AcceptedTask[]
  refusedMarkers: string[]
  indeterminateMarkers: string[]
  /** The last record seen of each accepted task, by id. */
  records: Map<string, PublicRecord>
  /** Completed runs of `simwork` per marker, from the execution log. */
  executions: Map<string, number>
  timeline: TimelineEntry[]
  faultWindows: FaultWindow[]
  /** Every accepted task was terminal before the wait ran out. */
  settled: boolean
  /** The workload had all its tasks accepted (false: it gave up, the cluster accepted too few). */
  workloadComplete: boolean
  interrupted: boolean
}

export interface LatencySummary {
  count: number
  p50: number | null
  p95: number | null
  p99: number | null
  max: number | null
  mean: number | null
}

export interface FailoverEntry {
  fault: string
  node: number
  atMs: number
  /** Tasks running on the node when the fault hit (their final records say so). */
  runningTasks: number
  /** Of those, the ones that ran again on another node. */
  takenOver: number
  /** Fault → first run elsewhere of one of those tasks, and the spread over all of them (ms). */
  firstMs: number | null
  p50Ms: number | null
  maxMs: number | null
}

export interface SimReport {
  mode: 'local'
  version: 1
  options: RunOptions
  startedAt: string
  elapsedMs: number
  workloadMs: number
  accepted: number
  completed: number
  /** Accepted tasks that ended dead or cancelled. */
  failed: number
  lost: number
  duplicated: number
  unexpected: number
  /** Submits that got no answer and ran anyway (Jepsen's "recovered"); not counted as accepted. */
  recovered: number
  /** Accepted tasks that succeeded with no run in the execution log. */
  missingExecutions: number
  lostIds: string[]
  duplicatedIds: string[]
  unexpectedMarkers: string[]
  states: Record<string, number>
  /** The histories of a few lost and duplicated tasks: state@node#attempt+ms since the start. */
  examples: Array<{ id: string, marker: string, why: 'lost' | 'duplicated', executions: number, history: string }>
  submit: Omit<SubmitStats, 'answerMs'> & {
    acceptedPerSecond: number | null
    /** How long a batch submit waited for its answer. */
    answerMs: LatencySummary
  }
  throughput: {
    /** Completed tasks per second, from the first submit to the last finish. */
    completedPerSecond: number | null
    /** Per second since the start: tasks accepted and finished in that second. */
    series: Array<{ second: number, accepted: number, completed: number }>
  }
  latencyMs: {
    submitToStart: LatencySummary
    submitToDone: LatencySummary
    /** submit→done: counts[i] tasks took [i, i + 1) × bucketMs; the last bucket holds the rest. */
    histogram: { bucketMs: number, counts: number[] }
  }
  failover: FailoverEntry[]
  perNode: {
    nodes: Array<{ node: number, peerId: string, runs: number, executed: number, restarts: number }>
    executedMax: number
    executedAvg: number
  }
  /** Σ over accepted tasks of the time they were not terminal while a replica was down (seconds). */
  underReplicatedTaskSeconds: number
  faultWindows: FaultWindow[]
  timeline: TimelineEntry[]
  settled: boolean
  workloadComplete: boolean
  interrupted: boolean
  exitCode: number
}

export function buildReport (run: RunData): SimReport {
  const t0 = run.startedAtMs
  const acceptedIds = run.accepted.map(task => task.id)
  const markerToId = new Map(run.accepted.map(task => [task.marker, task.id]))
  const indeterminate = new Set(run.indeterminateMarkers)

  // The queue checker counts by id: an accepted task's runs under its id, any other run under
  // its marker. A run of a marker neither accepted nor possibly accepted is unexpected.
  const executionsById = new Map<string, number>()
  const refused = new Set(run.refusedMarkers)
  let recovered = 0
  for (const [marker, count] of run.executions) {
    const id = markerToId.get(marker)
    if (id !== undefined) executionsById.set(id, (executionsById.get(id) ?? 0) + count)
    else {
      executionsById.set(marker, count)
      if (indeterminate.has(marker)) recovered++
      else refused.add(marker)
    }
  }
  const terminal = new Map<string, string>()
  for (const [id, record] of run.records) terminal.set(id, record.state)
  const queue = checkQueue({ accepted: acceptedIds, terminal, executions: executionsById, refused: [...refused] })

  const states: Record<string, number> = {}
  for (const id of acceptedIds) {
    const state = run.records.get(id)?.state ?? 'unknown'
    states[state] = (states[state] ?? 0) + 1
  }
  let missingExecutions = 0
  for (const task of run.accepted) {
    if (run.records.get(task.id)?.state === 'succeeded' && (run.executions.get(task.marker) ?? 0) === 0) missingExecutions++
  }

  // Latencies, from the records' own times.
  const toStart: number[] = []
  const toDone: number[] = []
  let lastFinishMs = 0
  for (const id of acceptedIds) {
    const record = run.records.get(id)
    if (record === undefined) continue
    const createdMs = Date.parse(record.createdAt)
    if (record.startedAt !== null) toStart.push(Date.parse(record.startedAt) - createdMs)
    if (record.finishedAt !== null && TERMINAL.has(record.state)) {
      const finishedMs = Date.parse(record.finishedAt)
      toDone.push(finishedMs - createdMs)
      lastFinishMs = Math.max(lastFinishMs, finishedMs)
    }
  }

  // Throughput per second.
  const seconds = Math.max(1, Math.ceil(Math.max(run.endedAtMs, lastFinishMs - t0) / 1000))
  const series = Array.from({ length: seconds }, (_, second) => ({ second, accepted: 0, completed: 0 }))
  const bucket = (ms: number): { accepted: number, completed: number } | undefined => series[Math.min(seconds - 1, Math.max(0, Math.floor(ms / 1000)))]
  for (const task of run.accepted) bucket(task.atMs - t0)!.accepted++
  for (const id of acceptedIds) {
    const record = run.records.get(id)
    if (record?.finishedAt !== null && record?.finishedAt !== undefined && TERMINAL.has(record.state)) bucket(Date.parse(record.finishedAt) - t0)!.completed++
  }
  const firstSubmitMs = run.accepted.length === 0 ? null : Math.min(...run.accepted.map(task => Date.parse(run.records.get(task.id)?.createdAt ?? '') || task.atMs))
  const completedPerSecond = firstSubmitMs === null || lastFinishMs <= firstSubmitMs ? null : round2(queue.completed / ((lastFinishMs - firstSubmitMs) / 1000))
  const acceptedPerSecond = run.accepted.length === 0 || run.workloadEndMs <= 0 ? null : round2(run.accepted.length / (run.workloadEndMs / 1000))

  const peerIndex = new Map(run.nodes.map(node => [node.peerId, node.index]))
  const markerOf = new Map(run.accepted.map(task => [task.id, task.marker]))
  const example = (id: string, why: 'lost' | 'duplicated'): SimReport['examples'][number] => {
    const marker = markerOf.get(id) ?? ''
    const history = run.records.get(id)?.history
      .map(entry => `${entry.state}@${peerIndex.has(entry.node) ? `node${peerIndex.get(entry.node)}` : entry.node.slice(-6)}#${entry.attempt}+${Date.parse(entry.at) - t0}ms`)
      .join(' ') ?? 'no record found'
    return { id, marker, why, executions: run.executions.get(marker) ?? 0, history }
  }
  const examples = [
    ...queue.lostIds.slice(0, EXAMPLES_MAX).map(id => example(id, 'lost')),
    ...queue.duplicatedIds.slice(0, EXAMPLES_MAX).map(id => example(id, 'duplicated'))
  ]
  const failover = failoverTimes(run, peerIndex)
  const perNode = perNodeCounts(run)
  const underReplicatedTaskSeconds = underReplicated(run)

  const exitCode = queue.lost > 0 || run.interrupted ? 1 : 0
  return {
    mode: 'local',
    version: 1,
    options: run.options,
    startedAt: new Date(t0).toISOString(),
    elapsedMs: Math.round(run.endedAtMs),
    workloadMs: Math.round(run.workloadEndMs),
    accepted: queue.accepted,
    completed: queue.completed,
    failed: queue.failed,
    lost: queue.lost,
    duplicated: queue.duplicated,
    unexpected: queue.unexpected,
    recovered,
    missingExecutions,
    lostIds: queue.lostIds,
    duplicatedIds: queue.duplicatedIds,
    unexpectedMarkers: queue.unexpectedIds.slice(0, IDS_LISTED_MAX),
    states,
    examples,
    submit: { ...run.submit, acceptedPerSecond, answerMs: summarize(run.submit.answerMs) },
    throughput: { completedPerSecond, series },
    latencyMs: { submitToStart: summarize(toStart), submitToDone: summarize(toDone), histogram: histogram(toDone) },
    failover,
    perNode,
    underReplicatedTaskSeconds: round2(underReplicatedTaskSeconds),
    faultWindows: run.faultWindows,
    timeline: run.timeline,
    settled: run.settled,
    workloadComplete: run.workloadComplete,
    interrupted: run.interrupted,
    exitCode
  }
}

/** Nearest-rank percentiles; nulls when there is nothing to measure. */
export function summarize (values: number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: null, p95: null, p99: null, max: null, mean: null }
  const sorted = [...values].sort((a, b) => a - b)
  const rank = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
  return { count: sorted.length, p50: rank(0.5), p95: rank(0.95), p99: rank(0.99), max: sorted[sorted.length - 1]!, mean: Math.round(sorted.reduce((sum, value) => sum + value, 0) / sorted.length) }
}

/** Linear buckets up to the 99th percentile (rounded to a tidy width); the last bucket takes the tail. */
export function histogram (values: number[]): { bucketMs: number, counts: number[] } {
  if (values.length === 0) return { bucketMs: 0, counts: [] }
  const top = summarize(values).p99!
  const bucketMs = tidy(Math.max(1, top / (HISTOGRAM_BUCKETS - 1)))
  const counts = new Array<number>(HISTOGRAM_BUCKETS).fill(0)
  for (const value of values) counts[Math.min(HISTOGRAM_BUCKETS - 1, Math.max(0, Math.floor(value / bucketMs)))]!++
  while (counts.length > 1 && counts[counts.length - 1] === 0) counts.pop()
  return { bucketMs, counts }
}

/** 1, 2 or 5 times a power of ten, at least `value`. */
function tidy (value: number): number {
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

function round2 (value: number): number {
  return Math.round(value * 100) / 100
}

/**
 * For each kill, pause and partition: the tasks whose final record shows them running on the
 * faulty node at the fault, and how long until each first ran on another node.
 */
function failoverTimes (run: RunData, peerIndex: Map<string, number>): FailoverEntry[] {
  const entries: FailoverEntry[] = []
  const peerOf = new Map([...peerIndex].map(([peerId, index]) => [index, peerId]))
  for (const window of run.faultWindows) {
    if (window.kind === 'slow') continue
    for (const node of window.nodes) {
      const peerId = peerOf.get(node)
      const faultAtMs = run.startedAtMs + window.fromMs
      const delays: number[] = []
      let runningTasks = 0
      for (const record of run.records.values()) {
        let last: PublicRecord['history'][number] | undefined
        for (const entry of record.history) if (Date.parse(entry.at) <= faultAtMs) last = entry
        if (last === undefined || last.state !== 'running' || last.node !== peerId) continue
        runningTasks++
        const rerun = record.history.find(entry => entry.state === 'running' && entry.node !== peerId && Date.parse(entry.at) > faultAtMs)
        if (rerun !== undefined) delays.push(Date.parse(rerun.at) - faultAtMs)
      }
      const summary = summarize(delays)
      entries.push({
        fault: window.label, node, atMs: window.fromMs, runningTasks, takenOver: delays.length,
        firstMs: delays.length === 0 ? null : Math.min(...delays), p50Ms: summary.p50, maxMs: summary.max
      })
    }
  }
  return entries
}

function perNodeCounts (run: RunData): SimReport['perNode'] {
  const byPeer = new Map(run.nodes.map(node => [node.peerId, { node: node.index, peerId: node.peerId, runs: 0, executed: 0, restarts: node.restarts }]))
  for (const record of run.records.values()) {
    for (const entry of record.history) {
      const counts = byPeer.get(entry.node)
      if (counts === undefined) continue
      if (entry.state === 'running') counts.runs++
      if (entry.state === 'succeeded') counts.executed++
    }
  }
  const nodes = [...byPeer.values()].sort((a, b) => a.node - b.node)
  const executed = nodes.map(node => node.executed)
  return {
    nodes,
    executedMax: executed.length === 0 ? 0 : Math.max(...executed),
    executedAvg: executed.length === 0 ? 0 : round2(executed.reduce((sum, value) => sum + value, 0) / executed.length)
  }
}

/**
 * Task-seconds during which an accepted, not yet terminal task had a replica down (killed,
 * paused, or on a partition's paused side). Approximate: replica sets come from the ring of
 * the starting members (as long as a dead peer keeps its place on the ring, they are exact),
 * and a task missing two replicas counts once.
 */
function underReplicated (run: RunData): number {
  const windows = run.faultWindows.filter(window => window.kind !== 'slow')
  if (windows.length === 0) return 0
  const ring = buildRing(run.nodes.map(node => node.peerId))
  const indexOf = new Map(run.nodes.map(node => [node.peerId, node.index]))
  const endMs = run.startedAtMs + run.endedAtMs
  let totalMs = 0
  for (const task of run.accepted) {
    const record = run.records.get(task.id)
    const fromMs = record === undefined ? task.atMs : Date.parse(record.createdAt)
    const toMs = record?.finishedAt !== null && record?.finishedAt !== undefined && TERMINAL.has(record.state) ? Date.parse(record.finishedAt) : endMs
    const members = new Set(replicaSet(ring, task.id, run.options.replicas).map(peerId => indexOf.get(peerId)))
    const intervals: Array<[number, number]> = []
    for (const window of windows) {
      if (!window.nodes.some(node => members.has(node))) continue
      const start = Math.max(fromMs, run.startedAtMs + window.fromMs)
      const end = Math.min(toMs, window.toMs === null ? endMs : run.startedAtMs + window.toMs)
      if (end > start) intervals.push([start, end])
    }
    totalMs += unionLength(intervals)
  }
  return totalMs / 1000
}

function unionLength (intervals: Array<[number, number]>): number {
  intervals.sort((a, b) => a[0] - b[0])
  let total = 0
  let currentStart = -Infinity
  let currentEnd = -Infinity
  for (const [start, end] of intervals) {
    if (start > currentEnd) {
      if (currentEnd > currentStart) total += currentEnd - currentStart
      currentStart = start
      currentEnd = end
    } else {
      currentEnd = Math.max(currentEnd, end)
    }
  }
  if (currentEnd > currentStart) total += currentEnd - currentStart
  return total
}

// ------------------------------------------------------------------ table

function ms (value: number | null): string {
  return value === null ? '-' : String(Math.round(value))
}

function seconds (atMs: number): string {
  return `+${(atMs / 1000).toFixed(2)}s`
}

function table (headers: string[], rows: string[][], indent = '  '): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map(row => (row[column] ?? '').length)))
  const line = (cells: string[]): string => indent + cells.map((cell, column) => column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

/** The report as text for a terminal. */
export function renderTable (report: SimReport): string {
  const o = report.options
  const lines: string[] = []
  lines.push(`taskmesh sim: ${o.nodes} nodes, R=${o.replicas}${o.capacity === null ? '' : `, capacity ${o.capacity}`}, ${o.tasks} tasks at ${o.rate === null ? 'unlimited rate' : `${o.rate}/s`}, duration ${o.duration}, seed ${o.seed}`)
  lines.push(`faults: ${o.faults}${o.randomFaults ? ' (random)' : ''}`)
  lines.push('', 'timeline')
  for (const entry of report.timeline) lines.push(`  ${seconds(entry.atMs).padStart(9)}  ${entry.text}`)

  lines.push('', 'result')
  const verdict = (name: string, value: number, bad: boolean): string[] => [name, String(value), bad && value > 0 ? '<-- ' : '']
  lines.push(table(['', '', ''], [
    verdict('accepted', report.accepted, false),
    verdict('completed', report.completed, false),
    verdict('failed (dead)', report.failed, true),
    report.interrupted ? ['unfinished', String(report.lost), ''] : verdict('lost', report.lost, true),
    verdict('duplicated', report.duplicated, false),
    verdict('unexpected', report.unexpected, true),
    verdict('recovered', report.recovered, false),
    verdict('missing executions', report.missingExecutions, true)
  ]).split('\n').slice(1).join('\n'))
  if (report.lostIds.length > 0 && !report.interrupted) lines.push(`  lost: ${report.lostIds.join(', ')}${report.lost > report.lostIds.length ? ', …' : ''}`)
  for (const entry of report.examples) lines.push(`  ${entry.why} ${entry.id} (ran ${entry.executions}x): ${entry.history}`)
  const s = report.submit
  lines.push(`  submits: ${s.attempts} sent in ${s.batches} batches, ${s.refused} refused, ${s.unreachable} unreachable, ${s.indeterminate} unanswered`)
  lines.push(`  throughput: ${report.throughput.completedPerSecond ?? '-'} tasks/s completed, ${s.acceptedPerSecond ?? '-'} tasks/s accepted (workload ${(report.workloadMs / 1000).toFixed(1)} s, run ${(report.elapsedMs / 1000).toFixed(1)} s)`)
  lines.push(`  under-replicated: ${report.underReplicatedTaskSeconds} task-seconds`)

  lines.push('', 'latency (ms)')
  const latency = (name: string, summary: LatencySummary): string[] => [name, ms(summary.p50), ms(summary.p95), ms(summary.p99), ms(summary.max), String(summary.count)]
  lines.push(table(['', 'p50', 'p95', 'p99', 'max', 'count'], [
    latency('submit → start', report.latencyMs.submitToStart),
    latency('submit → done', report.latencyMs.submitToDone),
    latency('batch answer', report.submit.answerMs)
  ]))

  if (report.failover.length > 0) {
    lines.push('', 'failover (fault → first run elsewhere of a task running on the node)')
    lines.push(table(['fault', 'node', 'running', 'taken over', 'first ms', 'p50 ms', 'max ms'], report.failover.map(entry => [
      entry.fault, String(entry.node), String(entry.runningTasks), String(entry.takenOver), ms(entry.firstMs), ms(entry.p50Ms), ms(entry.maxMs)
    ])))
  }

  lines.push('', `per node (executed: max ${report.perNode.executedMax}, avg ${report.perNode.executedAvg})`)
  lines.push(table(['node', 'peer', 'runs', 'executed', 'restarts'], report.perNode.nodes.map(node => [
    String(node.node), `…${node.peerId.slice(-8)}`, String(node.runs), String(node.executed), String(node.restarts)
  ])))
  lines.push('')
  if (!report.workloadComplete && !report.interrupted) lines.push(`WARNING: the cluster accepted only ${report.accepted} of ${o.tasks} tasks before the workload gave up`)
  if (report.interrupted) lines.push('INTERRUPTED: the numbers above cover the run so far')
  else if (report.lost > 0) lines.push(`FAILED: ${report.lost} accepted task${report.lost === 1 ? ' was' : 's were'} lost`)
  else lines.push(`OK: nothing lost (${report.accepted} accepted, ${report.completed} completed${report.failed > 0 ? `, ${report.failed} dead` : ''})`)
  return lines.join('\n') + '\n'
}

// ------------------------------------------------------------------ HTML

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, char => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char]!)
}

const FAULT_COLOURS: Record<FaultWindow['kind'], string> = { kill: '#e4572e', pause: '#f3a712', slow: '#a8c686', partition: '#669bbc', lag: '#b07bac', loss: '#8d6a9f' }

interface Chart { width: number, height: number, left: number, right: number, top: number, bottom: number }

function axes (chart: Chart, xMax: number, yMax: number, xLabel: string, yLabel: string, xTicks: number[], yTicks: number[]): string {
  const x = (value: number): number => chart.left + (value / xMax) * (chart.width - chart.left - chart.right)
  const y = (value: number): number => chart.height - chart.bottom - (value / yMax) * (chart.height - chart.top - chart.bottom)
  const parts: string[] = []
  parts.push(`<line x1="${chart.left}" y1="${chart.height - chart.bottom}" x2="${chart.width - chart.right}" y2="${chart.height - chart.bottom}" stroke="#444"/>`)
  parts.push(`<line x1="${chart.left}" y1="${chart.top}" x2="${chart.left}" y2="${chart.height - chart.bottom}" stroke="#444"/>`)
  for (const tick of xTicks) parts.push(`<text x="${x(tick).toFixed(1)}" y="${chart.height - chart.bottom + 14}" text-anchor="middle">${tick}</text>`)
  for (const tick of yTicks) {
    parts.push(`<line x1="${chart.left}" y1="${y(tick).toFixed(1)}" x2="${chart.width - chart.right}" y2="${y(tick).toFixed(1)}" stroke="#eee"/>`)
    parts.push(`<text x="${chart.left - 4}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end">${tick}</text>`)
  }
  parts.push(`<text x="${(chart.left + chart.width - chart.right) / 2}" y="${chart.height - 4}" text-anchor="middle">${escapeHtml(xLabel)}</text>`)
  parts.push(`<text x="12" y="${chart.top + (chart.height - chart.top - chart.bottom) / 2}" text-anchor="middle" transform="rotate(-90 12 ${chart.top + (chart.height - chart.top - chart.bottom) / 2})">${escapeHtml(yLabel)}</text>`)
  return parts.join('')
}

function ticks (max: number, count = 5): number[] {
  if (max <= 0) return [0]
  const step = tidy(max / count)
  const list: number[] = []
  for (let value = 0; value <= max + 1e-9; value += step) list.push(Math.round(value * 1000) / 1000)
  return list
}

function throughputChart (report: SimReport): string {
  const series = report.throughput.series
  const xMax = Math.max(1, series.length)
  // Fault labels sit above the plot, one row per label that would overlap the one before it.
  const LABEL_ROW_PX = 13
  const CHAR_PX = 6
  const plotWidth = 900 - 56 - 16
  const rows: number[] = []
  const rowEnds: number[] = []
  for (const window of report.faultWindows) {
    const from = 56 + (window.fromMs / 1000 / xMax) * plotWidth
    let row = rowEnds.findIndex(end => end < from)
    if (row < 0) row = rowEnds.length
    rowEnds[row] = from + window.label.length * CHAR_PX + 8
    rows.push(row)
  }
  const chart: Chart = { width: 900, height: 300 + rowEnds.length * LABEL_ROW_PX, left: 56, right: 16, top: 12 + rowEnds.length * LABEL_ROW_PX, bottom: 36 }
  const yMax = Math.max(1, ...series.map(point => Math.max(point.accepted, point.completed))) * 1.1
  const x = (value: number): number => chart.left + (value / xMax) * (chart.width - chart.left - chart.right)
  const y = (value: number): number => chart.height - chart.bottom - (value / yMax) * (chart.height - chart.top - chart.bottom)
  const parts: string[] = []
  report.faultWindows.forEach((window, index) => {
    const from = x(window.fromMs / 1000)
    const to = x((window.toMs ?? report.elapsedMs) / 1000)
    parts.push(`<rect x="${from.toFixed(1)}" y="${chart.top}" width="${Math.max(2, to - from).toFixed(1)}" height="${chart.height - chart.top - chart.bottom}" fill="${FAULT_COLOURS[window.kind]}" fill-opacity="0.18"><title>${escapeHtml(`${window.label}: node ${window.nodes.join(',')} from +${(window.fromMs / 1000).toFixed(1)}s to ${window.toMs === null ? 'the end' : `+${(window.toMs / 1000).toFixed(1)}s`}`)}</title></rect>`)
    parts.push(`<line x1="${from.toFixed(1)}" y1="${chart.top}" x2="${from.toFixed(1)}" y2="${chart.height - chart.bottom}" stroke="${FAULT_COLOURS[window.kind]}" stroke-width="1.5"/>`)
    const labelY = chart.top - 4 - (rowEnds.length - 1 - rows[index]!) * LABEL_ROW_PX
    parts.push(`<line x1="${from.toFixed(1)}" y1="${labelY + 2}" x2="${from.toFixed(1)}" y2="${chart.top}" stroke="${FAULT_COLOURS[window.kind]}" stroke-dasharray="2 2"/>`)
    parts.push(`<text x="${(from + 3).toFixed(1)}" y="${labelY}" fill="${FAULT_COLOURS[window.kind]}">${escapeHtml(window.label)}</text>`)
  })
  const line = (key: 'accepted' | 'completed'): string => series.map(point => `${x(point.second + 0.5).toFixed(1)},${y(point[key]).toFixed(1)}`).join(' ')
  parts.push(`<polyline points="${line('accepted')}" fill="none" stroke="#9aa5b1" stroke-width="1.5" stroke-dasharray="4 3"/>`)
  parts.push(`<polyline points="${line('completed')}" fill="none" stroke="#1b4965" stroke-width="2"/>`)
  parts.push(`<text x="${chart.left}" y="${chart.height - 4}"><tspan fill="#1b4965">— completed/s</tspan>  <tspan fill="#9aa5b1">- - accepted/s</tspan></text>`)
  return svg(chart, axes(chart, xMax, yMax, 'seconds since the workload started', 'tasks per second', ticks(xMax), ticks(yMax / 1.1)) + parts.join(''))
}

function histogramChart (report: SimReport): string {
  const chart: Chart = { width: 900, height: 260, left: 56, right: 16, top: 16, bottom: 36 }
  const { bucketMs, counts } = report.latencyMs.histogram
  if (counts.length === 0) return '<p>No finished tasks.</p>'
  const xMax = counts.length * bucketMs
  const yMax = Math.max(1, ...counts) * 1.1
  const x = (value: number): number => chart.left + (value / xMax) * (chart.width - chart.left - chart.right)
  const y = (value: number): number => chart.height - chart.bottom - (value / yMax) * (chart.height - chart.top - chart.bottom)
  const bars = counts.map((count, index) => {
    const last = index === counts.length - 1
    return `<rect x="${(x(index * bucketMs) + 1).toFixed(1)}" y="${y(count).toFixed(1)}" width="${Math.max(1, x(bucketMs) - x(0) - 2).toFixed(1)}" height="${(y(0) - y(count)).toFixed(1)}" fill="#5fa8d3"><title>${index * bucketMs}${last ? '+' : `–${(index + 1) * bucketMs}`} ms: ${count}</title></rect>`
  }).join('')
  const tail = (counts.length - 1) * bucketMs
  return svg(chart, axes(chart, xMax, yMax, `submit → done (ms; the last bar holds everything from ${tail} ms up)`, 'tasks', ticks(xMax), ticks(yMax / 1.1)) + bars)
}

function perNodeChart (report: SimReport): string {
  const nodes = report.perNode.nodes
  const chart: Chart = { width: 900, height: 240, left: 56, right: 16, top: 16, bottom: 36 }
  const yMax = Math.max(1, ...nodes.map(node => Math.max(node.runs, node.executed))) * 1.1
  const slot = (chart.width - chart.left - chart.right) / Math.max(1, nodes.length)
  const y = (value: number): number => chart.height - chart.bottom - (value / yMax) * (chart.height - chart.top - chart.bottom)
  const parts = nodes.map((node, index) => {
    const left = chart.left + index * slot + slot * 0.15
    const width = slot * 0.35
    return `<rect x="${left.toFixed(1)}" y="${y(node.runs).toFixed(1)}" width="${width.toFixed(1)}" height="${(y(0) - y(node.runs)).toFixed(1)}" fill="#bee9e8"><title>node ${node.node}: ${node.runs} runs started</title></rect>` +
      `<rect x="${(left + width).toFixed(1)}" y="${y(node.executed).toFixed(1)}" width="${width.toFixed(1)}" height="${(y(0) - y(node.executed)).toFixed(1)}" fill="#1b4965"><title>node ${node.node}: ${node.executed} executed (succeeded there)</title></rect>` +
      `<text x="${(left + width).toFixed(1)}" y="${chart.height - chart.bottom + 14}" text-anchor="middle">node ${node.node}</text>`
  })
  const yTicks = ticks(yMax / 1.1)
  const grid = yTicks.map(tick => `<line x1="${chart.left}" y1="${y(tick).toFixed(1)}" x2="${chart.width - chart.right}" y2="${y(tick).toFixed(1)}" stroke="#eee"/><text x="${chart.left - 4}" y="${(y(tick) + 4).toFixed(1)}" text-anchor="end">${tick}</text>`).join('')
  const legend = `<text x="${chart.width - chart.right - 4}" y="${chart.top + 12}" text-anchor="end"><tspan fill="#7fb8b6">■ runs started</tspan>  <tspan fill="#1b4965">■ executed</tspan></text>`
  return svg(chart, grid + `<line x1="${chart.left}" y1="${y(0)}" x2="${chart.width - chart.right}" y2="${y(0)}" stroke="#444"/>` + parts.join('') + legend)
}

function svg (chart: Chart, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${chart.width} ${chart.height}" width="100%" font-family="system-ui, sans-serif" font-size="11" fill="#333">${body}</svg>`
}

function htmlTable (headers: string[], rows: string[][]): string {
  return `<table><thead><tr>${headers.map(header => `<th>${escapeHtml(header)}</th>`).join('')}</tr></thead><tbody>${rows.map(row => `<tr>${row.map(cell => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`).join('')}</tbody></table>`
}

/** A self-contained page: no scripts, no external resources. */
export function renderHtml (report: SimReport): string {
  const o = report.options
  const ok = report.lost === 0 && !report.interrupted
  const summary = htmlTable(['', ''], [
    ['accepted', String(report.accepted)],
    ['completed', String(report.completed)],
    ['failed (dead)', String(report.failed)],
    ['lost', String(report.lost)],
    ['duplicated', String(report.duplicated)],
    ['unexpected', String(report.unexpected)],
    ['recovered', String(report.recovered)],
    ['throughput (completed/s)', String(report.throughput.completedPerSecond ?? '-')],
    ['accepted/s', String(report.submit.acceptedPerSecond ?? '-')],
    ['under-replicated task-seconds', String(report.underReplicatedTaskSeconds)],
    ['submits sent / refused / unreachable / unanswered', `${report.submit.attempts} / ${report.submit.refused} / ${report.submit.unreachable} / ${report.submit.indeterminate}`]
  ])
  const row = (name: string, s: LatencySummary): string[] => [name, ms(s.p50), ms(s.p95), ms(s.p99), ms(s.max), String(s.count)]
  const latency = htmlTable(['(ms)', 'p50', 'p95', 'p99', 'max', 'count'], [
    row('submit → start', report.latencyMs.submitToStart),
    row('submit → done', report.latencyMs.submitToDone),
    row('batch answer', report.submit.answerMs)
  ])
  const failover = report.failover.length === 0 ? '<p>No kill, pause or partition.</p>' : htmlTable(['fault', 'node', 'running tasks', 'taken over', 'first (ms)', 'p50 (ms)', 'max (ms)'], report.failover.map(entry => [
    entry.fault, String(entry.node), String(entry.runningTasks), String(entry.takenOver), ms(entry.firstMs), ms(entry.p50Ms), ms(entry.maxMs)
  ]))
  const timeline = htmlTable(['at', 'event'], report.timeline.map(entry => [seconds(entry.atMs), entry.text]))
  const perNode = htmlTable(['node', 'peer id', 'runs', 'executed', 'restarts'], report.perNode.nodes.map(node => [String(node.node), node.peerId, String(node.runs), String(node.executed), String(node.restarts)]))
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>taskmesh sim: ${escapeHtml(ok ? 'OK' : 'FAILED')} (${o.nodes} nodes, ${o.tasks} tasks)</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222 }
h1 { font-size: 1.4em } h2 { font-size: 1.1em; margin-top: 2em }
.verdict { display: inline-block; padding: .2em .6em; border-radius: 4px; color: #fff; background: ${ok ? '#2a9d8f' : '#d62828'} }
table { border-collapse: collapse; margin: .5em 0 } td, th { padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: right } td:first-child, th:first-child { text-align: left }
code { background: #f4f4f4; padding: .1em .3em }
</style></head><body>
<h1>taskmesh sim <span class="verdict">${ok ? 'OK: nothing lost' : report.interrupted ? 'INTERRUPTED' : `FAILED: ${report.lost} lost`}</span></h1>
<p>${o.nodes} nodes, R=${o.replicas}, ${o.tasks} tasks at ${o.rate === null ? 'unlimited rate' : `${o.rate}/s`}, duration <code>${escapeHtml(o.duration)}</code>, seed ${o.seed}; faults <code>${escapeHtml(o.faults)}</code>${o.randomFaults ? ' (random)' : ''}. Started ${escapeHtml(report.startedAt)}, ran ${(report.elapsedMs / 1000).toFixed(1)} s.</p>
${summary}
<h2>Throughput over time</h2>
${throughputChart(report)}
<h2>Latency</h2>
${latency}
${histogramChart(report)}
<h2>Failover</h2>
${failover}
<h2>Executions per node</h2>
${perNodeChart(report)}
${perNode}
<h2>Timeline</h2>
${timeline}
</body></html>
`
}
