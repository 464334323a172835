// api.test.ts: the HTTP edge over real HTTP on 127.0.0.1:0, against a small in-memory
// NodeApi that exists only to exercise the edge (real nodes are tested elsewhere).
// No fixed sleeps: everything that waits polls a condition.
import { createHash } from 'node:crypto'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Client, TaskmeshError } from '../src/api/client.js'
import { dashboardHtml, isLoopbackHost, startHttpApi, type HttpApiOptions } from '../src/api/http.js'
import { FaultGate } from '../src/runtime/fault-gate.js'
import type { NodeApi, TaskEvent, TaskView } from '../src/api/node-api.js'
import type { PublicRecord } from '../src/api/present.js'
import type { ClusterView, CommandOutcome, ListPage, ListQuery, Rejection, SubmitOutcome, TaskCommand, TaskRecord, TaskSpec, TaskState } from '../src/core/types.js'
import { silentLogger } from '../src/runtime/log.js'

const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'dead', 'cancelled', 'aborted'])
const T0 = Date.UTC(2030, 0, 1)

/** An in-memory stand-in for a node: enough behaviour to check every route. */
class MemoryNode implements NodeApi {
  records = new Map<string, TaskRecord>()
  submitCalls: TaskSpec[][] = []
  drainCalls = 0
  isHealthy = true
  /** Set to make the next submit reject every spec with this. */
  rejectNext: Rejection | null = null
  /** Set to make the next call of any method throw this. */
  throwNext: unknown = null
  /** Set to make the next command reject with this. */
  rejectCommandNext: Rejection | null = null
  /** Why a task is not running yet, as the core would say on a read. */
  waiting = new Map<string, string>()
  commandCalls: Array<[string, TaskCommand]> = []
  listeners = new Set<(event: TaskEvent) => void>()
  #waiters = new Set<() => void>()
  #sequence = 0

  /** Long polls in progress. */
  get waiterCount (): number {
    return this.#waiters.size
  }
  #clockMs = T0

  async submit (specs: TaskSpec[]): Promise<SubmitOutcome[]> {
    this.#maybeThrow()
    this.submitCalls.push(specs)
    const rejection = this.rejectNext
    this.rejectNext = null
    return specs.map(spec => {
      if (rejection !== null) return { ok: false, error: rejection }
      if (spec.idempotencyKey !== null) {
        for (const record of this.records.values()) {
          if (record.idempotencyKey === spec.idempotencyKey) return { ok: true, created: false, record }
        }
      }
      const record = this.#create(spec)
      return { ok: true, created: true, record }
    })
  }

