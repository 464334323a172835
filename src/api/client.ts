// client.ts: the TypeScript client of the HTTP API (contract.md "Library API").
// Server errors keep their code and message; a node that cannot be reached is code
// 'unreachable' with status 0, so callers tell failures apart by `err.code`.
import type { ClusterJson, CreateBody, PublicRecord } from './present.js'

export class TaskmeshError extends Error {
  name = 'TaskmeshError'
  readonly code: string
  /** HTTP status, or 0 when there was no answer. */
  readonly status: number

  constructor (code: string, message: string, status: number) {
    super(message)
    this.code = code
    this.status = status
  }
}

export interface ClientOptions {
  /** Bearer token of the node's API. */
  token?: string
  /** Longest wait for one answer (a long poll adds its own wait); default 30 s. */
  requestTimeoutMs?: number
}

export interface ListOptions {
  state?: string
  type?: string
  schedule?: string
  limit?: number
  cursor?: string
}

/** An accepted item (`created: false` when its idempotency key was known) or why not. */
export type BatchItem = (PublicRecord & { created?: boolean }) | { error: { code: string, message: string } }

const TERMINAL_STATES: ReadonlySet<string> = new Set(['succeeded', 'dead', 'cancelled'])
/** One long poll of wait(); the server cuts waits at 5 minutes. */
const WAIT_ROUND_MS_MAX = 60_000
/** A batch request stays under the server's defaults: 10000 bodies, 64 MiB. */
const BATCH_ITEMS_MAX = 10_000
const BATCH_BYTES_MAX = 32 * 1024 * 1024

export class Client {
  readonly baseUrl: string
  readonly #token: string | null
  readonly #requestTimeoutMs: number

  constructor (baseUrl: string, options: ClientOptions = {}) {
    let parsed: URL | null = null
    try {
      parsed = new URL(baseUrl)
    } catch {}
    if (parsed === null || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')) {
      throw new TaskmeshError('invalid_input', `baseUrl: must be an http(s) URL such as http://127.0.0.1:7070 (got ${baseUrl})`, 0)
    }
    this.baseUrl = baseUrl.replace(/\/+$/, '')
    this.#token = options.token === undefined || options.token === '' ? null : options.token
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000
  }

  submit (body: CreateBody): Promise<PublicRecord> {
    return this.#json('POST', '/v1/tasks', JSON.stringify(body)) as Promise<PublicRecord>
  }

  /** One request per up to 10000 bodies (and 32 MiB); answers in input order. */
  async submitMany (bodies: CreateBody[]): Promise<BatchItem[]> {
    const results: BatchItem[] = []
    let chunk: string[] = []
    let chunkBytes = 0
    const flush = async (): Promise<void> => {
      if (chunk.length === 0) return
      const answer = await this.#json('POST', '/v1/tasks/batch', `{"tasks":[${chunk.join(',')}]}`) as { tasks: BatchItem[] }
      results.push(...answer.tasks)
      chunk = []
      chunkBytes = 0
    }
    for (const body of bodies) {
      const text = JSON.stringify(body) ?? 'null'
      if (chunk.length >= BATCH_ITEMS_MAX || (chunk.length > 0 && chunkBytes + text.length > BATCH_BYTES_MAX)) await flush()
      chunk.push(text)
      chunkBytes += text.length + 1
    }
    await flush()
    return results
  }

  get (id: string): Promise<PublicRecord> {
    return this.#json('GET', `/v1/tasks/${encodeURIComponent(id)}`) as Promise<PublicRecord>
  }

  /**
   * Long-polls until the task is terminal or timeoutMs (default: no limit) has passed, then
   * returns the last record seen.
   */
  async wait (id: string, timeoutMs: number = Infinity): Promise<PublicRecord> {
    const deadlineMs = Date.now() + timeoutMs
    const path = `/v1/tasks/${encodeURIComponent(id)}`
    let record = await this.get(id)
    while (!TERMINAL_STATES.has(record.state)) {
      const remainingMs = deadlineMs - Date.now()
      if (remainingMs <= 0) return record
      const roundMs = Math.max(1, Math.ceil(Math.min(remainingMs, WAIT_ROUND_MS_MAX)))
      const startedMs = Date.now()
      record = await this.#json('GET', `${path}?wait=${roundMs}ms`, undefined, roundMs) as PublicRecord
      // A node that answers a long poll early without a terminal state: don't spin on it.
      const spentMs = Date.now() - startedMs
      if (!TERMINAL_STATES.has(record.state) && spentMs < roundMs / 2) {
        await new Promise(resolve => setTimeout(resolve, Math.min(250, Math.max(0, deadlineMs - Date.now()))))
      }
    }
    return record
  }

