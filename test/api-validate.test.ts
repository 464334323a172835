// api-validate.test.ts: the create-body validator and durations, field by field, plus a
// seeded junk generator that must never make the validator throw.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { formatDurationMs, parseDurationMs } from '../src/core/duration.js'
import { DEFAULT_BACKOFF, validateBatchBody, validateCreateBody, type CreateValidation } from '../src/api/validate.js'
import type { TaskSpec } from '../src/core/types.js'

const limits = { payloadBytesMax: 1024 }

function accept (body: unknown, nowMs?: number): TaskSpec {
  const result = validateCreateBody(body, limits, nowMs)
  if (!result.ok) assert.unreachable(`rejected ${JSON.stringify(body)}: ${result.error.message}`)
  return (result as { ok: true, spec: TaskSpec }).spec
}

function reject (body: unknown, field: string, code = 'invalid_input', nowMs?: number): string {
  const result = validateCreateBody(body, limits, nowMs)
  if (result.ok) assert.unreachable(`accepted ${JSON.stringify(body)}`)
  const { error } = result as { ok: false, error: { code: string, message: string } }
  assert.is(error.code, code, error.message)
  assert.ok(error.message.startsWith(field + ':'), `message "${error.message}" should name ${field}`)
  return error.message
}

test('durations parse numbers and unit strings', () => {
  assert.is(parseDurationMs(0), 0)
  assert.is(parseDurationMs(1500), 1500)
  assert.is(parseDurationMs('250ms'), 250)
  assert.is(parseDurationMs('5s'), 5000)
  assert.is(parseDurationMs('1.5s'), 1500)
  assert.is(parseDurationMs('2m'), 120_000)
  assert.is(parseDurationMs('1h'), 3_600_000)
  assert.is(parseDurationMs('1d'), 86_400_000)
  assert.is(parseDurationMs('250'), 250)
  for (const bad of [-1, NaN, Infinity, '', 's', '-5s', '5 s', ' 5s', '5sec', '1e3ms', '0x10', '5S', null, undefined, {}, [], true, '1.s', 1e300]) {
    assert.is(parseDurationMs(bad), null, `${String(bad)} is not a duration`)
  }
})

test('durations format for messages', () => {
  assert.is(formatDurationMs(250), '250ms')
  assert.is(formatDurationMs(1500), '1.5s')
  assert.is(formatDurationMs(60_000), '1m')
  assert.is(formatDurationMs(90 * 60_000), '1.5h')
  assert.is(formatDurationMs(7 * 86_400_000), '7d')
})

test('a minimal body gets the defaults', () => {
  const spec = accept({ type: 'resize' })
  assert.equal(spec, {
    type: 'resize', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 1,
    backoff: DEFAULT_BACKOFF, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null
  })
})

test('a full body is carried over', () => {
  const spec = accept({
    type: 'img.resize:v2', payload: { src: 'a.png', sizes: [1, 2] }, priority: -5, delay: '1.5s',
    maxAttempts: 3, backoff: 'exp:200ms:10s', timeout: '30s', idempotencyKey: 'k-1', dependsOn: ['a', 'b@123', 'a']
  })
  assert.equal(spec.payload, { src: 'a.png', sizes: [1, 2] })
  assert.is(spec.priority, -5)
  assert.is(spec.delayMs, 1500)
  assert.is(spec.runAtMs, null)
  assert.is(spec.maxAttempts, 3)
  assert.equal(spec.backoff, { kind: 'exponential', delayMs: 200, delayMsMax: 10_000 })
  assert.is(spec.timeoutMs, 30_000)
  assert.is(spec.idempotencyKey, 'k-1')
  assert.equal(spec.dependsOn, ['a', 'b@123'])
})

test('the body must be an object', () => {
  for (const body of [null, undefined, 'x', 3, [], [{ type: 'a' }], true]) reject(body, 'body')
})

test('unknown fields are named', () => {
  const message = reject({ type: 'a', prioritee: 1 }, 'prioritee')
  assert.match(message, /unknown field/)
  reject({ type: 'a', __proto__x: 1 }, '__proto__x')
  reject(JSON.parse('{"type":"a","__proto__":{"x":1}}'), '__proto__')
})