  #view (id: string): TaskView | null {
    const record = this.records.get(id)
    return record === undefined ? null : { record, waiting: this.waiting.get(id) ?? null }
  }

  async get (id: string): Promise<TaskView | null> {
    this.#maybeThrow()
    return this.#view(id)
  }

  async wait (id: string, timeoutMs: number): Promise<TaskView | null> {
    const record = this.records.get(id)
    if (record === undefined || TERMINAL.has(record.state)) return this.#view(id)
    return await new Promise(resolve => {
      const check = (): void => {
        const now = this.records.get(id)!
        if (TERMINAL.has(now.state)) done()
      }
      const done = (): void => {
        clearTimeout(timer)
        this.#waiters.delete(check)
        resolve(this.#view(id))
      }
      // Unreferenced: a long poll the test abandons must not keep the test process alive.
      const timer = setTimeout(done, timeoutMs)
      timer.unref()
      this.#waiters.add(check)
    })
  }

  async list (query: ListQuery): Promise<ListPage> {
    const all = [...this.records.values()]
      .filter(record => (query.state === null || record.state === query.state) && (query.type === null || record.type === query.type))
    const start = query.cursor === null ? 0 : all.findIndex(record => record.id === query.cursor) + 1
    const tasks = all.slice(start, start + query.limit)
    const next = start + query.limit < all.length ? tasks[tasks.length - 1]!.id : null
    return { tasks, next }
  }

  /** The core's rules, in short: enough to give every answer of the command routes. */
  async command (id: string, command: TaskCommand): Promise<CommandOutcome> {
    this.#maybeThrow()
    this.commandCalls.push([id, command])
    if (this.rejectCommandNext !== null) {
      const error = this.rejectCommandNext
      this.rejectCommandNext = null
      return { ok: false, error }
    }
    const record = this.records.get(id)
    if (record === undefined || record.state === 'aborted') return { ok: false, error: { code: 'not_found', message: `task ${id} not found` } }
    const conflict = (why: string): CommandOutcome => ({ ok: false, error: { code: 'conflict', message: `${command}: ${why}` } })
    switch (command) {
      case 'cancel':
        if (record.state === 'cancelled') return { ok: true, record }
        if (TERMINAL.has(record.state)) return conflict(`task ${id} already ${record.state}`)
        return { ok: true, record: this.transition(id, 'cancelled') }
      case 'retry':
        if (record.state !== 'dead' && record.state !== 'cancelled') return conflict(`task ${id} is ${record.state}, not dead or cancelled`)
        this.records.set(id, { ...record, generation: record.generation + 1, retryBase: record.attempt })
        return { ok: true, record: this.transition(id, 'queued') }
      case 'pause':
      case 'resume': {
        if (record.schedule === null) return conflict(`task ${id} is not a schedule`)
        const next = { ...record, schedule: { ...record.schedule, paused: command === 'pause', revision: record.schedule.revision + 1 } }
        this.records.set(id, next)
        return { ok: true, record: next }
      }
    }
  }

  cluster (): ClusterView {
    this.#maybeThrow()
    return {
      self: 'peer-a',
      replicas: 3,
      members: [{
        peerId: 'peer-a', addrs: ['/ip4/127.0.0.1/tcp/4001'], api: 'http://127.0.0.1:7070', state: 'alive',
        load: { running: 1, queued: 2, capacity: 8, durationMsEwma: 12 }, types: ['resize'], ringShare: 0.5, lastSeenMs: T0
      }]
    }
  }

  async drain (): Promise<void> {
    this.drainCalls++
    return await new Promise(() => {}) // never leaves during a test: the answer must not wait
  }

  metrics (): string {
    return '# TYPE taskmesh_tasks_total counter\ntaskmesh_tasks_total 3'
  }

  healthy (): boolean {
    return this.isHealthy
  }

  onEvent (listener: (event: TaskEvent) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Test helper: move a task to a state, emit its event, wake its waiters. */
  transition (id: string, state: TaskState | 'aborted'): TaskRecord {
    const record = this.records.get(id)!
    this.#clockMs += 1000
    const next: TaskRecord = {
      ...record,
      state,
      finishedAtMs: TERMINAL.has(state) ? this.#clockMs : record.finishedAtMs,
      history: state === 'aborted' ? record.history : [...record.history, { state, atMs: this.#clockMs, node: 'peer-a', attempt: record.attempt }]
    }
    this.records.set(id, next)
    if (state !== 'aborted') {
      for (const listener of this.listeners) listener({ id, state, attempt: record.attempt, atMs: this.#clockMs, node: 'peer-a' })
    }
    for (const waiter of [...this.#waiters]) waiter()
    return next
  }

  #create (spec: TaskSpec): TaskRecord {
    const id = `t${++this.#sequence}`
    this.#clockMs += 1000
    const record: TaskRecord = {
      id, type: spec.type, payload: spec.payload, state: 'queued', priority: spec.priority, attempt: 0,
      maxAttempts: spec.maxAttempts, backoff: spec.backoff, timeoutMs: spec.timeoutMs, epoch: 0, owner: null,
      replicas: ['peer-a', 'peer-b'], coordinator: 'peer-a', committed: true,
      runAtMs: spec.runAtMs ?? this.#clockMs + (spec.delayMs ?? 0), createdAtMs: this.#clockMs,
      startedAtMs: null, finishedAtMs: null, result: null, error: null, idempotencyKey: spec.idempotencyKey,
      dependsOn: spec.dependsOn, scheduleId: null,
      schedule: spec.schedule === null ? null : { ...spec.schedule, paused: false, firedUpToMs: 0, lastOccurrence: null, fired: 0, skipped: 0, revision: 0 },
      generation: 0, retryBase: 0, progress: null,
      history: [{ state: 'queued', atMs: this.#clockMs, node: 'peer-a', attempt: 0 }]
    } as TaskRecord
    this.records.set(id, record)
    for (const listener of this.listeners) listener({ id, state: 'queued', attempt: 0, atMs: this.#clockMs, node: 'peer-a' })
    return record
  }

  #maybeThrow (): void {
    if (this.throwNext === null) return
    const error = this.throwNext
    this.throwNext = null
    throw error
  }
}

interface Harness { url: string, node: MemoryNode, close (): Promise<void> }

async function serve (overrides: Partial<HttpApiOptions> = {}): Promise<Harness> {
  const node = new MemoryNode()
  const api = await startHttpApi({ host: '127.0.0.1', port: 0, token: null, node, payloadBytesMax: 1024, log: silentLogger, ...overrides })
  return { url: api.url, node, close: api.close }
}

async function withServer (overrides: Partial<HttpApiOptions>, body: (harness: Harness) => Promise<void>): Promise<void> {
  const harness = await serve(overrides)
  try {
    await body(harness)
  } finally {
    await harness.close()
  }
}

interface Answer { status: number, headers: Headers, body: any, text: string }

async function call (url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body)
    ;(init.headers as Record<string, string>)['content-type'] ??= 'application/json'
  }
  const response = await fetch(url + path, init)
  const text = await response.text()
  let parsed: unknown = null
  try { parsed = JSON.parse(text) } catch {}
  return { status: response.status, headers: response.headers, body: parsed, text }
}

function assertError (answer: Answer, status: number, code: string, messagePattern?: RegExp): void {
  assert.is(answer.status, status, answer.text)
  assert.equal(Object.keys(answer.body), ['error'])
  assert.equal(Object.keys(answer.body.error).sort(), ['code', 'message'])
  assert.is(answer.body.error.code, code)
  assert.type(answer.body.error.message, 'string')
  if (messagePattern !== undefined) assert.match(answer.body.error.message, messagePattern)
}

/** Polls a condition; no fixed sleeps. */
async function until (condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** A raw request (fetch cannot set Host, nor stream an endless body). */
function rawRequest (url: string, options: { method: string, path: string, headers?: Record<string, string | number>, body?: string }): Promise<{ status: number, headers: IncomingHttpHeaders, text: string }> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, method: options.method, path: options.path, headers: options.headers }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }))
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

// ---- create -----------------------------------------------------------------------------

test('POST /v1/tasks: 201 with the public record, 200 for a known idempotency key', async () => {
  await withServer({}, async ({ url }) => {
    const created = await call(url, 'POST', '/v1/tasks', { type: 'resize', payload: { src: 'a.png' }, priority: 5, timeout: '30s', backoff: 'fixed:200ms', idempotencyKey: 'k1' })
    assert.is(created.status, 201, created.text)
    assert.match(created.headers.get('content-type') ?? '', /^application\/json/)
    const record = created.body as PublicRecord
    assert.is(record.id, 't1')
    assert.is(record.type, 'resize')
    assert.equal(record.payload, { src: 'a.png' })
    assert.is(record.state, 'queued')
    assert.is(record.priority, 5)
    assert.is(record.timeout, 30_000)
    assert.equal(record.backoff, { type: 'fixed', delay: 200, maxDelay: 200 })
    assert.is(record.idempotencyKey, 'k1')
    assert.is(record.epoch, 0)
    assert.is(record.createdAt, new Date(T0 + 1000).toISOString())
    assert.is(record.startedAt, null)
    assert.is(record.finishedAt, null)
    assert.equal(record.history, [{ state: 'queued', at: new Date(T0 + 1000).toISOString(), node: 'peer-a', attempt: 0 }])
    assert.not.ok('scheduleId' in record)
    assert.not.ok('dependsOn' in record)
    assert.not.ok('coordinator' in record)

    const again = await call(url, 'POST', '/v1/tasks', { type: 'resize', idempotencyKey: 'k1' })
    assert.is(again.status, 200)
    assert.is(again.body.id, 't1')

    const plain = await call(url, 'POST', '/v1/tasks', { type: 'resize' })
    assert.is(plain.status, 201)
    assert.not.ok('idempotencyKey' in plain.body)
  })
})

test('POST /v1/tasks: invalid input is 400 naming the field; node rejections keep their status', async () => {
  await withServer({}, async ({ url, node }) => {
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a', priority: 5000 }), 400, 'invalid_input', /^priority: must be an integer between -1000 and 1000$/)
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a', colour: 'red' }), 400, 'invalid_input', /^colour: unknown field/)
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a', cron: '61 * * * *' }), 400, 'invalid_input', /^cron: .*minute/)
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a', cron: '0 9 * * *', timezone: 'Mars/Olympus' }), 400, 'invalid_input', /^timezone:/)
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a', cron: '* * * * *', every: '1m' }), 400, 'invalid_input', /^cron: give either/)
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a', payload: 'x'.repeat(2000) }), 413, 'too_large', /^payload:/)
    assert.is(node.submitCalls.length, 0)

    node.rejectNext = { code: 'no_quorum', message: 'no write quorum (1 of 2)' }
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a' }), 503, 'no_quorum', /quorum/)
    node.rejectNext = { code: 'exec_disabled', message: 'type: shell needs --allow-exec' }
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'shell' }), 400, 'exec_disabled')
    node.rejectNext = { code: 'rate_limited', message: 'queue full' }
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a' }), 429, 'rate_limited')
    node.rejectNext = { code: 'shutting_down', message: 'draining' }
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a' }), 503, 'shutting_down')
  })
})

test('POST bodies: malformed JSON, wrong content-type and a missing body are 400', async () => {
  await withServer({}, async ({ url }) => {
    assertError(await call(url, 'POST', '/v1/tasks', '{"type": "a",'), 400, 'invalid_input', /^body: malformed JSON/)
    assertError(await call(url, 'POST', '/v1/tasks', '{"type":"a"}', { 'content-type': 'text/plain' }), 400, 'invalid_input', /^content-type:/)
    assertError(await call(url, 'POST', '/v1/tasks', 'type=a', { 'content-type': 'application/x-www-form-urlencoded' }), 400, 'invalid_input', /^content-type:/)
    assertError(await call(url, 'POST', '/v1/tasks'), 400, 'invalid_input', /^body: required/)
    assertError(await call(url, 'POST', '/v1/tasks', '[1,2]'), 400, 'invalid_input', /^body:/)
    const charset = await call(url, 'POST', '/v1/tasks', '{"type":"a"}', { 'content-type': 'application/json; charset=utf-8' })
    assert.is(charset.status, 201)
    // Routes that take no body accept an empty one.
    const created = await call(url, 'POST', '/v1/tasks', { type: 'a' })
    assert.is((await call(url, 'POST', `/v1/tasks/${created.body.id as string}/cancel`)).status, 200)
  })
})

test('413: a declared or streamed body over the limit is cut off, and the server keeps serving', async () => {
  await withServer({}, async ({ url }) => {
    const declared = await rawRequest(url, {
      method: 'POST', path: '/v1/tasks', headers: { 'content-type': 'application/json', 'content-length': 10_000_000 }
    })
    assert.is(declared.status, 413)
    assert.is(JSON.parse(declared.text).error.code, 'too_large')

    // A chunked body with no declared length: keep writing until the server answers.
    const { hostname, port } = new URL(url)
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    const streamed = await new Promise<{ status: number, code: string, writtenBytes: number }>((resolve, reject) => {
      let writtenBytes = 0
      let answered = false
      const req = httpRequest({ host: hostname, port, method: 'POST', path: '/v1/tasks', headers: { 'content-type': 'application/json' } }, res => {
        answered = true
        let text = ''
        res.setEncoding('utf8')
        res.on('data', part => { text += part })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: JSON.parse(text).error.code, writtenBytes }))
        res.on('error', () => {})
      })
      req.on('error', error => { if (!answered) reject(error) })
      const pump = (): void => {
        while (!answered && writtenBytes < 256 * 1024 * 1024) {
          writtenBytes += chunk.length
          if (!req.write(chunk)) {
            req.once('drain', pump)
            return
          }
        }
      }
      req.write('{"type":"a","payload":"')
      pump()
    })
    assert.is(streamed.status, 413)
    assert.is(streamed.code, 'too_large')
    assert.ok(streamed.writtenBytes < 64 * 1024 * 1024, `server read ${streamed.writtenBytes} bytes before answering`)
    if (process.env.DEBUG_API_TEST !== undefined) console.log('413 after', streamed.writtenBytes, 'bytes written')

    const after = await call(url, 'POST', '/v1/tasks', { type: 'a' })
    assert.is(after.status, 201)
  })
})

