// http.ts: the HTTP edge of a node (contract.md "HTTP API"). It translates and decides
// nothing about tasks: requests are validated here, handed to NodeApi, and the answers are
// shaped by present.ts. Why node:http only: no dependency between a user and their node.
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { isIP } from 'node:net'
import { parseDurationMs } from '../core/duration.js'
import type { ErrorCode, ListQuery, Rejection, TaskCommand, TaskState } from '../core/types.js'
import type { Logger } from '../runtime/log.js'
import type { FaultConfig, FaultGate } from '../runtime/fault-gate.js'
import type { NodeApi, TaskView } from './node-api.js'
import { toClusterJson, toPublicRecord, toPublicTaskEvent } from './present.js'
import { ID_PATTERN, TYPE_PATTERN, validateBatchBody, validateCreateBody } from './validate.js'

export interface HttpApiOptions {
  host: string
  port: number
  /** Bearer token; null = no auth, allowed only on loopback. */
  token: string | null
  node: NodeApi
  payloadBytesMax: number
  /** Largest body of a single create; default payloadBytesMax * 2 + 64 KiB. */
  bodyBytesMax?: number
  /** Largest body of a batch create; default 64 MiB. */
  batchBodyBytesMax?: number
  /** Most create bodies per batch; default 10000. */
  batchMax?: number
  /** Most concurrent `GET /v1/events` subscribers; default 64. */
  sseClientsMax?: number
  /** Interval of the SSE heartbeat comment; default 15 s. */
  sseHeartbeatMs?: number
  /** The test-only network fault layer (--fault-injection); absent = POST /v1/debug/faults is 404. */
  faults?: FaultGate | null
  log: Logger
}

export interface HttpApi {
  url: string
  close (): Promise<void>
}

/** The one table from error code to HTTP status (style.md "Errors, two kinds"). */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode | 'method_not_allowed', number>> = {
  invalid_input: 400,
  exec_disabled: 400,
  unauthorized: 401,
  not_found: 404,
  conflict: 409,
  method_not_allowed: 405,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
  no_quorum: 503,
  shutting_down: 503
}

type ApiErrorCode = keyof typeof STATUS_BY_CODE

/** Limits of the HTTP edge. Why each: a client must not hold memory or sockets unbounded. */
export const HTTP_LIMITS = {
  /** Longest `?wait=` long poll; longer asks are cut to this. */
  waitMsMax: 5 * 60_000,
  batchMaxDefault: 10_000,
  batchBodyBytesMaxDefault: 64 * 1024 * 1024,
  /** Body of the POST routes that take none (cancel, retry, pause, resume, drain): read and ignored. */
  emptyBodyBytesMax: 64 * 1024,
  sseClientsMaxDefault: 64,
  sseHeartbeatMsDefault: 15_000,
  /** An SSE subscriber that falls this far behind is dropped. */
  sseBufferBytesMax: 1024 * 1024,
  listLimitMax: 1000,
  listLimitDefault: 100,
  cursorLengthMax: 256,
  connectionsMax: 1024,
  headersTimeoutMs: 15_000,
  /** Time to receive a whole request (a 64 MiB batch on a slow link); not the answer. */
  requestTimeoutMs: 120_000,
  keepAliveTimeoutMs: 5_000,
  /** How long close() lets in-flight requests finish before cutting them. */
  closeGraceMs: 1_000
} as const

const TASK_STATES: ReadonlySet<string> = new Set<TaskState>(['pending', 'queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'])

class ApiError extends Error {
  constructor (readonly code: ApiErrorCode, message: string) {
    super(message)
  }
}

/** The client went away while we read its body: nothing to answer. */
class ClientGone extends Error {}

interface Context {
  req: IncomingMessage
  res: ServerResponse
  params: string[]
  query: URLSearchParams
}

type Handler = (context: Context) => Promise<void> | void

interface Route {
  /** Metrics label and 404/405 wording. */
  name: string
  pattern: RegExp
  methods: Partial<Record<string, Handler>>
  /** Served without a token (the dashboard page and the health probe). */
  public?: boolean
}

