// node-scheduling.test.ts: the scheduling routes and library calls against one real node
// in-process (core, level, HTTP): commands and their errors, schedules, progress, waiting,
// idempotency, per-type limits and retention. No fixed sleeps: every wait polls.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startNode, TaskRejectedError } from '../src/index.js'
import type { HandlerContext, RunningNode } from '../src/index.js'
import { rawRequest, tempDir, until } from './support/processes.js'

let dir = ''
let node: RunningNode
/** Runs of `hold` in progress: each resolves when the test releases it (or its signal aborts). */
const held = new Map<string, { release: () => void, signal: AbortSignal, ctx: HandlerContext }>()
let gpuRunning = 0
let gpuRunningMax = 0

const handlers = {
  noop: async () => null,
  fail: async () => { throw new Error('failed on purpose') },
  hold: async (_payload: unknown, ctx: HandlerContext) => await new Promise((resolve, reject) => {
    held.set(ctx.taskId, { release: () => resolve('released'), signal: ctx.signal, ctx })
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true })
  }),
  gpu: async (payload: { ms: number }, ctx: HandlerContext) => {
    gpuRunning++
    gpuRunningMax = Math.max(gpuRunningMax, gpuRunning)
    try {
      await new Promise(resolve => setTimeout(resolve, payload.ms))
    } finally {
      gpuRunning--
    }
    return ctx.attempt
  }
}

test.before(async () => {
  dir = await tempDir('node-scheduling')
  node = await startNode({
    dataDir: join(dir, 'node'), api: '127.0.0.1:0', logLevel: 'silent', handlers, capacity: 8,
    typeLimits: { gpu: 2 }, retentionMs: 3000
  })
})

test.after(async () => {
  await node.close()
  await rm(dir, { recursive: true, force: true })
})

