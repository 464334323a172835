// types.ts: the nouns of taskmesh shared by every layer.
// Why one file: the core, the wire codec, the API and the simulator must agree on these
// shapes exactly; they are data, not behaviour.

export type TaskState =
  | 'pending' | 'queued' | 'running' | 'retrying'
  | 'succeeded' | 'dead' | 'cancelled'

/** `aborted` is internal: a submit that never reached its write quorum. Never shown to users. */
export type StoredState = TaskState | 'aborted'

export const TERMINAL_STATES: ReadonlySet<StoredState> = new Set(['succeeded', 'dead', 'cancelled', 'aborted'])

export interface Backoff {
  kind: 'fixed' | 'exponential'
  delayMs: number
  delayMsMax: number
}

/** A validated create request, as the API edge hands it to the core. */
export interface TaskSpec {
  type: string
  payload: unknown
  priority: number
  /** Absolute time (ms since epoch) before which the task must not start; null = now. */
  runAtMs: number | null
  /** Relative delay; turned into runAtMs by the core with the submit's atMs. */
  delayMs: number | null
  maxAttempts: number
  backoff: Backoff
  timeoutMs: number | null
  idempotencyKey: string | null
  dependsOn: string[]
  /** Set for a schedule (cron or every): the record is the schedule, its occurrences are tasks. */
  schedule: ScheduleSpec | null
}

export type CatchUpPolicy = 'all' | 'latest'
export type OverlapPolicy = 'allow' | 'forbid'

/** What a schedule fires: a cron expression (5 or 6 fields, in a time zone) or a fixed interval. */
export interface ScheduleSpec {
  cron: string | null
  /** IANA time zone of the cron expression; null = UTC. */
  timezone: string | null
  everyMs: number | null
  /** After an outage: fire every missed tick (`all`) or only the latest (`latest`). */
  catchUp: CatchUpPolicy
  /** `forbid`: skip a tick while the previous occurrence has not finished. */
  overlap: OverlapPolicy
}

/** A schedule's replicated state, kept in its record. */
export interface ScheduleState extends ScheduleSpec {
  paused: boolean
  /** Every tick at or before this time (ms) has been fired (or skipped); 0 before the first. */
  firedUpToMs: number
  /** The last occurrence created, or null. */
  lastOccurrence: string | null
  fired: number
  skipped: number
  /** Bumped by pause and resume (user changes win over watermark advances of the same revision). */
  revision: number
}

export interface HistoryEntry {
  state: TaskState
  atMs: number
  node: string
  attempt: number
  error?: string
}

/** The replicated task record: a join-semilattice under merge() in record.ts. */
export interface TaskRecord {
  id: string
  type: string
  payload: unknown
  state: StoredState
  priority: number
  /** Attempts started so far: 0 before the first run, then 1, 2, ... */
  attempt: number
  maxAttempts: number
  backoff: Backoff
  timeoutMs: number | null
  /** Fencing epoch of the claim that produced this version; 0 before any claim. */
  epoch: number
  /** Peer id of the node that claimed it last (the acting owner), or null. */
  owner: string | null
  /** The replica set computed when this version was written. */
  replicas: string[]
  /** Peer id of the node that accepted the submit. */
  coordinator: string
  /**
   * True once the coordinator saw its write quorum (and so may have answered 201).
   * Owners claim only committed records; merge ORs it.
   */
  committed: boolean
  runAtMs: number
  createdAtMs: number
  startedAtMs: number | null
  finishedAtMs: number | null
  result: unknown
  error: string | null
  idempotencyKey: string | null
  dependsOn: string[]
  scheduleId: string | null
  /** Non-null on a schedule's own record. */
  schedule: ScheduleState | null
  /** Bumped by a manual retry of a dead (or cancelled) task: a new life that outranks the old end. */
  generation: number
  /** Attempts made before the current generation (maxAttempts counts from here). */
  retryBase: number
  /** Last progress reported by the handler (any number, e.g. percent), or null. */
  progress: number | null
  history: HistoryEntry[]
}

/** What a replica keeps per task: the record plus the highest epoch it promised. */
export interface StoredEntry {
  record: TaskRecord
  promised: number
}

export interface Load {
  running: number
  queued: number
  capacity: number
  /** EWMA of task run time in ms. */
  durationMsEwma: number
}

/** Published on the heartbeat topic by every node. */
export interface Heartbeat {
  protocol: number
  peerId: string
  api: string
  addrs: string[]
  load: Load
  /** Task types this node can execute. */
  types: string[]
  /** Draining: takes no new work, still finishes (and owns) what it runs. */
  leaving: boolean
  /** Gone for good: its ranges were handed off; remove it from the ring now. */
  left: boolean
  /** A dialable address of every other live member the sender knows (member gossip). */
  peers: string[]
  sequence: number
}

export type MemberState = 'alive' | 'suspect' | 'dead' | 'left'

export interface MemberView {
  peerId: string
  addrs: string[]
  api: string
  state: MemberState
  load: Load
  types: string[]
  /** Fraction of the keyspace this member owns (first of the replica set). */
  ringShare: number
  lastSeenMs: number
}

export interface ClusterView {
  self: string
  replicas: number
  members: MemberView[]
}

/** Error codes of operating errors; api/ maps them to HTTP status in one table. */
export type ErrorCode =
  | 'invalid_input'
  | 'unauthorized'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'rate_limited'
  | 'no_quorum'
  | 'exec_disabled'
  | 'shutting_down'
  | 'internal'

export interface Rejection {
  code: ErrorCode
  message: string
}

/** One item of a submit reply: the record accepted (or already existing), or why not. */
export type SubmitOutcome =
  | { ok: true, created: boolean, record: TaskRecord }
  | { ok: false, error: Rejection }

/** A change to an existing task or schedule, asked for by a client. */
export type TaskCommand = 'cancel' | 'retry' | 'pause' | 'resume'

export type CommandOutcome =
  | { ok: true, record: TaskRecord }
  | { ok: false, error: Rejection }

export interface ListQuery {
  state: TaskState | null
  type: string | null
  scheduleId: string | null
  limit: number
  /** Opaque cursor from a previous page: `${createdAtMs}:${id}` of the last record. */
  cursor: string | null
}

export interface ListPage {
  tasks: TaskRecord[]
  next: string | null
}