// ---- batch ------------------------------------------------------------------------------

test('POST /v1/tasks/batch: order kept, errors per item, one submit for all valid specs', async () => {
  await withServer({}, async ({ url, node }) => {
    const answer = await call(url, 'POST', '/v1/tasks/batch', {
      tasks: [{ type: 'a' }, { type: 'b', priority: 'high' }, { type: 'c', idempotencyKey: 'x' }, { nope: 1 }, { type: 'e' }]
    })
    assert.is(answer.status, 200, answer.text)
    const tasks = answer.body.tasks as Array<{ type?: string, created?: boolean, error?: { code: string, message: string } }>
    assert.is(tasks.length, 5)
    assert.is(tasks[0]!.type, 'a')
    assert.is(tasks[0]!.created, true)
    assert.is(tasks[1]!.error!.code, 'invalid_input')
    assert.match(tasks[1]!.error!.message, /^priority:/)
    assert.is(tasks[2]!.type, 'c')
    assert.match(tasks[3]!.error!.message, /^nope: unknown field/)
    assert.is(tasks[4]!.type, 'e')
    assert.is(node.submitCalls.length, 1)
    assert.equal(node.submitCalls[0]!.map(spec => spec.type), ['a', 'c', 'e'])
    const again = await call(url, 'POST', '/v1/tasks/batch', { tasks: [{ type: 'c', idempotencyKey: 'x' }, { type: 'f' }] })
    assert.equal(again.body.tasks.map((item: any) => [item.id, item.created]), [[tasks[2]!.type === 'c' ? 't2' : '?', false], ['t4', true]], 'a known key is the existing task, created: false')

    node.rejectNext = { code: 'no_quorum', message: 'no quorum' }
    const rejected = await call(url, 'POST', '/v1/tasks/batch', { tasks: [{ type: 'a' }, { type: 'b' }] })
    assert.is(rejected.status, 200)
    assert.equal(rejected.body.tasks.map((item: any) => item.error.code), ['no_quorum', 'no_quorum'])

    assertError(await call(url, 'POST', '/v1/tasks/batch', { tasks: 'all' }), 400, 'invalid_input', /^tasks:/)
    assertError(await call(url, 'POST', '/v1/tasks/batch', [{ type: 'a' }]), 400, 'invalid_input', /^body:/)
    const calls = node.submitCalls.length
    const empty = await call(url, 'POST', '/v1/tasks/batch', { tasks: [] })
    assert.equal(empty.body, { tasks: [] })
    assert.is(node.submitCalls.length, calls, 'an empty batch submits nothing')
  })
})

