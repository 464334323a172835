// progress.ts: progress reports of running handlers → ProgressReported inputs, at most one per
// task every intervalMs. Why throttled: each report changes a replicated record; a handler
// that reports in a tight loop must not turn into a write storm. The latest value within an
// interval is sent when the interval ends (trailing edge), so the record catches up.
// Bounded: one entry per task running on this node, dropped when its run ends.

export const PROGRESS_INTERVAL_MS_DEFAULT = 250

interface Pending {
  sentAtMs: number
  latest: number | null
  timer: NodeJS.Timeout | null
}

export class ProgressThrottle {
  readonly #intervalMs: number
  readonly #send: (taskId: string, progress: number) => void
  readonly #now: () => number
  readonly #tasks = new Map<string, Pending>()

  constructor (send: (taskId: string, progress: number) => void, intervalMs = PROGRESS_INTERVAL_MS_DEFAULT, now: () => number = Date.now) {
    this.#send = send
    this.#intervalMs = intervalMs
    this.#now = now
  }

  report (taskId: string, progress: number): void {
    const nowMs = this.#now()
    const pending = this.#tasks.get(taskId)
    if (pending === undefined) {
      this.#tasks.set(taskId, { sentAtMs: nowMs, latest: null, timer: null })
      this.#send(taskId, progress)
      return
    }
    if (pending.timer === null && nowMs - pending.sentAtMs >= this.#intervalMs) {
      pending.sentAtMs = nowMs
      this.#send(taskId, progress)
      return
    }
    pending.latest = progress
    if (pending.timer === null) {
      pending.timer = setTimeout(() => this.#flush(taskId), Math.max(0, pending.sentAtMs + this.#intervalMs - nowMs))
      pending.timer.unref()
    }
  }

  /** The run ended: its outcome supersedes any progress still waiting. */
  finished (taskId: string): void {
    const pending = this.#tasks.get(taskId)
    if (pending?.timer != null) clearTimeout(pending.timer)
    this.#tasks.delete(taskId)
  }

  stop (): void {
    for (const taskId of [...this.#tasks.keys()]) this.finished(taskId)
  }

  /** Tasks tracked (for tests: bounded by the runs in progress). */
  get size (): number { return this.#tasks.size }

  #flush (taskId: string): void {
    const pending = this.#tasks.get(taskId)
    if (pending === undefined) return
    pending.timer = null
    if (pending.latest === null) return
    const progress = pending.latest
    pending.latest = null
    pending.sentAtMs = this.#now()
    this.#send(taskId, progress)
  }
}
