// node.ts: startNode() wires the adapters (net, store, exec, api) around one core node.
import '../polyfill.js'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { TaskmeshNode } from '../core/node.js'
import type { CoreConfig } from '../core/node.js'
import type { ReplyValue, TaskEventData } from '../core/protocol.js'
import { TERMINAL_STATES } from '../core/types.js'
import type { CommandOutcome, ListQuery, ScheduleSpec, SubmitOutcome, TaskCommand, TaskRecord, TaskSpec } from '../core/types.js'
import { Executors } from '../exec/executors.js'
import { startHttpApi } from '../api/http.js'
import type { NodeApi, TaskEvent, TaskView } from '../api/node-api.js'
import { checkScheduleSpec } from '../api/validate.js'
import { loadOrCreatePrivateKey } from '../net/identity.js'
import { PeerNet } from '../net/peer-net.js'
import { validateEvents, validateHeartbeat, validatePeerMessage } from '../net/wire.js'
import { Store } from '../store/store.js'
import { Driver } from './driver.js'
import { FaultGate } from './fault-gate.js'
import { createLogger } from './log.js'
import type { Logger } from './log.js'
import { renderMetrics } from './metrics.js'
import type { NodeOptions } from './options.js'
import { ProgressThrottle } from './progress.js'

export const HEARTBEAT_TOPIC = 'taskmesh/heartbeat/1'
export const EVENTS_TOPIC = 'taskmesh/events/1'

export const DEFAULTS = {
  listen: ['/ip4/127.0.0.1/tcp/0'],
  api: '127.0.0.1:7070',
  replicas: 3,
  capacity: 8,
  payloadBytesMax: 1024 * 1024,
  heartbeatMs: 500,
  suspectAfterMs: 1500,
  deadAfterMs: 3000,
  removeAfterMs: 30_000,
  submitTimeoutMs: 5000,
  drainGraceMs: 30_000,
  // Frames stay small: pnet's xsalsa20 keeps one WASM buffer as large as the largest write, capped at 64 MiB.
  frameBytesMax: 4 * 1024 * 1024
} as const

/** A running node: the library API of contract.md. */
export class RunningNode {
  readonly peerId: string
  readonly multiaddrs: string[]
  readonly apiUrl: string | null
  readonly #driver: Driver
  readonly #net: PeerNet
  readonly #store: Store
  readonly #executors: Executors
  readonly #closeHttp: (() => Promise<void>) | null
  readonly #log: Logger
  readonly #listeners: Set<(event: TaskEvent) => void>
  readonly #ticker: NodeJS.Timeout
  readonly #options: NodeOptions
  readonly #gossip: EventGossip
  readonly #progress: ProgressThrottle
  #closing: Promise<void> | null = null
  #draining: Promise<void> | null = null
  readonly api: NodeApi

  constructor (parts: {
    driver: Driver, net: PeerNet, store: Store, executors: Executors, closeHttp: (() => Promise<void>) | null,
    apiUrl: string | null, log: Logger, listeners: Set<(event: TaskEvent) => void>, ticker: NodeJS.Timeout, options: NodeOptions,
    gossip: EventGossip, progress: ProgressThrottle
  }) {
    this.#gossip = parts.gossip
    this.#progress = parts.progress
    this.#driver = parts.driver
    this.#net = parts.net
    this.#store = parts.store
    this.#executors = parts.executors
    this.#closeHttp = parts.closeHttp
    this.#log = parts.log
    this.#listeners = parts.listeners
    this.#ticker = parts.ticker
    this.#options = parts.options
    this.peerId = parts.net.peerId
    this.multiaddrs = parts.net.multiaddrs()
    this.apiUrl = parts.apiUrl
    this.api = this.#makeApi()
  }

  /**
   * Submit one task (or, with `schedule`, a schedule); resolves with the accepted record
   * (durable on a write quorum), or the existing one when its idempotency key is known.
   */
  async submit (body: SubmitBody): Promise<TaskRecord> {
    const [outcome] = await this.submitSpecs([specOf(body)])
    if (!outcome!.ok) throw new TaskRejectedError(outcome!.error.code, outcome!.error.message)
    return outcome!.record
  }

