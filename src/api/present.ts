// present.ts: the public JSON shapes of the HTTP API (contract.md "Record", the create body,
// the /v1/cluster answer) and the conversion from the internal nouns to them.
// Why separate from types.ts: internal records keep milliseconds and internal states; users
// see ISO 8601 times and never the internal `aborted` state.
import type { TaskEvent } from './node-api.js'
import { formatDurationMs } from '../core/duration.js'
import type { Backoff, CatchUpPolicy, ClusterView, HistoryEntry, Load, MemberState, OverlapPolicy, ScheduleState, TaskRecord, TaskState } from '../core/types.js'

/** A duration: milliseconds, or a string such as `250ms`, `5s`, `2m`, `1h`, `1d`. */
export type DurationInput = number | string

/** The body of `POST /v1/tasks` (and each item of a batch). */
export interface CreateBody {
  type: string
  payload?: unknown
  priority?: number
  delay?: DurationInput
  /** ISO 8601 time; give either `delay` or `runAt`. */
  runAt?: string
  /** A schedule: a cron expression, 5 fields or 6 with seconds first (or @daily, @hourly, ...). */
  cron?: string
  /** A schedule: a fixed interval, at least 1s. Give either `cron` or `every`. */
  every?: DurationInput
  /** IANA time zone of `cron` (default UTC). */
  timezone?: string
  /** After an outage, run every missed tick (`all`) or only the latest (`latest`, default). */
  catchUp?: 'all' | 'latest'
  /** `forbid`: skip a tick while the previous occurrence still runs; default `allow`. */
  overlap?: 'allow' | 'forbid'
  maxAttempts?: number
  /** `fixed:D`, `exp:D`, `exp:D:maxD`, or the object form. */
  backoff?: string | { type: 'fixed' | 'exponential', delay: DurationInput, maxDelay?: DurationInput }
  timeout?: DurationInput
  idempotencyKey?: string
  dependsOn?: string[]
}

export interface PublicHistoryEntry {
  state: TaskState
  at: string
  node: string
  attempt: number
  error?: string
}

export interface PublicBackoff {
  type: 'fixed' | 'exponential'
  /** Milliseconds. */
  delay: number
  /** Milliseconds. */
  maxDelay: number
}

export interface PublicRecord {
  id: string
  type: string
  payload: unknown
  state: TaskState
  priority: number
  attempt: number
  maxAttempts: number
  owner: string | null
  replicas: string[]
  runAt: string
  createdAt: string
  startedAt: string | null
  finishedAt: string | null
  result: unknown
  error: string | null
  scheduleId?: string
  dependsOn?: string[]
  history: PublicHistoryEntry[]
  /** Milliseconds, or null for no timeout. */
  timeout: number | null
  backoff: PublicBackoff
  idempotencyKey?: string
  /** Fencing epoch of the claim that produced this version. */
  epoch: number
  /** Manual retries of this task so far (present when > 0). */
  generation?: number
  /** The last progress its handler reported (present once reported). */
  progress?: number
  /** Present on a schedule's own record. */
  schedule?: PublicSchedule
  /** Why a task that is not finished is not running yet (present when known). */
  waiting?: string
}

export interface PublicSchedule {
  cron: string | null
  /** Milliseconds, or null for a cron schedule. */
  every: number | null
  /** `every` as text, e.g. `1s`, `5m`; null for a cron schedule. */
  everyText: string | null
  /** IANA time zone of the cron expression; null = UTC. */
  timezone: string | null
  catchUp: CatchUpPolicy
  overlap: OverlapPolicy
  paused: boolean
  /** Every tick up to this time has fired (or been skipped); null before the first. */
  firedUpTo: string | null
  /** Id of the last occurrence created. */
  lastOccurrence: string | null
  fired: number
  skipped: number
}

/** One `event: task` of `GET /v1/events`: a history entry plus the task id. */
export interface PublicTaskEvent extends PublicHistoryEntry {
  id: string
}

