// virtual.ts: the deterministic simulator. The real src/core state machines, many nodes in one
// process, a simulated network (delay, loss, duplication, reordering, partitions, pauses), a
// virtual clock with per-node skew and simulated disks; one seed draws everything, including
// the fault rates (swarm testing). Phase 1 injects faults; phase 2 heals and every accepted
// task must become terminal. Invariants are checked as it runs; a violation stops the run
// with the command that replays it. Same seed, same JSON.
import { Agenda } from './agenda.js'
import { TaskmeshNode } from '../src/core/node.js'
import type { CoreConfig } from '../src/core/node.js'
import type { Effect, Input } from '../src/core/protocol.js'
import { canonicalText, isTerminal, merge } from '../src/core/record.js'
import type { StoredEntry, TaskRecord, TaskSpec } from '../src/core/types.js'
import { checkQueue, checkReplicas } from './checkers.js'
import { judgeSchedules, scheduleSpecs } from './virtual-schedules.js'
import type { ScheduleRunReport } from './virtual-schedules.js'
import { prng } from './prng.js'
import type { QueueReport, ReplicaReport } from './checkers.js'

export interface VirtualOptions {
  nodes: number
  tasks: number
  replicas: number
  seed: number
  /** Inject faults in phase 1 (crashes, permanent loss of < R nodes, partitions, pauses, loss). */
  faults: boolean
  /** Ownership variant: 'ring' (64 virtual positions per peer), 'ring-1' (one position), 'stand-ins' (ring, with stand-in claims). */
  policy: 'ring' | 'ring-1' | 'stand-ins'
  /** Deliberate bugs, to prove the checkers catch them. */
  bug: 'none' | 'ack-without-persist' | 'accept-before-quorum'
  /** Virtual length of phase 1 (faults and load), ms. */
  phaseMs: number
  /** Schedules (every / cron, catch-up all) created at the start of the load, deleted after healing; 0 = none. */
  schedules?: number
  /** How membership is modelled (see membershipTimings); by default gossip up to GOSSIP_NODES_MAX nodes, scaled above. */
  membership?: MembershipModel
}

/**
 * gossip: the nodes' real timings; every node's heartbeat reaches every node every 500 ms, so
 * the simulator's cost grows as N^2. scaled: a modelling choice for large N. The heartbeat
 * interval and the failure detector's suspect and dead timeouts, and the anti-entropy period,
 * are stretched by N / GOSSIP_NODES_MAX, so each node hears as many heartbeats per second as
 * in a 50-node cluster and the cost grows as N. The price: failures take proportionally
 * longer to detect (at 1,000 nodes a peer is suspect after 30 s of silence), so most crashes
 * and partitions of phase 1 heal before anyone notices them, and the failure-detector paths
 * are exercised less than at small N. Removal from the ring after death is not stretched.
 */
export type MembershipModel = 'gossip' | 'scaled'

/** Above this many nodes the default model is scaled. */
export const GOSSIP_NODES_MAX = 50

export interface MembershipTimings {
  model: MembershipModel
  heartbeatMs: number
  suspectAfterMs: number
  deadAfterMs: number
  removeAfterMs: number
  syncIntervalMs: number
  syncDelayMs: number
}

export function membershipTimings (nodes: number, model: MembershipModel = nodes > GOSSIP_NODES_MAX ? 'scaled' : 'gossip'): MembershipTimings {
  const stretch = model === 'gossip' ? 1 : Math.max(1, nodes / GOSSIP_NODES_MAX)
  return {
    model,
    heartbeatMs: Math.round(HEARTBEAT_MS * stretch),
    suspectAfterMs: Math.round(1500 * stretch),
    deadAfterMs: Math.round(3000 * stretch),
    removeAfterMs: 10_000,
    syncIntervalMs: Math.round(5000 * stretch),
    syncDelayMs: 300
  }
}

export interface Violation {
  invariant: string
  task: string | null
  atMs: number
  detail: string
  trace: string[]
}

export interface VirtualResult {
  seed: number
  options: VirtualOptions
  membership: MembershipTimings
  rates: { lossRate: number, duplicateRate: number, delayMsMax: number, crashes: number, partitions: number, pauses: number, permanentLosses: number, tornCrashes: number, swizzles: number }
  virtualMs: number
  events: number
  faults: string[]
  queue: QueueReport
  replicas: ReplicaReport
  violations: Violation[]
  executions: number
  /** Occurrences of the schedules: ticks expected, occurrences found, extra and missed. */
  schedules: ScheduleRunReport
}

type SimEvent =
  | { atMs: number, kind: 'input', node: number, input: Input }
  | { atMs: number, kind: 'tick', node: number, incarnation: number }
  | { atMs: number, kind: 'wake', node: number, incarnation: number }
  | { atMs: number, kind: 'finish', node: number, incarnation: number, taskId: string, epoch: number, ok: boolean }
  | { atMs: number, kind: 'submit' }
  | { atMs: number, kind: 'command', id: string, command: 'cancel' }
  | { atMs: number, kind: 'fault', apply: () => void, label: string }