/** 127.0.0.0/8, ::1 (also IPv4-mapped), and localhost. */
export function isLoopbackHost (host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  const lower = bare.toLowerCase()
  if (lower === 'localhost' || lower.endsWith('.localhost')) return true
  if (isIP(lower) === 4) return lower.startsWith('127.')
  if (isIP(lower) === 6) {
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower)
    return mapped !== null && mapped[1]!.startsWith('127.')
  }
  return false
}

export async function startHttpApi (options: HttpApiOptions): Promise<HttpApi> {
  const { node, log } = options
  if (options.token === null && !isLoopbackHost(options.host)) {
    throw new Error(`refusing to serve the HTTP API on ${options.host} without a token: beyond loopback (127.0.0.0/8, ::1, localhost) the API needs --api-token`)
  }
  if (options.token !== null && options.token.length === 0) throw new Error('the HTTP API token is empty')
  const payloadBytesMax = options.payloadBytesMax
  const bodyBytesMax = options.bodyBytesMax ?? payloadBytesMax * 2 + 64 * 1024
  const batchBodyBytesMax = options.batchBodyBytesMax ?? HTTP_LIMITS.batchBodyBytesMaxDefault
  const batchMax = options.batchMax ?? HTTP_LIMITS.batchMaxDefault
  const sseClientsMax = options.sseClientsMax ?? HTTP_LIMITS.sseClientsMaxDefault
  const sseHeartbeatMs = options.sseHeartbeatMs ?? HTTP_LIMITS.sseHeartbeatMsDefault
  const tokenDigest = options.token === null ? null : sha256(options.token)

  const sseClients = new Set<ServerResponse>()
  const requestCounts = new Map<string, number>()
  let closing = false

  // ---- handlers ------------------------------------------------------------------------

  const createTask: Handler = async (context) => {
    const body = await readJsonBody(context, bodyBytesMax, true)
    const checked = validateCreateBody(body, { payloadBytesMax }, Date.now())
    if (!checked.ok) throw rejectionError(checked.error)
    const outcomes = await node.submit([checked.spec])
    const outcome = outcomes[0]
    if (outcomes.length !== 1 || outcome === undefined) throw new Error(`submit answered ${outcomes.length} outcomes for 1 spec`)
    if (!outcome.ok) throw rejectionError(outcome.error)
    if (outcome.record.state === 'aborted') throw notAccepted()
    sendJson(context, outcome.created ? 201 : 200, toPublicRecord(outcome.record))
  }

  const createBatch: Handler = async (context) => {
    const body = await readJsonBody(context, batchBodyBytesMax, true)
    const checked = validateBatchBody(body, { payloadBytesMax, batchMax }, Date.now())
    if (!checked.ok) throw rejectionError(checked.error)
    const specs = checked.items.flatMap(item => item.ok ? [item.spec] : [])
    // One submit for the whole batch: the node batches replication and fsync across it.
    const outcomes = specs.length > 0 ? await node.submit(specs) : []
    if (outcomes.length !== specs.length) throw new Error(`submit answered ${outcomes.length} outcomes for ${specs.length} specs`)
    let next = 0
    const tasks = checked.items.map(item => {
      if (!item.ok) return { error: item.error }
      const outcome = outcomes[next++]!
      if (!outcome.ok) return { error: outcome.error }
      if (outcome.record.state === 'aborted') return { error: toRejection(notAccepted()) }
      // `created: false`: the idempotency key was known; this is the existing task.
      return { ...toPublicRecord(outcome.record), created: outcome.created }
    })
    sendJson(context, 200, { tasks })
  }

  const getTask: Handler = async (context) => {
    const id = checkTaskId(context.params[0])
    checkQueryNames(context.query, ['wait'])
    const waitText = singleQuery(context.query, 'wait')
    let waitMs = 0
    if (waitText !== null) {
      const parsed = parseDurationMs(waitText)
      if (parsed === null) throw new ApiError('invalid_input', 'wait: must be a duration such as 500ms, 30s, 5m')
      waitMs = Math.min(parsed, HTTP_LIMITS.waitMsMax)
    }
    const view = visible(waitMs > 0 ? await node.wait(id, waitMs) : await node.get(id), id)
    sendJson(context, 200, toPublicRecord(view.record, view.waiting))
  }

  const listTasks: Handler = async (context) => {
    const page = await node.list(parseListQuery(context.query))
    const tasks = page.tasks.filter(record => record.state !== 'aborted').map(record => toPublicRecord(record))
    sendJson(context, 200, { tasks, next: page.next })
  }

  /** POST /v1/tasks/:id/<command> (and DELETE /v1/tasks/:id = cancel): the updated record. */
  const commandHandler = (command: TaskCommand): Handler => async (context) => {
    const id = checkTaskId(context.params[0])
    await readJsonBody(context, HTTP_LIMITS.emptyBodyBytesMax, false)
    const outcome = await node.command(id, command)
    if (!outcome.ok) throw rejectionError(outcome.error)
    if (outcome.record.state === 'aborted') throw new ApiError('not_found', `task ${id} not found`)
    sendJson(context, 200, toPublicRecord(outcome.record))
  }

  const getCluster: Handler = (context) => {
    sendJson(context, 200, toClusterJson(node.cluster()))
  }

  const drain: Handler = async (context) => {
    await readJsonBody(context, HTTP_LIMITS.emptyBodyBytesMax, false)
    log.info('api.drain_requested', {})
    // Not awaited: draining ends with the node leaving, long after this answer.
    node.drain().catch(error => log.error('api.drain_failed', { error }))
    sendJson(context, 202, { draining: true })
  }

  const debugFaults: Handler = async (context) => {
    const gate = options.faults ?? null
    if (gate === null) throw new ApiError('not_found', 'fault injection is off: start the node with --fault-injection (for tests only)')
    const config = checkFaultConfig(await readJsonBody(context, HTTP_LIMITS.emptyBodyBytesMax, true))
    gate.set(config)
    log.warn('api.faults_set', { block: config.block.length, delayMs: config.delayMs, lossRate: config.lossRate })
    sendJson(context, 200, { ...gate.config, dropped: gate.dropped })
  }

  const events: Handler = (context) => {
    const { res } = context
    if (sseClients.size >= sseClientsMax) {
      throw new ApiError('rate_limited', `events: too many subscribers (at most ${sseClientsMax})`)
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no'
    })
    sseClients.add(res)
    const write = (text: string): void => {
      if (res.destroyed || res.writableEnded) return
      if (res.writableLength > HTTP_LIMITS.sseBufferBytesMax) {
        log.warn('api.sse_dropped', { reason: 'subscriber too slow', bufferedBytes: res.writableLength })
        res.destroy()
        return
      }
      res.write(text)
    }
    const unsubscribe = node.onEvent(event => {
      // Why the try: this runs inside the node's event loop; a subscriber must not break it.
      try {
        write(`event: task\ndata: ${JSON.stringify(toPublicTaskEvent(event))}\n\n`)
      } catch (error) {
        log.warn('api.sse_write_failed', { error })
      }
    })
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), sseHeartbeatMs)
    heartbeat.unref()
    let cleaned = false
    const cleanup = (): void => {
      if (cleaned) return
      cleaned = true
      clearInterval(heartbeat)
      unsubscribe()
      sseClients.delete(res)
    }
    // Why only the response's close: it fires when the stream ends or the client goes away.
    res.on('close', cleanup)
    write('retry: 2000\n: connected\n\n')
  }

  const metrics: Handler = (context) => {
    let text = node.metrics()
    if (text.length > 0 && !text.endsWith('\n')) text += '\n'
    text += apiMetrics()
    sendText(context, 200, 'text/plain; version=0.0.4; charset=utf-8', text)
  }

  const health: Handler = (context) => {
    if (node.healthy()) {
      sendJson(context, 200, { ok: true })
    } else {
      sendJson(context, 503, { ok: false, error: { code: 'no_quorum', message: 'not ready: the node has not joined or cannot accept tasks' } })
    }
  }

  const dashboard: Handler = (context) => {
    context.res.setHeader('content-security-policy', DASHBOARD_CSP)
    context.res.setHeader('x-frame-options', 'DENY')
    context.res.setHeader('referrer-policy', 'no-referrer')
    sendText(context, 200, 'text/html; charset=utf-8', DASHBOARD_HTML)
  }

  const routes: Route[] = [
    { name: '/', pattern: /^\/$/, methods: { GET: dashboard }, public: true },
    { name: '/healthz', pattern: /^\/healthz$/, methods: { GET: health }, public: true },
    { name: '/metrics', pattern: /^\/metrics$/, methods: { GET: metrics } },
    { name: '/v1/tasks', pattern: /^\/v1\/tasks$/, methods: { GET: listTasks, POST: createTask } },
    { name: '/v1/tasks/batch', pattern: /^\/v1\/tasks\/batch$/, methods: { POST: createBatch } },
    { name: '/v1/tasks/:id', pattern: /^\/v1\/tasks\/([^/]+)$/, methods: { GET: getTask, DELETE: commandHandler('cancel') } },
    { name: '/v1/tasks/:id/cancel', pattern: /^\/v1\/tasks\/([^/]+)\/cancel$/, methods: { POST: commandHandler('cancel') } },
    { name: '/v1/tasks/:id/retry', pattern: /^\/v1\/tasks\/([^/]+)\/retry$/, methods: { POST: commandHandler('retry') } },
    { name: '/v1/tasks/:id/pause', pattern: /^\/v1\/tasks\/([^/]+)\/pause$/, methods: { POST: commandHandler('pause') } },
    { name: '/v1/tasks/:id/resume', pattern: /^\/v1\/tasks\/([^/]+)\/resume$/, methods: { POST: commandHandler('resume') } },
    { name: '/v1/cluster', pattern: /^\/v1\/cluster$/, methods: { GET: getCluster } },
    { name: '/v1/drain', pattern: /^\/v1\/drain$/, methods: { POST: drain } },
    { name: '/v1/debug/faults', pattern: /^\/v1\/debug\/faults$/, methods: { POST: debugFaults } },
    { name: '/v1/events', pattern: /^\/v1\/events$/, methods: { GET: events } }
  ]

  // ---- request flow --------------------------------------------------------------------

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // Why: an 'error' event without a listener would crash the process.
    req.on('error', () => {})
    res.on('error', () => {})
    res.setHeader('x-content-type-options', 'nosniff')
    res.setHeader('cache-control', 'no-store')
    const rawUrl = req.url ?? '/'
    const queryAt = rawUrl.indexOf('?')
    const path = queryAt === -1 ? rawUrl : rawUrl.slice(0, queryAt)
    const query = new URLSearchParams(queryAt === -1 ? '' : rawUrl.slice(queryAt + 1))
    const method = req.method ?? 'GET'
    let route: Route | undefined
    let params: string[] = []
    for (const candidate of routes) {
      const match = candidate.pattern.exec(path)
      if (match !== null) {
        route = candidate
        params = match.slice(1)
        break
      }
    }
    const label = route === undefined ? 'unknown' : `${method} ${route.name}`
    res.once('finish', () => countRequest(label, res.statusCode))
    const context: Context = { req, res, params, query }
    try {
      if (closing) throw new ApiError('shutting_down', 'the node is shutting down')
      if (tokenDigest === null && !hostHeaderIsLoopback(req)) {
        // Why: without a token the API trusts loopback; a page that rebinds its DNS name to
        // 127.0.0.1 must not reach it through a browser.
        throw new ApiError('unauthorized', 'host: without a token the API answers only loopback host names')
      }
      if (route?.public !== true && !authorized(req)) {
        res.setHeader('www-authenticate', 'Bearer')
        throw new ApiError('unauthorized', 'authorization: missing or wrong bearer token')
      }
      if (route === undefined) throw new ApiError('not_found', `no route ${truncate(path, 100)}`)
      const handler = route.methods[method]
      if (handler === undefined) {
        const allowed = Object.keys(route.methods).join(', ')
        res.setHeader('allow', allowed)
        throw new ApiError('method_not_allowed', `${method} ${route.name}: method not allowed (allowed: ${allowed})`)
      }
      await handler(context)
    } catch (error) {
      fail(context, error, label)
    }
  }

  const fail = (context: Context, error: unknown, label: string): void => {
    const { res } = context
    if (error instanceof ClientGone) {
      res.destroy()
      return
    }
    let rejection: { code: ApiErrorCode, message: string }
    if (error instanceof ApiError) {
      rejection = { code: error.code, message: error.message }
    } else if (isRejectionLike(error)) {
      // A named operating error thrown by the node (e.g. no_quorum on cancel).
      log.warn('api.node_rejected', { route: label, code: error.code, message: error.message })
      rejection = { code: error.code, message: error.message }
    } else {
      log.error('api.handler_failed', { route: label, error })
      rejection = { code: 'internal', message: 'internal error; the node logged it as api.handler_failed' }
    }
    if (res.headersSent) {
      res.destroy()
      return
    }
    sendJson(context, STATUS_BY_CODE[rejection.code], { error: rejection })
  }

  const authorized = (req: IncomingMessage): boolean => {
    if (tokenDigest === null) return true
    const header = req.headers.authorization
    if (typeof header !== 'string') return false
    const match = /^Bearer[ \t]+(.+?)[ \t]*$/i.exec(header)
    if (match === null) return false
    // Equal-length digests, compared in constant time: neither the token nor its length leaks.
    return timingSafeEqual(sha256(match[1]!), tokenDigest)
  }

  const countRequest = (label: string, status: number): void => {
    if (requestCounts.size >= 256 && !requestCounts.has(`${label}\u0000${status}`)) return // bounded labels
    const key = `${label}\u0000${status}`
    requestCounts.set(key, (requestCounts.get(key) ?? 0) + 1)
  }

  const apiMetrics = (): string => {
    const lines = [
      '# HELP taskmesh_api_requests_total HTTP API requests answered, by route and status.',
      '# TYPE taskmesh_api_requests_total counter'
    ]
    for (const [key, count] of requestCounts) {
      const [route, status] = key.split('\u0000')
      lines.push(`taskmesh_api_requests_total{route="${escapeLabel(route!)}",status="${status}"} ${count}`)
    }
    lines.push(
      '# HELP taskmesh_api_sse_clients Open GET /v1/events subscribers.',
      '# TYPE taskmesh_api_sse_clients gauge',
      `taskmesh_api_sse_clients ${sseClients.size}`
    )
    return lines.join('\n') + '\n'
  }

  // ---- server --------------------------------------------------------------------------

  const server: Server = createServer({
    requestTimeout: HTTP_LIMITS.requestTimeoutMs,
    headersTimeout: HTTP_LIMITS.headersTimeoutMs,
    maxHeaderSize: 16 * 1024
  }, (req, res) => {
    handle(req, res).catch(error => {
      log.error('api.request_failed', { error })
      res.destroy()
    })
  })
  server.keepAliveTimeout = HTTP_LIMITS.keepAliveTimeoutMs
  // Socket inactivity: longer than the longest long poll; SSE heartbeats keep streams busy.
  server.timeout = HTTP_LIMITS.waitMsMax + 60_000
  server.maxConnections = HTTP_LIMITS.connectionsMax

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error): void => reject(new Error(`cannot listen on ${options.host}:${options.port}: ${error.message}`))
    server.once('error', onError)
    server.listen(options.port, options.host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  server.on('error', error => log.error('api.server_error', { error }))

  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : options.port
  const hostForUrl = isIP(options.host) === 6 ? `[${options.host}]` : options.host
  const url = `http://${hostForUrl}:${port}`
  log.info('api.listening', { url, auth: tokenDigest !== null })

  let closed: Promise<void> | null = null
  const close = (): Promise<void> => {
    closed ??= new Promise<void>(resolve => {
      closing = true
      for (const res of sseClients) res.end()
      sseClients.clear()
      server.close(() => resolve())
      server.closeIdleConnections()
      const cut = setTimeout(() => server.closeAllConnections(), HTTP_LIMITS.closeGraceMs)
      cut.unref()
      server.once('close', () => clearTimeout(cut))
    })
    return closed
  }

  return { url, close }
}

