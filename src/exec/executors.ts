// executors.ts: run one attempt of a task by its type — shell, http or a named handler.
// `run` never throws: every way an attempt can end becomes an ExecutionOutcome.
import { format } from 'node:util'
import { abortMessage, timeoutReason } from './abort.js'
import { loadHandlers } from './handlers.js'
import { runHttp } from './http.js'
import { runShell } from './shell.js'
import type { ExecuteOrder, ExecutionOutcome, Handler, HandlerContext } from './types.js'
import type { Logger } from '../runtime/log.js'

export interface ExecutorsOptions {
  /** A module path (its exported functions) or an object of functions. */
  handlers?: string | Record<string, Handler>
  /** Enable the shell executor. */
  allowExec: boolean
  /** Per-stream cap on shell output and on an http answer body; default 64 KiB. */
  outputBytesMax?: number
  /** Cap on the JSON of a result; a bigger one fails the attempt with 'result too large'. Default 1 MiB. */
  resultBytesMax?: number
  log: Logger
  onProgress?: (taskId: string, progress: number) => void
}

export const outputBytesMaxDefault = 64 * 1024
export const resultBytesMaxDefault = 1024 * 1024
/** Longest error text kept from a handler's exception. */
export const errorCharsMax = 4096
/** Longest line a handler's ctx.log writes. */
export const logLineCharsMax = 8192
/** setTimeout fires at once beyond this; longer timeouts are clamped to it. */
const timerMsMax = 2 ** 31 - 1

interface Running {
  controller: AbortController
  done: Promise<unknown>
}

export class Executors {
  readonly #handlers: Record<string, Handler>
  readonly #allowExec: boolean
  readonly #outputBytesMax: number
  readonly #resultBytesMax: number
  readonly #log: Logger
  readonly #onProgress: ((taskId: string, progress: number) => void) | undefined
  readonly #running = new Set<Running>()
  #stopping = false

  private constructor (options: ExecutorsOptions, handlers: Record<string, Handler>) {
    this.#handlers = handlers
    this.#allowExec = options.allowExec
    this.#outputBytesMax = positiveOr(options.outputBytesMax, outputBytesMaxDefault)
    this.#resultBytesMax = positiveOr(options.resultBytesMax, resultBytesMaxDefault)
    this.#log = options.log
    this.#onProgress = options.onProgress
  }

  /** Loads the handlers; throws (HandlersLoadError) when the module is missing or invalid. */
  static async create (options: ExecutorsOptions): Promise<Executors> {
    const handlers = await loadHandlers(options.handlers)
    return new Executors(options, handlers)
  }