interface SimNode {
  id: string
  index: number
  core: TaskmeshNode | null
  incarnation: number
  status: 'up' | 'down' | 'paused' | 'lost'
  disk: Map<string, StoredEntry>
  skewMs: number
  held: Input[]
  lastAtMs: number
  /** Crash during the next step's write: keep a random prefix of its writes, tear the next, send nothing. */
  crashMidWrite: boolean
}

const HEARTBEAT_MS = 500
const TICK_MS = 250
const TRACE_MAX = 12
/** How long a (re)started node listens before it joins: the runtime's default with --bootstrap. */
const JOIN_GRACE_MS = 2000

export function simulate (options: VirtualOptions): VirtualResult {
  const random = prng(options.seed)
  const between = (low: number, high: number): number => low + random() * (high - low)
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!

  // Swarm testing: the seed draws the fault rates too.
  const rates = {
    lossRate: options.faults ? Math.round(between(0, 0.03) * 1000) / 1000 : 0,
    duplicateRate: options.faults ? Math.round(between(0, 0.02) * 1000) / 1000 : 0,
    delayMsMax: Math.round(between(2, options.faults ? 60 : 10)),
    crashes: options.faults ? Math.floor(between(0, 4)) : 0,
    partitions: options.faults ? Math.floor(between(0, 3)) : 0,
    pauses: options.faults ? Math.floor(between(0, 3)) : 0,
    permanentLosses: options.faults ? Math.floor(between(0, options.replicas)) : 0, // fewer than R
    tornCrashes: 0,
    swizzles: 0
  }
  // Faults added later draw from their own stream, so the draws above stay those of each seed.
  const random2 = prng((options.seed ^ 0x2f6b1) >>> 0)
  const between2 = (low: number, high: number): number => low + random2() * (high - low)
  if (options.faults) {
    rates.tornCrashes = Math.floor(between2(0, 3))
    rates.swizzles = Math.floor(between2(0, 3))
  }

  const queue = new Agenda<SimEvent>()
  let nowMs = 0
  let events = 0
  const schedule = (event: SimEvent): void => { queue.push(event.atMs, event) }

  const nodes: SimNode[] = Array.from({ length: options.nodes }, (_, index) => ({
    id: `n${String(index).padStart(4, '0')}`,
    index,
    core: null,
    incarnation: 0,
    status: 'down',
    disk: new Map(),
    skewMs: Math.round(between(-200, 200)),
    held: [],
    lastAtMs: 0,
    crashMidWrite: false
  }))
  const byId = new Map(nodes.map(node => [node.id, node]))
  const blocked = new Set<string>() // "a|b" pairs that cannot talk
  /** Clogged links ("a|b"): their messages wait, and go out when the link unclogs (swizzle-clog). */
  const clogged = new Map<string, Array<{ to: SimNode, input: Input }>>()
  const faults: string[] = []
  const violations: Violation[] = []
  const traces = new Map<string, string[]>()
  const accepted: string[] = []
  const refused: string[] = []
  const submitted = new Set<string>()
  const executions = new Map<string, number>()
  const executedEpochMax = new Map<string, number>()
  const terminalSeen = new Map<string, string>() // node|task → terminal state persisted
  // Which nodes ever persisted each task, ascending. A node's core holds a record only after
  // persisting it (or restoring it from its disk), so the merged view of a task needs only
  // these nodes, not all N: judging the run stays linear in tasks.
  const holders = new Map<string, number[]>()
  let totalExecutions = 0
  let nextTaskId = 0
  let nextRequestId = 1
  const pendingSubmits = new Map<number, string[]>()
  /** Schedules: id → when its delete was answered (null until then). */
  const schedulesMade = new Map<string, { deletedAtMs: number | null }>()
  const pendingCommands = new Map<number, string>()

  const trace = (task: string, text: string): void => {
    let lines = traces.get(task)
    if (lines === undefined) { lines = []; traces.set(task, lines) }
    lines.push(`${nowMs}ms ${text}`)
    if (lines.length > TRACE_MAX) lines.shift()
  }
  const violate = (invariant: string, task: string | null, detail: string): void => {
    violations.push({ invariant, task, atMs: nowMs, detail, trace: task === null ? [] : [...(traces.get(task) ?? [])] })
  }

  const timings = membershipTimings(options.nodes, options.membership)
  const config = (node: SimNode, joinGraceMs: number): CoreConfig => ({
    selfId: node.id, replicas: options.replicas, capacity: 8, heartbeatMs: timings.heartbeatMs,
    suspectAfterMs: timings.suspectAfterMs, deadAfterMs: timings.deadAfterMs, removeAfterMs: timings.removeAfterMs, submitTimeoutMs: 3000,
    claimTimeoutMs: 2000, readTimeoutMs: 1000, claimRetryMs: 500, commitFallbackMs: 7000,
    joinGraceMs, syncIntervalMs: timings.syncIntervalMs, syncDelayMs: timings.syncDelayMs, syncTimeoutMs: 2000,
    api: '', addrs: [], types: ['work'], virtualPositions: options.policy === 'ring-1' ? 1 : 64, standIns: options.policy === 'stand-ins'
  })

  const nodeTime = (node: SimNode): number => {
    node.lastAtMs = Math.max(node.lastAtMs, nowMs + node.skewMs)
    return node.lastAtMs
  }

  const start = (node: SimNode, joinGraceMs: number): void => {
    node.incarnation++
    node.status = 'up'
    node.held = []
    node.core = new TaskmeshNode(config(node, joinGraceMs), nodeTime(node))
    step(node, { kind: 'Restored', atMs: nodeTime(node), entries: [...node.disk.values()] })
    schedule({ atMs: nowMs + Math.floor(random() * TICK_MS), kind: 'tick', node: node.index, incarnation: node.incarnation })
  }

  // One input object may go to many nodes (a heartbeat) or twice to one: deliver() stamps its
  // time just before the step, and core keeps no input object, only what it carries.
  const send = (from: SimNode, to: SimNode, input: Input): void => {
    if (to.status === 'lost' || (blocked.size > 0 && blocked.has(`${from.id}|${to.id}`))) return
    if (clogged.size > 0) {
      const waiting = clogged.get(`${from.id}|${to.id}`)
      if (waiting !== undefined) { waiting.push({ to, input }); return }
    }
    if (random() < rates.lossRate) return
    const copies = random() < rates.duplicateRate ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const atMs = nowMs + 1 + Math.floor(random() * rates.delayMsMax)
      schedule({ atMs, kind: 'input', node: to.index, input })
    }
  }

  const step = (node: SimNode, input: Input): void => {
    const core = node.core!
    core.step(input)
    const effects = core.drain()
    const writes = node.crashMidWrite ? effects.flatMap(effect => effect.kind === 'Persist' ? [effect.entry] : []) : []
    if (writes.length > 0) {
      // The process dies while the step's batch is being written: a prefix reaches the disk,
      // the next write is torn (its checksum fails on restore, so it is absent) and the rest
      // is lost. No message, reply or execution of the step ever leaves.
      node.crashMidWrite = false
      const kept = Math.floor(random2() * (writes.length + 1))
      for (const entry of writes.slice(0, kept)) persist(node, entry)
      faults.push(`${Math.round(nowMs)}ms crash ${node.id} mid-write: ${kept} of ${writes.length} writes kept${kept < writes.length ? ', the next torn' : ''}`)
      node.status = 'down'
      node.core = null
      return
    }
    // The runtime's contract: every Persist of a step is durable before its sends go out.
    for (const effect of effects) if (effect.kind === 'Persist') persist(node, effect.entry)
    for (const effect of effects) apply(node, effect)
  }

  const persist = (node: SimNode, entry: StoredEntry): void => {
    const record = entry.record
    const key = `${node.id}|${record.id}`
    const before = terminalSeen.get(key)
    // `aborted` is internal (never shown): a minority may hold it while a claim won the task.
    if (before !== undefined && before !== record.state && before !== 'aborted') violate('2: terminal states are final', record.id, `${node.id} had ${before}, now ${record.state} (epoch ${record.epoch})`)
    if (isTerminal(record.state)) terminalSeen.set(key, record.state)
    hold(record.id, node.index)
    trace(record.id, `${node.id} persist ${record.state} e${record.epoch} a${record.attempt}${record.committed ? ' c' : ''}`)
    if (options.bug === 'ack-without-persist' && record.state === 'queued' && record.coordinator !== node.id) return
    node.disk.set(record.id, entry)
  }

  const hold = (id: string, index: number): void => {
    const indices = holders.get(id)
    if (indices === undefined) { holders.set(id, [index]); return }
    if (indices.includes(index)) return
    indices.push(index)
    for (let i = indices.length - 1; i > 0 && indices[i - 1]! > indices[i]!; i--) [indices[i - 1], indices[i]] = [indices[i]!, indices[i - 1]!]
  }

  const apply = (node: SimNode, effect: Effect): void => {
    switch (effect.kind) {
      case 'Persist': return
      case 'Send': {
        const to = byId.get(effect.to)
        if (to !== undefined) send(node, to, { kind: 'MessageReceived', atMs: 0, from: node.id, message: effect.message })
        return
      }
      case 'PublishHeartbeat': {
        const input: Input = { kind: 'HeartbeatReceived', atMs: 0, heartbeat: effect.heartbeat }
        for (const other of nodes) if (other !== node) send(node, other, input)
        return
      }
      case 'Execute': {
        const { taskId, fencingToken } = effect.order
        executions.set(taskId, (executions.get(taskId) ?? 0) + 1)
        executedEpochMax.set(taskId, Math.max(executedEpochMax.get(taskId) ?? 0, fencingToken))
        totalExecutions++
        trace(taskId, `${node.id} execute e${fencingToken} a${effect.order.attempt}`)
        schedule({ atMs: nowMs + 5 + Math.floor(random() * 300), kind: 'finish', node: node.index, incarnation: node.incarnation, taskId, epoch: fencingToken, ok: random() > 0.05 })
        return
      }
      case 'Reply': {
        const commanded = pendingCommands.get(effect.requestId)
        if (commanded !== undefined && effect.value.kind === 'command') {
          pendingCommands.delete(effect.requestId)
          // A delete that found no quorum (or no schedule yet) is asked again a little later.
          const outcome = effect.value.outcome
          if (outcome.ok || outcome.error.code === 'not_found') schedulesMade.get(commanded)!.deletedAtMs ??= nowMs
          else schedule({ atMs: nowMs + 1000, kind: 'command', id: commanded, command: 'cancel' })
          return
        }
        const ids = pendingSubmits.get(effect.requestId)
        pendingSubmits.delete(effect.requestId)
        if (ids === undefined || effect.value.kind !== 'submit') return
        effect.value.outcomes.forEach((outcome, i) => {
          if (outcome.ok && options.bug !== 'accept-before-quorum') accepted.push(ids[i]!)
          // Only no_quorum promises "nothing was accepted"; an unknown outcome may still run.
          if (!outcome.ok && outcome.error.code === 'no_quorum') refused.push(ids[i]!)
          trace(ids[i]!, `${node.id} reply ${outcome.ok ? 'accepted' : outcome.error.code}`)
        })
        return
      }
      case 'WakeAt':
        schedule({ atMs: Math.max(nowMs, effect.atMs - node.skewMs), kind: 'wake', node: node.index, incarnation: node.incarnation })
        return
      case 'Forget':
        node.disk.delete(effect.id)
        return
      case 'Abort':
      case 'Announce':
      case 'Log':
        return
    }
  }

  const deliver = (node: SimNode, input: Input): void => {
    if (node.status === 'paused') { node.held.push(input); return }
    if (node.status !== 'up') return
    input.atMs = nodeTime(node)
    step(node, input)
  }

  // ---------------------------------------------------------------- the run
  // Scaled: the first nodes, too, wait 2 s to hear the cluster before they join (as a real node
  // started with --bootstrap does), so each runs one anti-entropy round with all its peers
  // instead of one with the few it heard at once and another soon after: N^2 messages fewer.
  for (const node of nodes) start(node, timings.model === 'scaled' ? JOIN_GRACE_MS : 0)
  const specOf = (): TaskSpec => ({
    type: 'work', payload: null, priority: Math.floor(random() * 3), runAtMs: null, delayMs: random() < 0.1 ? Math.floor(random() * 2000) : null,
    maxAttempts: 3, backoff: { kind: 'fixed', delayMs: 100, delayMsMax: 100 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null
  })
  // Load: submits spread over phase 1, after the cluster has formed.
  const loadStartMs = 3000
  const batches = Math.ceil(options.tasks / 10)
  for (let i = 0; i < batches; i++) schedule({ atMs: loadStartMs + Math.floor((i / batches) * (options.phaseMs - loadStartMs - 1000)), kind: 'submit' })
  // Schedules: created with the load, deleted 25 s after healing: time for the ring to drop
  // members lost for good (removeAfterMs) and for the owner to catch up on the missed ticks.
  const scheduleCount = options.schedules ?? 0
  const deleteSchedulesAtMs = options.phaseMs + 25_000
  for (let i = 0; i < scheduleCount; i++) {
    const id = `sched${i}`
    schedulesMade.set(id, { deletedAtMs: null })
    schedule({ atMs: deleteSchedulesAtMs, kind: 'command', id, command: 'cancel' })
  }

  // Faults, drawn from the seed; at most R - 1 nodes are lost for good.
  const healAtMs = options.phaseMs
  const fault = (atMs: number, label: string, apply: () => void): void => schedule({ atMs, kind: 'fault', label, apply })
  const victims = (count: number): SimNode[] => {
    const chosen = new Set<SimNode>()
    while (chosen.size < Math.min(count, nodes.length - 1)) chosen.add(pick(nodes))
    return [...chosen]
  }
  for (const node of victims(rates.permanentLosses)) {
    fault(between(loadStartMs, healAtMs - 2000), `lose ${node.id} for good`, () => { node.status = 'lost'; node.core = null; node.disk.clear() })
  }
  for (let i = 0; i < rates.crashes; i++) {
    const node = pick(nodes)
    const atMs = between(loadStartMs, healAtMs - 1000)
    fault(atMs, `crash ${node.id}`, () => { if (node.status === 'up' || node.status === 'paused') { node.status = 'down'; node.core = null } })
    fault(Math.min(healAtMs, atMs + between(500, 8000)), `restart ${node.id}`, () => { if (node.status === 'down') start(node, JOIN_GRACE_MS) })
  }
  for (let i = 0; i < rates.tornCrashes; i++) {
    const node = nodes[Math.floor(random2() * nodes.length)]!
    const atMs = between2(loadStartMs, healAtMs - 1000)
    fault(atMs, `crash ${node.id} at its next write`, () => { if (node.status === 'up') node.crashMidWrite = true })
    fault(Math.min(healAtMs, atMs + between2(500, 6000)), `restart ${node.id}`, () => { node.crashMidWrite = false; if (node.status === 'down') start(node, JOIN_GRACE_MS) })
  }
  for (let i = 0; i < rates.swizzles; i++) {
    // Swizzle-clog (FoundationDB): clog a node's links one by one, then unclog them in another
    // order; messages on a clogged link wait rather than vanish, and arrive late and reordered.
    const node = nodes[Math.floor(random2() * nodes.length)]!
    const others = nodes.filter(other => other !== node)
    const order = others.map(other => ({ other, key: random2() })).sort((a, b) => a.key - b.key).map(entry => entry.other)
    const unclogOrder = others.map(other => ({ other, key: random2() })).sort((a, b) => a.key - b.key).map(entry => entry.other)
    const startMs = between2(loadStartMs, healAtMs - 6000)
    const stepMs = between2(50, 400)
    const holdMs = between2(500, 4000)
    fault(startMs, `swizzle-clog ${node.id}: clog its ${others.length} links one every ${Math.round(stepMs)} ms`, () => {})
    order.forEach((other, i) => {
      fault(startMs + i * stepMs, '', () => {
        clogged.set(`${node.id}|${other.id}`, clogged.get(`${node.id}|${other.id}`) ?? [])
        clogged.set(`${other.id}|${node.id}`, clogged.get(`${other.id}|${node.id}`) ?? [])
      })
    })
    const unclogFromMs = startMs + others.length * stepMs + holdMs
    unclogOrder.forEach((other, i) => {
      fault(Math.min(healAtMs, unclogFromMs + i * stepMs), i === unclogOrder.length - 1 ? `swizzle-clog ${node.id}: every link unclogged` : '', () => {
        unclog(`${node.id}|${other.id}`)
        unclog(`${other.id}|${node.id}`)
      })
    })
  }
  function unclog (link: string): void {
    const waiting = clogged.get(link)
    if (waiting === undefined) return
    clogged.delete(link)
    for (const { to, input } of waiting) {
      if (to.status === 'lost') continue
      schedule({ atMs: nowMs + 1 + Math.floor(random2() * Math.max(1, rates.delayMsMax)), kind: 'input', node: to.index, input })
    }
  }
  for (let i = 0; i < rates.pauses; i++) {
    const node = pick(nodes)
    const atMs = between(loadStartMs, healAtMs - 1000)
    fault(atMs, `pause ${node.id}`, () => { if (node.status === 'up') node.status = 'paused' })
    fault(Math.min(healAtMs, atMs + between(500, 6000)), `resume ${node.id}`, () => resume(node))
  }
  for (let i = 0; i < rates.partitions; i++) {
    const atMs = between(loadStartMs, healAtMs - 1000)
    const side = victims(1 + Math.floor(random() * Math.floor(nodes.length / 2)))
    fault(atMs, `partition ${side.map(node => node.id).join(',')} | rest`, () => {
      for (const a of side) for (const b of nodes) if (!side.includes(b)) { blocked.add(`${a.id}|${b.id}`); blocked.add(`${b.id}|${a.id}`) }
    })
    fault(Math.min(healAtMs, atMs + between(1000, 8000)), 'heal partition', () => blocked.clear())
  }
  // Phase 2: heal everything and stop losing messages.
  fault(healAtMs, 'heal all', () => {
    blocked.clear()
    for (const link of [...clogged.keys()]) unclog(link)
    rates.lossRate = 0
    rates.duplicateRate = 0
    for (const node of nodes) {
      if (node.status === 'down') start(node, JOIN_GRACE_MS)
      if (node.status === 'paused') resume(node)
    }
  })

  function resume (node: SimNode): void {
    if (node.status !== 'paused') return
    node.status = 'up'
    const held = node.held
    node.held = []
    for (const input of held) deliver(node, input)
  }

  let schedulesSubmitted = false
  const boundMs = healAtMs + 120_000
  let settledAtMs: number | null = null
  // Accepted tasks before this index were terminal at some check. The check advances it, and
  // only once it reaches the end checks them all again: settled at the same first check as a
  // full scan every second would find, at a cost linear in tasks.
  let settledBelow = 0
  const allTerminal = (): boolean => {
    const terminalNow = (id: string): boolean => isTerminal(mergedRecord(id)?.state ?? 'queued')
    while (settledBelow < accepted.length && terminalNow(accepted[settledBelow]!)) settledBelow++
    if (settledBelow < accepted.length) return false
    const pending = accepted.findIndex(id => !terminalNow(id))
    if (pending >= 0) settledBelow = pending
    return pending < 0
  }
  let nextCheckMs = healAtMs
  while (queue.size > 0 && violations.length === 0) {
    const event = queue.pop()!
    nowMs = event.atMs
    events++
    if (nowMs > boundMs) break
    switch (event.kind) {
      case 'input': deliver(nodes[event.node]!, event.input); break
      case 'tick':
      case 'wake': {
        const node = nodes[event.node]!
        if (event.incarnation !== node.incarnation) break
        if (node.status === 'up' || node.status === 'paused') {
          if (event.kind === 'tick') schedule({ atMs: nowMs + TICK_MS, kind: 'tick', node: node.index, incarnation: node.incarnation })
          deliver(node, { kind: 'Ticked', atMs: 0 })
        }
        break
      }
      case 'finish': {
        const node = nodes[event.node]!
        if (event.incarnation !== node.incarnation) break
        deliver(node, { kind: 'ExecutionFinished', atMs: 0, taskId: event.taskId, epoch: event.epoch, outcome: event.ok ? { ok: true, result: null } : { ok: false, error: 'simulated failure' }, durationMs: 10 })
        break
      }
      case 'submit': {
        const up = nodes.filter(node => node.status === 'up')
        if (up.length === 0 || nextTaskId >= options.tasks) break
        const node = pick(up)
        const ids = Array.from({ length: Math.min(10, options.tasks - nextTaskId) }, () => `task${nextTaskId++}`)
        for (const id of ids) submitted.add(id)
        const requestId = nextRequestId++
        pendingSubmits.set(requestId, ids)
        if (options.bug === 'accept-before-quorum') accepted.push(...ids)
        deliver(node, { kind: 'SubmitRequested', atMs: 0, requestId, items: ids.map(id => ({ id, spec: specOf() })) })
        break
      }
      case 'fault':
        if (event.label !== '') faults.push(`${Math.round(nowMs)}ms ${event.label}`)
        event.apply()
        break
      case 'command': {
        const up = nodes.filter(node => node.status === 'up')
        if (up.length === 0) { schedule({ atMs: nowMs + 1000, kind: 'command', id: event.id, command: event.command }); break }
        const requestId = nextRequestId++
        pendingCommands.set(requestId, event.id)
        deliver(pick(up), { kind: 'CommandRequested', atMs: 0, requestId, id: event.id, command: event.command })
        break
      }
    }
    if (scheduleCount > 0 && nowMs >= loadStartMs && !schedulesSubmitted) {
      schedulesSubmitted = true
      const up = nodes.filter(node => node.status === 'up')
      const ids = [...schedulesMade.keys()]
      const requestId = nextRequestId++
      pendingSubmits.set(requestId, ids)
      for (const id of ids) submitted.add(id)
      deliver(pick(up), { kind: 'SubmitRequested', atMs: 0, requestId, items: ids.map((id, i) => ({ id, spec: { ...specOf(), maxAttempts: 3, delayMs: null, schedule: scheduleSpecs[i % scheduleSpecs.length]! } })) })
    }
    // Phase 2: once everything accepted is terminal, run on for quiescence (anti-entropy), then stop.
    if (nowMs >= nextCheckMs) {
      nextCheckMs = nowMs + 1000
      if (settledAtMs === null && nowMs >= healAtMs && allTerminal() &&
          [...schedulesMade.values()].every(made => made.deletedAtMs !== null) && occurrencesSettled()) settledAtMs = nowMs
      if (settledAtMs !== null && nowMs >= settledAtMs + 15_000) break
    }
  }

  /** Every occurrence any node holds is terminal. */
  function occurrencesSettled (): boolean {
    if (scheduleCount === 0) return true
    for (const node of nodes) {
      for (const id of node.disk.keys()) {
        if (!id.includes('@')) continue
        if (!isTerminal(mergedRecord(id)?.state ?? 'queued')) return false
      }
    }
    return true
  }

  function mergedRecord (id: string): TaskRecord | null {
    let merged: TaskRecord | null = null
    for (const index of holders.get(id) ?? []) {
      const record = nodes[index]!.core?.record(id)
      if (record !== null && record !== undefined) merged = merged === null ? record : merge(merged, record)
    }
    return merged
  }

  // ---------------------------------------------------------------- judging the run
  // Occurrences were accepted by the schedules' owners: judge them like submitted tasks.
  const occurrences = new Set<string>()
  for (const node of nodes) for (const [id, entry] of node.disk) if (entry.record.scheduleId !== null && entry.record.state !== 'aborted') occurrences.add(id)
  for (const id of executions.keys()) if (id.includes('@')) occurrences.add(id)
  for (const id of [...occurrences].sort()) {
    if (mergedRecord(id) === null && !executions.has(id)) continue
    submitted.add(id)
    if (mergedRecord(id)?.committed === true) accepted.push(id)
  }
  // A schedule whose create was refused (503) owes no ticks and must fire none; one whose
  // outcome was unknown (500) may exist: it is judged by its record but owes no ticks.
  const scheduleReport = judgeSchedules([...schedulesMade].map(([id, made]) => ({
    id,
    record: refused.includes(id) ? null : mergedRecord(id),
    owesTicks: accepted.includes(id),
    deletedAtMs: made.deletedAtMs
  })), [...occurrences], healAtMs)
  if (violations.length === 0) {
    for (const problem of scheduleReport.problems.slice(0, 1)) violate('3: each occurrence exists at most once, and exactly once while the cluster is up', problem.schedule, problem.detail)
  }
  const terminal = new Map<string, string>()
  for (const id of submitted) {
    const record = mergedRecord(id)
    if (record !== null && record.state !== 'aborted') terminal.set(id, record.state)
  }
  // One run per recorded outcome (a retried failure is not a duplicate).
  const recorded = new Map<string, number>()
  for (const id of submitted) {
    const history = mergedRecord(id)?.history ?? []
    recorded.set(id, Math.max(1, history.filter(entry => entry.state === 'retrying' || entry.state === 'succeeded' || entry.state === 'dead').length))
  }
  const queueReport = checkQueue({ accepted, terminal, executions, recorded, refused })
  if (violations.length === 0) {
    for (const id of queueReport.lostIds.slice(0, 1)) violate('1: no accepted task is lost', id, `still ${mergedRecord(id)?.state ?? 'absent'} ${nowMs - healAtMs} ms after healing`)
    for (const id of queueReport.unexpectedIds.slice(0, 1)) violate('submit: a refused task never runs', id, 'executed but never accepted')
    if (!options.faults) for (const id of queueReport.duplicatedIds.slice(0, 1)) violate('8: without faults nothing executes twice', id, `${executions.get(id)} executions`)
    for (const id of accepted) {
      const record = mergedRecord(id)
      const executedMax = executedEpochMax.get(id) ?? 0
      if (record !== null && isTerminal(record.state) && record.state !== 'cancelled' && record.epoch < executedMax) {
        violate('4: only the latest fencing token records a result', id, `outcome from epoch ${record.epoch}, but epoch ${executedMax} ran`)
        break
      }
    }
  }
  const live = nodes.filter(node => node.status === 'up' && node.core !== null)
  const replicaInput = new Map<string, Array<{ node: string, version: string | null }>>()
  if (live.length > 0) {
    const view = live[0]!.core!
    for (const id of accepted) {
      const copies = view.replicaSetOf(id).map(peer => {
        const record = byId.get(peer)?.core?.record(id) ?? null
        return { node: peer, version: record === null ? null : canonicalText(record) }
      })
      replicaInput.set(id, copies)
    }
  }
  const replicaReport = checkReplicas({ replicas: replicaInput })
  if (violations.length === 0 && replicaReport.divergent > 0) {
    const id = replicaReport.divergentIds[0]!
    violate('6: replicas agree after healing and quiescence', id, replicaInput.get(id)!.map(copy => `${copy.node}: ${copy.version === null ? 'absent' : JSON.parse(copy.version).state}`).join(', '))
  }
  return { seed: options.seed, options, membership: timings, rates, virtualMs: Math.round(nowMs), events, faults, queue: queueReport, replicas: replicaReport, violations, executions: totalExecutions, schedules: scheduleReport }
}

