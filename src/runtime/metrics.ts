// metrics.ts: Prometheus text exposition of a node's counters and gauges.
import type { CoreStats } from '../core/node.js'
import type { MemberView } from '../core/types.js'
import type { StoreStats } from '../store/store.js'
import type { DriverStats } from './driver.js'

export interface MetricsSources {
  core: CoreStats
  driver: DriverStats
  net: object
  store: StoreStats
  members: MemberView[]
}

type Kind = 'counter' | 'gauge'

export function renderMetrics ({ core, driver, net, store, members }: MetricsSources): string {
  const lines: string[] = []
  const metric = (name: string, kind: Kind, help: string, value: number, labels = ''): void => {
    lines.push(`# HELP taskmesh_${name} ${help}`, `# TYPE taskmesh_${name} ${kind}`, `taskmesh_${name}${labels} ${Number.isFinite(value) ? value : 0}`)
  }
  metric('records', 'gauge', 'Task records held by this node.', core.records)
  metric('records_active', 'gauge', 'Non-terminal task records held by this node.', core.active)
  metric('tasks_running', 'gauge', 'Tasks executing on this node.', core.running)
  metric('claims_in_flight', 'gauge', 'Claims waiting for their quorum.', core.claiming)
  metric('tasks_ready', 'gauge', 'Tasks owned here and waiting for capacity.', core.ready)
  metric('submits_accepted_total', 'counter', 'Tasks accepted by this node as coordinator.', core.submitsAccepted)
  metric('submits_rejected_total', 'counter', 'Submits refused for want of a write quorum.', core.submitsRejected)
  metric('submits_refused_but_ran_total', 'counter', 'Submits answered 503 whose abort never reached a quorum before a claim won (should stay 0).', core.refusedButRan)
  metric('claims_total', 'counter', 'Claims that reached their quorum.', core.claimsStarted)
  metric('claims_abandoned_total', 'counter', 'Claims that did not reach their quorum.', core.claimsAbandoned)
  metric('executions_started_total', 'counter', 'Executions started on this node.', core.executionsStarted)
  metric('executions_succeeded_total', 'counter', 'Executions that succeeded.', core.executionsSucceeded)
  metric('executions_failed_total', 'counter', 'Executions that failed.', core.executionsFailed)
  metric('stale_results_refused_total', 'counter', 'Executor results refused because their fencing token was stale.', core.staleResultsRefused)
  metric('stale_writes_refused_total', 'counter', 'Replica writes refused because their epoch was below the promised one.', core.staleWritesRefused)
  metric('driver_ticks_total', 'counter', 'Driver ticks.', driver.ticks)
  metric('driver_inputs_total', 'counter', 'Inputs stepped through the core.', driver.inputs)
  metric('store_batches_total', 'counter', 'Synced level batches written.', store.batches)
  metric('store_entries_written_total', 'counter', 'Records written to level.', store.entriesWritten)
  metric('store_entries_deleted_total', 'counter', 'Records deleted from level (retention).', store.entriesDeleted)
  metric('store_corrupt_total', 'counter', 'Stored records refused at load for a bad checksum or shape.', store.corrupt)
  for (const [key, value] of Object.entries(net) as Array<[string, number]>) {
    const name = 'net_' + key.replace(/[A-Z]/g, c => '_' + c.toLowerCase()) + '_total'
    metric(name, 'counter', `libp2p adapter counter ${key}.`, value)
  }
  const states = new Map<string, number>()
  for (const member of members) states.set(member.state, (states.get(member.state) ?? 0) + 1)
  lines.push('# HELP taskmesh_members Cluster members by state, as this node sees them.', '# TYPE taskmesh_members gauge')
  for (const state of ['alive', 'suspect', 'dead', 'left']) lines.push(`taskmesh_members{state="${state}"} ${states.get(state) ?? 0}`)
  return lines.join('\n') + '\n'
}
