// node.ts: one taskmesh node as a deterministic state machine.
// Why: the runtime and the virtual simulator drive this same code. Facts come in through
// step(), orders go out through drain(); time arrives as atMs on every input.
//
// Ordering contract with the driver: every Persist effect drained in one batch is written
// (synced) before any Send, Reply or Execute of that batch is performed. That is what lets
// this code acknowledge its own writes at once.
import { claimOutcome, claimQuorum } from './claim.js'
import type { ClaimQuorum } from './claim.js'
import { Heap } from './heap.js'
import { KEYSPACE, keyPosition } from './hash.js'
import { EMPTY_LOAD, Membership } from './membership.js'
import { PROTOCOL_VERSION } from './protocol.js'
import type { Effect, Input, PeerMessage, ReplyValue, TaskEventData } from './protocol.js'
import { attemptsLeft, backoffDelayMs, compareVersionTuples, isTerminal, merge, mergeChanges, newRecord, versionOf } from './record.js'
import { dueTicks, nextTick, occurrenceId } from './schedule.js'
import { sha256Bytes, toHex } from './hash.js'
import { buildRing, replicaSetAt, ringShares, writeQuorum, VIRTUAL_POSITIONS_DEFAULT } from './ring.js'
import type { Ring } from './ring.js'
import type {
  ClusterView, CommandOutcome, Heartbeat, ListQuery, Rejection, StoredEntry, SubmitOutcome, TaskCommand, TaskRecord, TaskSpec, TaskState
} from './types.js'

export interface CoreConfig {
  selfId: string
  /** Replication factor R (capped by ring size). */
  replicas: number
  /** Concurrent executions (and claims in flight) on this node. */
  capacity: number
  heartbeatMs: number
  suspectAfterMs: number
  deadAfterMs: number
  removeAfterMs: number
  submitTimeoutMs: number
  claimTimeoutMs: number
  readTimeoutMs: number
  claimRetryMs: number
  /** After this long, an uncommitted record whose decision never arrived counts as committed. */
  commitFallbackMs: number
  /** No claims and no submits until this long after start: time to hear the cluster's heartbeats. */
  joinGraceMs: number
  /** Anti-entropy: a digest exchange with every live peer this often... */
  syncIntervalMs: number
  /** ...and this soon after a membership change. */
  syncDelayMs: number
  /** After joining, claims wait for the first sync round at most this long. */
  syncTimeoutMs: number
  api: string
  addrs: string[]
  /** Task types this node can execute. */
  types: string[]
  /** Most concurrent runs per task type on this node (`--limit type=N`); absent = capacity. */
  typeLimits?: Record<string, number>
  /** Terminal tasks are removed from every replica this long after they finished; default 7 days. */
  retentionMs?: number
  /**
   * Stand-ins (claim.ts): take over a run whose replica set lost its majority as soon as the
   * members are declared dead, not when the ring drops them. Faster failover, but a partition
   * that outlasts the dead timeout can then let both sides record a result (fencing holds only
   * for partitions shorter than removeAfterMs without it). Off by default.
   */
  standIns?: boolean
  virtualPositions?: number
}

export interface CoreStats {
  records: number
  active: number
  running: number
  claiming: number
  ready: number
  submitsAccepted: number
  submitsRejected: number
  claimsStarted: number
  claimsAbandoned: number
  executionsStarted: number
  executionsSucceeded: number
  executionsFailed: number
  staleResultsRefused: number
  staleWritesRefused: number
  /** 503 answered, then a claim won anyway (the abort never reached a quorum in time). */
  refusedButRan: number
  syncRounds: number
  syncPushed: number
  syncPulled: number
}

type Timer =
  | { atMs: number, kind: 'due', id: string }
  | { atMs: number, kind: 'submitDeadline', rid: number }
  | { atMs: number, kind: 'claimDeadline', rid: number }
  | { atMs: number, kind: 'writeDeadline', rid: number }
  | { atMs: number, kind: 'abortDeadline', rid: number }
  | { atMs: number, kind: 'replicate', rid: number }
  | { atMs: number, kind: 'submitCopies', rid: number }
  | { atMs: number, kind: 'readDeadline', rid: number }
  | { atMs: number, kind: 'listDeadline', rid: number }
  | { atMs: number, kind: 'storeDeadline', rid: number }

interface PendingSubmit {
  requestId: number
  index: number
  record: TaskRecord
  replicas: string[]
  needed: number
  acks: Set<string>
  nacks: Set<string>
  /** Accepted (201 answered); kept a moment longer to see every replica ack, else resend. */
  accepted: boolean
  /** Another coordinator's create of the same id, seen at a replica: the same task. */
  conflict: TaskRecord | null
  /** Live members past the replica set asked to hold a copy while a replica is silent. */
  hinted: Set<string>
  /** A submitCopies timer is armed. */
  copiesArmed: boolean
}

/** After a submit is accepted, replicas that have not acked it by then get it again. */
const REPLICATE_AFTER_MS = 500
/**
 * A submit with its write quorum but fewer copies than R (a replica is silent) waits this long
 * for it, then asks the live members just past the replica set to hold the missing copies.
 */
const HINT_AFTER_MS = 150

/** A coordinator's attempt to abort a submit that missed its quorum: itself a fenced quorum write. */
interface PendingAbort {
  submit: PendingSubmit
  acks: Set<string>
  nacks: Set<string>
  why: string
  /** Set once the outcome was answered as unknown; the abort keeps being retransmitted until a quorum holds it. */
  answered: boolean
  startedAtMs: number
}

/** How often an unfinished abort is sent again to the replicas that have not stored it. */
const ABORT_RETRY_MS = 500

interface SubmitRequest {
  outcomes: Array<SubmitOutcome | undefined>
  remaining: number
}

/** An owner's outcome waiting for a write quorum before it counts (and is applied here). */
interface PendingWrite {
  record: TaskRecord
  targets: string[]
  needed: number
  acks: Set<string>
  nacks: Set<string>
}

interface PendingClaim {
  rid: number
  record: TaskRecord
  replicas: string[]
  needed: number
  quorum: ClaimQuorum
  acks: Set<string>
  nacks: Set<string>
}

interface PendingRead {
  then: (record: TaskRecord | null) => void
  id: string
  waiting: Set<string>
  merged: TaskRecord | null
}

interface PendingList {
  requestId: number
  query: ListQuery
  waiting: Set<string>
  merged: Map<string, TaskRecord>
  truncated: boolean
}

interface ReadyItem {
  id: string
  type: string
  /** priority - runAtMs / AGING_MS: a waiting task gains one priority level per AGING_MS. */
  rank: number
  sequence: number
}

/** A record write that only needs a write quorum (cancel, retry, pause, resume, schedule watermark). */
interface PendingStore {
  record: TaskRecord
  replicas: string[]
  needed: number
  acks: Set<string>
  nacks: Set<string>
  refusal: TaskRecord | null
  /** `refusal`: the newest record a refusing replica answered with (it holds something newer). */
  then: (ok: boolean, refusal: TaskRecord | null) => void
}

/** Aging of the ready queue: one priority level per minute waited, so low priorities never starve. */
export const AGING_MS = 60_000
/** A child whose parents have not finished checks them again this often. */
const DEPENDENCY_POLL_MS = 500
const RETENTION_MS_DEFAULT = 7 * 86_400_000
/** Most expired records removed per tick. */
const FORGET_PER_TICK = 5_000

const DURATION_EWMA_WEIGHT = 0.2
/** Anti-entropy key buckets: a digest is one 32-bit hash per bucket. */
const SYNC_BUCKETS = 64
/** Most (id, version) pairs in one syncKeys answer; the next round continues. */
const SYNC_KEYS_MAX = 20_000
/** Most ids in one want message. */
const WANT_IDS_MAX = 5_000