test('type', () => {
  reject({}, 'type')
  reject({ type: '' }, 'type')
  reject({ type: 'a b' }, 'type')
  reject({ type: 'x'.repeat(65) }, 'type')
  reject({ type: 5 }, 'type')
  accept({ type: 'x'.repeat(64) })
  accept({ type: 'A-z_0.9:x' })
})

test('payload: any JSON up to the limit, then too_large', () => {
  assert.is(accept({ type: 'a', payload: 'text' }).payload, 'text')
  assert.is(accept({ type: 'a', payload: 0 }).payload, 0)
  assert.equal(accept({ type: 'a', payload: [1, { b: null }] }).payload, [1, { b: null }])
  accept({ type: 'a', payload: 'x'.repeat(1022) }) // 1024 bytes of JSON with the quotes
  const message = reject({ type: 'a', payload: 'x'.repeat(1023) }, 'payload', 'too_large')
  assert.match(message, /1025 bytes/)
  reject({ type: 'a', payload: 'é'.repeat(600) }, 'payload', 'too_large') // bytes, not characters
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  reject({ type: 'a', payload: cyclic }, 'payload')
  reject({ type: 'a', payload: 10n }, 'payload')
  reject({ type: 'a', payload: () => 1 }, 'payload')
})

test('priority', () => {
  assert.is(accept({ type: 'a', priority: 1000 }).priority, 1000)
  assert.is(accept({ type: 'a', priority: -1000 }).priority, -1000)
  assert.is(accept({ type: 'a', priority: null }).priority, 0)
  for (const bad of [1001, -1001, 1.5, '5', NaN, true]) {
    assert.is(reject({ type: 'a', priority: bad }, 'priority'), 'priority: must be an integer between -1000 and 1000')
  }
})

test('delay and runAt', () => {
  assert.is(accept({ type: 'a', delay: 250 }).delayMs, 250)
  assert.is(accept({ type: 'a', delay: '2m' }).delayMs, 120_000)
  reject({ type: 'a', delay: '-1s' }, 'delay')
  reject({ type: 'a', delay: 'soon' }, 'delay')
  reject({ type: 'a', delay: '99999d' }, 'delay')
  assert.is(accept({ type: 'a', runAt: '2030-01-31T12:00:00Z' }).runAtMs, Date.UTC(2030, 0, 31, 12))
  assert.is(accept({ type: 'a', runAt: '2030-01-31T12:00:00.250+02:00' }).runAtMs, Date.UTC(2030, 0, 31, 10, 0, 0, 250))
  reject({ type: 'a', runAt: 'tomorrow' }, 'runAt')
  reject({ type: 'a', runAt: '2030-02-31T99:00:00Z' }, 'runAt')
  reject({ type: 'a', runAt: 1893456000000 }, 'runAt')
  reject({ type: 'a', delay: '1s', runAt: '2030-01-31T12:00:00Z' }, 'delay')
  const nowMs = Date.UTC(2025, 0, 1)
  accept({ type: 'a', runAt: '2030-01-01T00:00:00Z' }, nowMs)
  reject({ type: 'a', runAt: '2099-01-01T00:00:00Z' }, 'runAt', 'invalid_input', nowMs)
})

test('schedules are refused for now', () => {
  assert.is(reject({ type: 'a', cron: '* * * * *' }, 'cron'), 'cron: schedules (cron/every) are not supported yet')
  reject({ type: 'a', every: '5s' }, 'every')
})

test('maxAttempts', () => {
  assert.is(accept({ type: 'a', maxAttempts: 100 }).maxAttempts, 100)
  for (const bad of [0, 101, 2.5, '3']) reject({ type: 'a', maxAttempts: bad }, 'maxAttempts')
})