  /** Submit many tasks in one batch; outcomes in input order. */
  async submitMany (bodies: SubmitBody[]): Promise<SubmitOutcome[]> {
    return await this.submitSpecs(bodies.map(specOf))
  }

  async submitSpecs (specs: TaskSpec[]): Promise<SubmitOutcome[]> {
    const items = specs.map(spec => ({ id: newTaskId(), spec }))
    const reply = await this.#driver.request((requestId, atMs) => ({ kind: 'SubmitRequested', atMs, requestId, items }))
    return expect(reply, 'submit').outcomes
  }

  async get (id: string): Promise<TaskRecord | null> {
    return (await this.read(id))?.record ?? null
  }

  /** The record and why it is not running yet (`waiting`: parents pending, no node runs its type, ...). */
  async read (id: string): Promise<TaskView | null> {
    const reply = expect(await this.#driver.request((requestId, atMs) => ({ kind: 'ReadRequested', atMs, requestId, id })), 'read')
    return reply.record === null ? null : { record: reply.record, waiting: reply.waiting }
  }

  /** Cancel a task (a running one is aborted: its signal, its shell process group), or delete a schedule. */
  async cancel (id: string): Promise<TaskRecord> { return unwrap(await this.command(id, 'cancel')) }
  /** Run a dead or cancelled task again (a new generation); TaskRejectedError `conflict` otherwise. */
  async retry (id: string): Promise<TaskRecord> { return unwrap(await this.command(id, 'retry')) }
  /** Stop a schedule firing until resume(). */
  async pause (id: string): Promise<TaskRecord> { return unwrap(await this.command(id, 'pause')) }
  async resume (id: string): Promise<TaskRecord> { return unwrap(await this.command(id, 'resume')) }

  /** The command's outcome as data: the updated record, or a rejection (not_found, conflict, no_quorum). */
  async command (id: string, command: TaskCommand): Promise<CommandOutcome> {
    const reply = await this.#driver.request((requestId, atMs) => ({ kind: 'CommandRequested', atMs, requestId, id, command }))
    return expect(reply, 'command').outcome
  }

  /** Wait until the task is terminal (or timeoutMs passes); resolves with the last record seen. */
  async wait (id: string, timeoutMs = 24 * 3600 * 1000): Promise<TaskRecord | null> {
    return (await this.waitView(id, timeoutMs))?.record ?? null
  }

  async waitView (id: string, timeoutMs: number): Promise<TaskView | null> {
    const deadline = Date.now() + timeoutMs
    let pollMs = 25
    for (;;) {
      const view = await this.read(id)
      if (view === null || TERMINAL_STATES.has(view.record.state) || Date.now() >= deadline) return view
      // Gossiped events wake us early; polling is the fallback, since gossip is best effort.
      await this.#nextEventOrTimeout(id, Math.min(pollMs, deadline - Date.now()))
      pollMs = Math.min(pollMs * 2, 500)
    }
  }

  async list (query: Partial<ListQuery> = {}): Promise<{ tasks: TaskRecord[], next: string | null }> {
    const full: ListQuery = { state: null, type: null, scheduleId: null, limit: 100, cursor: null, ...query }
    const reply = await this.#driver.request((requestId, atMs) => ({ kind: 'ListRequested', atMs, requestId, query: full }))
    return expect(reply, 'list').page
  }

  cluster (): ReturnType<TaskmeshNode['clusterView']> {
    return this.#driver.core.clusterView()
  }

  /** Stop claiming, let running tasks finish (within the grace period), announce the leave. */
  drain (graceMs = this.#options.drainGraceMs ?? DEFAULTS.drainGraceMs): Promise<void> {
    this.#draining ??= (async () => {
      this.#driver.push({ kind: 'LeaveRequested', atMs: Date.now() })
      const deadline = Date.now() + graceMs
      // Wait for the runs to finish AND their outcomes to be on a write quorum: announcing the
      // leave earlier lets peers take over tasks whose outcome is still in flight.
      while ((this.#driver.runningExecutions() > 0 || this.#driver.core.pendingWork() > 0) && Date.now() < deadline) {
        await delay(50)
        await this.#driver.settled()
      }
      this.#driver.push({ kind: 'LeaveCompleted', atMs: Date.now() })
      await this.#driver.settled()
      // Give the handoff and the leave heartbeat a moment to go out (best effort: anti-entropy
      // and the dead timeout cover what does not arrive).
      await delay(Math.min(300, 2 * (this.#options.heartbeatMs ?? DEFAULTS.heartbeatMs)))
    })()
    return this.#draining
  }

  /** Graceful stop: drain first, then close. */
  async stop (): Promise<void> {
    await this.drain()
    await this.close()
  }

  /** Immediate stop: running executions are aborted. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#ticker)
      this.#gossip.stop()
      this.#progress.stop()
      if (this.#closeHttp !== null) await this.#closeHttp().catch(error => this.#log.warn('api.close_failed', { error }))
      await this.#driver.settled().catch(() => {})
      this.#driver.stop()
      await this.#executors.stop()
      await this.#net.stop().catch(error => this.#log.warn('net.stop_failed', { error }))
      await this.#store.close().catch(error => this.#log.warn('store.close_failed', { error }))
      this.#listeners.clear()
      this.#log.info('node.stopped', {})
    })()
    return this.#closing
  }

  metrics (): string {
    return renderMetrics({
      core: this.#driver.core.stats(),
      driver: this.#driver.stats,
      net: this.#net.stats(),
      store: this.#store.stats,
      members: this.#driver.core.clusterView().members
    })
  }

  #nextEventOrTimeout (id: string, timeoutMs: number): Promise<void> {
    return new Promise(resolve => {
      const finish = (): void => {
        clearTimeout(timer)
        this.#listeners.delete(listener)
        resolve()
      }
      const listener = (event: TaskEvent): void => { if (event.id === id) finish() }
      const timer = setTimeout(finish, Math.max(0, timeoutMs))
      this.#listeners.add(listener)
    })
  }

  #makeApi (): NodeApi {
    return {
      submit: async specs => await this.submitSpecs(specs),
      get: async id => await this.read(id),
      wait: async (id, timeoutMs) => await this.waitView(id, timeoutMs),
      list: async query => await this.list(query),
      command: async (id, command) => await this.command(id, command),
      cluster: () => this.cluster(),
      drain: async () => { await this.stop() },
      metrics: () => this.metrics(),
      // A node given bootstrap peers is not healthy until it reached the cluster: joined by the
      // clock alone, it would look ready while it sees only itself.
      healthy: () => this.#driver.core.joined && !this.#driver.core.leaving &&
        ((this.#options.bootstrap ?? []).length === 0 || this.#net.gossipHeard()),
      onEvent: listener => {
        this.#listeners.add(listener)
        return () => { this.#listeners.delete(listener) }
      }
    }
  }
}

export class TaskRejectedError extends Error {
  override name = 'TaskRejectedError'
  readonly code: string
  constructor (code: string, message: string) {
    super(message)
    this.code = code
  }
}

export async function startNode (options: NodeOptions): Promise<RunningNode> {
  const log = createLogger(options.logLevel ?? 'info')
  await mkdir(options.dataDir, { recursive: true })
  const privateKey = await loadOrCreatePrivateKey(options.dataDir)
  const store = await Store.open(join(options.dataDir, 'db'), log)
  const cleanups: Array<() => Promise<void>> = [async () => await store.close()]
  try {
    const entries = await store.loadAll()
    // Progress goes to the core once the driver exists; a run cannot start before that.
    let reportProgress: (taskId: string, progress: number) => void = () => {}
    const executors = await Executors.create({
      handlers: options.handlers, allowExec: options.allowExec === true, log, onProgress: (taskId, progress) => reportProgress(taskId, progress)
    })
    cleanups.push(async () => await executors.stop())

    const listeners = new Set<(event: TaskEvent) => void>()
    const notify = (events: TaskEventData[]): void => {
      for (const event of events) for (const listener of listeners) {
        try { listener(event) } catch (error) { log.warn('events.listener_failed', { error }) }
      }
    }
    let driver: Driver | null = null
    // Test-only network faults (--fault-injection): null in production, so no cost there.
    const gate = options.faultInjection === true ? new FaultGate() : null
    const dialing = new Set<string>()
    const early: Array<() => void> = []
    const whenReady = (fn: () => void): void => { if (driver !== null) fn(); else early.push(fn) }

    const net = await PeerNet.create({
      privateKey,
      listen: options.listen ?? [...DEFAULTS.listen],
      bootstrap: options.bootstrap ?? [],
      swarmKey: options.swarmKey,
      topics: [HEARTBEAT_TOPIC, EVENTS_TOPIC],
      frameBytesMax: DEFAULTS.frameBytesMax,
      // Every member subscribes to both topics and sends a heartbeat every heartbeatMs; the
      // 3 s floor leaves room for a busy startup before a connection is judged broken.
      memberGossipGraceMs: Math.max(3000, 6 * (options.heartbeatMs ?? DEFAULTS.heartbeatMs)),
      log,
      onMessages: (from, messages) => whenReady(() => {
        if (gate !== null && !gate.passes(from)) return
        for (const value of messages) {
          const message = validatePeerMessage(value)
          if (!message.ok) {
            log.warn('wire.message_refused', { from, reason: message.reason })
            continue
          }
          driver!.push({ kind: 'MessageReceived', atMs: Date.now(), from, message: message.value })
        }
      }),
      onGossip: (topic, from, value) => whenReady(() => {
        if (gate !== null && !gate.passes(from)) return
        if (topic === HEARTBEAT_TOPIC) {
          const heartbeat = validateHeartbeat(value, from)
          if (!heartbeat.ok) {
            log.warn('wire.heartbeat_refused', { from, reason: heartbeat.reason })
            return
          }
          net.addAddresses(from, heartbeat.value.addrs)
          driver!.push({ kind: 'HeartbeatReceived', atMs: Date.now(), heartbeat: heartbeat.value })
          // Member gossip: connect to members we only hear about, so that every heartbeat
          // reaches every node directly (gossipsub relays only along its mesh).
          const connected = new Set(net.connectedPeers())
          for (const addr of heartbeat.value.peers) {
            const peer = addr.split('/p2p/')[1]
            if (peer === undefined || peer === net.peerId || connected.has(peer) || dialing.has(peer)) continue
            dialing.add(peer)
            setTimeout(() => dialing.delete(peer), 5000).unref()
            net.addAddresses(peer, [addr])
            net.send(peer, [{ kind: 'want', ids: [] }]) // opens a connection; a no-op for the core
          }
        } else if (topic === EVENTS_TOPIC) {
          const events = validateEvents(value)
          if (events.ok) notify(events.value)
          else log.warn('wire.events_refused', { from, reason: events.reason })
        }
      }),
      onPeerDisconnected: peerId => whenReady(() => driver!.push({ kind: 'PeerDisconnected', atMs: Date.now(), peerId }))
    })
    cleanups.push(async () => await net.stop())

    const payloadBytesMax = options.payloadBytesMax ?? DEFAULTS.payloadBytesMax
    let apiUrl: string | null = null
    let closeHttp: (() => Promise<void>) | null = null
    let node: RunningNode | null = null
    const apiProxy: NodeApi = lazyApi(() => node?.api ?? null)
    if (options.api !== false) {
      const [host, port] = splitHostPort(options.api ?? DEFAULTS.api)
      const http = await startHttpApi({ host, port, token: options.apiToken ?? null, node: apiProxy, payloadBytesMax, faults: gate, log })
      apiUrl = http.url
      closeHttp = http.close
      cleanups.push(http.close)
    }

    const heartbeatMs = options.heartbeatMs ?? DEFAULTS.heartbeatMs
    const hasBootstrap = (options.bootstrap ?? []).length > 0
    const config: CoreConfig = {
      selfId: net.peerId,
      replicas: options.replicas ?? DEFAULTS.replicas,
      capacity: options.capacity ?? DEFAULTS.capacity,
      heartbeatMs,
      suspectAfterMs: options.suspectAfterMs ?? DEFAULTS.suspectAfterMs,
      deadAfterMs: options.deadAfterMs ?? DEFAULTS.deadAfterMs,
      removeAfterMs: options.removeAfterMs ?? DEFAULTS.removeAfterMs,
      submitTimeoutMs: options.submitTimeoutMs ?? DEFAULTS.submitTimeoutMs,
      claimTimeoutMs: 3000,
      readTimeoutMs: 1000,
      claimRetryMs: 1000,
      commitFallbackMs: 2 * (options.submitTimeoutMs ?? DEFAULTS.submitTimeoutMs) + 1000,
      joinGraceMs: hasBootstrap || entries.length > 0 ? 4 * heartbeatMs : 0,
      syncIntervalMs: 10_000,
      syncDelayMs: 500,
      syncTimeoutMs: 3000,
      standIns: options.standIns === true,
      api: apiUrl ?? '',
      addrs: net.multiaddrs(),
      types: executors.types(),
      ...(options.typeLimits === undefined ? {} : { typeLimits: { ...options.typeLimits } }),
      ...(options.retentionMs === undefined ? {} : { retentionMs: options.retentionMs })
    }
    const core = new TaskmeshNode(config, Date.now())
    const gossip = new EventGossip(events => net.publish(EVENTS_TOPIC, events), log)
    cleanups.push(async () => gossip.stop())
    driver = new Driver(core, {
      persist: async (batch, forgotten) => await store.write(batch, forgotten),
      send: (peerId, messages) => {
        if (gate === null) return net.send(peerId, messages)
        if (!gate.passes(peerId)) return
        if (gate.delayMs > 0) setTimeout(() => net.send(peerId, messages), gate.delayMs).unref()
        else net.send(peerId, messages)
      },
      publishHeartbeat: heartbeat => net.publish(HEARTBEAT_TOPIC, heartbeat),
      announce: events => {
        notify(events)
        gossip.add(events)
      },
      execute: async (order, signal) => {
        try {
          return await executors.run(order, signal)
        } finally {
          progress.finished(order.taskId)
        }
      },
      now: () => Date.now()
    }, log)
    const running = driver
    const progress = new ProgressThrottle((taskId, value) => {
      // The epoch of the run in progress here: a report from a superseded run has none.
      const epoch = running.runningEpoch(taskId)
      if (epoch !== null) running.push({ kind: 'ProgressReported', atMs: Date.now(), taskId, epoch, progress: value })
    })
    reportProgress = (taskId, value) => progress.report(taskId, value)
    cleanups.push(async () => progress.stop())
    for (const fn of early.splice(0)) fn()
    driver.push({ kind: 'Restored', atMs: Date.now(), entries })
    driver.push({ kind: 'Ticked', atMs: Date.now() })
    const ticker = setInterval(() => driver!.push({ kind: 'Ticked', atMs: Date.now() }), Math.max(50, Math.floor(heartbeatMs / 4)))
    ticker.unref()
    node = new RunningNode({ driver, net, store, executors, closeHttp, apiUrl, log, listeners, ticker, options, gossip, progress })
    log.info('node.started', { peerId: node.peerId, addrs: node.multiaddrs, api: apiUrl, records: entries.length })
    return node
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    throw error
  }
}

/**
 * Task events go out on gossip at most every EVENT_GOSSIP_MS, as one message: every gossip
 * message costs each receiver a signature check, so one per tick would dominate the CPU under
 * load. Gossip is best effort (watchers only); beyond EVENT_GOSSIP_MAX pending events the
 * oldest are dropped and counted.
 */
const EVENT_GOSSIP_MS = 250
const EVENT_GOSSIP_MAX = 20_000

class EventGossip {
  #pending: TaskEventData[] = []
  #timer: NodeJS.Timeout | null = null
  dropped = 0
  readonly #publish: (events: TaskEventData[]) => void
  readonly #log: Logger

  constructor (publish: (events: TaskEventData[]) => void, log: Logger) {
    this.#publish = publish
    this.#log = log
  }

  add (events: TaskEventData[]): void {
    for (const event of events) this.#pending.push(event)
    if (this.#pending.length > EVENT_GOSSIP_MAX) {
      const excess = this.#pending.length - EVENT_GOSSIP_MAX
      this.#pending.splice(0, excess)
      this.dropped += excess
    }
    if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#flush(), EVENT_GOSSIP_MS)
      this.#timer.unref()
    }
  }

  #flush (): void {
    this.#timer = null
    const events = this.#pending
    this.#pending = []
    if (events.length === 0) return
    try {
      this.#publish(events)
    } catch (error) {
      this.#log.debug('events.publish_failed', { error })
    }
  }

  stop (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    this.#pending = []
  }
}

function lazyApi (get: () => NodeApi | null): NodeApi {
  const need = (): NodeApi => {
    const api = get()
    if (api === null) throw Object.assign(new Error('node is starting'), { code: 'shutting_down' })
    return api
  }
  return {
    submit: async specs => await need().submit(specs),
    get: async id => await need().get(id),
    wait: async (id, timeoutMs) => await need().wait(id, timeoutMs),
    list: async query => await need().list(query),
    command: async (id, command) => await need().command(id, command),
    cluster: () => need().cluster(),
    drain: async () => await need().drain(),
    metrics: () => need().metrics(),
    healthy: () => get()?.healthy() ?? false,
    onEvent: listener => need().onEvent(listener)
  }
}

export function splitHostPort (value: string): [string, number] {
  const match = /^\[?([^\]]*?)\]?:(\d{1,5})$/.exec(value)
  if (match === null) throw new Error(`api: expected host:port, got "${value}"`)
  const port = Number(match[2])
  if (port > 65535) throw new Error(`api: port out of range in "${value}"`)
  return [match[1]!, port]
}

/** Time-sortable, unique task ids: base36 time + 64 random bits. */
export function newTaskId (): string {
  return `t${Date.now().toString(36)}${randomBytes(8).toString('hex')}`
}

/**
 * The library's submit body: a TaskSpec in milliseconds, every field but `type` optional.
 * `schedule` makes it a schedule: give `cron` (with `timezone`, default UTC) or `everyMs`.
 */
export type SubmitBody = Partial<Omit<TaskSpec, 'schedule'>> & { type: string, schedule?: Partial<ScheduleSpec> | null }

function specOf (body: SubmitBody): TaskSpec {
  return {
    type: body.type,
    payload: body.payload ?? null,
    priority: body.priority ?? 0,
    runAtMs: body.runAtMs ?? null,
    delayMs: body.delayMs ?? null,
    maxAttempts: body.maxAttempts ?? 1,
    backoff: body.backoff ?? { kind: 'exponential', delayMs: 1000, delayMsMax: 60_000 },
    timeoutMs: body.timeoutMs ?? null,
    idempotencyKey: body.idempotencyKey ?? null,
    dependsOn: body.dependsOn ?? [],
    schedule: body.schedule == null ? null : scheduleOf(body.schedule)
  }
}

function scheduleOf (schedule: Partial<ScheduleSpec>): ScheduleSpec {
  const checked = checkScheduleSpec(schedule, Date.now())
  if (!checked.ok) throw new TaskRejectedError(checked.error.code, checked.error.message)
  return checked.schedule
}

function unwrap (outcome: CommandOutcome): TaskRecord {
  if (!outcome.ok) throw new TaskRejectedError(outcome.error.code, outcome.error.message)
  return outcome.record
}

function expect<K extends ReplyValue['kind']> (reply: ReplyValue, kind: K): Extract<ReplyValue, { kind: K }> {
  if (reply.kind !== kind) throw new Error(`expected a ${kind} reply, got ${reply.kind}`)
  return reply as Extract<ReplyValue, { kind: K }>
}

function delay (ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms))
}