export interface ClusterMemberJson {
  peerId: string
  addrs: string[]
  api: string
  state: MemberState
  load: Load
  types: string[]
  ringShare: number
  lastSeen: string | null
}

/** The answer of `GET /v1/cluster`. */
export interface ClusterJson {
  self: string
  replicas: number
  members: ClusterMemberJson[]
}

/**
 * The record as users see it. The caller filters out `aborted` records (never shown).
 * `waiting`: why it is not running yet, from a read of this record (shown when non-null and
 * the task is not terminal).
 */
export function toPublicRecord (record: TaskRecord, waiting: string | null = null): PublicRecord {
  const result: PublicRecord = {
    id: record.id,
    type: record.type,
    payload: record.payload,
    state: record.state as TaskState,
    priority: record.priority,
    attempt: record.attempt,
    maxAttempts: record.maxAttempts,
    owner: record.owner,
    replicas: record.replicas,
    runAt: isoTime(record.runAtMs),
    createdAt: isoTime(record.createdAtMs),
    startedAt: isoTimeOrNull(record.startedAtMs),
    finishedAt: isoTimeOrNull(record.finishedAtMs),
    result: record.result === undefined ? null : record.result,
    error: record.error,
    history: record.history.map(toPublicHistoryEntry),
    timeout: record.timeoutMs,
    backoff: toPublicBackoff(record.backoff),
    epoch: record.epoch
  }
  if (record.scheduleId !== null) result.scheduleId = record.scheduleId
  if (record.dependsOn.length > 0) result.dependsOn = record.dependsOn
  if (record.idempotencyKey !== null) result.idempotencyKey = record.idempotencyKey
  if (record.generation > 0) result.generation = record.generation
  if (record.progress !== null) result.progress = record.progress
  if (record.schedule !== null) result.schedule = toPublicSchedule(record.schedule)
  if (waiting !== null && !TERMINAL.has(record.state)) result.waiting = waiting
  return result
}

const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'dead', 'cancelled', 'aborted'])

export function toPublicSchedule (schedule: ScheduleState): PublicSchedule {
  return {
    cron: schedule.cron,
    every: schedule.everyMs,
    everyText: schedule.everyMs === null ? null : formatDurationMs(schedule.everyMs),
    timezone: schedule.timezone,
    catchUp: schedule.catchUp,
    overlap: schedule.overlap,
    paused: schedule.paused,
    firedUpTo: schedule.firedUpToMs > 0 ? isoTimeOrNull(schedule.firedUpToMs) : null,
    lastOccurrence: schedule.lastOccurrence,
    fired: schedule.fired,
    skipped: schedule.skipped
  }
}

export function toPublicHistoryEntry (entry: HistoryEntry): PublicHistoryEntry {
  const result: PublicHistoryEntry = { state: entry.state, at: isoTime(entry.atMs), node: entry.node, attempt: entry.attempt }
  if (entry.error !== undefined) result.error = entry.error
  return result
}

export function toPublicBackoff (backoff: Backoff): PublicBackoff {
  return { type: backoff.kind, delay: backoff.delayMs, maxDelay: backoff.delayMsMax }
}

export function toPublicTaskEvent (event: TaskEvent): PublicTaskEvent {
  return { id: event.id, state: event.state, at: isoTime(event.atMs), node: event.node, attempt: event.attempt }
}

export function toClusterJson (view: ClusterView): ClusterJson {
  return {
    self: view.self,
    replicas: view.replicas,
    members: view.members.map(member => ({
      peerId: member.peerId,
      addrs: member.addrs,
      api: member.api,
      state: member.state,
      load: member.load,
      types: member.types,
      ringShare: member.ringShare,
      lastSeen: isoTimeOrNull(member.lastSeenMs)
    }))
  }
}

function isoTime (ms: number): string {
  return new Date(ms).toISOString()
}

function isoTimeOrNull (ms: number | null): string | null {
  // Why the range check: a member never heard from may carry 0 or a sentinel; a bad time
  // must not turn a whole answer into a 500.
  if (ms === null || !Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return null
  return new Date(ms).toISOString()
}