test('backoff strings', () => {
  assert.equal(accept({ type: 'a', backoff: 'fixed:200ms' }).backoff, { kind: 'fixed', delayMs: 200, delayMsMax: 200 })
  assert.equal(accept({ type: 'a', backoff: 'exp:1s' }).backoff, { kind: 'exponential', delayMs: 1000, delayMsMax: 60_000 })
  assert.equal(accept({ type: 'a', backoff: 'exp:2m' }).backoff, { kind: 'exponential', delayMs: 120_000, delayMsMax: 120_000 })
  assert.equal(accept({ type: 'a', backoff: 'exp:1s:1m' }).backoff, { kind: 'exponential', delayMs: 1000, delayMsMax: 60_000 })
  for (const bad of ['fixed', 'fixed:', 'fixed:1s:2s', 'linear:1s', 'exp:1s:2s:3s', 'exp:soon', '', 'x'.repeat(100)]) {
    reject({ type: 'a', backoff: bad }, 'backoff')
  }
  reject({ type: 'a', backoff: 'exp:10s:1s' }, 'backoff')
  reject({ type: 'a', backoff: 'fixed:30d' }, 'backoff')
})

test('backoff objects', () => {
  assert.equal(accept({ type: 'a', backoff: { type: 'fixed', delay: 500 } }).backoff, { kind: 'fixed', delayMs: 500, delayMsMax: 500 })
  assert.equal(accept({ type: 'a', backoff: { type: 'exponential', delay: '1s', maxDelay: '5m' } }).backoff, { kind: 'exponential', delayMs: 1000, delayMsMax: 300_000 })
  // A record's own backoff round-trips.
  assert.equal(accept({ type: 'a', backoff: { type: 'fixed', delay: 500, maxDelay: 500 } }).backoff, { kind: 'fixed', delayMs: 500, delayMsMax: 500 })
  reject({ type: 'a', backoff: { type: 'linear', delay: 1 } }, 'backoff.type')
  reject({ type: 'a', backoff: { type: 'fixed' } }, 'backoff.delay')
  reject({ type: 'a', backoff: { type: 'fixed', delay: 'x' } }, 'backoff.delay')
  reject({ type: 'a', backoff: { type: 'exponential', delay: '2s', maxDelay: '1s' } }, 'backoff.maxDelay')
  reject({ type: 'a', backoff: { type: 'fixed', delay: 1, jitter: true } }, 'backoff.jitter')
  reject({ type: 'a', backoff: [1] }, 'backoff')
  reject({ type: 'a', backoff: 5 }, 'backoff')
})

test('timeout', () => {
  assert.is(accept({ type: 'a', timeout: '10s' }).timeoutMs, 10_000)
  assert.is(accept({ type: 'a', timeout: 1 }).timeoutMs, 1)
  reject({ type: 'a', timeout: 0 }, 'timeout')
  reject({ type: 'a', timeout: '0s' }, 'timeout')
  reject({ type: 'a', timeout: 'forever' }, 'timeout')
  reject({ type: 'a', timeout: '31d' }, 'timeout')
})

test('idempotencyKey', () => {
  assert.is(accept({ type: 'a', idempotencyKey: 'k'.repeat(256) }).idempotencyKey, 'k'.repeat(256))
  reject({ type: 'a', idempotencyKey: '' }, 'idempotencyKey')
  reject({ type: 'a', idempotencyKey: 'k'.repeat(257) }, 'idempotencyKey')
  reject({ type: 'a', idempotencyKey: 7 }, 'idempotencyKey')
})

test('dependsOn', () => {
  assert.equal(accept({ type: 'a', dependsOn: [] }).dependsOn, [])
  accept({ type: 'a', dependsOn: Array.from({ length: 100 }, (_, index) => `t${index}`) })
  reject({ type: 'a', dependsOn: Array.from({ length: 101 }, (_, index) => `t${index}`) }, 'dependsOn')
  reject({ type: 'a', dependsOn: 'a' }, 'dependsOn')
  reject({ type: 'a', dependsOn: ['ok', 'not ok'] }, 'dependsOn[1]')
  reject({ type: 'a', dependsOn: [''] }, 'dependsOn[0]')
  reject({ type: 'a', dependsOn: ['x'.repeat(129)] }, 'dependsOn[0]')
  reject({ type: 'a', dependsOn: [3] }, 'dependsOn[0]')
})