  /** Sorted task types this node runs: handler names, 'http', and 'shell' only when allowed. */
  types (): string[] {
    const names = new Set(Object.keys(this.#handlers))
    names.add('http')
    if (this.#allowExec) names.add('shell')
    return [...names].sort()
  }

  canRun (type: string): boolean {
    if (type === 'shell') return this.#allowExec
    if (type === 'http') return true
    return Object.hasOwn(this.#handlers, type)
  }

  runningCount (): number {
    return this.#running.size
  }

  /** Run one attempt. Never throws or rejects. */
  async run (order: ExecuteOrder, signal: AbortSignal): Promise<ExecutionOutcome> {
    if (this.#stopping) return { ok: false, error: 'aborted: node is stopping' }
    const controller = new AbortController()
    const done = this.#runGuarded(order, signal, controller)
    const running: Running = { controller, done }
    this.#running.add(running)
    try {
      return await done
    } finally {
      this.#running.delete(running)
    }
  }

  /** Abort everything running and wait until each attempt has reported. */
  async stop (): Promise<void> {
    this.#stopping = true
    const all = [...this.#running]
    for (const { controller } of all) controller.abort(new Error('node is stopping'))
    await Promise.allSettled(all.map(running => running.done))
  }

  async #runGuarded (order: ExecuteOrder, signal: AbortSignal, controller: AbortController): Promise<ExecutionOutcome> {
    const unlink = linkSignals(signal, controller, order.timeoutMs)
    const startedMs = Date.now()
    this.#log.debug('exec.started', { task: order.taskId, type: order.type, attempt: order.attempt })
    let outcome: ExecutionOutcome
    try {
      outcome = this.#finishOutcome(await this.#dispatch(order, controller.signal))
    } catch (err) {
      // A programmer error in this folder; the attempt fails instead of the node.
      this.#log.error('exec.internal_error', { task: order.taskId, error: err })
      outcome = { ok: false, error: `internal error: ${errorText(err)}` }
    } finally {
      unlink()
    }
    this.#log.debug('exec.finished', {
      task: order.taskId, type: order.type, attempt: order.attempt, ok: outcome.ok,
      error: outcome.ok ? undefined : outcome.error, durationMs: Date.now() - startedMs
    })
    return outcome
  }

  async #dispatch (order: ExecuteOrder, signal: AbortSignal): Promise<ExecutionOutcome> {
    const { type } = order
    if (type === 'shell') {
      if (!this.#allowExec) return { ok: false, error: 'shell executor disabled (start the node with --allow-exec)' }
      return await runShell(order.payload, signal, { outputBytesMax: this.#outputBytesMax })
    }
    if (type === 'http') return await runHttp(order.payload, signal, { outputBytesMax: this.#outputBytesMax })
    if (!Object.hasOwn(this.#handlers, type)) {
      return { ok: false, error: `no executor for type "${type}"` }
    }
    return await this.#runHandler(this.#handlers[type], order, signal)
  }

  /**
   * Races the handler against the signal: a handler that ignores its signal still yields a
   * timed-out (or aborted) outcome at once. It may run on in the background; nothing it
   * returns later is used, and its progress and log calls are dropped.
   */
  async #runHandler (handler: Handler, order: ExecuteOrder, signal: AbortSignal): Promise<ExecutionOutcome> {
    if (signal.aborted) return { ok: false, error: abortMessage(signal.reason) }
    let live = true
    const ctx: HandlerContext = {
      taskId: order.taskId,
      attempt: order.attempt,
      fencingToken: order.fencingToken,
      signal,
      progress: (n: number) => {
        if (!live) return
        if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 100) {
          this.#log.debug('exec.progress_ignored', { task: order.taskId, progress: String(n) })
          return
        }
        try {
          this.#onProgress?.(order.taskId, n)
        } catch (err) {
          this.#log.warn('exec.progress_failed', { task: order.taskId, error: err })
        }
      },
      log: (...args: unknown[]) => {
        if (!live) return
        this.#log.info('task.log', { task: order.taskId, attempt: order.attempt, message: truncate(format(...args), logLineCharsMax) })
      }
    }

    let onAbort: (() => void) | undefined
    const aborted = new Promise<ExecutionOutcome>(resolve => {
      onAbort = () => resolve({ ok: false, error: abortMessage(signal.reason) })
      signal.addEventListener('abort', onAbort, { once: true })
    })
    const work = (async (): Promise<ExecutionOutcome> => {
      try {
        return { ok: true, result: await handler(order.payload, ctx) }
      } catch (err) {
        return { ok: false, error: truncate(errorText(err), errorCharsMax) }
      }
    })()
    try {
      return await Promise.race([work, aborted])
    } finally {
      live = false
      if (onAbort !== undefined) signal.removeEventListener('abort', onAbort)
    }
  }

  /** Makes the result plain, serializable data within resultBytesMax. */
  #finishOutcome (outcome: ExecutionOutcome): ExecutionOutcome {
    if (!('result' in outcome)) return outcome
    const checked = toPlainData(outcome.result, this.#resultBytesMax)
    if (checked.ok) return { ...outcome, result: checked.value }
    // A failed attempt keeps its own error; its unusable result is dropped.
    if (!outcome.ok) return { ok: false, error: outcome.error }
    return { ok: false, error: checked.error }
  }
}

/**
 * JSON round trip with strict checks: undefined → null (at the top and in arrays, as JSON
 * does); functions, symbols and bigints anywhere, and cycles, are refused rather than
 * silently dropped.
 */
export function toPlainData (value: unknown, bytesMax: number): { ok: true, value: unknown } | { ok: false, error: string } {
  let text: string | undefined
  try {
    text = JSON.stringify(value, (key, item: unknown) => {
      const kind = typeof item
      if (kind === 'function' || kind === 'symbol' || kind === 'bigint') {
        throw new NotSerializable(`${kind}${key === '' ? '' : ` at "${key}"`}`)
      }
      return item
    })
  } catch (err) {
    const detail = err instanceof NotSerializable ? err.message : 'cycle or a throwing toJSON'
    return { ok: false, error: `result is not serializable (${detail})` }
  }
  if (text === undefined) return { ok: true, value: null }
  const bytes = Buffer.byteLength(text)
  if (bytes > bytesMax) return { ok: false, error: `result too large (${bytes} bytes > ${bytesMax})` }
  return { ok: true, value: JSON.parse(text) }
}

class NotSerializable extends Error {}

/** Aborts `controller` when the caller's signal aborts or the timeout runs out. Returns the unlink. */
function linkSignals (signal: AbortSignal, controller: AbortController, timeoutMs: number | null): () => void {
  const onAbort = (): void => controller.abort(signal.reason)
  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, { once: true })
  let timer: NodeJS.Timeout | undefined
  if (timeoutMs !== null && Number.isFinite(timeoutMs) && timeoutMs > 0) {
    timer = setTimeout(() => controller.abort(timeoutReason(timeoutMs)), Math.min(timeoutMs, timerMsMax))
  }
  return () => {
    signal.removeEventListener('abort', onAbort)
    if (timer !== undefined) clearTimeout(timer)
  }
}

function positiveOr (value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? Math.floor(value) : fallback
}

function errorText (err: unknown): string {
  if (err instanceof Error) return err.message === '' ? err.name : err.message
  if (typeof err === 'string') return err
  try {
    return JSON.stringify(err) ?? String(err)
  } catch {
    return String(err)
  }
}

function truncate (text: string, max: number): string {
  return text.length > max ? text.slice(0, max) + '…' : text
}
