// harness.ts: several core nodes in one process, a message router and a virtual clock.
// Deterministic: no real time, no real network. Tests decide which links are down.
import { TaskmeshNode } from '../src/core/node.js'
import type { CoreConfig } from '../src/core/node.js'
import type { StoredEntry, TaskCommand, TaskSpec } from '../src/core/types.js'
import type { Effect, Input, PeerMessage, ReplyValue } from '../src/core/protocol.js'
import type { ExecuteOrder } from '../src/exec/types.js'

export class Harness {
  nowMs = 1_000_000
  readonly nodes = new Map<string, TaskmeshNode>()
  readonly replies = new Map<number, ReplyValue>()
  readonly executions: Array<{ node: string, order: ExecuteOrder }> = []
  readonly aborts: Array<{ node: string, taskId: string, epoch: number, reason: string }> = []
  readonly forgotten: Array<{ node: string, id: string }> = []
  readonly down = new Set<string>()
  /** What each node has persisted: its disk survives crash() and feeds restart(). */
  readonly disks = new Map<string, Map<string, StoredEntry>>()
  readonly #configs = new Map<string, CoreConfig>()
  #queue: Array<{ to: string, input: Input }> = []
  #head = 0
  #nextRequestId = 1

  constructor (ids: string[], overrides: Partial<CoreConfig> = {}, types = ['noop']) {
    for (const id of ids) this.addNode(id, overrides, types)
  }

  addNode (id: string, overrides: Partial<CoreConfig> = {}, types = ['noop']): TaskmeshNode {
    const config: CoreConfig = {
      selfId: id, replicas: 3, capacity: 4, heartbeatMs: 100, suspectAfterMs: 300, deadAfterMs: 600, removeAfterMs: 10_000,
      submitTimeoutMs: 1000, claimTimeoutMs: 500, readTimeoutMs: 200, claimRetryMs: 200, commitFallbackMs: 3000,
      joinGraceMs: 0, syncIntervalMs: 5000, syncDelayMs: 200, syncTimeoutMs: 1000, api: `http://${id}`, addrs: [], types, ...overrides
    }
    this.#configs.set(id, config)
    this.disks.set(id, this.disks.get(id) ?? new Map())
    const node = new TaskmeshNode(config, this.nowMs)
    this.nodes.set(id, node)
    return node
  }

  /** The process dies: everything in memory is gone, the disk stays. */
  crash (id: string): void {
    this.down.add(id)
  }

  /** Start again from the disk, as the runtime does. */
  restart (id: string, overrides: Partial<CoreConfig> = {}): void {
    this.down.delete(id)
    const node = new TaskmeshNode({ ...this.#configs.get(id)!, ...overrides }, this.nowMs)
    this.nodes.set(id, node)
    this.#queue.push({ to: id, input: { kind: 'Restored', atMs: this.nowMs, entries: [...this.disks.get(id)!.values()].map(entry => structuredClone(entry)) } })
    this.run()
  }

  /** Every live node holds the same version of the record, or none of them has it. */
  agree (taskId: string, ids = [...this.nodes.keys()].filter(id => !this.down.has(id))): boolean {
    const texts = ids.map(id => JSON.stringify(this.node(id).record(taskId)))
    return texts.every(text => text === texts[0])
  }

  node (id: string): TaskmeshNode { return this.nodes.get(id)! }

  /** Let every node hear every other node's heartbeat. */
  meet (): void {
    for (let i = 0; i < 3; i++) this.advance(100)
  }

  request (id: string, make: (requestId: number) => Input): number {
    const requestId = this.#nextRequestId++
    this.#queue.push({ to: id, input: make(requestId) })
    this.run()
    return requestId
  }

  submit (id: string, taskId: string, type = 'noop'): number {
    return this.request(id, requestId => ({
      kind: 'SubmitRequested', atMs: this.nowMs, requestId,
      items: [{ id: taskId, spec: { type, payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 1, backoff: { kind: 'fixed', delayMs: 10, delayMsMax: 10 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null } }]
    }))
  }

  /** Submit one task with the given spec fields (the rest as in submit()). */
  submitSpec (id: string, taskId: string, fields: Partial<TaskSpec> = {}): number {
    return this.request(id, requestId => ({ kind: 'SubmitRequested', atMs: this.nowMs, requestId, items: [{ id: taskId, spec: spec(fields) }] }))
  }

  command (id: string, taskId: string, command: TaskCommand): number {
    return this.request(id, requestId => ({ kind: 'CommandRequested', atMs: this.nowMs, requestId, id: taskId, command }))
  }

  /** Queue an input without running the queue (to make requests concurrent). */
  enqueue (id: string, make: (requestId: number) => Input): number {
    const requestId = this.#nextRequestId++
    this.#queue.push({ to: id, input: make(requestId) })
    return requestId
  }

  finish (node: string, taskId: string, epoch: number, ok = true): void {
    this.#queue.push({ to: node, input: { kind: 'ExecutionFinished', atMs: this.nowMs, taskId, epoch, outcome: ok ? { ok: true, result: 'done' } : { ok: false, error: 'boom' }, durationMs: 1 } })
    this.run()
  }

  advance (ms: number, stepMs = 50): void {
    const end = this.nowMs + ms
    while (this.nowMs < end) {
      this.nowMs = Math.min(end, this.nowMs + stepMs)
      for (const id of this.nodes.keys()) if (!this.down.has(id)) this.#queue.push({ to: id, input: { kind: 'Ticked', atMs: this.nowMs } })
      this.run()
    }
  }

  run (): void {
    while (this.#head < this.#queue.length) {
      const { to, input } = this.#queue[this.#head++]!
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head)
        this.#head = 0
      }
      if (this.down.has(to)) continue
      const node = this.nodes.get(to)!
      node.step(input)
      for (const effect of node.drain()) this.#apply(to, effect)
    }
  }

  #apply (from: string, effect: Effect): void {
    switch (effect.kind) {
      case 'Send':
        if (!this.down.has(from) && !this.down.has(effect.to)) this.#queue.push({ to: effect.to, input: { kind: 'MessageReceived', atMs: this.nowMs, from, message: structuredClone(effect.message) as PeerMessage } })
        break
      case 'PublishHeartbeat':
        for (const id of this.nodes.keys()) if (id !== from && !this.down.has(id)) this.#queue.push({ to: id, input: { kind: 'HeartbeatReceived', atMs: this.nowMs, heartbeat: structuredClone(effect.heartbeat) } })
        break
      case 'Persist': this.disks.get(from)!.set(effect.entry.record.id, structuredClone(effect.entry)); break
      case 'Reply': this.replies.set(effect.requestId, effect.value); break
      case 'Execute': this.executions.push({ node: from, order: effect.order }); break
      case 'Abort': this.aborts.push({ node: from, taskId: effect.taskId, epoch: effect.epoch, reason: effect.reason }); break
      case 'Forget': this.disks.get(from)!.delete(effect.id); this.forgotten.push({ node: from, id: effect.id }); break
      default: break
    }
  }
}

export function spec (fields: Partial<TaskSpec> = {}): TaskSpec {
  return {
    type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 1,
    backoff: { kind: 'fixed', delayMs: 10, delayMsMax: 10 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null,
    ...fields
  }
}