// ------------------------------------------------------------------ CLI

const USAGE = 'usage: taskmesh sim --virtual [--nodes 10] [--tasks 1000] [--replicas 3] [--seed N] [--no-faults] [--policy ring|ring-1|stand-ins] [--membership gossip|scaled] [--phase 30s] [--seeds N] [--schedules N] [--json FILE] [--bug ack-without-persist|accept-before-quorum]'

export function replayCommand (options: VirtualOptions): string {
  return `taskmesh sim --virtual --seed ${options.seed} --nodes ${options.nodes} --tasks ${options.tasks} --replicas ${options.replicas} --policy ${options.policy} --phase ${options.phaseMs}ms` +
    (options.membership !== undefined ? ` --membership ${options.membership}` : '') +
    (options.faults ? '' : ' --no-faults') + (options.bug !== 'none' ? ` --bug ${options.bug}` : '') + ((options.schedules ?? 0) > 0 ? ` --schedules ${options.schedules!}` : '')
}

export function parseVirtualOptions (argv: string[]): VirtualOptions & { seeds: number, json: string | null } {
  const value = (name: string): string | undefined => {
    const index = argv.indexOf(`--${name}`)
    if (index < 0) return undefined
    const found = argv[index + 1]
    if (found === undefined || found.startsWith('--')) throw new Error(`--${name} needs a value\n${USAGE}`)
    return found
  }
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const text = value(name)
    if (text === undefined) return fallback
    const parsed = Number(text)
    if (!Number.isInteger(parsed) || parsed < min || parsed > max) throw new Error(`--${name}: expected an integer in ${min}..${max}, got "${text}"\n${USAGE}`)
    return parsed
  }
  const known = new Set(['--virtual', '--nodes', '--tasks', '--replicas', '--seed', '--no-faults', '--policy', '--phase', '--seeds', '--json', '--bug', '--schedules', '--membership'])
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith('--')) continue
    if (!known.has(arg)) throw new Error(`unknown option ${arg}\n${USAGE}`)
  }
  const policy = value('policy') ?? 'ring'
  if (policy !== 'ring' && policy !== 'ring-1' && policy !== 'stand-ins') throw new Error(`--policy: expected ring, ring-1 or stand-ins\n${USAGE}`)
  const bug = value('bug') ?? 'none'
  if (bug !== 'none' && bug !== 'ack-without-persist' && bug !== 'accept-before-quorum') throw new Error(`--bug: unknown bug "${bug}"\n${USAGE}`)
  const membership = value('membership')
  if (membership !== undefined && membership !== 'gossip' && membership !== 'scaled') throw new Error(`--membership: expected gossip or scaled\n${USAGE}`)
  const phaseText = value('phase') ?? '30s'
  const phaseMatch = /^(\d+)(ms|s)?$/.exec(phaseText)
  if (phaseMatch === null) throw new Error(`--phase: expected a duration like 30s\n${USAGE}`)
  const phaseMs = Number(phaseMatch[1]) * (phaseMatch[2] === 'ms' ? 1 : 1000)
  return {
    nodes: integer('nodes', 10, 1, 100_000),
    tasks: integer('tasks', 1000, 0, 10_000_000),
    replicas: integer('replicas', 3, 1, 9),
    seed: integer('seed', Math.floor(Math.random() * 2 ** 31), 0, 2 ** 32 - 1),
    faults: !argv.includes('--no-faults'),
    policy,
    bug,
    phaseMs: Math.max(6000, phaseMs),
    ...(membership === undefined ? {} : { membership }),
    seeds: integer('seeds', 1, 1, 100_000),
    schedules: integer('schedules', 0, 0, 1000),
    json: value('json') ?? null
  }
}

