// handlers.ts: workload handlers for the simulator, the benchmark and the local demo cluster
// (`npm start` loads them with --handlers). Each is an ordinary taskmesh handler.
import { appendFileSync } from 'node:fs'
import type { HandlerContext } from '../src/exec/types.js'

/** Does nothing: measures the scheduler, not the work. */
export async function noop (): Promise<null> {
  return null
}

/** Returns its payload. */
export async function echo (payload: unknown): Promise<unknown> {
  return payload
}

/** Sleeps `payload.ms` milliseconds (default 100), honouring cancel and timeout. */
export async function sleep (payload: { ms?: number } | null, ctx: HandlerContext): Promise<{ sleptMs: number }> {
  const ms = Math.max(0, Math.min(Number(payload?.ms ?? 100), 3_600_000))
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    ctx.signal.addEventListener('abort', () => { clearTimeout(timer); reject(ctx.signal.reason) }, { once: true })
  })
  return { sleptMs: ms }
}

/**
 * The simulator's workload (`taskmesh sim`): sleeps like `sleep`, then appends
 * `payload.marker` and a newline to the file named by $TASKMESH_SIM_LOG, so the simulator
 * counts how often each task's work was done. Why after the sleep: a run cut short (SIGKILL,
 * timeout) did no work; a paused run that wakes up and finishes did. Why appendFileSync: one
 * short O_APPEND write is atomic, so every node can append to the same file.
 */
export async function simwork (payload: { ms?: number, marker?: string } | null, ctx: HandlerContext): Promise<{ sleptMs: number }> {
  const slept = await sleep(payload, ctx)
  const log = process.env.TASKMESH_SIM_LOG
  const marker = payload?.marker
  if (log !== undefined && log !== '' && typeof marker === 'string' && /^[\w.-]{1,100}$/.test(marker)) {
    appendFileSync(log, `${marker}\n`)
  }
  return slept
}

/** Always fails: exercises retries and the dead state. */
export async function fail (payload: { message?: string } | null): Promise<never> {
  throw new Error(payload?.message ?? 'failed on purpose')
}
