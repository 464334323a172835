// index.ts: the library API (contract.md): startNode, Client and their types.
import './polyfill.js'

export { startNode, RunningNode, TaskRejectedError } from './runtime/node.js'
export type { NodeOptions, LogLevel } from './runtime/options.js'
export { Client, TaskmeshError } from './api/client.js'
export type { CreateBody, PublicRecord, ClusterJson } from './api/present.js'
export type { Handler, HandlerContext } from './exec/types.js'
export type { TaskRecord, TaskSpec, TaskState, ClusterView, MemberView, SubmitOutcome } from './core/types.js'
