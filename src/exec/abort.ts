// abort.ts: how an abort reason becomes an attempt's error text.
// Why a file of its own: shell, http and the handler runner all report aborts the same way,
// and executors.ts (which imports them) is where timeouts are made.

/** The reason `Executors.run` aborts with when `order.timeoutMs` runs out. */
export function timeoutReason (timeoutMs: number): Error {
  const reason = new Error(`timed out after ${timeoutMs}ms`)
  reason.name = 'TimeoutError'
  return reason
}

/** 'timed out after Xms' for a timeout, 'aborted: <reason>' for anything else. */
export function abortMessage (reason: unknown): string {
  if (isNamed(reason) && reason.name === 'TimeoutError' && reason.message.startsWith('timed out')) return reason.message
  if (isNamed(reason)) return `aborted: ${reason.message === '' ? reason.name : reason.message}`
  return `aborted: ${String(reason)}`
}

function isNamed (value: unknown): value is { name: string, message: string } {
  return typeof value === 'object' && value !== null &&
    typeof (value as { name?: unknown }).name === 'string' &&
    typeof (value as { message?: unknown }).message === 'string'
}
