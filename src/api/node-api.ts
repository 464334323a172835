// node-api.ts: what the HTTP layer needs from a running node. The runtime implements it.
import type { ClusterView, CommandOutcome, ListPage, ListQuery, SubmitOutcome, TaskCommand, TaskRecord, TaskSpec, TaskState } from '../core/types.js'

export interface TaskEvent {
  id: string
  state: TaskState
  attempt: number
  atMs: number
  node: string
}

/** A record as read, with why it is not running yet (null when running, finished or unknown). */
export interface TaskView {
  record: TaskRecord
  waiting: string | null
}

export interface NodeApi {
  /** Accepts each spec once durable on a write quorum; outcomes in input order. */
  submit (specs: TaskSpec[]): Promise<SubmitOutcome[]>
  /** The merged record from the task's replicas, or null when no replica has it. */
  get (id: string): Promise<TaskView | null>
  /** Like get(), but waits up to timeoutMs for a terminal state. */
  wait (id: string, timeoutMs: number): Promise<TaskView | null>
  list (query: ListQuery): Promise<ListPage>
  /**
   * cancel (a task; a schedule: delete it), retry (a dead or cancelled task), pause and
   * resume (a schedule). Rejections: not_found, conflict (not possible in this state),
   * no_quorum.
   */
  command (id: string, command: TaskCommand): Promise<CommandOutcome>
  cluster (): ClusterView
  /** Start draining; resolves when the node has left. */
  drain (): Promise<void>
  /** Prometheus text exposition. */
  metrics (): string
  /** True once joined and able to accept. */
  healthy (): boolean
  /** Subscribe to task state changes; returns the unsubscribe function. */
  onEvent (listener: (event: TaskEvent) => void): () => void
}
