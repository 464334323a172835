// workload.ts: the local simulator's workload. `simwork` tasks (sim/handlers.ts) with durations
// drawn from a distribution, submitted in batches round-robin to the live nodes at a rate;
// a refused or unanswered submit is sent again, to the next node, under a new marker.
// Why a new marker per attempt: the execution log then tells apart a task that ran although its
// submit was refused (unexpected), one whose submit got no answer but ran (recovered), and an
// accepted task that ran twice (duplicated).
import type { BatchItem, Client } from '../src/api/client.js'
import type { CreateBody } from '../src/api/present.js'
import { formatDurationMs, parseDurationMs } from '../src/core/duration.js'

export type DurationSpec =
  | { kind: 'fixed', ms: number }
  | { kind: 'exp', meanMs: number }
  | { kind: 'uniform', minMs: number, maxMs: number }

export const WORKLOAD_LIMITS = {
  /** Longest task; the exponential distribution is cut here too. */
  taskMsMax: 3_600_000,
  /** The exponential distribution is cut at this many times its mean. */
  expCutMeans: 20,
  ratePerSecondMax: 100_000,
  batchMax: 500,
  /** Batches waiting for an answer at once. */
  batchesInFlightMax: 64,
  tickMs: 100,
  /** Answer times kept for the report. */
  batchTimesMax: 100_000
} as const

/** `200ms` (fixed), `exp:200ms` (exponential with that mean), `uniform:50ms-500ms`. Throws with a message. */
export function parseDurationSpec (text: string): DurationSpec {
  const duration = (part: string): number => {
    const ms = parseDurationMs(part)
    if (ms === null) throw new Error(`'${part}' is not a duration (use 200ms, 1.5s or a number of ms)`)
    if (ms > WORKLOAD_LIMITS.taskMsMax) throw new Error(`${part} is longer than the limit of ${formatDurationMs(WORKLOAD_LIMITS.taskMsMax)}`)
    return ms
  }
  if (text.startsWith('exp:')) {
    const meanMs = duration(text.slice(4))
    if (meanMs === 0) throw new Error('the mean of exp: must be more than 0')
    return { kind: 'exp', meanMs }
  }
  if (text.startsWith('uniform:')) {
    const parts = text.slice(8).split('-')
    if (parts.length !== 2) throw new Error(`'${text}' is not a range: write uniform:MIN-MAX, e.g. uniform:50ms-500ms`)
    const minMs = duration(parts[0]!)
    const maxMs = duration(parts[1]!)
    if (minMs > maxMs) throw new Error(`uniform:${parts[0]}-${parts[1]}: the minimum is above the maximum`)
    return { kind: 'uniform', minMs, maxMs }
  }
  if (/^[a-z]+:/.test(text)) throw new Error(`unknown distribution '${text.split(':')[0]}' (use a fixed duration, exp:MEAN or uniform:MIN-MAX)`)
  return { kind: 'fixed', ms: duration(text) }
}

export function formatDurationSpec (spec: DurationSpec): string {
  switch (spec.kind) {
    case 'fixed': return formatDurationMs(spec.ms)
    case 'exp': return `exp:${formatDurationMs(spec.meanMs)}`
    case 'uniform': return `uniform:${formatDurationMs(spec.minMs)}-${formatDurationMs(spec.maxMs)}`
  }
}

/** The mean task length, for estimates. */
export function meanDurationMs (spec: DurationSpec): number {
  switch (spec.kind) {
    case 'fixed': return spec.ms
    case 'exp': return spec.meanMs
    case 'uniform': return (spec.minMs + spec.maxMs) / 2
  }
}

export function sampleDurationMs (spec: DurationSpec, random: () => number): number {
  switch (spec.kind) {
    case 'fixed': return spec.ms
    case 'exp': return Math.round(Math.min(-Math.log(1 - random()) * spec.meanMs, spec.meanMs * WORKLOAD_LIMITS.expCutMeans, WORKLOAD_LIMITS.taskMsMax))
    case 'uniform': return Math.round(spec.minMs + random() * (spec.maxMs - spec.minMs))
  }
}

/** Tasks per second, or null for `unlimited`. Throws with a message. */
export function parseRate (text: string): number | null {
  if (text === 'unlimited') return null
  const rate = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN
  if (!(rate > 0) || rate > WORKLOAD_LIMITS.ratePerSecondMax) throw new Error(`'${text}' is not a rate: a number of tasks per second above 0 and up to ${WORKLOAD_LIMITS.ratePerSecondMax}, or unlimited`)
  return rate
}

export interface WorkloadTarget {
  /** 1-based node number. */
  index: number
  client: Client
}

export interface WorkloadOptions {
  tasks: number
  /** Tasks per second; null sends as fast as the nodes accept. */
  ratePerSecond: number | null
  duration: DurationSpec
  random: () => number
  /** The nodes to submit to right now (running and not paused). */
  targets: () => WorkloadTarget[]
  /** Give up submitting at this time (epoch ms): the cluster accepts nothing. */
  deadlineMs: number
  signal: AbortSignal
}

export interface AcceptedTask {
  id: string
  marker: string
  /** When the answer came (epoch ms). */
  atMs: number
  /** The node that accepted it. */
  node: number
}

export interface SubmitStats {
  /** Submissions sent (an item sent again counts again). */
  attempts: number
  batches: number
  /** Items refused with an answer (503 no quorum, a node still joining): nothing was accepted. */
  refused: number
  /** Items of a batch whose node could not be reached at all: nothing was sent. */
  unreachable: number
  /** Items of a batch that got no answer (a node killed or paused mid-request): may have been accepted. */
  indeterminate: number
  /** How long each batch waited for its answer (ms), in the order they were sent; at most batchTimesMax. */
  answerMs: number[]
}

