// validate.ts: the create body (contract.md) → a TaskSpec, or a Rejection whose message
// names the field. Why a hand-written validator: no schema dependency, and every message is
// one we chose. It never throws, whatever it is given: bad input never crashes a node.
import { formatDurationMs, parseDurationMs } from '../core/duration.js'
import type { Backoff, Rejection, TaskSpec } from '../core/types.js'

export type CreateValidation = { ok: true, spec: TaskSpec } | { ok: false, error: Rejection }
export type BatchValidation = { ok: true, items: CreateValidation[] } | { ok: false, error: Rejection }

export interface CreateLimits {
  /** Largest JSON size of one payload, in bytes (UTF-8). */
  payloadBytesMax: number
}

export interface BatchLimits extends CreateLimits {
  /** Most create bodies in one batch. */
  batchMax: number
}

/** Bounds of the create body. Why bounded: every field that grows with input has a limit. */
export const CREATE_LIMITS = {
  typeLengthMax: 64,
  priorityMin: -1000,
  priorityMax: 1000,
  maxAttemptsMax: 100,
  /** How far ahead `delay` and `runAt` may point: about ten years. */
  aheadMsMax: 3650 * 86_400_000,
  /** Longest `timeout`: 30 days. */
  timeoutMsMax: 30 * 86_400_000,
  /** Longest backoff `delay` and `maxDelay`: 7 days. */
  backoffMsMax: 7 * 86_400_000,
  idempotencyKeyLengthMax: 256,
  dependsOnMax: 100,
  idLengthMax: 128
} as const

export const DEFAULT_BACKOFF: Backoff = { kind: 'exponential', delayMs: 1000, delayMsMax: 60_000 }

export const TYPE_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/
/** Task ids, schedule ids and dependency ids. */
export const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/

const CREATE_FIELDS = new Set(['type', 'payload', 'priority', 'delay', 'runAt', 'cron', 'every', 'maxAttempts', 'backoff', 'timeout', 'idempotencyKey', 'dependsOn'])
const BACKOFF_FIELDS = new Set(['type', 'delay', 'maxDelay'])
const BATCH_FIELDS = new Set(['tasks'])

const DURATION_HINT = 'a duration: milliseconds or a string like 250ms, 5s, 2m, 1h, 1d'
// A date, optionally a time with seconds and fraction, optionally an offset.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/

class FieldError {
  constructor (readonly code: 'invalid_input' | 'too_large', readonly message: string) {}
}

function invalid (field: string, message: string): never {
  throw new FieldError('invalid_input', `${field}: ${message}`)
}

/**
 * Checks one create body. `nowMs`, when given, bounds `runAt` to CREATE_LIMITS.aheadMsMax
 * from now; without it the function is pure.
 */
export function validateCreateBody (body: unknown, limits: CreateLimits, nowMs?: number): CreateValidation {
  try {
    return { ok: true, spec: createSpec(body, limits, nowMs) }
  } catch (error) {
    return { ok: false, error: toRejection(error) }
  }
}

/**
 * Checks `{ tasks: [create body, ...] }`. A malformed envelope fails whole; each item is
 * checked on its own and reported in order.
 */
export function validateBatchBody (body: unknown, limits: BatchLimits, nowMs?: number): BatchValidation {
  try {
    const envelope = asObject(body, 'body', 'must be a JSON object: { "tasks": [create body, ...] }')
    rejectUnknownFields(envelope, BATCH_FIELDS, '')
    const tasks = envelope.tasks
    if (!Array.isArray(tasks)) invalid('tasks', 'required, an array of create bodies')
    if (tasks.length > limits.batchMax) {
      throw new FieldError('too_large', `tasks: ${tasks.length} items is over the limit of ${limits.batchMax} per batch`)
    }
    const items: CreateValidation[] = []
    for (let index = 0; index < tasks.length; index++) items.push(validateCreateBody(tasks[index], limits, nowMs))
    return { ok: true, items }
  } catch (error) {
    return { ok: false, error: toRejection(error) }
  }
}