test('batch: envelope errors fail whole, item errors stay per item in order', () => {
  const batchLimits = { ...limits, batchMax: 3 }
  for (const body of [null, [], 'x', { tasks: 'no' }, {}]) {
    const result = validateBatchBody(body, batchLimits)
    assert.is(result.ok, false)
  }
  const unknown = validateBatchBody({ tasks: [], extra: 1 }, batchLimits)
  assert.ok(!unknown.ok && unknown.error.message.startsWith('extra:'))
  const big = validateBatchBody({ tasks: [{ type: 'a' }, { type: 'a' }, { type: 'a' }, { type: 'a' }] }, batchLimits)
  assert.ok(!big.ok && big.error.code === 'too_large' && big.error.message.startsWith('tasks:'))
  const mixed = validateBatchBody({ tasks: [{ type: 'a' }, { type: 'b', priority: 5000 }, { type: 'c' }] }, batchLimits)
  assert.ok(mixed.ok)
  const items = (mixed as { ok: true, items: CreateValidation[] }).items
  assert.equal(items.map(item => item.ok), [true, false, true])
  assert.is(items[2]!.ok && items[2]!.spec.type, 'c')
  assert.ok(!items[1]!.ok && items[1]!.error.message.startsWith('priority:'))
})

// ---- junk -----------------------------------------------------------------------------

function mulberry32 (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const FIELDS = ['type', 'payload', 'priority', 'delay', 'runAt', 'cron', 'every', 'maxAttempts', 'backoff', 'timeout', 'idempotencyKey', 'dependsOn', 'tasks', 'maxDelay', '__proto__', 'constructor']
const STRINGS = ['', 'a', '5s', '1.5m', 'exp:1s:1m', 'fixed:0', 'exp:2s:1s', '2030-01-01T00:00:00Z', '-1', 'NaN', '\u0000', '🚀', 'x'.repeat(300), 'fixed', 'exponential', 'toString', '__proto__']

function junk (random: () => number, depth: number): unknown {
  const pick = Math.floor(random() * 16)
  switch (pick) {
    case 0: return null
    case 1: return undefined
    case 2: return random() < 0.5
    case 3: return [0, -0, 1, -1, 1.5, 1000, 1001, -1001, 100, 101, NaN, Infinity, -Infinity, 2 ** 60, Number.MIN_VALUE][Math.floor(random() * 15)]
    case 4: return STRINGS[Math.floor(random() * STRINGS.length)]
    case 5: return BigInt(Math.floor(random() * 100))
    case 6: return Symbol('junk')
    case 7: return () => 1
    case 8: return new Date(random() * 1e13)
    case 9: {
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      return cyclic
    }
    case 10: return Object.create(null)
    default: {
      if (depth > 3) return 'deep'
      if (pick === 11) return Array.from({ length: Math.floor(random() * 4) }, () => junk(random, depth + 1))
      const object: Record<string, unknown> = {}
      const count = Math.floor(random() * 6)
      for (let index = 0; index < count; index++) {
        const key = random() < 0.85 ? FIELDS[Math.floor(random() * FIELDS.length)]! : String(Math.floor(random() * 1000))
        Object.defineProperty(object, key, { value: junk(random, depth + 1), enumerable: true, configurable: true, writable: true })
      }
      if (random() < 0.5) object.type = random() < 0.8 ? 'job' : junk(random, depth + 1)
      if (random() < 0.05) Object.defineProperty(object, 'priority', { enumerable: true, get () { throw new Error('boom') } })
      return object
    }
  }
}

test('random junk never throws and always answers a named field', () => {
  const seed = Number(process.env.SEED ?? 20240601)
  const random = mulberry32(seed)
  let accepted = 0
  for (let round = 0; round < 20_000; round++) {
    const body = junk(random, 0)
    let result: CreateValidation
    try {
      result = validateCreateBody(body, limits, 1_700_000_000_000)
      validateBatchBody({ tasks: [body, body] }, { ...limits, batchMax: 10 })
      validateBatchBody(body, { ...limits, batchMax: 10 })
    } catch (error) {
      assert.unreachable(`seed ${seed} round ${round} threw ${String(error)}; replay with SEED=${seed}`)
      return
    }
    if (result.ok) {
      accepted++
      assert.type(result.spec.type, 'string')
    } else {
      assert.match(result.error.message, /^[^\s:]+: /)
    }
  }
  assert.ok(accepted > 0, 'the generator should produce some valid bodies')
})

test.run()
