// protocol.ts: the messages peers exchange, and the inputs and effects of the core.
// Inputs are past-tense facts; effects are imperative orders (style.md).
import type { ExecuteOrder, ExecutionOutcome } from '../exec/types.js'
import type { ClusterView, CommandOutcome, Heartbeat, ListPage, ListQuery, StoredEntry, SubmitOutcome, TaskCommand, TaskRecord, TaskSpec, TaskState } from './types.js'

/** The wire protocol version carried in heartbeats. */
export const PROTOCOL_VERSION = 1

/** Peer-to-peer messages (src/net/wire.ts validates them at the edge). */
export type PeerMessage =
  /** Store (merge) a record durably; answered by `stored` after the write is synced. */
  | { kind: 'store', rid: number, record: TaskRecord }
  | { kind: 'stored', rid: number, id: string, ok: boolean, record: TaskRecord | null }
  /** The coordinator's decision after a submit: commit (quorum reached) or abort. */
  | { kind: 'decide', ids: string[], commit: boolean }
  /** A replica still waiting for a decision asks the coordinator (answered with decide). */
  | { kind: 'ask', ids: string[] }
  /** Promise this epoch and store the running record; answered by `claimed`. */
  | { kind: 'claim', rid: number, record: TaskRecord }
  | { kind: 'claimed', rid: number, id: string, ok: boolean, record: TaskRecord | null }
  | { kind: 'read', rid: number, ids: string[] }
  | { kind: 'readReply', rid: number, records: TaskRecord[] }
  | { kind: 'list', rid: number, query: ListQuery }
  | { kind: 'listReply', rid: number, records: TaskRecord[] }
  /** Anti-entropy: digests of the records both sides should hold, one hash per key bucket. */
  | { kind: 'sync', rid: number, digests: number[] }
  /** The buckets that differ, with the receiver's (id, version) of each record in them. */
  | { kind: 'syncKeys', rid: number, buckets: number[], keys: Array<[string, number[]]> }
  /** Send me these records (answered with store messages, rid 0). */
  | { kind: 'want', ids: string[] }

export interface TaskEventData {
  id: string
  state: TaskState
  attempt: number
  atMs: number
  node: string
}

export type Input =
  | { kind: 'Restored', atMs: number, entries: StoredEntry[] }
  | { kind: 'Ticked', atMs: number }
  | { kind: 'SubmitRequested', atMs: number, requestId: number, items: Array<{ id: string, spec: TaskSpec }> }
  | { kind: 'ReadRequested', atMs: number, requestId: number, id: string }
  | { kind: 'ListRequested', atMs: number, requestId: number, query: ListQuery }
  | { kind: 'MessageReceived', atMs: number, from: string, message: PeerMessage }
  | { kind: 'HeartbeatReceived', atMs: number, heartbeat: Heartbeat }
  | { kind: 'PeerDisconnected', atMs: number, peerId: string }
  | { kind: 'ExecutionFinished', atMs: number, taskId: string, epoch: number, outcome: ExecutionOutcome, durationMs: number }
  /** cancel / retry a task, pause / resume a schedule (cancel of a schedule deletes it). */
  | { kind: 'CommandRequested', atMs: number, requestId: number, id: string, command: TaskCommand }
  /** A running handler reported progress. */
  | { kind: 'ProgressReported', atMs: number, taskId: string, epoch: number, progress: number }
  /** Drain: stop taking work; running tasks finish. */
  | { kind: 'LeaveRequested', atMs: number }
  /** Running tasks are done (or the grace period is over): hand off the ranges and leave. */
  | { kind: 'LeaveCompleted', atMs: number }

export type ReplyValue =
  | { kind: 'submit', outcomes: SubmitOutcome[] }
  /** `waiting`: why a non-terminal task is not running yet (no node can run its type, parents pending), or null. */
  | { kind: 'read', record: TaskRecord | null, waiting: string | null }
  | { kind: 'list', page: ListPage }
  | { kind: 'command', outcome: CommandOutcome }

export type Effect =
  | { kind: 'Persist', entry: StoredEntry }
  | { kind: 'Send', to: string, message: PeerMessage }
  | { kind: 'PublishHeartbeat', heartbeat: Heartbeat }
  | { kind: 'Announce', events: TaskEventData[] }
  | { kind: 'Execute', order: ExecuteOrder }
  /** Stop this execution now (the task was cancelled): abort its signal, kill its process group. */
  | { kind: 'Abort', taskId: string, epoch: number, reason: string }
  /** Remove a record from the store (its retention period is over). */
  | { kind: 'Forget', id: string }
  | { kind: 'Reply', requestId: number, value: ReplyValue }
  | { kind: 'WakeAt', atMs: number }
  | { kind: 'Log', level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown> }

export type { ClusterView }