/** `taskmesh sim --virtual`: returns the exit code (1 on any violation). */
export async function runVirtual (argv: string[]): Promise<number> {
  const parsed = parseVirtualOptions(argv)
  const { seeds, json, ...base } = parsed
  const results: VirtualResult[] = []
  let failed = 0
  for (let i = 0; i < seeds; i++) {
    const options: VirtualOptions = { ...base, seed: base.seed + i }
    const startedMs = performance.now()
    const result = simulate(options)
    const seconds = (performance.now() - startedMs) / 1000
    results.push(result)
    const q = result.queue
    console.log(`seed ${options.seed}: ${options.nodes} nodes (${result.membership.model} membership), ${options.tasks} tasks, ${q.accepted} accepted, ${q.completed} succeeded, ${q.failed} dead, ` +
      `${q.lost} lost, ${q.duplicated} duplicated, ${q.unexpected} unexpected, ${result.replicas.divergent} divergent; ` +
      (result.schedules.schedules > 0 ? `${result.schedules.expected} ticks expected, ${result.schedules.occurrences} occurrences, ${result.schedules.extra} extra, ${result.schedules.missed} missed; ` : '') +
      `${result.faults.length} faults; ${result.events} events in ${seconds.toFixed(2)} s (${Math.round(result.events / seconds)} events/s), ${(result.virtualMs / 1000).toFixed(1)} s virtual`)
    if (result.violations.length > 0) {
      failed++
      for (const violation of result.violations) {
        console.log(`  VIOLATION of invariant ${violation.invariant} at ${violation.atMs} ms${violation.task !== null ? ` on ${violation.task}` : ''}: ${violation.detail}`)
        for (const line of violation.trace) console.log(`    ${line}`)
      }
      console.log(`  faults: ${result.faults.join('; ') || 'none'}`)
      console.log(`  replay: ${replayCommand(options)}`)
    }
  }
  if (json !== null) {
    const { writeFile } = await import('node:fs/promises')
    await writeFile(json, JSON.stringify(seeds === 1 ? results[0] : results, null, 2) + '\n')
  }
  if (seeds > 1) console.log(`${seeds - failed} of ${seeds} seeds passed`)
  return failed > 0 ? 1 : 0
}
