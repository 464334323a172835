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
