// index.ts: the library API (contract.md): startNode, Client and their types.
import './polyfill.js'

export { startNode, RunningNode, TaskRejectedError } from './runtime/node.js'
export type { SubmitBody } from './runtime/node.js'
export type { NodeOptions, LogLevel } from './runtime/options.js'
export { Client, TaskmeshError } from './api/client.js'
export type { BatchItem, ListOptions } from './api/client.js'
export type { CreateBody, PublicRecord, PublicSchedule, ClusterJson } from './api/present.js'
export type { TaskView } from './api/node-api.js'
export type { Handler, HandlerContext } from './exec/types.js'
export type {
  TaskRecord, TaskSpec, TaskState, ClusterView, MemberView, SubmitOutcome,
  ScheduleSpec, ScheduleState, TaskCommand, CommandOutcome
} from './core/types.js'