function toRejection (error: unknown): Rejection {
  if (error instanceof FieldError) return { code: error.code, message: error.message }
  // Why: a hostile value (a throwing getter, a Proxy) must still get an answer, not a crash.
  return { code: 'invalid_input', message: 'body: could not be read as a create body' }
}

function createSpec (body: unknown, limits: CreateLimits, nowMs: number | undefined): TaskSpec {
  const fields = asObject(body, 'body', 'must be a JSON object with at least "type"')
  rejectUnknownFields(fields, CREATE_FIELDS, '')

  const type = fields.type
  if (typeof type !== 'string' || !TYPE_PATTERN.test(type)) {
    invalid('type', `required, 1-${CREATE_LIMITS.typeLengthMax} characters of A-Z a-z 0-9 _ . : -`)
  }

  if (present(fields.cron) || present(fields.every)) {
    invalid(present(fields.cron) ? 'cron' : 'every', 'schedules (cron/every) are not supported yet')
  }

  const spec: TaskSpec = {
    type,
    payload: checkPayload(fields.payload, limits),
    priority: optional(fields.priority, 0, value => integerIn(value, 'priority', CREATE_LIMITS.priorityMin, CREATE_LIMITS.priorityMax)),
    runAtMs: null,
    delayMs: null,
    maxAttempts: optional(fields.maxAttempts, 1, value => integerIn(value, 'maxAttempts', 1, CREATE_LIMITS.maxAttemptsMax)),
    backoff: optional(fields.backoff, DEFAULT_BACKOFF, checkBackoff),
    timeoutMs: optional(fields.timeout, null, checkTimeout),
    idempotencyKey: optional(fields.idempotencyKey, null, checkIdempotencyKey),
    dependsOn: optional(fields.dependsOn, [], checkDependsOn),
    schedule: null
  }

  if (present(fields.delay) && present(fields.runAt)) invalid('delay', 'give either delay or runAt, not both')
  if (present(fields.delay)) spec.delayMs = duration(fields.delay, 'delay', 0, CREATE_LIMITS.aheadMsMax)
  if (present(fields.runAt)) spec.runAtMs = checkRunAt(fields.runAt, nowMs)
  return spec
}

/** Absent and null both mean "use the default" for optional fields. */
function present (value: unknown): boolean {
  return value !== undefined && value !== null
}

function optional<T> (value: unknown, fallback: T, check: (value: unknown) => T): T {
  return present(value) ? check(value) : fallback
}

function asObject (value: unknown, field: string, message: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(field, message)
  return value as Record<string, unknown>
}

function rejectUnknownFields (fields: Record<string, unknown>, allowed: Set<string>, prefix: string): void {
  for (const key of Object.keys(fields)) {
    if (!allowed.has(key)) {
      const shown = key.length > 64 ? key.slice(0, 64) + '…' : key
      invalid(prefix + JSON.stringify(shown).slice(1, -1), `unknown field (allowed: ${[...allowed].join(', ')})`)
    }
  }
}

function checkPayload (payload: unknown, limits: CreateLimits): unknown {
  if (payload === undefined) return null
  let text: string | undefined
  try {
    text = JSON.stringify(payload)
  } catch {
    invalid('payload', 'must be JSON (no cycles, no BigInt)')
  }
  if (typeof text !== 'string') invalid('payload', 'must be JSON')
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > limits.payloadBytesMax) {
    throw new FieldError('too_large', `payload: ${bytes} bytes of JSON is over the limit of ${limits.payloadBytesMax} bytes`)
  }
  return payload
}

function integerIn (value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(field, `must be an integer between ${min} and ${max}`)
  }
  return value === 0 ? 0 : value // no -0
}

function duration (value: unknown, field: string, minMs: number, maxMs: number): number {
  const ms = parseDurationMs(value)
  if (ms === null) invalid(field, `must be ${DURATION_HINT}`)
  if (ms < minMs) invalid(field, `must be at least ${formatDurationMs(minMs)}`)
  if (ms > maxMs) invalid(field, `must be at most ${formatDurationMs(maxMs)}`)
  return ms
}