test('POST /v1/tasks/batch: batchMax and the batch body limit', async () => {
  await withServer({ batchMax: 2, batchBodyBytesMax: 10_000 }, async ({ url }) => {
    assertError(await call(url, 'POST', '/v1/tasks/batch', { tasks: [{ type: 'a' }, { type: 'a' }, { type: 'a' }] }), 413, 'too_large', /^tasks:/)
    assertError(await call(url, 'POST', '/v1/tasks/batch', { tasks: [{ type: 'a', payload: 'x'.repeat(20_000) }] }), 413, 'too_large', /^body:/)
  })
})

// ---- read, list, cancel, retry ------------------------------------------------------------

test('GET /v1/tasks/:id: record, 404 for unknown and aborted, 400 for a malformed id', async () => {
  await withServer({}, async ({ url, node }) => {
    const created = await call(url, 'POST', '/v1/tasks', { type: 'a', dependsOn: ['p1'] })
    const got = await call(url, 'GET', '/v1/tasks/t1')
    assert.is(got.status, 200)
    assert.equal(got.body, created.body)
    assert.equal(got.body.dependsOn, ['p1'])
    assertError(await call(url, 'GET', '/v1/tasks/nope'), 404, 'not_found', /nope/)
    await call(url, 'POST', '/v1/tasks', { type: 'a' })
    node.transition('t2', 'aborted')
    assertError(await call(url, 'GET', '/v1/tasks/t2'), 404, 'not_found')
    assertError(await call(url, 'GET', '/v1/tasks/t2?wait=1s'), 404, 'not_found')
    assertError(await call(url, 'POST', '/v1/tasks/t2/cancel'), 404, 'not_found')
    const list = await call(url, 'GET', '/v1/tasks')
    assert.equal(list.body.tasks.map((task: PublicRecord) => task.id), ['t1'], 'aborted records are never listed')
    assertError(await call(url, 'GET', '/v1/tasks/bad%20id'), 400, 'invalid_input', /^id:/)
    assertError(await call(url, 'GET', '/v1/tasks/%E0%A4%A'), 400, 'invalid_input', /^id:/)
    assertError(await call(url, 'GET', '/v1/tasks/t1?colour=red'), 400, 'invalid_input', /^colour:/)
    assertError(await call(url, 'GET', '/v1/tasks/t1?wait=soon'), 400, 'invalid_input', /^wait:/)
  })
})

test('GET /v1/tasks/:id?wait= long-polls until terminal', async () => {
  await withServer({}, async ({ url, node }) => {
    await call(url, 'POST', '/v1/tasks', { type: 'a' })
    const waiting = call(url, 'GET', '/v1/tasks/t1?wait=30s')
    let settled = false
    void waiting.then(() => { settled = true })
    await until(() => node.waiterCount === 1, 'the long poll to reach the node')
    assert.is(settled, false)
    node.transition('t1', 'succeeded')
    const answer = await waiting
    assert.is(answer.status, 200)
    assert.is(answer.body.state, 'succeeded')
    assert.type(answer.body.finishedAt, 'string')
  })
})

