// handlers.ts: workload handlers for the simulator, the benchmark and the local demo cluster
// (`npm start` loads them with --handlers). Each is an ordinary taskmesh handler.
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

/** Always fails: exercises retries and the dead state. */
export async function fail (payload: { message?: string } | null): Promise<never> {
  throw new Error(payload?.message ?? 'failed on purpose')
}
