// checkers.ts: how a run is judged, shared by the local and the virtual simulator.
// Pure functions over plain data, after Jepsen's checkers: a queue checker (total-queue),
// a schedule checker (the Chronos analysis) and replica equality after quiescence.

export interface QueueInput {
  /** Ids the API accepted (201). */
  accepted: string[]
  /** Final state of each task as the cluster reports it (absent = unknown / not found). */
  terminal: Map<string, string>
  /** How many times each task's work actually ran (side effects observed). */
  executions: Map<string, number>
  /** Runs each task's final record accounts for (one per recorded outcome: retries are not duplicates); default 1. */
  recorded?: Map<string, number>
  /** Ids the API explicitly refused (503 and the like). A run of one is unexpected; a task the client got no answer for is indeterminate and may run. */
  refused?: string[]
}

export interface QueueReport {
  accepted: number
  /** Accepted and succeeded. */
  completed: number
  /** Accepted, never reached a terminal state (or vanished). */
  lost: number
  lostIds: string[]
  /** Accepted tasks that ran more often than their record accounts for. */
  duplicated: number
  duplicatedIds: string[]
  /** Executions of tasks that were explicitly refused (a 503'd submit that ran anyway) or never submitted. */
  unexpected: number
  unexpectedIds: string[]
  /** Accepted tasks that ended dead or cancelled (terminal, not lost, not completed). */
  failed: number
}

const TERMINAL = new Set(['succeeded', 'dead', 'cancelled'])
const IDS_REPORTED_MAX = 20

export function checkQueue ({ accepted, terminal, executions, recorded, refused }: QueueInput): QueueReport {
  const acceptedSet = new Set(accepted)
  const lostIds: string[] = []
  const duplicatedIds: string[] = []
  let completed = 0
  let failed = 0
  let lost = 0
  let duplicated = 0
  for (const id of acceptedSet) {
    const state = terminal.get(id)
    if (state === 'succeeded') completed++
    else if (state !== undefined && TERMINAL.has(state)) failed++
    else {
      lost++
      if (lostIds.length < IDS_REPORTED_MAX) lostIds.push(id)
    }
    if ((executions.get(id) ?? 0) > (recorded?.get(id) ?? 1)) {
      duplicated++
      if (duplicatedIds.length < IDS_REPORTED_MAX) duplicatedIds.push(id)
    }
  }
  const unexpectedIds: string[] = []
  let unexpected = 0
  const refusedSet = refused === undefined ? null : new Set(refused)
  for (const [id, count] of executions) {
    const isUnexpected = refusedSet === null ? !acceptedSet.has(id) : refusedSet.has(id)
    if (count > 0 && isUnexpected) {
      unexpected++
      if (unexpectedIds.length < IDS_REPORTED_MAX) unexpectedIds.push(id)
    }
  }
  return { accepted: acceptedSet.size, completed, lost, lostIds, duplicated, duplicatedIds, unexpected, unexpectedIds, failed }
}

export interface ScheduleInput {
  /** The ticks a schedule should have fired (ms). */
  expected: number[]
  /** When runs actually started (ms). */
  actual: number[]
  /** How late a run may start and still count for its tick (ms). */
  toleranceMs: number
  /** Ticks inside a known outage window may be caught up later or skipped (catch-up policy). */
  excused?: Array<{ fromMs: number, toMs: number }>
}

export interface ScheduleReport {
  expected: number
  matched: number
  /** Expected ticks with no distinct run in [tick, tick + tolerance], outside excused windows. */
  missed: number[]
  /** Runs that matched no expected tick. */
  extra: number[]
}

/**
 * Chronos-style: each expected tick is matched to a distinct actual run that started in
 * [tick, tick + tolerance]. Greedy over sorted lists is optimal here: intervals share one
 * length, so the earliest free run for the earliest tick never blocks a later tick.
 */
export function checkSchedule ({ expected, actual, toleranceMs, excused = [] }: ScheduleInput): ScheduleReport {
  const ticks = [...expected].sort((a, b) => a - b)
  const runs = [...actual].sort((a, b) => a - b)
  const used = new Array<boolean>(runs.length).fill(false)
  const missed: number[] = []
  let matched = 0
  let start = 0
  for (const tick of ticks) {
    while (start < runs.length && runs[start]! < tick) start++
    let found = -1
    for (let i = start; i < runs.length && runs[i]! <= tick + toleranceMs; i++) {
      if (!used[i]) { found = i; break }
    }
    if (found >= 0) {
      used[found] = true
      matched++
    } else if (!excused.some(window => tick >= window.fromMs && tick <= window.toMs)) {
      missed.push(tick)
    }
  }
  const extra = runs.filter((_, i) => !used[i])
  return { expected: ticks.length, matched, missed, extra }
}

export interface ReplicaInput {
  /** For each task: the version text each replica holds (null = the replica lacks it). */
  replicas: Map<string, Array<{ node: string, version: string | null }>>
}

export interface ReplicaReport {
  tasks: number
  divergent: number
  divergentIds: string[]
}

/** After healing and quiescence, every replica of a task holds the same version. */
export function checkReplicas ({ replicas }: ReplicaInput): ReplicaReport {
  const divergentIds: string[] = []
  let divergent = 0
  for (const [id, copies] of replicas) {
    const first = copies[0]?.version
    if (copies.some(copy => copy.version !== first)) {
      divergent++
      if (divergentIds.length < IDS_REPORTED_MAX) divergentIds.push(id)
    }
  }
  return { tasks: replicas.size, divergent, divergentIds }
}