test('GET /v1/tasks: query validated into a ListQuery, pages with next', async () => {
  await withServer({}, async ({ url, node }) => {
    for (let index = 0; index < 5; index++) await call(url, 'POST', '/v1/tasks', { type: index % 2 === 0 ? 'even' : 'odd' })
    node.transition('t1', 'succeeded')
    const page = await call(url, 'GET', '/v1/tasks?limit=2')
    assert.equal(page.body.tasks.map((task: PublicRecord) => task.id), ['t1', 't2'])
    assert.is(page.body.next, 't2')
    const rest = await call(url, 'GET', `/v1/tasks?limit=10&cursor=${page.body.next as string}`)
    assert.equal(rest.body.tasks.map((task: PublicRecord) => task.id), ['t3', 't4', 't5'])
    assert.is(rest.body.next, null)
    const even = await call(url, 'GET', '/v1/tasks?type=even&state=queued')
    assert.equal(even.body.tasks.map((task: PublicRecord) => task.id), ['t3', 't5'])
    for (const bad of ['limit=0', 'limit=1001', 'limit=abc', 'limit=1.5', 'state=aborted', 'state=done', 'type=a%20b', 'sort=asc', 'limit=1&limit=2']) {
      const answer = await call(url, 'GET', `/v1/tasks?${bad}`)
      assertError(answer, 400, 'invalid_input')
      assert.ok(answer.body.error.message.startsWith(bad.split('=')[0]! + ':'), answer.body.error.message)
    }
  })
})

test('cancel and retry answer the updated record; a retried task shows its generation', async () => {
  await withServer({}, async ({ url, node }) => {
    await call(url, 'POST', '/v1/tasks', { type: 'a' })
    const cancelled = await call(url, 'POST', '/v1/tasks/t1/cancel')
    assert.is(cancelled.status, 200)
    assert.is(cancelled.body.state, 'cancelled')
    assert.not.ok('generation' in cancelled.body)
    await call(url, 'POST', '/v1/tasks', { type: 'a' })
    node.transition('t2', 'dead')
    const retried = await call(url, 'POST', '/v1/tasks/t2/retry', {})
    assert.is(retried.status, 200)
    assert.is(retried.body.state, 'queued')
    assert.is(retried.body.generation, 1)
    assertError(await call(url, 'POST', '/v1/tasks/zzz/retry'), 404, 'not_found')
    assert.equal(node.commandCalls, [['t1', 'cancel'], ['t2', 'retry'], ['zzz', 'retry']])
  })
})

test('commands: 409 conflict when the state does not allow it, 503 without a quorum, 400 for a bad id, 405 for GET', async () => {
  await withServer({}, async ({ url, node }) => {
    await call(url, 'POST', '/v1/tasks', { type: 'a' })
    assertError(await call(url, 'POST', '/v1/tasks/t1/retry'), 409, 'conflict', /not dead or cancelled/)
    assertError(await call(url, 'POST', '/v1/tasks/t1/pause'), 409, 'conflict', /not a schedule/)
    assertError(await call(url, 'POST', '/v1/tasks/t1/resume'), 409, 'conflict', /not a schedule/)
    node.transition('t1', 'succeeded')
    assertError(await call(url, 'POST', '/v1/tasks/t1/cancel'), 409, 'conflict', /already succeeded/)
    node.rejectCommandNext = { code: 'no_quorum', message: 'cancel: no write quorum (1 of 3 replicas)' }
    assertError(await call(url, 'POST', '/v1/tasks/t1/cancel'), 503, 'no_quorum', /quorum/)
    assertError(await call(url, 'POST', '/v1/tasks/bad%20id/cancel'), 400, 'invalid_input', /^id:/)
    const wrong = await call(url, 'GET', '/v1/tasks/t1/pause')
    assertError(wrong, 405, 'method_not_allowed')
    assert.is(wrong.headers.get('allow'), 'POST')
    assertError(await call(url, 'POST', '/v1/tasks/t1/cancel', 'x'.repeat(100), { 'content-type': 'text/plain' }), 400, 'invalid_input', /^content-type:/)
  })
})

test('a schedule: created 201 with its schedule shown; pause, resume, DELETE; occurrences listed by ?schedule=', async () => {
  await withServer({}, async ({ url, node }) => {
    const created = await call(url, 'POST', '/v1/tasks', { type: 'report', every: '90s', catchUp: 'all', overlap: 'forbid' })
    assert.is(created.status, 201, created.text)
    assert.equal(created.body.schedule, {
      cron: null, every: 90_000, everyText: '1.5m', timezone: null, catchUp: 'all', overlap: 'forbid',
      paused: false, firedUpTo: null, lastOccurrence: null, fired: 0, skipped: 0
    })
    assert.equal(node.submitCalls[0]![0]!.schedule, { cron: null, timezone: null, everyMs: 90_000, catchUp: 'all', overlap: 'forbid' })
    const cron = await call(url, 'POST', '/v1/tasks', { type: 'report', cron: '0 9 * * 1-5', timezone: 'Europe/Paris' })
    assert.equal(cron.body.schedule.cron, '0 9 * * 1-5')
    assert.is(cron.body.schedule.timezone, 'Europe/Paris')
    assert.is(cron.body.schedule.every, null)
    assert.is(cron.body.schedule.catchUp, 'latest')

    const paused = await call(url, 'POST', '/v1/tasks/t1/pause')
    assert.is(paused.status, 200)
    assert.is(paused.body.schedule.paused, true)
    const resumed = await call(url, 'POST', '/v1/tasks/t1/resume', {})
    assert.is(resumed.body.schedule.paused, false)

    // The watermark and counters, as the core fills them in.
    const record = node.records.get('t1')!
    node.records.set('t1', { ...record, schedule: { ...record.schedule!, firedUpToMs: T0 + 90_000, lastOccurrence: `t1@${T0 + 90_000}`, fired: 3, skipped: 1 } })
    const read = await call(url, 'GET', '/v1/tasks/t1')
    assert.is(read.body.schedule.firedUpTo, new Date(T0 + 90_000).toISOString())
    assert.is(read.body.schedule.lastOccurrence, `t1@${T0 + 90_000}`)
    assert.is(read.body.schedule.fired, 3)
    assert.is(read.body.schedule.skipped, 1)

    const deleted = await call(url, 'DELETE', '/v1/tasks/t1')
    assert.is(deleted.status, 200)
    assert.is(deleted.body.state, 'cancelled')
    assert.equal(node.commandCalls.map(([, command]) => command), ['pause', 'resume', 'cancel'])
    assertError(await call(url, 'DELETE', '/v1/tasks/nope'), 404, 'not_found')

    const occurrences = await call(url, 'GET', '/v1/tasks?schedule=t1')
    assert.is(occurrences.status, 200)
    assertError(await call(url, 'GET', '/v1/tasks?schedule=a%20b'), 400, 'invalid_input', /^schedule:/)
  })
})