// ---- helpers (no server state) -----------------------------------------------------------

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

function truncate (text: string, length: number): string {
  return text.length > length ? text.slice(0, length) + '…' : text
}

function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function hostHeaderIsLoopback (req: IncomingMessage): boolean {
  const host = req.headers.host
  if (typeof host !== 'string' || host.length === 0) return true // HTTP/1.0 without Host
  const match = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(host)
  return match !== null && isLoopbackHost(match[1]!)
}

function rejectionError (rejection: Rejection): ApiError {
  return new ApiError(rejection.code, rejection.message)
}

function toRejection (error: ApiError): Rejection {
  return { code: error.code as ErrorCode, message: error.message }
}

function notAccepted (): ApiError {
  return new ApiError('no_quorum', 'not accepted: the submit did not reach a write quorum')
}

function isRejectionLike (error: unknown): error is { code: ApiErrorCode, message: string } {
  if (typeof error !== 'object' || error === null) return false
  const { code, message } = error as { code?: unknown, message?: unknown }
  return typeof code === 'string' && Object.hasOwn(STATUS_BY_CODE, code) && code !== 'internal' && typeof message === 'string'
}

/** A record users may see: null and the internal `aborted` state are both 404. */
function visible (view: TaskView | null, id: string): TaskView {
  if (view === null || view.record.state === 'aborted') throw new ApiError('not_found', `task ${id} not found`)
  return view
}

