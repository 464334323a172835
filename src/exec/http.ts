// http.ts: the `http` executor — one request per attempt with the global fetch.
// A 2xx answer succeeds; the body is kept up to outputBytesMax and parsed when it is JSON.
import { StringDecoder } from 'node:string_decoder'
import { abortMessage } from './abort.js'
import type { ExecutionOutcome } from './types.js'

export interface HttpPayload {
  url: string
  method: string
  headers: Record<string, string>
  /** Serialized request body, if any. */
  body?: string
}

export interface HttpResult {
  status: number
  /** Parsed JSON when the answer says it is JSON and it parses; text otherwise. */
  body: unknown
  /** Present when the body was cut at outputBytesMax (the first bytes are kept, not parsed). */
  truncated?: true
}

export interface HttpOptions {
  /** Cap on the answer body kept; default 64 KiB. */
  outputBytesMax?: number
}

export const httpMethods = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const
export const httpUrlBytesMax = 8 * 1024
export const httpHeadersMax = 100
export const httpHeaderBytesMax = 8 * 1024
export const httpBodyBytesMax = 1024 * 1024

const outputBytesMaxDefault = 64 * 1024
const fields = new Set(['url', 'method', 'headers', 'body'])
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const jsonType = /^application\/(?:[\w.+-]+\+)?json\b|^text\/json\b/i

type Parsed<T> = { ok: true, value: T } | { ok: false, error: string }

/** Strict validation; the error names the offending field. */
export function parseHttpPayload (payload: unknown): Parsed<HttpPayload> {
  const invalid = (field: string, why: string): Parsed<HttpPayload> => ({ ok: false, error: `invalid http payload: ${field} ${why}` })
  if (!isPlainObject(payload)) return invalid('payload', 'must be an object with a url')
  for (const key of Object.keys(payload)) {
    if (!fields.has(key)) return invalid(key, 'is not a known field (url, method, headers, body)')
  }

  const { url, method, headers, body } = payload
  if (typeof url !== 'string' || url === '') return invalid('url', 'must be a non-empty string')
  if (Buffer.byteLength(url) > httpUrlBytesMax) return invalid('url', `is longer than ${httpUrlBytesMax} bytes`)
  let parsedUrl: URL
  try {
    parsedUrl = new URL(url)
  } catch {
    return invalid('url', 'is not a valid absolute URL')
  }
  if (parsedUrl.protocol !== 'http:' && parsedUrl.protocol !== 'https:') return invalid('url', 'must use http: or https:')

  let verb = 'GET'
  if (method !== undefined) {
    if (typeof method !== 'string') return invalid('method', 'must be a string')
    verb = method.toUpperCase()
    if (!(httpMethods as readonly string[]).includes(verb)) return invalid('method', `must be one of ${httpMethods.join(', ')}`)
  }

  const headerMap: Record<string, string> = {}
  if (headers !== undefined) {
    if (!isPlainObject(headers)) return invalid('headers', 'must be an object of strings')
    const entries = Object.entries(headers)
    if (entries.length > httpHeadersMax) return invalid('headers', `has more than ${httpHeadersMax} entries`)
    for (const [name, text] of entries) {
      if (!headerName.test(name)) return invalid(`headers.${name}`, 'is not a valid header name')
      if (typeof text !== 'string') return invalid(`headers.${name}`, 'must be a string')
      if (/[\r\n\0]/.test(text)) return invalid(`headers.${name}`, 'must not contain CR, LF or NUL')
      if (Buffer.byteLength(text) > httpHeaderBytesMax) return invalid(`headers.${name}`, `is longer than ${httpHeaderBytesMax} bytes`)
      headerMap[name] = text
    }
  }

  const value: HttpPayload = { url: parsedUrl.href, method: verb, headers: headerMap }
  if (body !== undefined) {
    if (verb === 'GET' || verb === 'HEAD') return invalid('body', `is not allowed with ${verb}`)
    if (typeof body === 'string') {
      value.body = body
    } else {
      let text: string | undefined
      try {
        text = JSON.stringify(body)
      } catch {
        text = undefined
      }
      if (text === undefined) return invalid('body', 'must be a string or a JSON value')
      value.body = text
      const hasType = Object.keys(headerMap).some(name => name.toLowerCase() === 'content-type')
      if (!hasType) headerMap['content-type'] = 'application/json'
    }
    if (Buffer.byteLength(value.body) > httpBodyBytesMax) return invalid('body', `is longer than ${httpBodyBytesMax} bytes`)
  }
  return { ok: true, value }
}

/** Run one http attempt. Never rejects. */
export async function runHttp (payload: unknown, signal: AbortSignal, options: HttpOptions = {}): Promise<ExecutionOutcome> {
  const parsed = parseHttpPayload(payload)
  if (!parsed.ok) return parsed
  const { url, method, headers, body } = parsed.value
  const outputBytesMax = options.outputBytesMax ?? outputBytesMaxDefault
  if (signal.aborted) return { ok: false, error: abortMessage(signal.reason) }

  try {
    const response = await fetch(url, { method, headers, body, signal, redirect: 'follow' })
    const { text, truncated } = await readCapped(response, outputBytesMax)
    const result: HttpResult = { status: response.status, body: text }
    if (truncated) {
      result.truncated = true
    } else if (jsonType.test(response.headers.get('content-type') ?? '') && text.trim() !== '') {
      try {
        result.body = JSON.parse(text)
      } catch {
        // Not JSON after all: keep the text.
      }
    }
    if (response.ok) return { ok: true, result }
    return { ok: false, error: `HTTP ${response.status}`, result }
  } catch (err) {
    if (signal.aborted) return { ok: false, error: abortMessage(signal.reason) }
    return { ok: false, error: networkErrorText(err) }
  }
}

/** Reads at most bytesMax bytes of the body, then cancels the rest. */
async function readCapped (response: Response, bytesMax: number): Promise<{ text: string, truncated: boolean }> {
  if (response.body === null) return { text: '', truncated: false }
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let bytes = 0
  let truncated = false
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    const room = bytesMax - bytes
    if (value.length > room) {
      if (room > 0) chunks.push(value.subarray(0, room))
      bytes += Math.max(room, 0)
      truncated = true
      await reader.cancel().catch(() => {})
      break
    }
    chunks.push(value)
    bytes += value.length
  }
  const all = Buffer.concat(chunks)
  // write() without end() holds back a UTF-8 sequence cut in the middle.
  return { text: truncated ? new StringDecoder('utf8').write(all) : all.toString('utf8'), truncated }
}

function networkErrorText (err: unknown): string {
  if (!(err instanceof Error)) return `request failed: ${String(err)}`
  // undici says only 'fetch failed'; the reason (ECONNREFUSED, ENOTFOUND, ...) is in cause.
  const cause = (err as { cause?: unknown }).cause
  if (cause instanceof Error && cause.message !== '') return `${err.message}: ${cause.message}`
  return err.message
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