test('a record shows progress when reported and waiting while it cannot run; neither once finished', async () => {
  await withServer({}, async ({ url, node }) => {
    await call(url, 'POST', '/v1/tasks', { type: 'gpu' })
    let read = await call(url, 'GET', '/v1/tasks/t1')
    assert.not.ok('progress' in read.body)
    assert.not.ok('waiting' in read.body)
    assert.not.ok('schedule' in read.body)
    node.waiting.set('t1', 'no node can run type "gpu"')
    read = await call(url, 'GET', '/v1/tasks/t1')
    assert.is(read.body.waiting, 'no node can run type "gpu"')
    const waited = await call(url, 'GET', '/v1/tasks/t1?wait=10ms')
    assert.is(waited.body.waiting, 'no node can run type "gpu"', 'a long poll shows it too')
    node.records.set('t1', { ...node.records.get('t1')!, state: 'running', progress: 42.5 })
    read = await call(url, 'GET', '/v1/tasks/t1')
    assert.is(read.body.progress, 42.5)
    node.transition('t1', 'succeeded')
    read = await call(url, 'GET', '/v1/tasks/t1')
    assert.not.ok('waiting' in read.body, 'a finished task waits for nothing')
    assert.is(read.body.progress, 42.5)
  })
})

// ---- cluster, drain, health, metrics, dashboard -------------------------------------------

test('GET /v1/cluster, POST /v1/drain, GET /healthz, GET /metrics', async () => {
  await withServer({}, async ({ url, node }) => {
    const cluster = await call(url, 'GET', '/v1/cluster')
    assert.is(cluster.status, 200)
    assert.is(cluster.body.self, 'peer-a')
    assert.is(cluster.body.replicas, 3)
    const member = cluster.body.members[0]
    assert.equal(Object.keys(member).sort(), ['addrs', 'api', 'lastSeen', 'load', 'peerId', 'ringShare', 'state', 'types'])
    assert.is(member.lastSeen, new Date(T0).toISOString())

    const drain = await call(url, 'POST', '/v1/drain')
    assert.is(drain.status, 202)
    assert.is(node.drainCalls, 1)

    assert.equal((await call(url, 'GET', '/healthz')).body, { ok: true })
    node.isHealthy = false
    const unhealthy = await call(url, 'GET', '/healthz')
    assert.is(unhealthy.status, 503)
    assert.is(unhealthy.body.error.code, 'no_quorum')

    const metrics = await call(url, 'GET', '/metrics')
    assert.is(metrics.status, 200)
    assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/)
    assert.match(metrics.text, /^taskmesh_tasks_total 3$/m)
    assert.match(metrics.text, /^taskmesh_api_requests_total\{route="POST \/v1\/drain",status="202"\} 1$/m)
  })
})

test('GET /: a self-contained dashboard page', async () => {
  await withServer({ token: 'secret' }, async ({ url }) => {
    const page = await call(url, 'GET', '/')
    assert.is(page.status, 200)
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/)
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/)
    assert.is(page.text, dashboardHtml)
    assert.match(page.text, /sessionStorage/)
    assert.match(page.text, /\/v1\/cluster/)
    assert.not.match(page.text, /<script[^>]+src=|<link[^>]+href=|innerHTML/)
    // The inline script parses, and the CSP hashes allow exactly the inline script and style.
    const script = /<script>([\s\S]*)<\/script>/.exec(page.text)![1]!
    const style = /<style>([\s\S]*)<\/style>/.exec(page.text)![1]!
    assert.not.throws(() => new Function(script))
    const csp = page.headers.get('content-security-policy') ?? ''
    for (const inline of [script, style]) {
      assert.ok(csp.includes(`'sha256-${createHash('sha256').update(inline).digest('base64')}'`), 'CSP hash of an inline block')
    }
  })
})

test('unknown route 404, wrong method 405 with Allow', async () => {
  await withServer({}, async ({ url }) => {
    assertError(await call(url, 'GET', '/v2/tasks'), 404, 'not_found')
    assertError(await call(url, 'GET', '/v1/tasks/'), 404, 'not_found')
    const wrong = await call(url, 'PATCH', '/v1/tasks/t1')
    assertError(wrong, 405, 'method_not_allowed')
    assert.is(wrong.headers.get('allow'), 'GET, DELETE')
    assertError(await call(url, 'GET', '/v1/tasks/batch'), 405, 'method_not_allowed')
    assertError(await call(url, 'PUT', '/v1/tasks', { type: 'a' }), 405, 'method_not_allowed')
    assertError(await call(url, 'OPTIONS', '/v1/tasks'), 405, 'method_not_allowed')
  })
})

