// record.ts: the task record lattice (design.md section 4).
// merge(a, b) is commutative, associative and idempotent: the record with the higher version
// wins (generation, then the terminal tier: non-terminal < succeeded/dead/aborted < cancelled,
// then epoch, attempt, state order, history length, schedule revision and watermark, progress,
// then a canonical-text tie-break), and `committed` is OR-ed, so replicas converge whatever the
// order. Cancelled outranks every other end at the same generation: a cancel racing a
// completion wins on every replica, whatever the order they see them in.
import { TERMINAL_STATES } from './types.js'
import type { HistoryEntry, StoredState, TaskRecord, TaskSpec, TaskState } from './types.js'

/** Order of states within one (epoch, attempt): later in a lifecycle ranks higher. */
const STATE_ORDER: Record<StoredState, number> = {
  pending: 0, queued: 1, running: 2, retrying: 3, succeeded: 4, dead: 4, cancelled: 5, aborted: 6
}

export function isTerminal (state: StoredState): boolean {
  return TERMINAL_STATES.has(state)
}

/** 0 while alive, 1 for an ordinary end, 2 for cancelled (which beats a racing completion). */
function terminalTier (state: StoredState): number {
  return state === 'cancelled' ? 2 : isTerminal(state) ? 1 : 0
}

/** Negative when a ranks below b, positive when above, 0 only for equal versions. */
export function compareVersions (a: TaskRecord, b: TaskRecord): number {
  return compareVersionTuples(versionOf(a), versionOf(b)) ||
    compareText(canonicalText(a), canonicalText(b))
}

export function merge (a: TaskRecord, b: TaskRecord): TaskRecord {
  if (a === b) return a
  const order = compareVersions(a, b)
  const winner = order >= 0 ? a : b
  const committed = a.committed || b.committed
  return winner.committed === committed ? winner : { ...winner, committed }
}

/** A record's version as a tuple, compared lexicographically (what anti-entropy exchanges). */
export function versionOf (record: TaskRecord): number[] {
  return [
    record.generation, terminalTier(record.state), record.epoch, record.attempt, STATE_ORDER[record.state], record.history.length,
    record.schedule?.revision ?? 0, record.schedule?.firedUpToMs ?? 0,
    record.progress === null ? 0 : Math.floor(Math.max(0, record.progress) * 1000) + 1
  ]
}

export function compareVersionTuples (a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const difference = (a[i] ?? 0) - (b[i] ?? 0)
    if (difference !== 0) return difference
  }
  return 0
}

/** True when merging b into a would change a. */
export function mergeChanges (a: TaskRecord, b: TaskRecord): boolean {
  return compareVersions(b, a) > 0 || (b.committed && !a.committed)
}

function compareText (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

const canonicalTexts = new WeakMap<TaskRecord, string>()

/** Deterministic text of a record, ignoring `committed` (it is merged separately). Cached per object. */
export function canonicalText (record: TaskRecord): string {
  let text = canonicalTexts.get(record)
  if (text === undefined) {
    const { committed: _committed, ...rest } = record
    text = stableStringify(rest)
    canonicalTexts.set(record, text)
  }
  return text
}

export function stableStringify (value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null'
  if (Array.isArray(value)) return '[' + value.map(stableStringify).join(',') + ']'
  if (value instanceof Uint8Array) return '"b:' + Array.from(value).join('.') + '"'
  const keys = Object.keys(value).sort()
  return '{' + keys
    .filter(key => (value as Record<string, unknown>)[key] !== undefined)
    .map(key => JSON.stringify(key) + ':' + stableStringify((value as Record<string, unknown>)[key]))
    .join(',') + '}'
}

export interface NewRecordInput {
  id: string
  spec: TaskSpec
  atMs: number
  coordinator: string
  replicas: string[]
  /** For an occurrence of a schedule. */
  scheduleId?: string | null
  /** Above the generation of an aborted record that held this id before (a deterministic id reused). */
  generation?: number
}

export function newRecord ({ id, spec, atMs, coordinator, replicas, scheduleId = null, generation = 0 }: NewRecordInput): TaskRecord {
  const runAtMs = spec.runAtMs ?? (spec.delayMs !== null ? atMs + spec.delayMs : atMs)
  const state: TaskState = spec.schedule === null && runAtMs > atMs ? 'pending' : 'queued'
  return {
    id,
    type: spec.type,
    payload: spec.payload ?? null,
    state,
    priority: spec.priority,
    attempt: 0,
    maxAttempts: spec.maxAttempts,
    backoff: spec.backoff,
    timeoutMs: spec.timeoutMs,
    epoch: 0,
    owner: null,
    replicas,
    coordinator,
    committed: false,
    runAtMs,
    createdAtMs: atMs,
    startedAtMs: null,
    finishedAtMs: null,
    result: null,
    error: null,
    idempotencyKey: spec.idempotencyKey,
    dependsOn: spec.dependsOn,
    scheduleId,
    // A schedule's ticks start after its start time (runAt, else its creation).
    schedule: spec.schedule === null
      ? null
      : { ...spec.schedule, paused: false, firedUpToMs: runAtMs, lastOccurrence: null, fired: 0, skipped: 0, revision: 0 },
    generation,
    retryBase: 0,
    progress: null,
    history: [{ state, atMs, node: coordinator, attempt: 0 }]
  }
}

export function withHistory (record: TaskRecord, entry: HistoryEntry): HistoryEntry[] {
  return [...record.history, entry]
}

/** Attempts still allowed in the current generation after the one that just ran. */
export function attemptsLeft (record: TaskRecord): number {
  return record.maxAttempts - (record.attempt - record.retryBase)
}

/**
 * Delay before the next attempt after attempt `attempt` failed. Exponential backoff doubles
 * from `delayMs` up to `delayMsMax`, with "equal jitter": half the delay is fixed, the other half
 * is drawn from a hash of (task id, attempt), so every replica computes the same value and
 * retries of many tasks that failed together spread out. Fixed backoff has no jitter.
 */
export function backoffDelayMs (record: TaskRecord): number {
  const { kind, delayMs, delayMsMax } = record.backoff
  if (kind === 'fixed') return delayMs
  const full = Math.min(delayMsMax, delayMs * 2 ** Math.max(0, record.attempt - record.retryBase - 1))
  return Math.round(full / 2 + (full / 2) * unitHash(`${record.id}#${record.attempt}`))
}

/** A deterministic number in [0, 1) from a string (FNV-1a). */
export function unitHash (text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash / 2 ** 32
}
