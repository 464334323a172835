// node-api.ts: what the HTTP layer needs from a running node. The runtime implements it.
import type { ClusterView, ListPage, ListQuery, SubmitOutcome, TaskRecord, TaskSpec, TaskState } from '../core/types.js'

export interface TaskEvent {
  id: string
  state: TaskState
  attempt: number
  atMs: number
  node: string
}

export interface NodeApi {
  /** Accepts each spec once durable on a write quorum; outcomes in input order. */
  submit (specs: TaskSpec[]): Promise<SubmitOutcome[]>
  /** The merged record from the task's replicas, or null when no replica has it. */
  get (id: string): Promise<TaskRecord | null>
  /** Like get(), but waits up to timeoutMs for a terminal state. */
  wait (id: string, timeoutMs: number): Promise<TaskRecord | null>
  list (query: ListQuery): Promise<ListPage>
  cancel (id: string): Promise<TaskRecord | null>
  retry (id: string): Promise<TaskRecord | null>
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