test('a handler that throws is a logged 500, and the server keeps serving', async () => {
  const logged: string[] = []
  const log = { ...silentLogger, error: (event: string) => { logged.push(event) } }
  await withServer({ log }, async ({ url, node }) => {
    node.throwNext = new Error('disk on fire')
    const answer = await call(url, 'GET', '/v1/cluster')
    assertError(answer, 500, 'internal')
    assert.not.match(answer.text, /disk on fire/)
    assert.equal(logged, ['api.handler_failed'])
    node.throwNext = Object.assign(new Error('no write quorum for cancel'), { code: 'no_quorum' })
    assertError(await call(url, 'GET', '/v1/tasks/t1'), 503, 'no_quorum', /cancel/)
    assert.is((await call(url, 'GET', '/v1/cluster')).status, 200)
  })
})

// ---- auth and listening ---------------------------------------------------------------------

test('a token is required and checked on every route but / and /healthz', async () => {
  await withServer({ token: 's3cret' }, async ({ url }) => {
    const none = await call(url, 'GET', '/v1/cluster')
    assertError(none, 401, 'unauthorized')
    assert.is(none.headers.get('www-authenticate'), 'Bearer')
    assertError(await call(url, 'GET', '/v1/cluster', undefined, { authorization: 'Bearer wrong' }), 401, 'unauthorized')
    assertError(await call(url, 'GET', '/v1/cluster', undefined, { authorization: 'Bearer s3cret-and-more' }), 401, 'unauthorized')
    assertError(await call(url, 'GET', '/v1/cluster', undefined, { authorization: 's3cret' }), 401, 'unauthorized')
    assertError(await call(url, 'POST', '/v1/tasks', { type: 'a' }), 401, 'unauthorized')
    assertError(await call(url, 'GET', '/metrics'), 401, 'unauthorized')
    assertError(await call(url, 'GET', '/nowhere'), 401, 'unauthorized')
    assert.is((await call(url, 'GET', '/v1/cluster', undefined, { authorization: 'Bearer s3cret' })).status, 200)
    assert.is((await call(url, 'GET', '/v1/cluster', undefined, { authorization: 'bearer s3cret' })).status, 200)
    assert.is((await call(url, 'GET', '/healthz')).status, 200)
    assert.is((await call(url, 'GET', '/')).status, 200)
  })
})

test('refuses to listen beyond loopback without a token', async () => {
  for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
    let message = ''
    try {
      const api = await startHttpApi({ host, port: 0, token: null, node: new MemoryNode(), payloadBytesMax: 1024, log: silentLogger })
      await api.close()
    } catch (error) {
      message = (error as Error).message
    }
    assert.match(message, /refusing to serve the HTTP API on .* without a token/, host)
  }
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(host), host)
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', 'localhost.example.com', '::ffff:10.0.0.1']) assert.not.ok(isLoopbackHost(host), host)
})

test('without a token, only loopback Host names are answered (DNS rebinding)', async () => {
  await withServer({}, async ({ url }) => {
    const rebound = await rawRequest(url, { method: 'GET', path: '/v1/cluster', headers: { host: 'evil.example:7070' } })
    assert.is(rebound.status, 401)
    const local = await rawRequest(url, { method: 'GET', path: '/v1/cluster', headers: { host: 'localhost:7070' } })
    assert.is(local.status, 200)
  })
})

// ---- events ---------------------------------------------------------------------------------

test('GET /v1/events: an SSE stream of task events; unsubscribed on close; capped', async () => {
  await withServer({ sseClientsMax: 1 }, async ({ url, node }) => {
    const { hostname, port } = new URL(url)
    let text = ''
    let contentType = ''
    const req = httpRequest({ host: hostname, port, method: 'GET', path: '/v1/events' }, res => {
      contentType = res.headers['content-type'] ?? ''
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('error', () => {})
    })
    req.on('error', () => {})
    req.end()
    await until(() => text.includes(': connected'), 'the stream to open')
    assert.match(contentType, /^text\/event-stream/)
    assert.is(node.listeners.size, 1)

    assertError(await call(url, 'GET', '/v1/events'), 429, 'rate_limited')

    await call(url, 'POST', '/v1/tasks', { type: 'a' })
    await until(() => text.includes('event: task'), 'an event')
    const data = /event: task\ndata: (.*)\n\n/.exec(text)
    assert.ok(data !== null)
    assert.equal(JSON.parse(data![1]!), { id: 't1', state: 'queued', at: new Date(T0 + 1000).toISOString(), node: 'peer-a', attempt: 0 })

    req.destroy()
    await until(() => node.listeners.size === 0, 'the subscriber to be removed')
    // The slot is free again.
    const again = httpRequest({ host: hostname, port, method: 'GET', path: '/v1/events' }, res => {
      assert.is(res.statusCode, 200)
      res.destroy()
    })
    again.on('error', () => {})
    again.end()
    await until(() => node.listeners.size === 1 || again.destroyed, 'a second subscriber')
  })
})

test('GET /v1/events: heartbeat comments keep the stream alive', async () => {
  await withServer({ sseHeartbeatMs: 10 }, async ({ url }) => {
    const { hostname, port } = new URL(url)
    let text = ''
    const req = httpRequest({ host: hostname, port, method: 'GET', path: '/v1/events' }, res => {
      res.setEncoding('utf8')
      res.on('data', chunk => { text += chunk })
      res.on('error', () => {})
    })
    req.on('error', () => {})
    req.end()
    await until(() => text.includes(': heartbeat'), 'a heartbeat')
    req.destroy()
  })
})

test('close() ends open streams and long polls', async () => {
  const harness = await serve()
  await call(harness.url, 'POST', '/v1/tasks', { type: 'a' })
  const { hostname, port } = new URL(harness.url)
  let ended = false
  const req = httpRequest({ host: hostname, port, method: 'GET', path: '/v1/events' }, res => {
    res.on('data', () => {})
    res.on('end', () => { ended = true })
    res.on('error', () => { ended = true })
  })
  req.on('error', () => { ended = true })
  req.end()
  await until(() => harness.node.listeners.size === 1, 'the stream to open')
  const polling = call(harness.url, 'GET', '/v1/tasks/t1?wait=5m').catch(() => null)
  await until(() => harness.node.waiterCount === 1, 'the long poll to reach the node')
  await harness.close()
  await until(() => ended, 'the stream to end')
  await polling
})