function checkTaskId (raw: string | undefined): string {
  let id: string
  try {
    id = decodeURIComponent(raw ?? '')
  } catch {
    throw new ApiError('invalid_input', 'id: malformed percent-encoding')
  }
  if (!ID_PATTERN.test(id)) throw new ApiError('invalid_input', 'id: must be 1-128 characters of A-Z a-z 0-9 _ . : @ -')
  return id
}

function checkQueryNames (query: URLSearchParams, allowed: string[]): void {
  for (const name of query.keys()) {
    if (!allowed.includes(name)) {
      throw new ApiError('invalid_input', `${truncate(name, 64)}: unknown query parameter (allowed: ${allowed.join(', ')})`)
    }
  }
}

function singleQuery (query: URLSearchParams, name: string): string | null {
  const values = query.getAll(name)
  if (values.length > 1) throw new ApiError('invalid_input', `${name}: given more than once`)
  return values.length === 1 ? values[0]! : null
}

function parseListQuery (query: URLSearchParams): ListQuery {
  checkQueryNames(query, ['state', 'type', 'schedule', 'limit', 'cursor'])
  const state = singleQuery(query, 'state')
  if (state !== null && !TASK_STATES.has(state)) {
    throw new ApiError('invalid_input', `state: must be one of ${[...TASK_STATES].join(', ')}`)
  }
  const type = singleQuery(query, 'type')
  if (type !== null && !TYPE_PATTERN.test(type)) throw new ApiError('invalid_input', 'type: must be 1-64 characters of A-Z a-z 0-9 _ . : -')
  const scheduleId = singleQuery(query, 'schedule')
  if (scheduleId !== null && !ID_PATTERN.test(scheduleId)) throw new ApiError('invalid_input', 'schedule: must be a schedule id')
  const limitText = singleQuery(query, 'limit')
  let limit: number = HTTP_LIMITS.listLimitDefault
  if (limitText !== null) {
    limit = /^\d{1,4}$/.test(limitText) ? Number(limitText) : 0
    if (limit < 1 || limit > HTTP_LIMITS.listLimitMax) {
      throw new ApiError('invalid_input', `limit: must be an integer between 1 and ${HTTP_LIMITS.listLimitMax}`)
    }
  }
  const cursor = singleQuery(query, 'cursor')
  if (cursor !== null && (cursor.length < 1 || cursor.length > HTTP_LIMITS.cursorLengthMax || !/^[\x21-\x7e]+$/.test(cursor))) {
    throw new ApiError('invalid_input', 'cursor: must be the `next` value of a previous page')
  }
  return { state: state as TaskState | null, type, scheduleId, limit, cursor }
}