export class TaskmeshNode {
  readonly config: CoreConfig
  readonly #membership: Membership
  readonly #entries = new Map<string, StoredEntry>()
  /** Ids of non-terminal records held here. */
  readonly #active = new Set<string>()
  readonly #positions = new Map<string, number>()
  #ring: Ring
  #effects: Effect[] = []
  #events: TaskEventData[] = []
  readonly #timers = new Heap<Timer>((a, b) => a.atMs < b.atMs)
  #wakeAtMs = Infinity
  #nowMs: number
  readonly #startedAtMs: number
  #nextRid = 1
  #readySequence = 0
  readonly #submits = new Map<number, PendingSubmit>()
  readonly #submitRequests = new Map<number, SubmitRequest>()
  /** Ids of the submits waiting for their quorum. */
  readonly #submitIds = new Set<string>()
  readonly #claims = new Map<string, PendingClaim>()
  readonly #writes = new Map<number, PendingWrite>()
  readonly #aborts = new Map<number, PendingAbort>()
  /** This node's decisions as coordinator (true = accepted), kept to answer replicas that ask. */
  readonly #decided = new Map<string, { commit: boolean, atMs: number }>()
  /** Uncommitted records whose coordinator was asked for its decision. */
  readonly #asked = new Set<string>()
  /** Ids whose outcome is on its way to a quorum: not orphans, whatever the local record says. */
  readonly #writing = new Set<string>()
  readonly #claimRids = new Map<number, string>()
  readonly #reads = new Map<number, PendingRead>()
  readonly #lists = new Map<number, PendingList>()
  readonly #ready = new Heap<ReadyItem>((a, b) => a.rank !== b.rank ? a.rank > b.rank : a.sequence < b.sequence)
  /** Ready items of a type at its per-type limit here, waiting for a run of that type to end. */
  readonly #blocked = new Map<string, ReadyItem[]>()
  /** Runs and claims in flight per task type (for --limit). */
  readonly #busyByType = new Map<string, number>()
  readonly #stores = new Map<number, PendingStore>()
  /** Internal submits (schedule occurrences): their outcome goes to a callback, not a reply. */
  readonly #internalRequests = new Map<number, (outcomes: SubmitOutcome[]) => void>()
  #nextInternalRequest = -1
  /** Clients waiting on a submit of the same id already in flight here (idempotency keys). */
  readonly #submitWaiters = new Map<string, Array<(outcome: SubmitOutcome) => void>>()
  /** Children whose parents all succeeded (checked by this node as their owner). */
  readonly #parentsOk = new Set<string>()
  readonly #checkingParents = new Set<string>()
  /** Schedules whose next tick is being fired by this node. */
  readonly #firing = new Set<string>()
  readonly #expiries = new Heap<{ atMs: number, id: string }>((a, b) => a.atMs < b.atMs)
  readonly #inReady = new Set<string>()
  readonly #running = new Map<string, { epoch: number, startedAtMs: number, type: string }>()
  /** Ids whose last claim never reached quorum: the next claim reuses the attempt number. */
  readonly #abandonedClaims = new Set<string>()
  readonly #dueTimers = new Set<string>()
  /** Coordinator decisions to send, batched per peer within one step. */
  readonly #decisions = new Map<string, { commit: string[], abort: string[] }>()
  #leaving = false
  #left = false
  /** Replica sets under the current ring, by task id; cleared when the ring changes. */
  readonly #sets = new Map<string, string[]>()
  #nextSyncAtMs = 0
  #syncSoonAtMs: number | null = null
  /** Peers whose answer to this node's first sync round is awaited before it claims. */
  #gatePeers: Set<string> | null = null
  /** Ids those answers showed newer elsewhere: the gate also waits for them to arrive. */
  readonly #gateWanted = new Set<string>()
  #gateDeadlineMs = 0
  #claimGateOpen = false
  #syncRound = 0
  /** Hinted copies already sent, as `${id}|${peer}|${versionHash}`; cleared when the ring changes. */
  readonly #hinted = new Set<string>()
  #nextHeartbeatAtMs = 0
  #durationMsEwma = 0
  readonly #stats = {
    submitsAccepted: 0, submitsRejected: 0, claimsStarted: 0, claimsAbandoned: 0,
    executionsStarted: 0, executionsSucceeded: 0, executionsFailed: 0,
    staleResultsRefused: 0, staleWritesRefused: 0, refusedButRan: 0, syncRounds: 0, syncPushed: 0, syncPulled: 0
  }

  constructor (config: CoreConfig, atMs: number) {
    if (!(config.deadAfterMs > config.suspectAfterMs)) throw new Error('deadAfterMs must exceed suspectAfterMs')
    if (!(config.replicas >= 1)) throw new Error('replicas must be at least 1')
    if (!(config.capacity >= 1)) throw new Error('capacity must be at least 1')
    this.config = config
    this.#nowMs = atMs
    this.#startedAtMs = atMs
    this.#membership = new Membership({
      selfId: config.selfId,
      suspectAfterMs: config.suspectAfterMs,
      deadAfterMs: config.deadAfterMs,
      removeAfterMs: config.removeAfterMs
    }, this.#heartbeat(), atMs)
    this.#ring = buildRing(this.#membership.ringMembers(), this.#virtualPositions())
  }

  // ---------------------------------------------------------------- the two entry points

  step (input: Input): void {
    this.#nowMs = Math.max(this.#nowMs, input.atMs)
    this.#runDueTimers()
    switch (input.kind) {
      case 'Restored': this.#onRestored(input.entries); break
      case 'Ticked': this.#onTicked(); break
      case 'SubmitRequested': this.#onSubmitRequested(input.requestId, input.items); break
      case 'ReadRequested': this.#onReadRequested(input.requestId, input.id); break
      case 'ListRequested': this.#onListRequested(input.requestId, input.query); break
      case 'MessageReceived': this.#onMessage(input.from, input.message); break
      case 'HeartbeatReceived': this.#onHeartbeat(input.heartbeat); break
      case 'PeerDisconnected': this.#onMembershipChange(this.#membership.onDisconnected(input.peerId, this.#nowMs)); break
      case 'ExecutionFinished': this.#onExecutionFinished(input); break
      case 'CommandRequested': this.#onCommandRequested(input.requestId, input.id, input.command); break
      case 'ProgressReported': this.#onProgressReported(input.taskId, input.epoch, input.progress); break
      case 'LeaveRequested': this.#onLeaveRequested(); break
      case 'LeaveCompleted': this.#onLeaveCompleted(); break
      default: unreachable(input)
    }
    this.#pump()
    this.#flushDecisions()
    this.#flushEvents()
    this.#requestWake()
  }

  drain (): Effect[] {
    const effects = this.#effects
    this.#effects = []
    return effects
  }

  // ---------------------------------------------------------------- queries (no state change)

  get joined (): boolean {
    return this.#nowMs >= this.#startedAtMs + this.config.joinGraceMs
  }

  get leaving (): boolean { return this.#leaving }

  get left (): boolean { return this.#left }

  /** True once joined and the first anti-entropy round is done (or timed out). */
  get claiming (): boolean { return this.#claimGateOpen }

  runningCount (): number { return this.#running.size }

  /** Work this node still owes the cluster: runs, claims in flight and outcomes not yet on a quorum. */
  pendingWork (): number { return this.#running.size + this.#claims.size + this.#writes.size }

  record (id: string): TaskRecord | null {
    return this.#entries.get(id)?.record ?? null
  }

  clusterView (): ClusterView {
    const shares = ringShares(this.#ring)
    const members = [...this.#membership.members.values()].map(member => ({
      peerId: member.peerId,
      addrs: member.heartbeat?.addrs ?? [],
      api: member.heartbeat?.api ?? '',
      state: member.state,
      load: member.heartbeat?.load ?? EMPTY_LOAD,
      types: member.heartbeat?.types ?? [],
      ringShare: shares.get(member.peerId) ?? 0,
      lastSeenMs: member.lastSeenMs
    })).sort((a, b) => a.peerId < b.peerId ? -1 : 1)
    return { self: this.config.selfId, replicas: this.config.replicas, members }
  }

  stats (): CoreStats {
    return {
      records: this.#entries.size,
      active: this.#active.size,
      running: this.#running.size,
      claiming: this.#claims.size,
      ready: this.#ready.size,
      ...this.#stats
    }
  }

  /** The replica set of a task under this node's current view. */
  replicaSetOf (id: string): string[] {
    let set = this.#sets.get(id)
    if (set === undefined) {
      set = replicaSetAt(this.#ring, this.#position(id), this.config.replicas)
      this.#sets.set(id, set)
    }
    return set
  }

  // ---------------------------------------------------------------- inputs

  #onRestored (entries: StoredEntry[]): void {
    const mentioned = new Set<string>()
    for (const entry of entries) {
      this.#entries.set(entry.record.id, entry)
      this.#index(entry.record)
      for (const peer of entry.record.replicas) mentioned.add(peer)
    }
    let ringChanged = false
    for (const peer of mentioned) ringChanged = this.#membership.onMentioned(peer, this.#nowMs).ring || ringChanged
    if (ringChanged) {
      this.#ring = buildRing(this.#membership.ringMembers(), this.#virtualPositions())
      this.#sets.clear()
    }
    this.#log('info', 'store.restored', { records: entries.length, active: this.#active.size })
    this.#reconsiderAll()
  }

  #onTicked (): void {
    this.#onMembershipChange(this.#membership.tick(this.#nowMs))
    if (this.#ringStale) this.#rebuildRing()
    if (this.#nowMs >= this.#nextHeartbeatAtMs) {
      this.#nextHeartbeatAtMs = this.#nowMs + this.config.heartbeatMs
      const heartbeat = this.#heartbeat()
      this.#membership.updateSelf(heartbeat, this.#nowMs)
      this.#emit({ kind: 'PublishHeartbeat', heartbeat })
    }
    if (!this.#wasJoined && this.joined) {
      this.#wasJoined = true
      // Pull what the cluster has for our ranges before claiming anything there.
      this.#gatePeers = new Set()
      this.#gateDeadlineMs = this.#nowMs + this.config.syncTimeoutMs
      this.#startSyncRound()
      this.#reconsiderAll()
    }
    if (this.#wasJoined && !this.#left) {
      const soon = this.#syncSoonAtMs !== null && this.#nowMs >= this.#syncSoonAtMs
      if (soon || this.#nowMs >= this.#nextSyncAtMs) this.#startSyncRound()
    }
    this.#maybeOpenClaimGate()
    this.#forgetExpired()
  }

  #wasJoined = false

  #onHeartbeat (heartbeat: Heartbeat): void {
    if (heartbeat.protocol !== PROTOCOL_VERSION) {
      this.#log('warn', 'member.protocol_mismatch', { peer: heartbeat.peerId, protocol: heartbeat.protocol })
      return
    }
    this.#onMembershipChange(this.#membership.onHeartbeat(heartbeat, this.#nowMs))
  }

  #onMembershipChange (change: { ring: boolean, liveness: boolean }): void {
    if (change.ring || change.liveness) this.#syncSoonAtMs ??= this.#nowMs + this.config.syncDelayMs
    // A ring change is taken up at the next tick, once for every change since: a forming cluster
    // of N nodes makes N joins per node, and each rebuild hands off and reconsiders everything.
    if (change.ring) this.#ringStale = true
    if (change.liveness) {
      this.#retargetClaims()
      this.#reconsiderAll()
    }
  }

  #ringStale = false

  #rebuildRing (): void {
    this.#ringStale = false
    const previous = this.#ring
    this.#ring = buildRing(this.#membership.ringMembers(), this.#virtualPositions())
    this.#sets.clear()
    this.#hinted.clear()
    this.#log('info', 'ring.changed', { members: this.#ring.members.length })
    this.#handOff(previous)
    this.#reconsiderAll()
  }

  #onSubmitRequested (requestId: number, items: Array<{ id: string, spec: TaskSpec }>): void {
    const request: SubmitRequest = { outcomes: new Array(items.length), remaining: items.length }
    this.#submitRequests.set(requestId, request)
    items.forEach(({ id, spec }, index) => {
      // Same idempotency key, same id, on whichever node it is submitted (invariant 5).
      const taskId = spec.idempotencyKey !== null ? idempotentId(spec.idempotencyKey) : id
      this.#startSubmit(requestId, index, taskId, spec, null)
    })
    if (items.length === 0) this.#finishSubmitRequest(requestId)
  }

  /**
   * One item of a submit. A task whose id can be asked for twice (an idempotency key, a
   * schedule's occurrence) or that names parents is read first: an existing task is the answer
   * (created: false), unknown parents are refused, and an aborted earlier try of the same id is
   * outranked by a new generation.
   */
  #startSubmit (requestId: number, index: number, id: string, spec: TaskSpec, scheduleId: string | null): void {
    const reusable = spec.idempotencyKey !== null || scheduleId !== null
    const rejection = this.#refuseSubmit(id, spec, reusable)
    if (rejection !== null) {
      this.#resolveSubmit(requestId, index, { ok: false, error: rejection })
      return
    }
    if (reusable && this.#submitIds.has(id)) {
      // The same key is being submitted through this node right now: answer with its outcome.
      const waiters = this.#submitWaiters.get(id) ?? []
      waiters.push(outcome => this.#resolveSubmit(requestId, index, outcome.ok ? { ...outcome, created: false } : outcome))
      this.#submitWaiters.set(id, waiters)
      return
    }
    if (!reusable && spec.dependsOn.length === 0) {
      this.#createSubmit(requestId, index, id, spec, scheduleId, 0)
      return
    }
    const parents = [...new Set(spec.dependsOn)]
    const reads = reusable ? [id, ...parents] : parents
    this.#submitIds.add(id)
    this.#readAll(reads, found => {
      this.#submitIds.delete(id)
      const existing = reusable ? found.get(id) ?? null : null
      if (existing !== null && existing.state !== 'aborted') {
        const answer = (outcome: SubmitOutcome): void => {
          this.#resolveSubmit(requestId, index, outcome)
          this.#settleWaiters(id, outcome)
        }
        if (existing.committed) return answer({ ok: true, created: false, record: existing })
        // An earlier try that never heard its quorum: make it durable now, then it is the answer.
        this.#submitIds.add(id)
        this.#storeQuorum({ ...existing, committed: true }, (ok, refusal) => {
          this.#submitIds.delete(id)
          const moved = refusal !== null && refusal.committed && refusal.state !== 'aborted'
          answer(ok || moved
            ? { ok: true, created: false, record: this.#entries.get(id)?.record ?? refusal ?? existing }
            : { ok: false, error: { code: 'no_quorum', message: 'could not store the task on a majority of its replicas; submit again with the same key' } })
        })
        return
      }
      for (const parent of parents) {
        const known = found.get(parent)
        if (known === null || known === undefined || known.state === 'aborted') {
          const outcome: SubmitOutcome = { ok: false, error: { code: 'invalid_input', message: `dependsOn: unknown task ${parent} (parents must exist before their children, so cycles cannot form)` } }
          this.#resolveSubmit(requestId, index, outcome)
          this.#settleWaiters(id, outcome)
          return
        }
      }
      this.#createSubmit(requestId, index, id, spec, scheduleId, existing === null ? 0 : existing.generation + 1)
    })
  }

  #createSubmit (requestId: number, index: number, id: string, spec: TaskSpec, scheduleId: string | null, generation: number): void {
    if (this.#submitIds.has(id)) {
      this.#resolveSubmit(requestId, index, { ok: false, error: { code: 'invalid_input', message: `id: task ${id} already exists` } })
      return
    }
    const replicas = this.replicaSetOf(id)
    const record = newRecord({ id, spec, atMs: this.#nowMs, coordinator: this.config.selfId, replicas, scheduleId, generation })
    const rid = this.#nextRid++
    this.#submits.set(rid, { requestId, index, record, replicas, needed: writeQuorum(replicas.length), acks: new Set(), nacks: new Set(), accepted: false, conflict: null, hinted: new Set(), copiesArmed: false })
    this.#submitIds.add(id)
    this.#addTimer({ atMs: this.#nowMs + this.config.submitTimeoutMs, kind: 'submitDeadline', rid })
    for (const peer of replicas) this.#deliver(peer, { kind: 'store', rid, record })
  }

  #settleWaiters (id: string, outcome: SubmitOutcome): void {
    const waiters = this.#submitWaiters.get(id)
    if (waiters === undefined) return
    this.#submitWaiters.delete(id)
    for (const waiter of waiters) waiter(outcome)
  }

  /** Answer a submit item (and whoever waits on the same id). */
  #settleSubmit (submit: PendingSubmit, outcome: SubmitOutcome): void {
    this.#resolveSubmit(submit.requestId, submit.index, outcome)
    this.#settleWaiters(submit.record.id, outcome)
  }

  #refuseSubmit (id: string, spec: TaskSpec, reusable: boolean): Rejection | null {
    if (this.#leaving) return { code: 'shutting_down', message: 'this node is draining; submit to another node' }
    if (!this.joined) return { code: 'no_quorum', message: 'this node is still joining the cluster; try again shortly' }
    if (!reusable && (this.#entries.has(id) || this.#submitIds.has(id))) return { code: 'invalid_input', message: `id: task ${id} already exists` }
    if (spec.type === 'shell' && !this.#membership.anyCanRun('shell')) {
      return { code: 'exec_disabled', message: 'type: no node in the cluster allows the shell executor (start nodes with --allow-exec)' }
    }
    if (spec.dependsOn.includes(id)) return { code: 'invalid_input', message: `dependsOn: a task cannot depend on itself (${id})` }
    return null
  }

  #onReadRequested (requestId: number, id: string): void {
    this.#readRecord(id, record => {
      const visible = record !== null && record.state !== 'aborted' ? record : null
      this.#reply(requestId, { kind: 'read', record: visible, waiting: visible === null ? null : this.#waitingReason(visible) })
    })
  }

  /** Read a record from every reachable replica (and this node), merged; null when nobody has it. */
  #readRecord (id: string, then: (record: TaskRecord | null) => void): void {
    const targets = new Set(this.replicaSetOf(id).filter(peer => this.#reachable(peer)))
    if (this.#entries.has(id)) targets.add(this.config.selfId)
    const rid = this.#nextRid++
    this.#reads.set(rid, { then, id, waiting: new Set(targets), merged: null })
    this.#addTimer({ atMs: this.#nowMs + this.config.readTimeoutMs, kind: 'readDeadline', rid })
    for (const peer of targets) this.#deliver(peer, { kind: 'read', rid, ids: [id] })
    this.#maybeFinishRead(rid)
  }

  /** Read several records (as #readRecord), then call `then` once with all of them by id. */
  #readAll (ids: string[], then: (found: Map<string, TaskRecord | null>) => void): void {
    const found = new Map<string, TaskRecord | null>()
    for (const id of ids) {
      this.#readRecord(id, record => {
        found.set(id, record)
        if (found.size === ids.length) then(found)
      })
    }
  }

  /** Why a task that is not running has not started yet, when that is not just its time. */
  #waitingReason (record: TaskRecord): string | null {
    if (isTerminal(record.state) || record.state === 'running') return null
    if (record.schedule !== null) return record.schedule.paused ? 'the schedule is paused' : null
    if (!this.config.types.includes(record.type) && !this.#membership.anyCanRun(record.type)) {
      return `no live node can run tasks of type "${record.type}"; it stays queued until one joins`
    }
    if (record.dependsOn.length > 0 && record.attempt === record.retryBase && !this.#parentsOk.has(record.id)) {
      return `waiting for its dependencies to succeed: ${record.dependsOn.join(', ')}`
    }
    return null
  }

  #onListRequested (requestId: number, query: ListQuery): void {
    const targets = new Set(this.#membership.aliveMembers())
    targets.add(this.config.selfId)
    const rid = this.#nextRid++
    this.#lists.set(rid, { requestId, query, waiting: new Set(targets), merged: new Map(), truncated: false })
    this.#addTimer({ atMs: this.#nowMs + this.config.readTimeoutMs, kind: 'listDeadline', rid })
    for (const peer of targets) this.#deliver(peer, { kind: 'list', rid, query })
    this.#maybeFinishList(rid)
  }

  #onExecutionFinished (input: Extract<Input, { kind: 'ExecutionFinished' }>): void {
    const run = this.#running.get(input.taskId)
    const entry = this.#entries.get(input.taskId)
    if (run !== undefined && run.epoch === input.epoch) {
      this.#running.delete(input.taskId)
      this.#busy(run.type, -1)
    }
    const record = entry?.record
    if (run === undefined || run.epoch !== input.epoch || record === undefined ||
        record.state !== 'running' || record.epoch !== input.epoch || record.owner !== this.config.selfId ||
        entry!.promised > input.epoch) {
      this.#stats.staleResultsRefused++
      this.#log('warn', 'result.stale_refused', { task: input.taskId, epoch: input.epoch, current: record?.epoch ?? null })
      return
    }
    this.#durationMsEwma = this.#durationMsEwma === 0
      ? input.durationMs
      : this.#durationMsEwma * (1 - DURATION_EWMA_WEIGHT) + input.durationMs * DURATION_EWMA_WEIGHT
    const atMs = this.#nowMs
    const node = this.config.selfId
    let next: TaskRecord
    if (input.outcome.ok) {
      this.#stats.executionsSucceeded++
      next = {
        ...record, state: 'succeeded', result: input.outcome.result ?? null, error: null, finishedAtMs: atMs,
        history: [...record.history, { state: 'succeeded', atMs, node, attempt: record.attempt }]
      }
    } else {
      this.#stats.executionsFailed++
      const error = input.outcome.error
      const result = input.outcome.result ?? null
      if (attemptsLeft(record) > 0) {
        const runAtMs = atMs + backoffDelayMs(record)
        next = {
          ...record, state: 'retrying', result, error, runAtMs,
          history: [...record.history, { state: 'retrying', atMs, node, attempt: record.attempt, error }]
        }
      } else {
        next = {
          ...record, state: 'dead', result, error, finishedAtMs: atMs,
          history: [...record.history, { state: 'dead', atMs, node, attempt: record.attempt, error }]
        }
      }
    }
    this.#write(next)
  }

  #onLeaveRequested (): void {
    if (this.#leaving) return
    this.#leaving = true
    while (this.#ready.size > 0) this.#ready.pop()
    this.#inReady.clear()
    this.#publishHeartbeat()
    this.#log('info', 'node.draining', { running: this.#running.size })
  }

  /** Hand every record to the members that take over our place in its replica set, then leave. */
  #onLeaveCompleted (): void {
    if (this.#left) return
    this.#onLeaveRequested()
    const remaining = this.#membership.ringMembers().filter(peer => peer !== this.config.selfId)
    const successors = buildRing(remaining, this.#virtualPositions())
    let handed = 0
    for (const [id, { record }] of this.#entries) {
      const position = this.#position(id)
      const current = this.replicaSetOf(id)
      for (const peer of replicaSetAt(successors, position, this.config.replicas)) {
        if (!current.includes(peer)) {
          this.#deliver(peer, { kind: 'store', rid: 0, record })
          handed++
        }
      }
    }
    this.#left = true
    this.#publishHeartbeat()
    this.#log('info', 'node.left', { handedOff: handed, stillRunning: this.#running.size })
  }

  #publishHeartbeat (): void {
    const heartbeat = this.#heartbeat()
    this.#membership.updateSelf(heartbeat, this.#nowMs)
    this.#emit({ kind: 'PublishHeartbeat', heartbeat })
  }

  // ---------------------------------------------------------------- peer messages

  #onMessage (from: string, message: PeerMessage): void {
    switch (message.kind) {
      case 'store': return this.#onStore(from, message)
      case 'stored': return this.#onStored(from, message)
      case 'decide': return this.#onDecide(message)
      case 'claim': return this.#onClaim(from, message)
      case 'claimed': return this.#onClaimed(from, message)
      case 'read': return this.#deliver(from, { kind: 'readReply', rid: message.rid, records: message.ids.map(id => this.#entries.get(id)?.record).filter(isDefined) })
      case 'readReply': return this.#onReadReply(from, message)
      case 'list': return this.#deliver(from, { kind: 'listReply', rid: message.rid, records: this.#localList(message.query) })
      case 'listReply': return this.#onListReply(from, message)
      case 'ask': return this.#onAsk(from, message)
      case 'sync': return this.#onSync(from, message)
      case 'syncKeys': return this.#onSyncKeys(from, message)
      case 'want': return this.#onWant(from, message)
      default: return unreachable(message)
    }
  }

  #onStore (from: string, message: Extract<PeerMessage, { kind: 'store' }>): void {
    const refusal = message.rid === 0 ? null : this.#refuseStore(message.record)
    if (refusal !== null) {
      this.#deliver(from, { kind: 'stored', rid: message.rid, id: message.record.id, ok: false, record: refusal })
      return
    }
    // The fence guards writes that are counted (rid > 0). rid 0 copies a version that exists
    // (anti-entropy, handoff, hints): merged like any other, or replicas that promised a newer
    // claim never converge on the outcome that was chosen before it. A cancel is not fenced
    // either: it outranks every run, whichever claim it meets.
    const { ok } = this.#apply(message.record, message.rid !== 0 && message.record.state !== 'cancelled')
    if (this.#gateWanted.delete(message.record.id) && this.#gateWanted.size === 0) this.#maybeOpenClaimGate()
    if (message.rid === 0) return
    const current = ok ? null : this.#entries.get(message.record.id)?.record ?? null
    this.#deliver(from, { kind: 'stored', rid: message.rid, id: message.record.id, ok, record: current })
  }

  /**
   * A create meeting another create of the same id (an idempotency key or an occurrence
   * submitted through two nodes at once), or an aborted try of it, is refused with the record
   * held here: the coordinator learns the task exists. An abort is refused where the record
   * came from another coordinator: it may not end someone else's accepted task.
   */
  #refuseStore (incoming: TaskRecord): TaskRecord | null {
    const existing = this.#entries.get(incoming.id)?.record
    if (existing === undefined) return null
    if (incoming.state === 'aborted') return existing.coordinator !== incoming.coordinator ? existing : null
    const create = !incoming.committed && incoming.epoch === 0 && incoming.attempt === 0 && incoming.history.length === 1 &&
      (incoming.state === 'queued' || incoming.state === 'pending')
    if (!create) return null
    if (existing.state === 'aborted') return existing.generation >= incoming.generation ? existing : null
    if (existing.coordinator === incoming.coordinator && existing.createdAtMs === incoming.createdAtMs) return null
    return existing
  }

  #onStored (from: string, message: Extract<PeerMessage, { kind: 'stored' }>): void {
    if (message.record !== null) this.#apply(message.record, false)
    const store = this.#stores.get(message.rid)
    if (store !== undefined && store.record.id === message.id) {
      if (message.ok) store.acks.add(from)
      else store.nacks.add(from)
      if (message.record !== null) store.refusal = store.refusal === null ? message.record : merge(store.refusal, message.record)
      this.#maybeFinishStore(message.rid)
      return
    }
    const write = this.#writes.get(message.rid)
    if (write !== undefined && write.record.id === message.id) {
      if (message.ok) write.acks.add(from)
      else write.nacks.add(from)
      this.#maybeFinishWrite(message.rid)
      return
    }
    const abort = this.#aborts.get(message.rid)
    if (abort !== undefined && abort.submit.record.id === message.id) {
      if (message.ok) abort.acks.add(from)
      else abort.nacks.add(from)
      this.#maybeFinishAbort(message.rid, message.ok ? null : message.record)
      return
    }
    const submit = this.#submits.get(message.rid)
    if (submit === undefined || submit.record.id !== message.id) return
    if (message.ok) submit.acks.add(from)
    else submit.nacks.add(from)
    const other = message.ok ? null : message.record
    if (other !== null && other.state === 'aborted' && submit.accepted) {
      // An aborted earlier try of this id that the first read missed: outrank it.
      const revived: TaskRecord = { ...(this.#entries.get(submit.record.id)?.record ?? submit.record), generation: other.generation + 1, committed: true }
      for (const peer of submit.replicas) this.#deliver(peer, { kind: 'store', rid: 0, record: revived })
    } else if (other !== null && other.state !== 'aborted' && other.coordinator !== submit.record.coordinator) {
      submit.conflict = other
    }
    if (submit.accepted) {
      if (submit.acks.size + submit.nacks.size >= submit.replicas.length) this.#submits.delete(message.rid)
      return
    }
    if (this.#maybeAcceptSubmit(message.rid, submit)) return
    if (submit.replicas.filter(peer => submit.nacks.has(peer)).length > submit.replicas.length - submit.needed) {
      this.#failSubmit(message.rid, submit, 'replicas refused the write')
    }
  }

  /**
   * Accepted means durable: a submit is accepted once a majority of its replica set holds it
   * AND as many copies exist as there are replicas (R, or fewer when fewer members are alive),
   * so that it survives the loss of R - 1 of them at once. A replica that crashed a moment ago
   * (not yet suspected) would otherwise leave the task on W nodes only; its copy then goes to
   * the next live member past the set (a hint) before the answer.
   */
  #maybeAcceptSubmit (rid: number, submit: PendingSubmit): boolean {
    const setAcks = submit.replicas.filter(peer => submit.acks.has(peer)).length
    if (setAcks < submit.needed) return false
    const wanted = this.#copiesWanted(submit)
    if (submit.acks.size < wanted) {
      if (!submit.copiesArmed) {
        submit.copiesArmed = true
        this.#addTimer({ atMs: this.#nowMs + HINT_AFTER_MS, kind: 'submitCopies', rid })
      }
      return false
    }
    // Accepted. Every replica should have it soon: keep watching the acks for a moment, and
    // resend to the replicas that stay silent.
    submit.accepted = true
    if (submit.acks.size + submit.nacks.size >= submit.replicas.length + submit.hinted.size) this.#submits.delete(rid)
    else this.#addTimer({ atMs: this.#nowMs + REPLICATE_AFTER_MS, kind: 'replicate', rid })
    this.#submitIds.delete(submit.record.id)
    this.#stats.submitsAccepted++
    this.#remember(submit.record.id, true)
    for (const peer of submit.replicas) this.#decide(peer, submit.record.id, true)
    for (const peer of submit.hinted) if (submit.acks.has(peer)) this.#decide(peer, submit.record.id, true)
    const record: TaskRecord = { ...submit.record, committed: true }
    this.#announce(record, record.state as TaskState, this.config.selfId)
    this.#settleSubmit(submit, { ok: true, created: true, record })
    return true
  }

  /** R copies, or as many as there are live members when fewer are alive. */
  #copiesWanted (submit: PendingSubmit): number {
    return Math.min(submit.replicas.length, this.#membership.aliveCount())
  }

  /** Still short of copies: ask the next live members past the replica set, then look again. */
  #askForCopies (rid: number): void {
    const submit = this.#submits.get(rid)
    if (submit === undefined || submit.accepted) return
    submit.copiesArmed = false
    if (this.#maybeAcceptSubmit(rid, submit)) return
    const wanted = this.#copiesWanted(submit)
    let short = wanted - submit.acks.size - [...submit.hinted].filter(peer => !submit.acks.has(peer) && !submit.nacks.has(peer)).length
    if (short > 0) {
      const extended = replicaSetAt(this.#ring, this.#position(submit.record.id), submit.replicas.length + submit.hinted.size + short + 2)
      for (const peer of extended) {
        if (short === 0) break
        if (submit.replicas.includes(peer) || submit.hinted.has(peer) || !this.#membership.isAlive(peer)) continue
        submit.hinted.add(peer)
        short--
        this.#deliver(peer, { kind: 'store', rid, record: submit.record })
      }
    }
    if (!submit.copiesArmed) {
      submit.copiesArmed = true
      this.#addTimer({ atMs: this.#nowMs + HINT_AFTER_MS, kind: 'submitCopies', rid })
    }
  }

  #onDecide (message: Extract<PeerMessage, { kind: 'decide' }>): void {
    for (const id of message.ids) {
      const entry = this.#entries.get(id)
      if (entry === undefined) continue
      if (message.commit) this.#commit(entry)
      else if (!entry.record.committed) this.#apply({ ...entry.record, state: 'aborted' }, true)
    }
  }

  #onAsk (from: string, message: Extract<PeerMessage, { kind: 'ask' }>): void {
    const commit: string[] = []
    const abort: string[] = []
    for (const id of message.ids) {
      const decision = this.#decided.get(id)
      if (decision !== undefined) (decision.commit ? commit : abort).push(id)
    }
    if (commit.length > 0) this.#deliver(from, { kind: 'decide', ids: commit, commit: true })
    if (abort.length > 0) this.#deliver(from, { kind: 'decide', ids: abort, commit: false })
  }

  #remember (id: string, commit: boolean): void {
    this.#decided.set(id, { commit, atMs: this.#nowMs })
    // Bounded: decisions older than a few fallback periods are no longer asked about.
    if (this.#decided.size % 1024 === 0) {
      for (const [key, decision] of this.#decided) if (this.#nowMs - decision.atMs > 10 * this.config.commitFallbackMs) this.#decided.delete(key)
    }
  }

  #onClaim (from: string, message: Extract<PeerMessage, { kind: 'claim' }>): void {
    const claim = message.record
    const entry = this.#entries.get(claim.id)
    // While this node's own outcome of the task is on its way to a quorum, it counts itself in
    // that write, so it must not promise a newer claim too.
    if (entry !== undefined && (isTerminal(entry.record.state) || claim.epoch <= entry.promised || this.#writing.has(claim.id))) {
      this.#deliver(from, { kind: 'claimed', rid: message.rid, id: claim.id, ok: false, record: entry.record })
      return
    }
    this.#apply(claim, false, claim.epoch)
    this.#deliver(from, { kind: 'claimed', rid: message.rid, id: claim.id, ok: true, record: null })
  }

  #onClaimed (from: string, message: Extract<PeerMessage, { kind: 'claimed' }>): void {
    if (message.record !== null) this.#apply(message.record, false)
    const id = this.#claimRids.get(message.rid)
    if (id === undefined) return
    const claim = this.#claims.get(id)
    if (claim === undefined || claim.rid !== message.rid) return
    if (message.ok) claim.acks.add(from)
    else claim.nacks.add(from)
    const outcome = claimOutcome(claim.quorum, claim.acks, claim.nacks)
    if (outcome === 'won') this.#startExecution(claim)
    else if (outcome === 'lost') this.#abandonClaim(claim, 'refused')
  }

  #onReadReply (from: string, message: Extract<PeerMessage, { kind: 'readReply' }>): void {
    const read = this.#reads.get(message.rid)
    for (const record of message.records) {
      this.#apply(record, false, 0, true)
      if (read !== undefined && record.id === read.id) read.merged = read.merged === null ? record : merge(read.merged, record)
    }
    if (read === undefined) return
    read.waiting.delete(from)
    this.#maybeFinishRead(message.rid)
  }

  #onListReply (from: string, message: Extract<PeerMessage, { kind: 'listReply' }>): void {
    const list = this.#lists.get(message.rid)
    if (list === undefined) return
    for (const record of message.records) {
      const known = list.merged.get(record.id)
      list.merged.set(record.id, known === undefined ? record : merge(known, record))
    }
    if (message.records.length >= list.query.limit) list.truncated = true
    list.waiting.delete(from)
    this.#maybeFinishList(message.rid)
  }

  // ---------------------------------------------------------------- records

  /**
   * Merge a record into the local store. With `fence`, a write whose epoch is below the
   * promised one is refused (a stale owner). `promise` raises the promised epoch (a claim).
   * `onlyIfHeld` learns updates only for tasks already held (read replies from other replicas).
   */
  #apply (incoming: TaskRecord, fence: boolean, promise = 0, onlyIfHeld = false): { ok: boolean, changed: boolean } {
    const existing = this.#entries.get(incoming.id)
    if (existing === undefined) {
      if (onlyIfHeld) return { ok: true, changed: false }
      // Past its retention: the other replicas forgot it too; do not bring it back.
      if (isTerminal(incoming.state) && this.#expiresAtMs(incoming) <= this.#nowMs) return { ok: true, changed: false }
      const entry: StoredEntry = { record: incoming, promised: Math.max(promise, incoming.epoch) }
      this.#entries.set(incoming.id, entry)
      this.#persisted(entry)
      return { ok: true, changed: true }
    }
    if (fence && incoming.epoch < existing.promised) {
      this.#stats.staleWritesRefused++
      return { ok: false, changed: false }
    }
    const promised = Math.max(existing.promised, promise, incoming.epoch)
    if (!mergeChanges(existing.record, incoming) && promised === existing.promised) return { ok: true, changed: false }
    const entry: StoredEntry = { record: merge(existing.record, incoming), promised }
    this.#entries.set(incoming.id, entry)
    this.#persisted(entry)
    return { ok: true, changed: true }
  }

  /**
   * Mark a record committed: the OR half of the lattice, with no need to compare versions.
   * Not persisted on its own (it rides along with the record's next write): a replica that
   * restarts before then has the record uncommitted, and the commit fallback releases it.
   */
  #commit (entry: StoredEntry): void {
    if (entry.record.committed) return
    const committed: StoredEntry = { record: { ...entry.record, committed: true }, promised: entry.promised }
    this.#entries.set(committed.record.id, committed)
    this.#consider(committed.record.id)
  }

  /** This node's own new version of a record (it is the owner): store it and send it to the replicas. */
  /**
   * Record an outcome. It counts only once a majority of the replica set stored it under the
   * fence: an owner that was paused past a takeover cannot reach that majority (it overlaps
   * the newer claim's quorum), so its late result is refused instead of spreading.
   */
  #write (record: TaskRecord): void {
    const entry = this.#entries.get(record.id)
    if (entry !== undefined && record.epoch < entry.promised) {
      this.#refuseResult(record, 'a newer claim is known here')
      return
    }
    const replicas = this.replicaSetOf(record.id)
    const targets = [...new Set([...replicas, ...record.replicas, ...this.#claimQuorumOf(record.id).standIns])].filter(peer => peer !== this.config.selfId)
    const rid = this.#nextRid++
    const selfCounts = replicas.includes(this.config.selfId) ? 1 : 0
    const write: PendingWrite = { record, targets, needed: writeQuorum(replicas.length), acks: new Set(), nacks: new Set() }
    if (selfCounts === 1) write.acks.add(this.config.selfId)
    this.#writes.set(rid, write)
    this.#writing.add(record.id)
    this.#addTimer({ atMs: this.#nowMs + this.config.claimTimeoutMs, kind: 'writeDeadline', rid })
    for (const peer of targets) this.#deliver(peer, { kind: 'store', rid, record })
    this.#maybeFinishWrite(rid)
  }

  #maybeFinishWrite (rid: number, timedOut = false): void {
    const write = this.#writes.get(rid)
    if (write === undefined) return
    // Targets that may still ack: not refused, and not removed from the ring for good.
    const possible = write.targets.filter(peer => !write.nacks.has(peer) && this.#ring.members.includes(peer)).length + (write.acks.has(this.config.selfId) ? 1 : 0)
    // An outcome of a newer epoch proves a newer claim reached its quorum: this write never can.
    const local = this.#entries.get(write.record.id)?.record
    const superseded = local !== undefined && local.epoch > write.record.epoch && local.state !== 'running'
    if (write.acks.size >= write.needed) {
      // Chosen: a quorum holds it, and this node refused every newer claim meanwhile, so it is
      // applied here even if a newer (unchosen) claim was heard of since.
      this.#writes.delete(rid)
      this.#writing.delete(write.record.id)
      this.#apply(write.record, false)
      this.#announce(write.record, write.record.state as TaskState, this.config.selfId)
    } else if (possible < write.needed || superseded) {
      this.#writes.delete(rid)
      this.#writing.delete(write.record.id)
      this.#refuseResult(write.record, 'replicas hold a newer claim')
      // The record stays running: claim it again if it is still this node's to run.
      this.#consider(write.record.id)
    } else if (timedOut) {
      // No quorum yet (replicas unreachable). The outcome must not count here: applied alone,
      // it could later win in the merge over the run of a newer claim (invariant 4). Send it
      // again to the replicas that did not answer, now and in the current replica set, until a
      // quorum stores it or refuses it; meanwhile this node refuses claims of the task (its own
      // ack is part of this write) and the record stays running.
      for (const peer of this.replicaSetOf(write.record.id)) if (peer !== this.config.selfId && !write.targets.includes(peer)) write.targets.push(peer)
      for (const peer of write.targets) if (!write.acks.has(peer) && !write.nacks.has(peer)) this.#deliver(peer, { kind: 'store', rid, record: write.record })
      this.#addTimer({ atMs: this.#nowMs + this.config.claimTimeoutMs, kind: 'writeDeadline', rid })
    }
  }

  #refuseResult (record: TaskRecord, why: string): void {
    this.#stats.staleResultsRefused++
    this.#log('warn', 'result.stale_refused', { task: record.id, epoch: record.epoch, why })
  }

  #persisted (entry: StoredEntry): void {
    this.#emit({ kind: 'Persist', entry })
    this.#index(entry.record)
    const { record } = entry
    const run = this.#running.get(record.id)
    if (run !== undefined && (record.state === 'cancelled' || record.epoch > run.epoch)) {
      // Cancelled (or taken over) while it runs here: stop it now; its late result is refused.
      this.#running.delete(record.id)
      this.#busy(run.type, -1)
      this.#emit({ kind: 'Abort', taskId: record.id, epoch: run.epoch, reason: record.state === 'cancelled' ? (record.error ?? 'cancelled') : 'taken over by a newer claim' })
    }
    this.#consider(record.id)
  }

  #index (record: TaskRecord): void {
    if (isTerminal(record.state)) {
      if (this.#active.delete(record.id) || !this.#expiring.has(record.id)) {
        this.#expiring.add(record.id)
        this.#expiries.push({ atMs: this.#expiresAtMs(record), id: record.id })
      }
    } else {
      this.#active.add(record.id)
    }
  }

  /** Ids with an entry in the expiry heap. */
  readonly #expiring = new Set<string>()

  // ---------------------------------------------------------------- ownership and claims

  #position (id: string): number {
    let position = this.#positions.get(id)
    if (position === undefined) {
      position = keyPosition(id)
      this.#positions.set(id, position)
    }
    return position
  }

  /** The first member of the replica set that is alive and can run the type. */
  #actingOwner (record: TaskRecord, replicas: string[]): string | null {
    for (const peer of replicas) {
      if (peer === this.config.selfId) {
        if (!this.#leaving && this.config.types.includes(record.type)) return peer
        continue
      }
      const member = this.#membership.members.get(peer)
      if (member?.state === 'alive' && member.heartbeat?.leaving !== true && member.heartbeat?.types.includes(record.type) === true) return peer
    }
    return null
  }

  #reachable (peer: string): boolean {
    if (peer === this.config.selfId) return true
    const state = this.#membership.state(peer)
    return state === 'alive' || state === 'suspect'
  }

  /** Queue the task for a claim if this node should claim it now; else arm the timer that will. */
  #consider (id: string): void {
    if (this.#leaving || !this.joined) return
    if (this.#claims.has(id) || this.#running.has(id) || this.#inReady.has(id) || this.#writing.has(id)) return
    const record = this.#entries.get(id)?.record
    if (record === undefined || isTerminal(record.state)) return
    if (!record.committed) {
      this.#armDue(id, record.createdAtMs + this.config.commitFallbackMs)
      return
    }
    if (record.schedule !== null) {
      this.#considerSchedule(record)
      return
    }
    if (record.state === 'running') {
      const owner = record.owner
      if (owner === this.config.selfId) {
        // Ours, but not running here: we restarted, or our claim was abandoned. Nobody else
        // will take it while we are alive, so we claim it again ourselves.
        if (this.config.types.includes(record.type)) this.#enqueue(record)
        return
      }
      const ownerState = owner === null ? undefined : this.#membership.state(owner)
      if (ownerState !== 'dead' && ownerState !== 'left' && ownerState !== undefined) return
    } else if (record.runAtMs > this.#nowMs) {
      this.#armDue(id, record.runAtMs)
      return
    }
    if (this.#actingOwner(record, this.replicaSetOf(id)) !== this.config.selfId) return
    if (record.dependsOn.length > 0 && record.attempt === record.retryBase && !this.#parentsOk.has(id)) {
      if (this.#claimGateOpen) this.#checkParents(record)
      return
    }
    this.#enqueue(record)
  }

  #enqueue (record: TaskRecord): void {
    this.#inReady.add(record.id)
    this.#ready.push({ id: record.id, type: record.type, rank: record.priority - record.runAtMs / AGING_MS, sequence: this.#readySequence++ })
  }

  #armDue (id: string, atMs: number): void {
    const key = `${id}@${atMs}`
    if (this.#dueTimers.has(key)) return
    this.#dueTimers.add(key)
    this.#addTimer({ atMs, kind: 'due', id })
  }

  #reconsiderAll (): void {
    for (const id of this.#active) this.#consider(id)
  }

  /** After a ring change, push each active record to the members that newly joined its replica set. */
  #handOff (previous: Ring): void {
    for (const id of this.#active) {
      const position = this.#position(id)
      const before = new Set(replicaSetAt(previous, position, this.config.replicas))
      const record = this.#entries.get(id)!.record
      for (const peer of replicaSetAt(this.#ring, position, this.config.replicas)) {
        if (!before.has(peer) && peer !== this.config.selfId) this.#deliver(peer, { kind: 'store', rid: 0, record })
      }
    }
  }

  #pump (): void {
    if (!this.#claimGateOpen) return
    const limits = this.config.typeLimits
    while (!this.#leaving && this.#running.size + this.#claims.size < this.config.capacity && this.#ready.size > 0) {
      const item = this.#ready.pop()!
      const limit = limits?.[item.type]
      if (limit !== undefined && (this.#busyByType.get(item.type) ?? 0) >= limit) {
        // At its type's limit here: set aside until a run of that type ends.
        const blocked = this.#blocked.get(item.type) ?? []
        blocked.push(item)
        this.#blocked.set(item.type, blocked)
        continue
      }
      this.#inReady.delete(item.id)
      const record = this.#entries.get(item.id)?.record
      if (record === undefined || isTerminal(record.state)) continue
      this.#startClaim(record)
    }
  }

  /** A run or claim of this type started (+1) or ended (-1); an end lets a set-aside item back in. */
  #busy (type: string, delta: 1 | -1): void {
    const count = Math.max(0, (this.#busyByType.get(type) ?? 0) + delta)
    if (count === 0) this.#busyByType.delete(type)
    else this.#busyByType.set(type, count)
    if (delta === -1) {
      const blocked = this.#blocked.get(type)
      const item = blocked?.shift()
      if (item !== undefined) this.#ready.push(item)
      if (blocked !== undefined && blocked.length === 0) this.#blocked.delete(type)
    }
  }

  #startClaim (current: TaskRecord): void {
    const entry = this.#entries.get(current.id)!
    const quorum = this.#claimQuorumOf(current.id)
    const replicas = quorum.targets
    if (quorum.standIns.length > 0) this.#log('debug', 'claim.stand_ins', { task: current.id, standIns: quorum.standIns, required: quorum.required })
    const reuseAttempt = this.#abandonedClaims.delete(current.id) && current.state === 'running' && current.owner === this.config.selfId
    const attempt = reuseAttempt ? current.attempt : current.attempt + 1
    const epoch = Math.max(current.epoch, entry.promised) + 1
    const record: TaskRecord = {
      ...current,
      state: 'running', epoch, attempt, owner: this.config.selfId, replicas, committed: true,
      startedAtMs: this.#nowMs, finishedAtMs: null,
      history: [...this.#historyBeforeRetry(current, reuseAttempt), { state: 'running', atMs: this.#nowMs, node: this.config.selfId, attempt }]
    }
    const rid = this.#nextRid++
    const claim: PendingClaim = { rid, record, replicas, needed: quorum.needed, quorum, acks: new Set(), nacks: new Set() }
    this.#claims.set(record.id, claim)
    this.#busy(record.type, 1)
    this.#claimRids.set(rid, record.id)
    this.#addTimer({ atMs: this.#nowMs + this.config.claimTimeoutMs, kind: 'claimDeadline', rid })
    for (const peer of replicas) this.#deliver(peer, { kind: 'claim', rid, record })
  }

  /** Whose promises a claim needs: the replica set, with stand-ins for dead replicas when too few are alive (claim.ts). */
  #claimQuorumOf (id: string): ClaimQuorum {
    const isDead = (peer: string): boolean => this.#membership.state(peer) === 'dead'
    const set = this.replicaSetOf(id)
    if (this.config.standIns !== true) return claimQuorum(set, set, () => false)
    if (!set.some(isDead)) return claimQuorum(set, set, isDead)
    // Stand-ins only on the side of a partition that holds a majority of the ring: the other
    // side may still hold a majority of this set, and must not be matched by stand-ins.
    const ring = this.#ring.members
    if (2 * ring.filter(peer => !isDead(peer)).length <= ring.length) return claimQuorum(set, set, () => false)
    return claimQuorum(set, replicaSetAt(this.#ring, this.#position(id), this.config.replicas, peer => !isDead(peer)), isDead)
  }

  /**
   * A replica was declared dead while claims wait on it (killed together, two replicas are
   * declared dead up to a heartbeat apart): send those claims to the stand-ins they now need
   * rather than let them time out and start over.
   */
  #retargetClaims (): void {
    for (const claim of this.#claims.values()) {
      const quorum = this.#claimQuorumOf(claim.record.id)
      const added = quorum.targets.filter(peer => !claim.replicas.includes(peer))
      if (added.length === 0) continue
      claim.replicas = [...claim.replicas, ...added]
      claim.quorum = { ...quorum, targets: claim.replicas }
      for (const peer of added) this.#deliver(peer, { kind: 'claim', rid: claim.rid, record: claim.record })
    }
  }

  /** A claim that never reached its quorum is retried as the same attempt: replace its entry, do not add one. */
  #historyBeforeRetry (record: TaskRecord, reuseAttempt: boolean): TaskRecord['history'] {
    const last = record.history[record.history.length - 1]
    if (reuseAttempt && last !== undefined && last.state === 'running' && last.node === this.config.selfId && last.attempt === record.attempt) return record.history.slice(0, -1)
    return record.history
  }

  #startExecution (claim: PendingClaim): void {
    const { record } = claim
    this.#claims.delete(record.id)
    this.#claimRids.delete(claim.rid)
    if (isTerminal(this.#entries.get(record.id)?.record.state ?? 'running')) {
      // A replica's answer showed the task already finished: nothing to run.
      this.#log('info', 'claim.finished_meanwhile', { task: record.id, epoch: record.epoch })
      return
    }
    this.#stats.claimsStarted++
    this.#stats.executionsStarted++
    this.#running.set(record.id, { epoch: record.epoch, startedAtMs: this.#nowMs, type: record.type })
    this.#announce(record, 'running', this.config.selfId)
    this.#emit({
      kind: 'Execute',
      order: { taskId: record.id, type: record.type, payload: record.payload, attempt: record.attempt, fencingToken: record.epoch, timeoutMs: record.timeoutMs }
    })
  }

  #abandonClaim (claim: PendingClaim, reason: string): void {
    this.#claims.delete(claim.record.id)
    this.#busy(claim.record.type, -1)
    this.#claimRids.delete(claim.rid)
    this.#stats.claimsAbandoned++
    this.#abandonedClaims.add(claim.record.id)
    this.#log('info', 'claim.abandoned', { task: claim.record.id, epoch: claim.record.epoch, reason, acks: claim.acks.size, needed: claim.needed })
    this.#armDue(claim.record.id, this.#nowMs + this.config.claimRetryMs)
  }

  // ---------------------------------------------------------------- submits, reads, lists

  #decide (peer: string, id: string, commit: boolean): void {
    if (peer === this.config.selfId) {
      this.#onDecide({ kind: 'decide', ids: [id], commit })
      return
    }
    let pending = this.#decisions.get(peer)
    if (pending === undefined) {
      pending = { commit: [], abort: [] }
      this.#decisions.set(peer, pending)
    }
    ;(commit ? pending.commit : pending.abort).push(id)
  }

  #flushDecisions (): void {
    if (this.#decisions.size === 0) return
    for (const [peer, { commit, abort }] of this.#decisions) {
      if (abort.length > 0) this.#emit({ kind: 'Send', to: peer, message: { kind: 'decide', ids: abort, commit: false } })
      if (commit.length > 0) this.#emit({ kind: 'Send', to: peer, message: { kind: 'decide', ids: commit, commit: true } })
    }
    this.#decisions.clear()
  }

  /**
   * The submit missed its quorum in time. Before answering 503 the coordinator aborts it with
   * a fenced write of the record as `aborted`: once a majority holds that, no claim can ever
   * reach a quorum, so the task never runs. If replicas refuse the abort because a claim got
   * there first (the coordinator was slow or paused while they went ahead), the task was
   * accepted after all and the answer is 201 with that record: the client is never told 503
   * about a task that runs.
   */
  #failSubmit (rid: number, submit: PendingSubmit, why: string): void {
    this.#submits.delete(rid)
    if (submit.conflict !== null) {
      // Another node created this very id (same idempotency key or occurrence) at the same
      // time: it is the same task. Neither create may have reached a quorum (each replica
      // kept the first it saw), so write the merged version, committed, to a quorum: then it
      // is durable and runs once, whichever versions the replicas hold (they merge to one).
      const id = submit.record.id
      const adopted: TaskRecord = { ...merge(submit.record, submit.conflict), committed: true }
      this.#storeQuorum(adopted, (ok, refusal) => {
        this.#submitIds.delete(id)
        // Refused because the task moved on (claimed, even finished): it exists and is committed.
        const moved = refusal !== null && refusal.committed && refusal.state !== 'aborted'
        this.#settleSubmit(submit, ok || moved
          ? { ok: true, created: false, record: this.#entries.get(id)?.record ?? refusal ?? adopted }
          : { ok: false, error: { code: 'no_quorum', message: `could not store the task on a majority of its replicas; it may exist (submit again with the same key)` } })
      })
      return
    }
    if (submit.record.idempotencyKey !== null || submit.record.scheduleId !== null) {
      // An id that can be submitted again (a key, an occurrence) is not aborted: an abort
      // tombstone could outrank another node's accepted create of the same id. The copies that
      // landed stay uncommitted until a retry with the same key (or the schedule's next try)
      // adopts them, or the replicas' commit fallback does.
      // So the outcome is unknown, not "nothing accepted" (503): the same key answers it later.
      this.#submitIds.delete(submit.record.id)
      this.#settleSubmit(submit, { ok: false, error: { code: 'internal', message: `outcome unknown: the task reached ${submit.acks.size} of the ${submit.needed} replicas needed (${why}); it may still run: submit again with the same key to learn` } })
      return
    }
    const abortRid = this.#nextRid++
    this.#aborts.set(abortRid, { submit, acks: new Set(), nacks: new Set(), why, answered: false, startedAtMs: this.#nowMs })
    this.#addTimer({ atMs: this.#nowMs + this.config.submitTimeoutMs, kind: 'abortDeadline', rid: abortRid })
    const aborted: TaskRecord = { ...submit.record, state: 'aborted' }
    for (const peer of submit.replicas) this.#deliver(peer, { kind: 'store', rid: abortRid, record: aborted })
  }

  #maybeFinishAbort (rid: number, current: TaskRecord | null, timedOut = false): void {
    const abort = this.#aborts.get(rid)
    if (abort === undefined) return
    const { submit } = abort
    const claimed = current !== null && current.state !== 'aborted' && (current.epoch > 0 || current.committed)
    if (claimed) {
      // A replica committed it by fallback and claimed it: the abort stops here. That claim may
      // still lose to an abort a minority holds, so this is no proof the task runs: not 201.
      this.#aborts.delete(rid)
      this.#submitIds.delete(submit.record.id)
      this.#log('info', 'submit.claimed_meanwhile', { task: submit.record.id, state: current.state, epoch: current.epoch })
      this.#answerUnknown(abort)
      return
    }
    if (abort.acks.size >= submit.needed) {
      // A quorum holds the abort: no claim can reach a quorum now, so the task never runs.
      this.#aborts.delete(rid)
      this.#submitIds.delete(submit.record.id)
      // Chosen: replicas that ask may now hear abort.
      this.#remember(submit.record.id, false)
      if (abort.answered) return
      this.#stats.submitsRejected++
      this.#log('warn', 'submit.no_quorum', { task: submit.record.id, acks: submit.acks.size, needed: submit.needed, why: abort.why, abortAcks: abort.acks.size })
      this.#settleSubmit(submit, {
        ok: false,
        error: { code: 'no_quorum', message: `could not store the task on ${submit.needed} of its ${submit.replicas.length} replicas (${abort.why}); nothing was accepted` }
      })
      return
    }
    if (!timedOut) return
    if (this.#nowMs - abort.startedAtMs + ABORT_RETRY_MS >= this.config.commitFallbackMs - this.config.submitTimeoutMs) {
      // Neither the write nor its abort reached a quorum before the replicas may commit the task
      // by fallback. Stop (an abort arriving after that would race their claims), and do not
      // guess: 503 promises that nothing was accepted.
      this.#aborts.delete(rid)
      this.#submitIds.delete(submit.record.id)
      this.#answerUnknown(abort)
      return
    }
    const aborted: TaskRecord = { ...submit.record, state: 'aborted' }
    for (const peer of submit.replicas) if (!abort.acks.has(peer)) this.#deliver(peer, { kind: 'store', rid, record: aborted })
    this.#addTimer({ atMs: this.#nowMs + ABORT_RETRY_MS, kind: 'abortDeadline', rid })
  }

  /** The submit's outcome is not known here: the task may run or not. Read it by id later. */
  #answerUnknown (abort: PendingAbort): void {
    if (abort.answered) return
    abort.answered = true
    const { submit } = abort
    this.#log('warn', 'submit.outcome_unknown', { task: submit.record.id, acks: submit.acks.size, abortAcks: abort.acks.size, needed: submit.needed, why: abort.why })
    this.#settleSubmit(submit, {
      ok: false,
      error: { code: 'internal', message: `outcome unknown: the task reached ${submit.acks.size} of the ${submit.needed} replicas needed (${abort.why}) and could not be aborted on a quorum either; it may still run: read it by id later` }
    })
  }

  #resolveSubmit (requestId: number, index: number, outcome: SubmitOutcome): void {
    const request = this.#submitRequests.get(requestId)
    if (request === undefined || request.outcomes[index] !== undefined) return
    request.outcomes[index] = outcome
    request.remaining--
    if (request.remaining === 0) this.#finishSubmitRequest(requestId)
  }

  #finishSubmitRequest (requestId: number): void {
    const request = this.#submitRequests.get(requestId)!
    this.#submitRequests.delete(requestId)
    const internal = this.#internalRequests.get(requestId)
    if (internal !== undefined) {
      this.#internalRequests.delete(requestId)
      internal(request.outcomes as SubmitOutcome[])
      return
    }
    this.#reply(requestId, { kind: 'submit', outcomes: request.outcomes as SubmitOutcome[] })
  }

  /** Submit from inside the core (a schedule's occurrence); the outcome goes to `then`. */
  #submitInternal (id: string, spec: TaskSpec, scheduleId: string, then: (outcome: SubmitOutcome) => void): void {
    const requestId = this.#nextInternalRequest--
    this.#submitRequests.set(requestId, { outcomes: new Array(1), remaining: 1 })
    this.#internalRequests.set(requestId, outcomes => then(outcomes[0]!))
    this.#startSubmit(requestId, 0, id, spec, scheduleId)
  }

  #maybeFinishRead (rid: number, force = false): void {
    const read = this.#reads.get(rid)
    if (read === undefined || (read.waiting.size > 0 && !force)) return
    this.#reads.delete(rid)
    if (read.merged !== null) this.#apply(read.merged, false, 0, true)
    read.then(read.merged)
  }

  #maybeFinishList (rid: number, force = false): void {
    const list = this.#lists.get(rid)
    if (list === undefined || (list.waiting.size > 0 && !force)) return
    this.#lists.delete(rid)
    const sorted = [...list.merged.values()].sort(compareCreated)
    const tasks = sorted.slice(0, list.query.limit)
    const more = sorted.length > list.query.limit || list.truncated
    const last = tasks[tasks.length - 1]
    this.#reply(list.requestId, { kind: 'list', page: { tasks, next: more && last !== undefined ? cursorOf(last) : null } })
  }

  #localList (query: ListQuery): TaskRecord[] {
    const after = query.cursor
    const matches: TaskRecord[] = []
    for (const { record } of this.#entries.values()) {
      if (record.state === 'aborted') continue
      if (query.state !== null && record.state !== query.state) continue
      if (query.type !== null && record.type !== query.type) continue
      if (query.scheduleId !== null && record.scheduleId !== query.scheduleId) continue
      if (after !== null && cursorOf(record) <= after) continue
      matches.push(record)
    }
    return matches.sort(compareCreated).slice(0, query.limit)
  }

  // ---------------------------------------------------------------- commands: cancel, retry, pause, resume

  #onCommandRequested (requestId: number, id: string, command: TaskCommand): void {
    const answer = (outcome: CommandOutcome): void => this.#reply(requestId, { kind: 'command', outcome })
    const refuse = (code: Rejection['code'], message: string): void => answer({ ok: false, error: { code, message } })
    if (this.#leaving) return refuse('shutting_down', 'this node is draining; ask another node')
    this.#readRecord(id, current => {
      if (current === null || current.state === 'aborted') return refuse('not_found', `no task ${id}`)
      const atMs = this.#nowMs
      const node = this.config.selfId
      let next: TaskRecord
      switch (command) {
        case 'cancel':
          if (current.state === 'cancelled') return answer({ ok: true, record: current })
          if (isTerminal(current.state)) return refuse('conflict', `task ${id} already ended ${current.state}; only unfinished tasks can be cancelled`)
          next = this.#cancelled(current, current.schedule !== null ? 'schedule deleted' : 'cancelled by request')
          break
        case 'retry':
          if (current.schedule !== null) return refuse('conflict', `${id} is a schedule; retry runs a dead or cancelled task again`)
          if (current.state !== 'dead' && current.state !== 'cancelled') return refuse('conflict', `task ${id} is ${current.state}; only dead or cancelled tasks can be retried`)
          next = {
            ...current,
            state: 'queued', generation: current.generation + 1, retryBase: current.attempt, runAtMs: atMs,
            finishedAtMs: null, error: null, committed: true,
            history: [...current.history, { state: 'queued', atMs, node, attempt: current.attempt }]
          }
          break
        case 'pause':
        case 'resume': {
          const schedule = current.schedule
          if (schedule === null) return refuse('conflict', `${id} is not a schedule; only schedules can be paused and resumed`)
          if (isTerminal(current.state)) return refuse('conflict', `schedule ${id} was deleted`)
          const paused = command === 'pause'
          if (schedule.paused === paused) return answer({ ok: true, record: current })
          // Resuming does not fire the ticks missed while paused: the watermark moves to now.
          const firedUpToMs = paused ? schedule.firedUpToMs : Math.max(schedule.firedUpToMs, atMs)
          next = { ...current, committed: true, schedule: { ...schedule, paused, firedUpToMs, revision: schedule.revision + 1 } }
          break
        }
        default: return unreachable(command)
      }
      this.#storeQuorum(next, ok => {
        if (ok) answer({ ok: true, record: this.#entries.get(id)?.record ?? next })
        else refuse('no_quorum', `could not write the ${command} to a majority of the replicas of ${id}; it may still take effect`)
      })
    })
  }

  #cancelled (record: TaskRecord, reason: string): TaskRecord {
    const atMs = this.#nowMs
    return {
      ...record,
      state: 'cancelled', error: reason, finishedAtMs: atMs, committed: true,
      history: [...record.history, { state: 'cancelled', atMs, node: this.config.selfId, attempt: record.attempt, error: reason }]
    }
  }

  /**
   * Write a record to its replica set (and its last owner, so a running cancelled task stops
   * there) and call `then(true)` once a write quorum stored it, `then(false)` if none did in time.
   */
  #storeQuorum (record: TaskRecord, then: (ok: boolean, refusal: TaskRecord | null) => void): void {
    const replicas = this.replicaSetOf(record.id)
    const targets = new Set([...replicas, ...record.replicas])
    if (record.owner !== null) targets.add(record.owner)
    const rid = this.#nextRid++
    this.#stores.set(rid, { record, replicas, needed: writeQuorum(replicas.length), acks: new Set(), nacks: new Set(), then, refusal: null })
    this.#addTimer({ atMs: this.#nowMs + this.config.submitTimeoutMs, kind: 'storeDeadline', rid })
    for (const peer of targets) this.#deliver(peer, { kind: 'store', rid, record })
  }

  #maybeFinishStore (rid: number, timedOut = false): void {
    const store = this.#stores.get(rid)
    if (store === undefined) return
    const acks = [...store.acks].filter(peer => store.replicas.includes(peer)).length
    const refused = [...store.nacks].filter(peer => store.replicas.includes(peer)).length
    if (acks >= store.needed) {
      this.#stores.delete(rid)
      this.#apply(store.record, false)
      store.then(true, null)
    } else if (timedOut || refused > store.replicas.length - store.needed) {
      this.#stores.delete(rid)
      store.then(false, store.refusal)
    }
  }

  // ---------------------------------------------------------------- schedules

  /** The member that fires a schedule: the first live one of its replica set. */
  #scheduleOwner (id: string): string | null {
    for (const peer of this.replicaSetOf(id)) {
      if (peer === this.config.selfId) {
        if (!this.#leaving) return peer
        continue
      }
      const member = this.#membership.members.get(peer)
      if (member?.state === 'alive' && member.heartbeat?.leaving !== true) return peer
    }
    return null
  }

  #considerSchedule (record: TaskRecord): void {
    const schedule = record.schedule!
    if (schedule.paused || this.#firing.has(record.id) || !this.#claimGateOpen) return
    if (this.#scheduleOwner(record.id) !== this.config.selfId) return
    const next = nextTick(schedule, record.runAtMs, schedule.firedUpToMs)
    if (next === null) return
    if (next > this.#nowMs) {
      this.#armDue(record.id, next)
      return
    }
    this.#fire(record.id)
  }

  /**
   * Fire a schedule's next due tick: read the schedule from its replicas (the newest watermark
   * wins), create the occurrence `<id>@<tick>` through the ordinary submit path (an existing one
   * counts as created: a previous owner may have fired it just before it died), then move the
   * replicated watermark. Each step is idempotent, so a new owner simply repeats the last one.
   */
  #fire (id: string): void {
    this.#firing.add(id)
    const retry = (): void => {
      this.#firing.delete(id)
      this.#armDue(id, this.#nowMs + this.config.claimRetryMs)
    }
    this.#readRecord(id, merged => {
      const record = merged ?? this.#entries.get(id)?.record ?? null
      const schedule = record?.schedule ?? null
      if (record === null || schedule === null || isTerminal(record.state) || schedule.paused ||
          this.#scheduleOwner(id) !== this.config.selfId) {
        this.#firing.delete(id)
        return
      }
      const due = dueTicks(schedule, record.runAtMs, schedule.firedUpToMs, this.#nowMs)
      if (due === null) {
        this.#firing.delete(id)
        this.#consider(id)
        return
      }
      const latestOnly = schedule.catchUp === 'latest'
      const tick = latestOnly ? due.latest : due.first
      const passedOver = latestOnly ? due.count - 1 : 0
      const advance = (occurrence: string | null): void => {
        const current = this.#entries.get(id)?.record ?? record
        const state = current.schedule ?? schedule
        const next: TaskRecord = {
          ...current,
          committed: true,
          schedule: {
            ...state,
            firedUpToMs: Math.max(state.firedUpToMs, tick),
            lastOccurrence: occurrence ?? state.lastOccurrence,
            fired: state.fired + (occurrence !== null ? 1 : 0),
            skipped: state.skipped + passedOver + (occurrence === null ? 1 : 0)
          }
        }
        this.#storeQuorum(next, ok => {
          if (!ok) return retry()
          this.#firing.delete(id)
          this.#consider(id)
        })
      }
      if (latestOnly && due.capped) return advance(null)
      const create = (): void => {
        const occurrence = occurrenceId(id, tick)
        const spec: TaskSpec = {
          type: record.type, payload: record.payload, priority: record.priority, runAtMs: tick, delayMs: null,
          maxAttempts: record.maxAttempts, backoff: record.backoff, timeoutMs: record.timeoutMs,
          idempotencyKey: null, dependsOn: [], schedule: null
        }
        this.#submitInternal(occurrence, spec, id, outcome => {
          if (!outcome.ok) {
            this.#log('warn', 'schedule.fire_failed', { schedule: id, tick, error: outcome.error.message })
            return retry()
          }
          advance(occurrence)
        })
      }
      if (schedule.overlap === 'forbid' && schedule.lastOccurrence !== null) {
        // Cluster-wide: ask the previous occurrence's replicas whether it has finished.
        this.#readRecord(schedule.lastOccurrence, previous => {
          if (previous !== null && previous.state !== 'aborted' && !isTerminal(previous.state)) advance(null)
          else create()
        })
        return
      }
      create()
    })
  }

  // ---------------------------------------------------------------- dependencies

  /**
   * As the owner of a child that waits for its parents: read them. All succeeded: run it. One
   * ended otherwise (dead, cancelled, or gone): cancel the child, saying which. Else look again
   * a little later.
   */
  #checkParents (child: TaskRecord): void {
    if (this.#checkingParents.has(child.id)) return
    this.#checkingParents.add(child.id)
    const parents = [...new Set(child.dependsOn)]
    this.#readAll(parents, found => {
      this.#checkingParents.delete(child.id)
      const current = this.#entries.get(child.id)?.record
      if (current === undefined || isTerminal(current.state)) return
      for (const id of parents) {
        const state = found.get(id)?.state ?? null
        if (state === null || state === 'aborted' || state === 'dead' || state === 'cancelled') {
          const reason = `dependency ${id} ${state === null || state === 'aborted' ? 'does not exist' : `ended ${state}`}`
          this.#storeQuorum(this.#cancelled(current, reason), ok => { if (!ok) this.#armDue(child.id, this.#nowMs + this.config.claimRetryMs) })
          return
        }
      }
      if (parents.every(id => found.get(id)?.state === 'succeeded')) {
        this.#parentsOk.add(child.id)
        this.#consider(child.id)
      } else {
        this.#armDue(child.id, this.#nowMs + DEPENDENCY_POLL_MS)
      }
    })
  }

  // ---------------------------------------------------------------- progress and retention

  #onProgressReported (id: string, epoch: number, progress: number): void {
    const run = this.#running.get(id)
    const record = this.#entries.get(id)?.record
    if (run === undefined || run.epoch !== epoch || record === undefined || record.state !== 'running' ||
        record.epoch !== epoch || !Number.isFinite(progress) || progress < 0 || record.progress === progress) return
    const next: TaskRecord = { ...record, progress }
    // Best effort, no quorum: progress is advice, and the outcome write carries it anyway.
    const { ok } = this.#apply(next, true)
    if (!ok) return
    for (const peer of this.replicaSetOf(id)) if (peer !== this.config.selfId) this.#deliver(peer, { kind: 'store', rid: 0, record: next })
  }

  #retentionMs (): number {
    return this.config.retentionMs ?? RETENTION_MS_DEFAULT
  }

  #expiresAtMs (record: TaskRecord): number {
    return (record.finishedAtMs ?? record.createdAtMs) + this.#retentionMs()
  }

  /** Remove terminal records whose retention is over; every replica does the same from the same fields. */
  #forgetExpired (): void {
    let forgotten = 0
    while (forgotten < FORGET_PER_TICK && this.#expiries.size > 0 && this.#expiries.peek()!.atMs <= this.#nowMs) {
      const { id } = this.#expiries.pop()!
      this.#expiring.delete(id)
      const entry = this.#entries.get(id)
      if (entry === undefined || !isTerminal(entry.record.state) || this.#expiresAtMs(entry.record) > this.#nowMs) continue
      if (this.#writing.has(id) || this.#firing.has(id)) continue
      this.#entries.delete(id)
      this.#active.delete(id)
      this.#positions.delete(id)
      this.#sets.delete(id)
      this.#parentsOk.delete(id)
      this.#emit({ kind: 'Forget', id })
      forgotten++
    }
  }

  // ---------------------------------------------------------------- anti-entropy

  /** Send every live peer a digest of the records both of us should hold. */
  #startSyncRound (): void {
    this.#syncSoonAtMs = null
    this.#nextSyncAtMs = this.#nowMs + this.config.syncIntervalMs
    const peers = this.#membership.aliveMembers().filter(peer => peer !== this.config.selfId)
    if (peers.length === 0) return
    this.#stats.syncRounds++
    this.#syncRound++
    const digests = new Map<string, Uint32Array>(peers.map(peer => [peer, new Uint32Array(SYNC_BUCKETS)]))
    for (const [id, { record }] of this.#entries) {
      const bucket = this.#bucket(id)
      const hash = versionHash(id, record)
      const replicas = this.replicaSetOf(id)
      let missing = 0
      for (const peer of replicas) {
        const digest = digests.get(peer)
        if (digest !== undefined) digest[bucket]! ^= hash
        else if (peer !== this.config.selfId) missing++
      }
      if (missing > 0 && replicas.includes(this.config.selfId)) this.#hint(id, record, hash, replicas, missing)
    }
    for (const [peer, digest] of digests) {
      this.#gatePeers?.add(peer)
      this.#deliver(peer, { kind: 'sync', rid: this.#syncRound, digests: Array.from(digest) })
    }
  }

  /**
   * Hinted handoff: while members of a record's replica set are not alive, copy it to as many
   * live members just past the set on the ring (the ones that take their place if they are
   * removed). Why: a task accepted on W replicas while the third was down must survive the loss
   * of those W before the ring changes; with the hints it survives once one sync round ran.
   */
  #hint (id: string, record: TaskRecord, hash: number, replicas: string[], missing: number): void {
    const extended = replicaSetAt(this.#ring, this.#position(id), replicas.length + missing + 1)
    for (const peer of extended) {
      if (missing === 0) return
      if (replicas.includes(peer) || !this.#membership.isAlive(peer)) continue
      missing--
      const key = `${id}|${peer}|${hash}`
      if (this.#hinted.has(key)) continue
      this.#hinted.add(key)
      this.#deliver(peer, { kind: 'store', rid: 0, record })
    }
  }

  #onSync (from: string, message: Extract<PeerMessage, { kind: 'sync' }>): void {
    const mine = new Uint32Array(SYNC_BUCKETS)
    const held: Array<[string, TaskRecord, number]> = []
    for (const [id, { record }] of this.#entries) {
      if (!this.replicaSetOf(id).includes(from)) continue
      const bucket = this.#bucket(id)
      mine[bucket]! ^= versionHash(id, record)
      held.push([id, record, bucket])
    }
    const differing = new Set<number>()
    for (let bucket = 0; bucket < SYNC_BUCKETS; bucket++) if ((message.digests[bucket] ?? 0) !== mine[bucket]) differing.add(bucket)
    const keys: Array<[string, number[]]> = []
    for (const [id, record, bucket] of held) {
      if (keys.length >= SYNC_KEYS_MAX) break
      if (differing.has(bucket)) keys.push([id, versionOf(record)])
    }
    this.#deliver(from, { kind: 'syncKeys', rid: message.rid, buckets: [...differing], keys })
  }

  #onSyncKeys (from: string, message: Extract<PeerMessage, { kind: 'syncKeys' }>): void {
    const gating = this.#gatePeers?.delete(from) === true
    if (message.buckets.length === 0) {
      if (gating) this.#maybeOpenClaimGate()
      return
    }
    const buckets = new Set(message.buckets)
    const theirs = new Map(message.keys)
    for (const [id, { record }] of this.#entries) {
      if (!buckets.has(this.#bucket(id)) || !this.replicaSetOf(id).includes(from)) continue
      const version = theirs.get(id)
      if (version === undefined || compareVersionTuples(versionOf(record), version) > 0) {
        this.#stats.syncPushed++
        this.#deliver(from, { kind: 'store', rid: 0, record })
      }
    }
    const wanted: string[] = []
    for (const [id, version] of message.keys) {
      const mine = this.#entries.get(id)?.record
      if (mine === undefined || compareVersionTuples(version, versionOf(mine)) > 0) wanted.push(id)
    }
    for (let i = 0; i < wanted.length; i += WANT_IDS_MAX) this.#deliver(from, { kind: 'want', ids: wanted.slice(i, i + WANT_IDS_MAX) })
    if (gating) {
      // Claim only once the newer versions pulled here have arrived: a node back from a crash
      // must not claim (and run again) a task whose outcome a peer already holds.
      for (const id of wanted) this.#gateWanted.add(id)
      this.#maybeOpenClaimGate()
    }
  }

  #onWant (from: string, message: Extract<PeerMessage, { kind: 'want' }>): void {
    for (const id of message.ids) {
      const record = this.#entries.get(id)?.record
      if (record === undefined) continue
      this.#stats.syncPulled++
      this.#deliver(from, { kind: 'store', rid: 0, record })
    }
  }

  #maybeOpenClaimGate (): void {
    if (this.#claimGateOpen || !this.#wasJoined || this.#gatePeers === null) return
    if ((this.#gatePeers.size > 0 || this.#gateWanted.size > 0) && this.#nowMs < this.#gateDeadlineMs) return
    this.#claimGateOpen = true
    this.#gatePeers = null
    this.#gateWanted.clear()
    this.#log('info', 'node.claiming', { records: this.#entries.size, active: this.#active.size })
    // Schedules and children wait for the gate (their state must be caught up first).
    this.#reconsiderAll()
  }

  #bucket (id: string): number {
    return Math.min(SYNC_BUCKETS - 1, Math.floor(this.#position(id) * SYNC_BUCKETS / KEYSPACE))
  }

  // ---------------------------------------------------------------- time

  #addTimer (timer: Timer): void {
    this.#timers.push(timer)
  }

  #runDueTimers (): void {
    while (this.#timers.size > 0 && this.#timers.peek()!.atMs <= this.#nowMs) {
      const timer = this.#timers.pop()!
      switch (timer.kind) {
        case 'due':
          this.#dueTimers.delete(`${timer.id}@${timer.atMs}`)
          this.#onDue(timer.id)
          break
        case 'submitCopies': this.#askForCopies(timer.rid); break
        case 'replicate': {
          const submit = this.#submits.get(timer.rid)
          this.#submits.delete(timer.rid)
          const record = submit === undefined ? undefined : this.#entries.get(submit.record.id)?.record ?? { ...submit.record, committed: true }
          if (submit !== undefined && record !== undefined) {
            for (const peer of submit.replicas) if (!submit.acks.has(peer) && !submit.nacks.has(peer)) this.#deliver(peer, { kind: 'store', rid: 0, record })
          }
          break
        }
        case 'submitDeadline': {
          const submit = this.#submits.get(timer.rid)
          if (submit !== undefined && !submit.accepted) this.#failSubmit(timer.rid, submit, `timed out after ${this.config.submitTimeoutMs}ms`)
          break
        }
        case 'claimDeadline': {
          const id = this.#claimRids.get(timer.rid)
          const claim = id === undefined ? undefined : this.#claims.get(id)
          if (claim !== undefined && claim.rid === timer.rid) this.#abandonClaim(claim, 'timed out')
          break
        }
        case 'writeDeadline': this.#maybeFinishWrite(timer.rid, true); break
        case 'abortDeadline': this.#maybeFinishAbort(timer.rid, null, true); break
        case 'readDeadline': this.#maybeFinishRead(timer.rid, true); break
        case 'listDeadline': this.#maybeFinishList(timer.rid, true); break
        case 'storeDeadline': this.#maybeFinishStore(timer.rid, true); break
        default: unreachable(timer)
      }
    }
  }

  #onDue (id: string): void {
    const entry = this.#entries.get(id)
    if (entry === undefined) return
    const record = entry.record
    if (!record.committed && !isTerminal(record.state) && this.#nowMs >= record.createdAtMs + this.config.commitFallbackMs) {
      // The coordinator's decision never arrived. Ask it while it is around; if it is gone (or
      // does not remember), keep the task: it may have answered 201, and accepted means durable.
      const coordinatorState = this.#membership.state(record.coordinator)
      const reachable = record.coordinator !== this.config.selfId && (coordinatorState === 'alive' || coordinatorState === 'suspect')
      if (reachable && !this.#asked.has(id)) {
        this.#asked.add(id)
        this.#deliver(record.coordinator, { kind: 'ask', ids: [id] })
        this.#armDue(id, this.#nowMs + this.config.commitFallbackMs / 2)
        return
      }
      this.#asked.delete(id)
      this.#log('info', 'submit.commit_fallback', { task: id, coordinator: record.coordinator })
      this.#commit(entry)
      return
    }
    this.#consider(id)
  }

  #requestWake (): void {
    const next = this.#timers.peek()?.atMs ?? Infinity
    if (next !== this.#wakeAtMs) {
      this.#wakeAtMs = next
      if (next !== Infinity) this.#emit({ kind: 'WakeAt', atMs: next })
    }
  }

  // ---------------------------------------------------------------- effects

  #deliver (peer: string, message: PeerMessage): void {
    if (peer === this.config.selfId) this.#onMessage(peer, message)
    else this.#emit({ kind: 'Send', to: peer, message })
  }

  #reply (requestId: number, value: ReplyValue): void {
    this.#emit({ kind: 'Reply', requestId, value })
  }

  #announce (record: TaskRecord, state: TaskState, node: string): void {
    this.#events.push({ id: record.id, state, attempt: record.attempt, atMs: this.#nowMs, node })
  }

  #flushEvents (): void {
    if (this.#events.length === 0) return
    this.#emit({ kind: 'Announce', events: this.#events })
    this.#events = []
  }

  #emit (effect: Effect): void {
    this.#effects.push(effect)
  }

  #log (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>): void {
    this.#emit({ kind: 'Log', level, event, fields })
  }

  #heartbeat (): Heartbeat {
    return {
      protocol: PROTOCOL_VERSION,
      peerId: this.config.selfId,
      api: this.config.api,
      addrs: this.config.addrs,
      load: { running: this.#running.size, queued: this.#ready.size, capacity: this.config.capacity, durationMsEwma: Math.round(this.#durationMsEwma) },
      types: this.config.types,
      leaving: this.#leaving,
      left: this.#left,
      // Who we know, so that peers that only reach each other through us connect directly.
      peers: this.#membership?.aliveMembers().filter(peer => peer !== this.config.selfId).slice(0, 64)
        .map(peer => this.#membership.members.get(peer)?.heartbeat?.addrs[0]).filter((addr): addr is string => addr !== undefined) ?? [],
      sequence: this.#nowMs
    }
  }

  #virtualPositions (): number {
    return this.config.virtualPositions ?? VIRTUAL_POSITIONS_DEFAULT
  }
}

/** FNV-1a over the id and version: equal records hash equal; digests XOR these per bucket. */
function versionHash (id: string, record: TaskRecord): number {
  let hash = 0x811c9dc5
  const text = `${id}|${versionOf(record).join('.')}`
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash
}

/** The task id of an idempotency key: the same on every node, so concurrent submits meet at the same replicas. */
export function idempotentId (key: string): string {
  return `k-${toHex(sha256Bytes(key)).slice(0, 32)}`
}

function compareCreated (a: TaskRecord, b: TaskRecord): number {
  return a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
}

/** A cursor that sorts like (createdAtMs, id). */
export function cursorOf (record: TaskRecord): string {
  return `${String(record.createdAtMs).padStart(15, '0')}:${record.id}`
}

function isDefined<T> (value: T | undefined): value is T {
  return value !== undefined
}

export function unreachable (value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`)
}
