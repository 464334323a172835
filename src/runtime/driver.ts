// driver.ts: the loop that runs a core node (inbox → step → effects → apply).
// One tick steps every waiting input, then writes all Persist effects as ONE synced level
// batch, and only then performs the sends, replies and executions that depend on them.
// Inputs that arrive while a batch is being written wait for the next tick: group commit.
import type { TaskmeshNode } from '../core/node.js'
import type { Effect, Input, PeerMessage, ReplyValue, TaskEventData } from '../core/protocol.js'
import type { StoredEntry } from '../core/types.js'
import type { ExecuteOrder, ExecutionOutcome } from '../exec/types.js'
import type { Logger } from './log.js'

/** What the driver needs from the outside world: the adapters, as narrow as possible. */
export interface DriverPorts {
  persist (entries: Iterable<StoredEntry>): Promise<void>
  send (peerId: string, messages: PeerMessage[]): void
  publishHeartbeat (heartbeat: unknown): void
  announce (events: TaskEventData[]): void
  execute (order: ExecuteOrder, signal: AbortSignal): Promise<ExecutionOutcome>
  now (): number
}

export interface DriverStats {
  ticks: number
  inputs: number
  persistBatches: number
  persisted: number
  messagesSent: number
}

export class Driver {
  readonly #core: TaskmeshNode
  readonly #ports: DriverPorts
  readonly #log: Logger
  #inbox: Input[] = []
  #scheduled = false
  #busy = false
  #stopped = false
  #wakeTimer: NodeJS.Timeout | null = null
  #nextRequestId = 1
  readonly #replies = new Map<number, (value: ReplyValue) => void>()
  readonly #executions = new Map<string, AbortController>()
  readonly #idle: Array<() => void> = []
  readonly stats: DriverStats = { ticks: 0, inputs: 0, persistBatches: 0, persisted: 0, messagesSent: 0 }

  constructor (core: TaskmeshNode, ports: DriverPorts, log: Logger) {
    this.#core = core
    this.#ports = ports
    this.#log = log
  }

  get core (): TaskmeshNode { return this.#core }

  push (input: Input): void {
    if (this.#stopped) return
    this.#inbox.push(input)
    this.#schedule()
  }

  /** Step an input that answers with a Reply effect, and resolve with that reply. */
  request (make: (requestId: number, atMs: number) => Input): Promise<ReplyValue> {
    if (this.#stopped) return Promise.reject(Object.assign(new Error('node is stopped'), { code: 'shutting_down' }))
    const requestId = this.#nextRequestId++
    return new Promise(resolve => {
      this.#replies.set(requestId, resolve)
      this.push(make(requestId, this.#ports.now()))
    })
  }

  /** Resolves once no tick is running and the inbox is empty. */
  settled (): Promise<void> {
    if (!this.#busy && !this.#scheduled && this.#inbox.length === 0) return Promise.resolve()
    return new Promise(resolve => this.#idle.push(resolve))
  }

  runningExecutions (): number { return this.#executions.size }

  /** Stop stepping; abort running executions (their results are dropped). */
  stop (): void {
    this.#stopped = true
    if (this.#wakeTimer !== null) clearTimeout(this.#wakeTimer)
    for (const controller of this.#executions.values()) controller.abort(new Error('node is stopping'))
  }

  #schedule (): void {
    if (this.#scheduled || this.#busy || this.#stopped) return
    this.#scheduled = true
    setImmediate(() => { void this.#tick() })
  }

  async #tick (): Promise<void> {
    this.#scheduled = false
    if (this.#stopped) return
    this.#busy = true
    try {
      const inputs = this.#inbox
      this.#inbox = []
      this.stats.ticks++
      this.stats.inputs += inputs.length
      for (const input of inputs) this.#core.step(input)
      await this.#apply(this.#core.drain())
    } catch (error) {
      // A programmer error: crash loudly rather than run on in an unknown state.
      this.#log.error('driver.crashed', { error })
      process.nextTick(() => { throw error })
      return
    } finally {
      this.#busy = false
    }
    if (this.#inbox.length > 0) this.#schedule()
    else for (const resolve of this.#idle.splice(0)) resolve()
  }

  async #apply (effects: Effect[]): Promise<void> {
    // 1. Persist: one synced batch, last version of each record wins.
    const persists = new Map<string, StoredEntry>()
    for (const effect of effects) if (effect.kind === 'Persist') persists.set(effect.entry.record.id, effect.entry)
    if (persists.size > 0) {
      await this.#ports.persist(persists.values())
      this.stats.persistBatches++
      this.stats.persisted += persists.size
    }
    // 2. Everything that depends on it, in order; sends grouped into one batch per peer.
    const outgoing = new Map<string, PeerMessage[]>()
    for (const effect of effects) {
      switch (effect.kind) {
        case 'Persist': break
        case 'Send': {
          const queue = outgoing.get(effect.to)
          if (queue === undefined) outgoing.set(effect.to, [effect.message])
          else queue.push(effect.message)
          break
        }
        case 'Reply': {
          const resolve = this.#replies.get(effect.requestId)
          this.#replies.delete(effect.requestId)
          resolve?.(effect.value)
          break
        }
        case 'Execute': this.#execute(effect.order); break
        case 'PublishHeartbeat': this.#ports.publishHeartbeat(effect.heartbeat); break
        case 'Announce': this.#ports.announce(effect.events); break
        case 'WakeAt': this.#wakeAt(effect.atMs); break
        case 'Log': this.#log[effect.level](effect.event, effect.fields); break
        case 'Abort': case 'Forget': break // wired in the runtime by the scheduling API change
        default: unreachable(effect)
      }
    }
    for (const [peer, messages] of outgoing) {
      this.stats.messagesSent += messages.length
      this.#ports.send(peer, messages)
    }
  }

  #execute (order: ExecuteOrder): void {
    const controller = new AbortController()
    this.#executions.get(order.taskId)?.abort(new Error('superseded by a newer claim'))
    this.#executions.set(order.taskId, controller)
    const startedAtMs = performance.now()
    void this.#ports.execute(order, controller.signal).then(outcome => {
      if (this.#executions.get(order.taskId) === controller) this.#executions.delete(order.taskId)
      this.push({
        kind: 'ExecutionFinished',
        atMs: this.#ports.now(),
        taskId: order.taskId,
        epoch: order.fencingToken,
        outcome,
        durationMs: performance.now() - startedAtMs
      })
    })
  }

  #wakeAt (atMs: number): void {
    if (this.#wakeTimer !== null) clearTimeout(this.#wakeTimer)
    const delayMs = Math.max(0, Math.min(atMs - this.#ports.now() + 1, 2 ** 31 - 1))
    this.#wakeTimer = setTimeout(() => {
      this.#wakeTimer = null
      this.push({ kind: 'Ticked', atMs: this.#ports.now() })
    }, delayMs)
    this.#wakeTimer.unref()
  }
}

function unreachable (value: never): never {
  throw new Error(`unreachable effect: ${JSON.stringify(value)}`)
}