function isJsonContentType (header: string | undefined): boolean {
  if (header === undefined) return false
  const mediaType = header.split(';', 1)[0]!.trim().toLowerCase()
  return mediaType === 'application/json' || (mediaType.startsWith('application/') && mediaType.endsWith('+json'))
}

/**
 * Reads and parses a JSON body of at most limitBytes. Stops reading as soon as the limit is
 * passed (413). Returns undefined when there is no body and none is required.
 */
async function readJsonBody (context: Context, limitBytes: number, required: boolean): Promise<unknown> {
  const { req } = context
  const lengthHeader = req.headers['content-length']
  const declaredBytes = lengthHeader === undefined ? null : Number(lengthHeader)
  const hasBody = req.headers['transfer-encoding'] !== undefined || (declaredBytes !== null && declaredBytes > 0)
  if (!hasBody) {
    if (required) throw new ApiError('invalid_input', 'body: required, a JSON object')
    return undefined
  }
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new ApiError('invalid_input', `content-type: must be application/json (got ${truncate(req.headers['content-type'] ?? 'none', 64)})`)
  }
  if (declaredBytes !== null && declaredBytes > limitBytes) throw tooLarge(limitBytes)
  const chunks: Buffer[] = []
  let receivedBytes = 0
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      receivedBytes += chunk.length
      if (receivedBytes > limitBytes) {
        // Stop reading: no more chunks are buffered; the answer closes the connection.
        cleanup()
        req.pause()
        chunks.length = 0
        reject(tooLarge(limitBytes))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => { cleanup(); resolve() }
    const onGone = (): void => { cleanup(); reject(new ClientGone()) }
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('aborted', onGone)
      req.off('error', onGone)
      req.off('close', onClose)
    }
    const onClose = (): void => { if (!req.complete) onGone() }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('aborted', onGone)
    req.on('error', onGone)
    req.on('close', onClose)
  })
  if (receivedBytes === 0) {
    if (required) throw new ApiError('invalid_input', 'body: required, a JSON object')
    return undefined
  }
  const text = Buffer.concat(chunks, receivedBytes).toString('utf8')
  try {
    return JSON.parse(text)
  } catch (error) {
    const reason = error instanceof Error ? error.message : 'unreadable'
    throw new ApiError('invalid_input', `body: malformed JSON (${truncate(reason, 200)})`)
  }
}

