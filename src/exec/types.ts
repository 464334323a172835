// types.ts: the executor contract between the runtime and src/exec.

/** What a handler receives besides its payload (contract.md "Task types"). */
export interface HandlerContext {
  taskId: string
  attempt: number
  /** Monotone per task: a later claim always carries a higher token. Pass it to systems you write to. */
  fencingToken: number
  /** Aborted on timeout, cancel or node shutdown. */
  signal: AbortSignal
  progress (n: number): void
  log (...args: unknown[]): void
}

export type Handler = (payload: any, ctx: HandlerContext) => unknown | Promise<unknown>

/** An order from the core to run one attempt. */
export interface ExecuteOrder {
  taskId: string
  type: string
  payload: unknown
  attempt: number
  fencingToken: number
  timeoutMs: number | null
}

/** What came of one attempt. `error` is a short human-readable reason. */
export type ExecutionOutcome =
  | { ok: true, result: unknown }
  | { ok: false, error: string, result?: unknown }