interface Item { marker: string, ms: number }

export class Workload {
  readonly accepted: AcceptedTask[] = []
  /** Markers of submits refused with an answer: none of them may ever run. */
  readonly refusedMarkers: string[] = []
  /** Markers of submits that got no answer: they may run (recovered) or not. */
  readonly indeterminateMarkers: string[] = []
  readonly stats: SubmitStats = { attempts: 0, batches: 0, refused: 0, unreachable: 0, indeterminate: 0, answerMs: [] }
  /** Called for each task as it is accepted. */
  onAccepted: ((task: AcceptedTask) => void) | null = null
  /** Epoch ms of the first submit and of the last acceptance. */
  startedAtMs = 0
  finishedAtMs = 0
  readonly #options: WorkloadOptions
  readonly #retry: Item[] = []
  #markerNext = 1
  #inFlightItems = 0
  #inFlightBatches = 0
  #roundRobin = 0
  #settled: Promise<void> | null = null
  #wake: (() => void) | null = null

  constructor (options: WorkloadOptions) {
    this.#options = options
  }

  /** Items sent and not answered yet, plus those waiting to be sent again. */
  get inFlight (): number {
    return this.#inFlightItems + this.#retry.length
  }

  /** Resolves once `tasks` are accepted, or at the deadline, or on abort; never rejects. */
  run (): Promise<void> {
    this.#settled ??= this.#loop()
    return this.#settled
  }

  async #loop (): Promise<void> {
    const { tasks, ratePerSecond, signal } = this.#options
    this.startedAtMs = Date.now()
    while (this.accepted.length < tasks && !signal.aborted && Date.now() < this.#options.deadlineMs) {
      const dueTotal = ratePerSecond === null ? tasks : Math.min(tasks, Math.floor(ratePerSecond * (Date.now() - this.startedAtMs) / 1000) + 1)
      const targets = this.#options.targets()
      const batchSize = ratePerSecond === null
        ? 200
        : Math.max(1, Math.min(WORKLOAD_LIMITS.batchMax, Math.ceil(ratePerSecond * WORKLOAD_LIMITS.tickMs / 1000)))
      const inFlightMax = ratePerSecond === null ? Math.max(2, 2 * targets.length) : WORKLOAD_LIMITS.batchesInFlightMax
      while (targets.length > 0 && this.#inFlightBatches < inFlightMax) {
        const owed = dueTotal - (this.accepted.length + this.#inFlightItems + this.#retry.length)
        const items = this.#retry.splice(0, batchSize)
        const fresh = Math.max(0, Math.min(batchSize - items.length, owed))
        for (let i = 0; i < fresh; i++) items.push(this.#newItem())
        if (items.length === 0) break
        const target = targets[this.#roundRobin++ % targets.length]!
        void this.#send(target, items)
      }
      await this.#pause(WORKLOAD_LIMITS.tickMs)
    }
    // Answers still on their way count: a request ends within the client's timeout.
    while (this.#inFlightBatches > 0 && !signal.aborted) await this.#pause(WORKLOAD_LIMITS.tickMs)
  }

  #newItem (): Item {
    return { marker: '', ms: sampleDurationMs(this.#options.duration, this.#options.random) }
  }

  async #send (target: WorkloadTarget, items: Item[]): Promise<void> {
    for (const item of items) item.marker = `t${this.#markerNext++}`
    this.#inFlightBatches++
    this.#inFlightItems += items.length
    this.stats.batches++
    this.stats.attempts += items.length
    const bodies: CreateBody[] = items.map(item => ({ type: 'simwork', payload: { ms: item.ms, marker: item.marker } }))
    const sentAtMs = Date.now()
    const answer = await target.client.submitMany(bodies).then(
      (items: BatchItem[]) => ({ results: items, failure: null }),
      (error: unknown) => ({ results: null, failure: error as { status?: unknown, message?: unknown } })
    )
    const { results, failure } = answer
    this.#inFlightBatches--
    this.#inFlightItems -= items.length
    const nowMs = Date.now()
    if (this.stats.answerMs.length < WORKLOAD_LIMITS.batchTimesMax) this.stats.answerMs.push(nowMs - sentAtMs)
    if (results !== null && results.length === items.length) {
      results.forEach((result, index) => {
        const item = items[index]!
        if ('id' in result) {
          const task = { id: result.id, marker: item.marker, atMs: nowMs, node: target.index }
          this.accepted.push(task)
          this.onAccepted?.(task)
          this.finishedAtMs = nowMs
        } else {
          this.stats.refused++
          this.refusedMarkers.push(item.marker)
          this.#retry.push(item)
        }
      })
    } else if (failure !== null && failure.status === 0 && !/ECONNREFUSED/.test(String(failure.message))) {
      // Sent, no answer: each item may or may not have been accepted. Not counted, not retried
      // under the same marker; the loop submits a replacement.
      this.stats.indeterminate += items.length
      this.indeterminateMarkers.push(...items.map(item => item.marker))
    } else {
      // An answer that refused the whole batch, or a node that took no connection.
      if (failure?.status === 0) this.stats.unreachable += items.length
      else this.stats.refused += items.length
      this.refusedMarkers.push(...items.map(item => item.marker))
      this.#retry.push(...items)
    }
    // Room for the next batch at once; a refusal waits for the next tick (no busy loop).
    if (this.stats.attempts > 0 && results?.some(result => 'id' in result) === true) this.#wake?.()
  }

  async #pause (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void { clearTimeout(timer); resolve() }
      this.#wake = done
    })
    this.#wake = null
  }
}