function tooLarge (limitBytes: number): ApiError {
  return new ApiError('too_large', `body: over the limit of ${limitBytes} bytes`)
}

function sendJson (context: Context, status: number, value: unknown): void {
  sendText(context, status, 'application/json; charset=utf-8', JSON.stringify(value))
}

function sendText (context: Context, status: number, contentType: string, text: string): void {
  const { req, res } = context
  if (res.headersSent || res.destroyed) return
  // An unread request body cannot be skipped on a kept-alive connection: close it instead.
  if (!req.complete) res.setHeader('connection', 'close')
  res.statusCode = status
  res.setHeader('content-type', contentType)
  res.setHeader('content-length', Buffer.byteLength(text, 'utf8'))
  res.end(text)
}

// ---- the dashboard ---------------------------------------------------------------------
// Self-contained: no external script, style or font. Data is rendered with textContent only
// (task types, payloads and errors are user input). The page is public; its data calls send
// the token kept in sessionStorage.

const DASHBOARD_STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
header{background:#1d232b;color:#fff;padding:10px 20px;display:flex;gap:16px;align-items:baseline}
header h1{font-size:18px;margin:0}header small{opacity:.7}
main{padding:16px 20px}h2{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6ea;white-space:nowrap;max-width:28em;overflow:hidden;text-overflow:ellipsis}
th{background:#eef0f3;font-weight:600}
.s-alive,.s-succeeded{color:#137333}.s-suspect,.s-retrying{color:#b06000}.s-dead,.s-left{color:#c5221f}
.s-running{color:#1a57c4}.s-cancelled{color:#666}
#login{background:#fff;padding:12px;margin-bottom:12px;box-shadow:0 1px 2px #0002}
#status{font-size:12px;opacity:.8}
`

const DASHBOARD_SCRIPT = `
(function () {
  var KEY = 'taskmesh.token'
  var token = sessionStorage.getItem(KEY) || ''
  var el = function (id) { return document.getElementById(id) }
  function api (path) {
    var headers = token ? { authorization: 'Bearer ' + token } : {}
    return fetch(path, { headers: headers, cache: 'no-store' }).then(function (res) {
      if (res.status === 401) { el('login').hidden = false; throw new Error('a token is needed') }
      return res.json().then(function (body) {
        if (!res.ok) throw new Error(body && body.error ? body.error.code + ': ' + body.error.message : 'HTTP ' + res.status)
        return body
      })
    })
  }
  function short (text) { return !text ? '-' : text.length > 16 ? text.slice(0, 6) + '...' + text.slice(-6) : text }
  function time (iso) { return iso ? new Date(iso).toLocaleTimeString() : '-' }
  function fill (tbody, rows, columns) {
    var fresh = rows.map(function (row) {
      var tr = document.createElement('tr')
      columns(row).forEach(function (column) {
        var td = document.createElement('td')
        td.textContent = String(column[0])
        if (column[1]) td.className = column[1]
        td.title = String(column[0])
        tr.appendChild(td)
      })
      return tr
    })
    tbody.replaceChildren.apply(tbody, fresh)
  }
  function refresh () {
    if (!el('login').hidden) return
    Promise.all([api('/v1/cluster'), api('/v1/tasks?limit=50')]).then(function (answers) {
      var cluster = answers[0]; var page = answers[1]
      el('self').textContent = 'this node: ' + cluster.self + ' · replicas: ' + cluster.replicas
      fill(el('members'), cluster.members, function (m) {
        return [[short(m.peerId) + (m.peerId === cluster.self ? ' (this node)' : '')], [m.state, 's-' + m.state], [m.api],
          [m.load.running + ' / ' + m.load.capacity], [m.load.queued], [(m.ringShare * 100).toFixed(1) + ' %'], [time(m.lastSeen)]]
      })
      fill(el('tasks'), page.tasks, function (t) {
        return [[t.id], [t.type], [t.state, 's-' + t.state], [t.attempt + ' / ' + t.maxAttempts], [t.priority],
          [short(t.owner)], [time(t.createdAt)], [time(t.finishedAt)], [t.error || '']]
      })
      el('status').textContent = 'updated ' + new Date().toLocaleTimeString()
    }).catch(function (error) { el('status').textContent = error.message })
  }
  el('login').addEventListener('submit', function (event) {
    event.preventDefault()
    token = el('token').value.trim()
    sessionStorage.setItem(KEY, token)
    el('login').hidden = true
    refresh()
  })
  refresh()
  setInterval(refresh, 2000)
})()
`

const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>taskmesh</title><style>${DASHBOARD_STYLE}</style></head>
<body><header><h1>taskmesh</h1><small id="self"></small><small id="status">loading...</small></header>
<main>
<form id="login" hidden><label>API token <input id="token" type="password" autocomplete="off"></label> <button>Use token</button></form>
<h2>Members</h2>
<table><thead><tr><th>peer</th><th>state</th><th>api</th><th>running / capacity</th><th>queued</th><th>ring share</th><th>last seen</th></tr></thead><tbody id="members"></tbody></table>
<h2>Recent tasks</h2>
<table><thead><tr><th>id</th><th>type</th><th>state</th><th>attempt</th><th>priority</th><th>owner</th><th>created</th><th>finished</th><th>error</th></tr></thead><tbody id="tasks"></tbody></table>
</main>
<script>${DASHBOARD_SCRIPT}</script></body></html>
`

function cspHash (text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`
}

const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${cspHash(DASHBOARD_SCRIPT)}`,
  `style-src ${cspHash(DASHBOARD_STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

/** Exported for tests: the page must stay self-contained. */
export const dashboardHtml = DASHBOARD_HTML

/** `{ block?: [peer id], delay?: ms, lossRate?: 0..1 }`: what the node drops and delays from now on. */
function checkFaultConfig (body: unknown): FaultConfig {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('invalid_input', 'body: must be a JSON object { block?, delay?, lossRate? }')
  const fields = body as Record<string, unknown>
  for (const key of Object.keys(fields)) if (key !== 'block' && key !== 'delay' && key !== 'lossRate') throw new ApiError('invalid_input', `${key}: unknown field (known: block, delay, lossRate)`)
  const block = fields.block ?? []
  if (!Array.isArray(block) || block.length > 1000 || !block.every(peer => typeof peer === 'string' && peer.length > 0 && peer.length <= 128)) {
    throw new ApiError('invalid_input', 'block: must be an array of at most 1000 peer ids')
  }
  const delay = fields.delay ?? 0
  if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0 || delay > 60_000) throw new ApiError('invalid_input', 'delay: must be an integer number of milliseconds, 0-60000')
  const lossRate = fields.lossRate ?? 0
  if (typeof lossRate !== 'number' || !(lossRate >= 0 && lossRate <= 1)) throw new ApiError('invalid_input', 'lossRate: must be a number from 0 to 1')
  return { block: block as string[], delayMs: delay, lossRate }
}