const json = { 'content-type': 'application/json' }
const post = async (path: string, body?: unknown): Promise<{ status: number, body: any }> =>
  await rawRequest(`${node.apiUrl!}${path}`, { method: 'POST', headers: json, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
const get = async (path: string): Promise<{ status: number, body: any }> => await rawRequest(`${node.apiUrl!}${path}`, {})

test('commands over HTTP: 404 unknown, 409 when the state forbids it, retry of a dead task is a new generation', async () => {
  assert.is((await post('/v1/tasks/nope/cancel')).status, 404)
  assert.is((await post('/v1/tasks/nope/retry')).body.error.code, 'not_found')

  const created = await post('/v1/tasks', { type: 'fail', maxAttempts: 1 })
  assert.is(created.status, 201, JSON.stringify(created.body))
  const pause = await post(`/v1/tasks/${created.body.id as string}/pause`)
  assert.is(pause.status, 409, JSON.stringify(pause.body))
  assert.is(pause.body.error.code, 'conflict')
  const dead = await node.wait(created.body.id, 10_000)
  assert.is(dead?.state, 'dead')

  const retried = await post(`/v1/tasks/${created.body.id as string}/retry`)
  assert.is(retried.status, 200, JSON.stringify(retried.body))
  assert.is(retried.body.generation, 1)
  assert.ok(['pending', 'queued', 'running', 'retrying', 'dead'].includes(retried.body.state))
  const again = await node.wait(created.body.id, 10_000)
  assert.is(again?.state, 'dead')
  assert.is(again?.history.filter(entry => entry.state === 'running').length, 2, 'ran once per generation')

  const done = await node.submit({ type: 'noop' })
  await node.wait(done.id, 10_000)
  const conflict = await post(`/v1/tasks/${done.id}/retry`)
  assert.is(conflict.status, 409, JSON.stringify(conflict.body))
  let error: unknown
  try { await node.retry(done.id) } catch (caught) { error = caught }
  assert.instance(error, TaskRejectedError)
  assert.is((error as TaskRejectedError).code, 'conflict')
})

test('cancel of a running handler aborts its signal; progress shows in the record', async () => {
  const record = await node.submit({ type: 'hold' })
  await until('the run to start', () => held.get(record.id))
  const run = held.get(record.id)!
  run.ctx.progress(10)
  run.ctx.progress(20)
  run.ctx.progress(42) // throttled: the last value within 250 ms arrives on the trailing edge
  await until('progress 42 in the record', async () => (await get(`/v1/tasks/${record.id}`)).body.progress === 42 || undefined, 10_000)
  const cancelled = await post(`/v1/tasks/${record.id}/cancel`)
  assert.is(cancelled.status, 200, JSON.stringify(cancelled.body))
  assert.is(cancelled.body.state, 'cancelled')
  await until('the handler signal to abort', () => run.signal.aborted, 10_000)
  const final = await node.get(record.id)
  assert.is(final?.state, 'cancelled')
})

test('a schedule over HTTP: 201 with its schedule; pause, resume; occurrences; DELETE stops it', async () => {
  const created = await post('/v1/tasks', { type: 'noop', every: '1s', overlap: 'forbid' })
  assert.is(created.status, 201, JSON.stringify(created.body))
  const id = created.body.id as string
  assert.is(created.body.schedule.every, 1000)
  assert.is(created.body.schedule.everyText, '1s')
  assert.is(created.body.schedule.overlap, 'forbid')
  assert.is(created.body.schedule.catchUp, 'latest')
  assert.is(created.body.schedule.paused, false)
  await until('two occurrences', async () => (await get(`/v1/tasks?schedule=${id}`)).body.tasks.length >= 2 || undefined, 15_000)
  const occurrence = (await get(`/v1/tasks?schedule=${id}`)).body.tasks[0]
  assert.is(occurrence.scheduleId, id)
  assert.ok(occurrence.id.startsWith(`${id}@`), occurrence.id)

  const paused = await post(`/v1/tasks/${id}/pause`)
  assert.is(paused.status, 200, JSON.stringify(paused.body))
  assert.is(paused.body.schedule.paused, true)
  const resumed = await node.resume(id)
  assert.is(resumed.schedule?.paused, false)
  const deleted = await rawRequest(`${node.apiUrl!}/v1/tasks/${id}`, { method: 'DELETE' })
  assert.is(deleted.status, 200, JSON.stringify(deleted.body))
  assert.is(deleted.body.state, 'cancelled')
  const read = await get(`/v1/tasks/${id}`)
  assert.ok(read.body.schedule.fired >= 2)
  assert.type(read.body.schedule.firedUpTo, 'string')
})

test('a cron schedule with a time zone through the library; bad ones are refused', async () => {
  const schedule = await node.submit({ type: 'noop', schedule: { cron: '0 9 * * 1-5', timezone: 'Europe/Paris' } })
  assert.is(schedule.schedule?.cron, '0 9 * * 1-5')
  assert.is(schedule.schedule?.timezone, 'Europe/Paris')
  assert.is((await node.cancel(schedule.id)).state, 'cancelled')
  let error: unknown
  try { await node.submit({ type: 'noop', schedule: { cron: '0 9 * * *', timezone: 'Mars/Olympus' } }) } catch (caught) { error = caught }
  assert.instance(error, TaskRejectedError)
  assert.match((error as Error).message, /^timezone:/)
  const bad = await post('/v1/tasks', { type: 'noop', cron: 'every day' })
  assert.is(bad.status, 400)
  assert.match(bad.body.error.message, /^cron:/)
})

test('an idempotency key: 201 once, then 200 with the same task', async () => {
  const first = await post('/v1/tasks', { type: 'noop', idempotencyKey: 'once' })
  const second = await post('/v1/tasks', { type: 'noop', idempotencyKey: 'once' })
  assert.is(first.status, 201, JSON.stringify(first.body))
  assert.is(second.status, 200, JSON.stringify(second.body))
  assert.is(second.body.id, first.body.id)
  const batch = await post('/v1/tasks/batch', { tasks: [{ type: 'noop', idempotencyKey: 'once' }, { type: 'noop' }] })
  assert.equal(batch.body.tasks.map((item: any) => item.created), [false, true])
  assert.is(batch.body.tasks[0].id, first.body.id)
})

test('waiting says why a task does not run; --limit type=N bounds concurrent runs of that type', async () => {
  const orphan = await post('/v1/tasks', { type: 'nobody-runs-this' })
  const read = await until('a waiting reason', async () => {
    const answer = await get(`/v1/tasks/${orphan.body.id as string}`)
    return typeof answer.body.waiting === 'string' ? answer.body : undefined
  }, 10_000)
  assert.match(read.waiting, /nobody-runs-this/)

  gpuRunningMax = 0
  const many = await node.submitMany(Array.from({ length: 6 }, () => ({ type: 'gpu', payload: { ms: 150 } })))
  for (const outcome of many) if (outcome.ok) await node.wait(outcome.record.id, 20_000)
  assert.ok(many.every(outcome => outcome.ok))
  assert.ok(gpuRunningMax >= 1 && gpuRunningMax <= 2, `at most 2 gpu runs at once, saw ${gpuRunningMax}`)
})

test('retention: a finished task is removed from the store after the retention period', async () => {
  const record = await node.submit({ type: 'noop' })
  assert.is((await node.wait(record.id, 10_000))?.state, 'succeeded')
  await until('the finished task to be forgotten', async () => (await get(`/v1/tasks/${record.id}`)).status === 404 || undefined, 30_000)
  const metrics = await (await fetch(`${node.apiUrl!}/metrics`)).text()
  assert.ok(Number(/taskmesh_store_entries_deleted_total (\d+)/.exec(metrics)?.[1] ?? 0) > 0, 'deleted from level')
})

test.run()