// ---- client -----------------------------------------------------------------------------------

test('Client: round trips every call', async () => {
  await withServer({ token: 'tok' }, async ({ url, node }) => {
    const client = new Client(url + '/', { token: 'tok' })
    const task = await client.submit({ type: 'resize', payload: { src: 'a.png' }, delay: '1s', backoff: { type: 'exponential', delay: '1s', maxDelay: '1m' } })
    assert.is(task.id, 't1')
    assert.equal(task.backoff, { type: 'exponential', delay: 1000, maxDelay: 60_000 })
    assert.equal(await client.get('t1'), task)

    const many = await client.submitMany([{ type: 'a' }, { type: 'b', maxAttempts: 0 }, { type: 'c' }])
    assert.is(many.length, 3)
    assert.is((many[0] as PublicRecord).type, 'a')
    assert.is((many[1] as { error: { code: string } }).error.code, 'invalid_input')
    assert.is((many[2] as PublicRecord).type, 'c')

    const listed = await client.list({ type: 'a', limit: 10 })
    assert.equal(listed.tasks.map(record => record.id), ['t2'])
    assert.is(listed.next, null)

    const waiting = client.wait('t1', 10_000)
    await until(() => node.waiterCount === 1, 'the long poll to reach the node')
    node.transition('t1', 'succeeded')
    assert.is((await waiting).state, 'succeeded')
    assert.is((await client.wait('t2', 1)).state, 'queued', 'a wait that times out returns the last record')

    assert.is((await client.cancel('t2')).state, 'cancelled')
    await call(url, 'POST', '/v1/tasks', { type: 'x' }, { authorization: 'Bearer tok' })
    node.transition('t4', 'dead')
    assert.is((await client.retry('t4')).state, 'queued')
    const schedule = await client.submit({ type: 'tick', every: '1m', overlap: 'forbid' })
    assert.is((await client.pause(schedule.id)).schedule?.paused, true)
    assert.is((await client.resume(schedule.id)).schedule?.paused, false)
    const conflict = await client.pause('t4').catch((error: unknown) => error) as TaskmeshError
    assert.is(conflict.code, 'conflict')
    assert.is(conflict.status, 409)
    assert.is((await client.cluster()).self, 'peer-a')
    await client.drain()
    assert.is(node.drainCalls, 1)
    assert.is(await client.health(), true)
    assert.match(await client.metrics(), /taskmesh_tasks_total 3/)
  })
})

test('Client: server errors become TaskmeshError with code and status', async () => {
  await withServer({ token: 'tok' }, async ({ url }) => {
    const client = new Client(url, { token: 'tok' })
    const notFound = await client.get('missing').catch((error: unknown) => error)
    assert.instance(notFound, TaskmeshError)
    assert.is((notFound as TaskmeshError).name, 'TaskmeshError')
    assert.is((notFound as TaskmeshError).code, 'not_found')
    assert.is((notFound as TaskmeshError).status, 404)
    const invalid = await client.submit({ type: 'a', priority: 1.5 }).catch((error: unknown) => error) as TaskmeshError
    assert.is(invalid.code, 'invalid_input')
    assert.match(invalid.message, /^priority:/)
    const anonymous = await new Client(url).cluster().catch((error: unknown) => error) as TaskmeshError
    assert.is(anonymous.code, 'unauthorized')
    assert.is(anonymous.status, 401)
  })
})

test('Client: an unreachable node is code unreachable, status 0, with the URL', async () => {
  const harness = await serve()
  const url = harness.url
  await harness.close()
  const client = new Client(url)
  const error = await client.get('t1').catch((failure: unknown) => failure) as TaskmeshError
  assert.instance(error, TaskmeshError)
  assert.is(error.code, 'unreachable')
  assert.is(error.status, 0)
  assert.ok(error.message.includes(url), error.message)
  assert.is(await client.health(), false)
  assert.throws(() => new Client('not a url'), (thrown: unknown) => thrown instanceof TaskmeshError)
})

test('POST /v1/debug/faults: 404 unless the node runs with --fault-injection; validated; sets the gate', async () => {
  await withServer({}, async ({ url }) => {
    assertError(await call(url, 'POST', '/v1/debug/faults', { block: [] }), 404, 'not_found', /--fault-injection/)
  })
  const gate = new FaultGate()
  await withServer({ faults: gate }, async ({ url }) => {
    assertError(await call(url, 'POST', '/v1/debug/faults', { block: 'peer' }), 400, 'invalid_input', /^block:/)
    assertError(await call(url, 'POST', '/v1/debug/faults', { lossRate: 2 }), 400, 'invalid_input', /^lossRate:/)
    assertError(await call(url, 'POST', '/v1/debug/faults', { delay: -1 }), 400, 'invalid_input', /^delay:/)
    assertError(await call(url, 'POST', '/v1/debug/faults', { drop: true }), 400, 'invalid_input', /^drop: unknown field/)
    const set = await call(url, 'POST', '/v1/debug/faults', { block: ['peer-a'], delay: 5 })
    assert.is(set.status, 200, set.text)
    assert.equal(set.body.block, ['peer-a'])
    assert.not.ok(gate.passes('peer-a'), 'a blocked peer is dropped')
    assert.ok(gate.passes('peer-b'))
    assert.is(gate.delayMs, 5)
    await call(url, 'POST', '/v1/debug/faults', {})
    assert.ok(gate.passes('peer-a'), 'an empty body heals')
  })
})

test.run()