  list (query: ListOptions = {}): Promise<{ tasks: PublicRecord[], next: string | null }> {
    const params = new URLSearchParams()
    if (query.state !== undefined) params.set('state', query.state)
    if (query.type !== undefined) params.set('type', query.type)
    if (query.schedule !== undefined) params.set('schedule', query.schedule)
    if (query.limit !== undefined) params.set('limit', String(query.limit))
    if (query.cursor !== undefined) params.set('cursor', query.cursor)
    const search = params.toString()
    return this.#json('GET', search === '' ? '/v1/tasks' : `/v1/tasks?${search}`) as Promise<{ tasks: PublicRecord[], next: string | null }>
  }

  /** Cancel a task (a running one is aborted), or delete a schedule. */
  cancel (id: string): Promise<PublicRecord> {
    return this.#command(id, 'cancel')
  }

  /** Run a dead (or cancelled) task again; `conflict` (409) in any other state. */
  retry (id: string): Promise<PublicRecord> {
    return this.#command(id, 'retry')
  }

  /** Stop a schedule firing until resume(); `conflict` (409) for a task that is no schedule. */
  pause (id: string): Promise<PublicRecord> {
    return this.#command(id, 'pause')
  }

  resume (id: string): Promise<PublicRecord> {
    return this.#command(id, 'resume')
  }

  #command (id: string, command: 'cancel' | 'retry' | 'pause' | 'resume'): Promise<PublicRecord> {
    return this.#json('POST', `/v1/tasks/${encodeURIComponent(id)}/${command}`) as Promise<PublicRecord>
  }

  cluster (): Promise<ClusterJson> {
    return this.#json('GET', '/v1/cluster') as Promise<ClusterJson>
  }

  /** Asks the node to drain and leave; resolves once the node accepted (202). */
  async drain (): Promise<void> {
    await this.#json('POST', '/v1/drain')
  }

  /** True when the node answers /healthz with 200; false when it is not ready or unreachable. */
  async health (): Promise<boolean> {
    try {
      const response = await this.#fetch('GET', '/healthz', undefined, 0)
      await response.arrayBuffer()
      return response.status === 200
    } catch (error) {
      if (error instanceof TaskmeshError && error.code === 'unreachable') return false
      throw error
    }
  }

  async metrics (): Promise<string> {
    const response = await this.#fetch('GET', '/metrics', undefined, 0)
    const text = await this.#readText(response, '/metrics')
    if (!response.ok) throw errorFromAnswer(response.status, text, `GET ${this.baseUrl}/metrics`)
    return text
  }

  async #json (method: string, path: string, body?: string, extraTimeoutMs = 0): Promise<unknown> {
    const response = await this.#fetch(method, path, body, extraTimeoutMs)
    const text = await this.#readText(response, path)
    const where = `${method} ${this.baseUrl}${path}`
    if (!response.ok) throw errorFromAnswer(response.status, text, where)
    try {
      return JSON.parse(text)
    } catch {
      throw new TaskmeshError('bad_response', `${where}: the answer is not JSON (HTTP ${response.status})`, response.status)
    }
  }

  async #fetch (method: string, path: string, body: string | undefined, extraTimeoutMs: number): Promise<Response> {
    const url = this.baseUrl + path
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#token !== null) headers.authorization = `Bearer ${this.#token}`
    if (body !== undefined) headers['content-type'] = 'application/json'
    const timeoutMs = this.#requestTimeoutMs + extraTimeoutMs
    try {
      return await fetch(url, { method, headers, body, signal: AbortSignal.timeout(timeoutMs) })
    } catch (error) {
      throw unreachable(url, error, timeoutMs)
    }
  }

  async #readText (response: Response, path: string): Promise<string> {
    try {
      return await response.text()
    } catch (error) {
      throw unreachable(this.baseUrl + path, error, this.#requestTimeoutMs)
    }
  }
}

function unreachable (url: string, error: unknown, timeoutMs: number): TaskmeshError {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return new TaskmeshError('unreachable', `no answer from ${url} within ${timeoutMs} ms`, 0)
  }
  const cause = error instanceof Error ? (error.cause as { code?: string, message?: string } | undefined) : undefined
  const reason = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error))
  return new TaskmeshError('unreachable', `cannot reach ${url}: ${reason}`, 0)
}

function errorFromAnswer (status: number, text: string, where: string): TaskmeshError {
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown, message?: unknown } }
    if (typeof body?.error?.code === 'string' && typeof body.error.message === 'string') {
      return new TaskmeshError(body.error.code, body.error.message, status)
    }
  } catch {}
  const excerpt = text.length > 200 ? text.slice(0, 200) + '…' : text
  return new TaskmeshError(`http_${status}`, `${where}: HTTP ${status} ${excerpt}`.trim(), status)
}