function checkRunAt (value: unknown, nowMs: number | undefined): number {
  const hint = 'must be an ISO 8601 time such as 2030-01-31T12:00:00Z'
  if (typeof value !== 'string' || value.length > 40 || !ISO_TIME.test(value)) invalid('runAt', hint)
  const ms = Date.parse(value)
  if (!Number.isFinite(ms)) invalid('runAt', hint)
  if (nowMs !== undefined && ms > nowMs + CREATE_LIMITS.aheadMsMax) {
    invalid('runAt', `must be at most ${formatDurationMs(CREATE_LIMITS.aheadMsMax)} from now`)
  }
  return ms
}

function checkTimeout (value: unknown): number {
  return duration(value, 'timeout', 1, CREATE_LIMITS.timeoutMsMax)
}

function checkIdempotencyKey (value: unknown): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > CREATE_LIMITS.idempotencyKeyLengthMax) {
    invalid('idempotencyKey', `must be a string of 1-${CREATE_LIMITS.idempotencyKeyLengthMax} characters`)
  }
  return value
}

function checkDependsOn (value: unknown): string[] {
  if (!Array.isArray(value)) invalid('dependsOn', 'must be an array of task ids')
  if (value.length > CREATE_LIMITS.dependsOnMax) invalid('dependsOn', `must list at most ${CREATE_LIMITS.dependsOnMax} task ids`)
  const ids: string[] = []
  for (let index = 0; index < value.length; index++) {
    const id: unknown = value[index]
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      invalid(`dependsOn[${index}]`, `must be a task id: 1-${CREATE_LIMITS.idLengthMax} characters of A-Z a-z 0-9 _ . : @ -`)
    }
    if (!ids.includes(id)) ids.push(id) // a repeated parent is the same dependency
  }
  return ids
}

const BACKOFF_STRING = /^(fixed|exp|exponential):([^:]+)(?::([^:]+))?$/
const BACKOFF_HINT = 'must be "fixed:D", "exp:D", "exp:D:maxD" or { type: "fixed" | "exponential", delay, maxDelay? }'

function checkBackoff (value: unknown): Backoff {
  if (typeof value === 'string') {
    const match = value.length <= 64 ? BACKOFF_STRING.exec(value) : null
    if (match === null) invalid('backoff', BACKOFF_HINT)
    if (match[1] === 'fixed' && match[3] !== undefined) invalid('backoff', 'fixed backoff takes one delay: "fixed:D"')
    return makeBackoff(match[1] === 'fixed' ? 'fixed' : 'exponential', match[2], match[3], 'backoff', 'backoff')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid('backoff', BACKOFF_HINT)
  const fields = value as Record<string, unknown>
  rejectUnknownFields(fields, BACKOFF_FIELDS, 'backoff.')
  const kind = fields.type
  if (kind !== 'fixed' && kind !== 'exponential' && kind !== 'exp') invalid('backoff.type', 'must be "fixed" or "exponential"')
  if (!present(fields.delay)) invalid('backoff.delay', `required, ${DURATION_HINT}`)
  return makeBackoff(kind === 'fixed' ? 'fixed' : 'exponential', fields.delay, present(fields.maxDelay) ? fields.maxDelay : undefined, 'backoff.delay', 'backoff.maxDelay')
}

function makeBackoff (kind: Backoff['kind'], delay: unknown, maxDelay: unknown, delayField: string, maxField: string): Backoff {
  const delayMs = duration(delay, delayField, 0, CREATE_LIMITS.backoffMsMax)
  if (kind === 'fixed') {
    // A record's own backoff ({ type: 'fixed', delay, maxDelay }) round-trips, so maxDelay
    // is accepted here and has no effect.
    if (maxDelay !== undefined) duration(maxDelay, maxField, 0, CREATE_LIMITS.backoffMsMax)
    return { kind, delayMs, delayMsMax: delayMs }
  }
  if (maxDelay === undefined) return { kind, delayMs, delayMsMax: Math.max(delayMs, DEFAULT_BACKOFF.delayMsMax) }
  const delayMsMax = duration(maxDelay, maxField, 0, CREATE_LIMITS.backoffMsMax)
  if (delayMsMax < delayMs) invalid(maxField, 'must be at least the delay')
  return { kind, delayMs, delayMsMax }
}
