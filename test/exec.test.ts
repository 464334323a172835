// exec.test.ts: the executors against real child processes and a real local HTTP server.
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { Executors, type ExecutorsOptions } from '../src/exec/executors.js'
import { loadHandlers } from '../src/exec/handlers.js'
import { parseHttpPayload } from '../src/exec/http.js'
import { parseShellPayload } from '../src/exec/shell.js'
import type { ExecuteOrder, ExecutionOutcome } from '../src/exec/types.js'
import { createLogger } from '../src/runtime/log.js'

// ---------------------------------------------------------------- helpers

let tempDir = ''
let handlersPath = ''
let server: Server
let baseUrl = ''
const logLines: string[] = []
const progressSeen: Array<[string, number]> = []

const handlersSource = `
export async function echo (payload, ctx) {
  return { payload, taskId: ctx.taskId, attempt: ctx.attempt, fencingToken: ctx.fencingToken,
    hasSignal: ctx.signal instanceof AbortSignal, progress: typeof ctx.progress, log: typeof ctx.log }
}
export function boom () { throw new Error('kaboom') }
export async function rejects () { throw new TypeError('bad thing') }
export async function reporter (payload, ctx) {
  ctx.progress(10); ctx.progress(55.5); ctx.progress(NaN); ctx.progress(150); ctx.progress(-1)
  ctx.log('hello', 42)
  return 'done'
}
export async function big (payload) { return 'x'.repeat(payload.n) }
export async function withFunction () { return { f () {} } }
export async function withSymbol () { return { s: Symbol('s') } }
export async function cyclic () { const a = {}; a.self = a; return a }
export async function nothing () {}
export async function dated () { return { at: new Date(0), list: [1, undefined] } }
export function stubborn () { return new Promise(() => {}) }
export async function polite (payload, ctx) {
  await new Promise((resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))
}
export const notAFunction = 42
export default { fromDefault () { return 'from default' }, echo () { return 'shadowed' }, value: 1 }
`

function order (type: string, payload: unknown, extra: Partial<ExecuteOrder> = {}): ExecuteOrder {
  return { taskId: 't-' + type, type, payload, attempt: 1, fencingToken: 7, timeoutMs: null, ...extra }
}

async function executors (options: Partial<ExecutorsOptions> = {}): Promise<Executors> {
  return await Executors.create({
    allowExec: true,
    log: createLogger('debug', {}, line => logLines.push(line)),
    onProgress: (taskId, n) => progressSeen.push([taskId, n]),
    ...options
  })
}

async function run (ex: Executors, o: ExecuteOrder, signal = new AbortController().signal): Promise<ExecutionOutcome> {
  return await ex.run(o, signal)
}

function failure (outcome: ExecutionOutcome): string {
  assert.is(outcome.ok, false, 'expected a failed outcome')
  return outcome.ok ? '' : outcome.error
}

function resultOf (outcome: ExecutionOutcome): any {
  return (outcome as { result?: unknown }).result
}

async function waitFor (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

async function rejectsWith (fn: () => Promise<unknown>, expected: RegExp | ((err: Error) => boolean)): Promise<void> {
  let error: unknown
  try {
    await fn()
  } catch (err) {
    error = err
  }
  assert.instance(error, Error, 'expected a rejection')
  const message = (error as Error).message
  const matches = expected instanceof RegExp ? expected.test(message) : expected(error as Error)
  assert.ok(matches, `unexpected error: ${message}`)
}

/** Gone, or a zombie nobody has reaped yet (it no longer runs). */
function processGone (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return true
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

test.before(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'taskmesh-exec-'))
  handlersPath = join(tempDir, 'handlers.mjs')
  await writeFile(handlersPath, handlersSource)

  server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', chunk => chunks.push(chunk))
    req.on('end', () => {
      if (req.url === '/ok') { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('fine'); return }
      if (req.url === '/json') { res.writeHead(201, { 'content-type': 'application/json; charset=utf-8' }); res.end('{"a":[1,2]}'); return }
      if (req.url === '/fail') { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('broken'); return }
      if (req.url === '/big') { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ s: 'y'.repeat(5000) })); return }
      if (req.url === '/slow') return // never answers
      if (req.url === '/echo') {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ method: req.method, contentType: req.headers['content-type'] ?? null, custom: req.headers['x-custom'] ?? null, body: Buffer.concat(chunks).toString() }))
        return
      }
      res.writeHead(404); res.end()
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

test.after(async () => {
  server.closeAllConnections()
  await new Promise(resolve => server.close(resolve))
  await rm(tempDir, { recursive: true, force: true })
})

// ---------------------------------------------------------------- shell

test('shell argv: echo, exit 0', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('shell', { argv: ['echo', 'hello', 'world'] }))
  assert.is(outcome.ok, true)
  assert.equal(resultOf(outcome), { exitCode: 0, signal: null, stdout: 'hello world\n', stderr: '' })
})

test('shell cmd: a pipe, env merged, cwd', async () => {
  const ex = await executors()
  const piped = await run(ex, order('shell', { cmd: 'printf "b\\na\\nc\\n" | sort | tr a-z A-Z; echo err >&2' }))
  assert.is(piped.ok, true)
  assert.is(resultOf(piped).stdout, 'A\nB\nC\n')
  assert.is(resultOf(piped).stderr, 'err\n')

  const env = await run(ex, order('shell', { cmd: 'echo "$TASKMESH_X:$HOME"', env: { TASKMESH_X: 'yes' } }))
  assert.is(resultOf(env).stdout, `yes:${process.env.HOME ?? ''}\n`)

  const cwd = await run(ex, order('shell', { argv: ['pwd'], cwd: tempDir }))
  assert.is(resultOf(cwd).stdout, (await realpath(tempDir)) + '\n')
  assert.match(failure(await run(ex, order('shell', { argv: ['pwd'], cwd: join(tempDir, 'missing') }))), /cwd is not a directory/)
})

test('shell: non-zero exit fails with the exit code and keeps the result', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('shell', { cmd: 'echo partial; exit 3' }))
  assert.is(failure(outcome), 'exit code 3')
  assert.is(resultOf(outcome).exitCode, 3)
  assert.is(resultOf(outcome).stdout, 'partial\n')
})

test('shell: a missing command is a clear spawn error', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('shell', { argv: ['/nonexistent/taskmesh-cmd', 'x'] }))
  assert.match(failure(outcome), /command not found: \/nonexistent\/taskmesh-cmd/)
  assert.is(ex.runningCount(), 0)
})

test('shell: output capped at outputBytesMax, first bytes kept', async () => {
  const ex = await executors({ outputBytesMax: 1000 })
  const outcome = await run(ex, order('shell', { cmd: 'head -c 300000 /dev/zero | tr "\\0" a; head -c 5000 /dev/zero | tr "\\0" b >&2' }))
  assert.is(outcome.ok, true)
  const result = resultOf(outcome)
  assert.is(result.stdout, 'a'.repeat(1000))
  assert.is(result.stderr, 'b'.repeat(1000))
  assert.is(result.truncated, true)

  const small = await run(ex, order('shell', { argv: ['echo', 'short'] }))
  assert.is(resultOf(small).truncated, undefined)
})

test('shell: timeout kills the whole process group, grandchildren included', async () => {
  const ex = await executors()
  const startedMs = Date.now()
  const outcome = await run(ex, order('shell', { cmd: 'sleep 30 & echo $!; sleep 30; wait' }, { timeoutMs: 300 }))
  assert.ok(Date.now() - startedMs < 10_000, 'the timeout must end the attempt, not the sleeps')
  assert.is(failure(outcome), 'timed out after 300ms')
  const result = resultOf(outcome)
  assert.is(result.exitCode, null)
  assert.ok(result.signal === 'SIGTERM' || result.signal === 'SIGKILL', `signal ${String(result.signal)}`)
  const grandchild = Number(result.stdout.trim())
  assert.ok(Number.isInteger(grandchild) && grandchild > 1, `grandchild pid from "${result.stdout}"`)
  await waitFor(() => processGone(grandchild), `grandchild ${grandchild} to die`)
  assert.is(ex.runningCount(), 0)
})

test('shell: abort via the caller signal kills the group, error names the reason', async () => {
  const ex = await executors()
  const pidFile = join(tempDir, 'abort.pids')
  const controller = new AbortController()
  const pending = ex.run(order('shell', { cmd: `sleep 30 & echo "$$ $!" > '${pidFile}'; wait` }), controller.signal)
  await waitFor(async () => (await readFile(pidFile, 'utf8').catch(() => '')).trim().split(' ').length === 2, 'pid file')
  assert.is(ex.runningCount(), 1)
  const pids = (await readFile(pidFile, 'utf8')).trim().split(' ').map(Number)
  controller.abort(new Error('cancelled by user'))
  const outcome = await pending
  assert.is(failure(outcome), 'aborted: cancelled by user')
  for (const pid of pids) await waitFor(() => processGone(pid), `pid ${pid} to die`)
  assert.is(ex.runningCount(), 0)
})

test('shell: a signal aborted before the start runs nothing', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('shell', { argv: ['echo', 'x'] }), AbortSignal.abort('too late'))
  assert.is(failure(outcome), 'aborted: too late')
})

test('shell: disabled without allowExec, and not among the types', async () => {
  const ex = await executors({ allowExec: false })
  const outcome = await run(ex, order('shell', { argv: ['echo', 'x'] }))
  assert.is(failure(outcome), 'shell executor disabled (start the node with --allow-exec)')
  assert.is(ex.canRun('shell'), false)
  assert.equal(ex.types(), ['http'])
  const enabled = await executors({ allowExec: true })
  assert.equal(enabled.types(), ['http', 'shell'])
})

test('shell: invalid payloads are rejected naming the field', async () => {
  const cases: Array<[unknown, string]> = [
    [null, 'payload'],
    [{}, 'argv or cmd is required'],
    [{ argv: [] }, 'argv must not be empty'],
    [{ argv: 'ls' }, 'argv must be an array'],
    [{ argv: ['ls', 3] }, 'argv[1]'],
    [{ argv: ['ls'], cmd: 'ls' }, 'argv and cmd are exclusive'],
    [{ cmd: '' }, 'cmd must not be empty'],
    [{ cmd: 42 }, 'cmd must be a string'],
    [{ cmd: 'x'.repeat(200_000) }, 'cmd is longer'],
    [{ cmd: 'ls', shell: true }, 'shell is not a known field'],
    [{ cmd: 'ls', cwd: 5 }, 'cwd must be'],
    [{ cmd: 'ls', env: { A: 1 } }, 'env.A must be a string'],
    [{ cmd: 'ls', env: ['A'] }, 'env must be an object'],
    [{ argv: new Array(5000).fill('a') }, 'argv has more than']
  ]
  const ex = await executors()
  for (const [payload, expected] of cases) {
    const parsed = parseShellPayload(payload)
    assert.is(parsed.ok, false, JSON.stringify(payload)?.slice(0, 80))
    if (!parsed.ok) {
      assert.ok(parsed.error.startsWith('invalid shell payload: '), parsed.error)
      assert.ok(parsed.error.includes(expected), `${parsed.error} should mention ${expected}`)
    }
  }
  const outcome = await run(ex, order('shell', { argv: ['ls', 3] }))
  assert.match(failure(outcome), /^invalid shell payload: argv\[1\]/)
})

// ---------------------------------------------------------------- http

test('http: 2xx succeeds, text body', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('http', { url: `${baseUrl}/ok` }))
  assert.is(outcome.ok, true)
  assert.equal(resultOf(outcome), { status: 200, body: 'fine' })
})

test('http: JSON body parsed; method, headers and a JSON request body sent', async () => {
  const ex = await executors()
  const json = await run(ex, order('http', { url: `${baseUrl}/json` }))
  assert.equal(resultOf(json), { status: 201, body: { a: [1, 2] } })

  const echo = await run(ex, order('http', { url: `${baseUrl}/echo`, method: 'post', headers: { 'X-Custom': 'v1' }, body: { n: 1 } }))
  assert.is(echo.ok, true)
  assert.equal(resultOf(echo).body, { method: 'POST', contentType: 'application/json', custom: 'v1', body: '{"n":1}' })

  const text = await run(ex, order('http', { url: `${baseUrl}/echo`, method: 'PUT', headers: { 'content-type': 'text/plain' }, body: 'raw' }))
  assert.equal(resultOf(text).body, { method: 'PUT', contentType: 'text/plain', custom: null, body: 'raw' })
})

test('http: 500 fails with HTTP <status> and keeps the answer', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('http', { url: `${baseUrl}/fail` }))
  assert.is(failure(outcome), 'HTTP 500')
  assert.equal(resultOf(outcome), { status: 500, body: 'broken' })
})

test('http: body capped at outputBytesMax, not parsed', async () => {
  const ex = await executors({ outputBytesMax: 100 })
  const outcome = await run(ex, order('http', { url: `${baseUrl}/big` }))
  assert.is(outcome.ok, true)
  assert.is(resultOf(outcome).body.length, 100)
  assert.is(resultOf(outcome).truncated, true)
})

test('http: timeout aborts the request', async () => {
  const ex = await executors()
  const outcome = await run(ex, order('http', { url: `${baseUrl}/slow` }, { timeoutMs: 200 }))
  assert.is(failure(outcome), 'timed out after 200ms')
  assert.is(ex.runningCount(), 0)
})

test('http: a network error fails with its cause', async () => {
  const closed = createServer()
  await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as AddressInfo).port
  await new Promise(resolve => closed.close(resolve))
  const ex = await executors()
  const outcome = await run(ex, order('http', { url: `http://127.0.0.1:${port}/` }))
  assert.match(failure(outcome), /ECONNREFUSED/)
})

test('http: invalid payloads are rejected naming the field', () => {
  const cases: Array<[unknown, string]> = [
    [{}, 'url must be'],
    [{ url: 'ftp://example.com/' }, 'url must use http'],
    [{ url: 'not a url' }, 'url is not a valid'],
    [{ url: 'http://x/', method: 'FETCH' }, 'method must be one of'],
    [{ url: 'http://x/', headers: { a: 1 } }, 'headers.a must be a string'],
    [{ url: 'http://x/', headers: { 'bad name': 'x' } }, 'headers.bad name'],
    [{ url: 'http://x/', headers: { a: 'x\r\ny: z' } }, 'headers.a must not contain'],
    [{ url: 'http://x/', body: 'x' }, 'body is not allowed with GET'],
    [{ url: 'http://x/', method: 'POST', body: () => 1 }, 'body must be a string or a JSON value'],
    [{ url: 'http://x/', timeout: 5 }, 'timeout is not a known field']
  ]
  for (const [payload, expected] of cases) {
    const parsed = parseHttpPayload(payload)
    assert.is(parsed.ok, false, expected)
    if (!parsed.ok) {
      assert.ok(parsed.error.startsWith('invalid http payload: '), parsed.error)
      assert.ok(parsed.error.includes(expected), `${parsed.error} should mention ${expected}`)
    }
  }
})

// ---------------------------------------------------------------- handlers

test('handlers: loaded from a module path; functions by export name, default object merged', async () => {
  const handlers = await loadHandlers(relative(process.cwd(), handlersPath))
  assert.ok(typeof handlers.echo === 'function')
  assert.ok(typeof handlers.fromDefault === 'function')
  assert.is(handlers.notAFunction, undefined)
  assert.is(handlers.value, undefined)
  assert.is(handlers.default, undefined)
  const ex = await executors({ handlers: handlersPath })
  assert.ok(ex.types().includes('echo'))
  assert.ok(ex.types().includes('http'))
  assert.equal(ex.types(), [...ex.types()].sort())
  assert.is(ex.canRun('echo'), true)
  assert.is(ex.canRun('nope'), false)
  assert.equal(resultOf(await run(ex, order('fromDefault', null))), 'from default')
})

test('handlers: ctx fields present, named export wins over default', async () => {
  const ex = await executors({ handlers: handlersPath })
  const outcome = await run(ex, order('echo', { x: 1 }, { taskId: 'task-9', attempt: 3, fencingToken: 42 }))
  assert.is(outcome.ok, true)
  assert.equal(resultOf(outcome), {
    payload: { x: 1 }, taskId: 'task-9', attempt: 3, fencingToken: 42, hasSignal: true, progress: 'function', log: 'function'
  })
})

test('handlers: throw and reject become failed outcomes with the message', async () => {
  const ex = await executors({ handlers: handlersPath })
  assert.is(failure(await run(ex, order('boom', null))), 'kaboom')
  assert.is(failure(await run(ex, order('rejects', null))), 'bad thing')
  assert.is(failure(await run(ex, order('unknownType', null))), 'no executor for type "unknownType"')
})

test('handlers: progress reported (valid values only), log lines carry the task id', async () => {
  const ex = await executors({ handlers: handlersPath })
  progressSeen.length = 0
  logLines.length = 0
  const outcome = await run(ex, order('reporter', null, { taskId: 'task-p' }))
  assert.equal(resultOf(outcome), 'done')
  assert.equal(progressSeen, [['task-p', 10], ['task-p', 55.5]])
  const logged = logLines.map(line => JSON.parse(line)).find(entry => entry.event === 'task.log')
  assert.ok(logged, 'a task.log line')
  assert.is(logged.task, 'task-p')
  assert.is(logged.message, 'hello 42')
})

test('handlers: results made plain; too large and unserializable fail', async () => {
  const ex = await executors({ handlers: handlersPath, resultBytesMax: 1000 })
  assert.equal(await run(ex, order('nothing', null)), { ok: true, result: null })
  assert.equal(await run(ex, order('dated', null)), { ok: true, result: { at: '1970-01-01T00:00:00.000Z', list: [1, null] } })
  assert.is((await run(ex, order('big', { n: 500 }))).ok, true)
  assert.match(failure(await run(ex, order('big', { n: 5000 }))), /^result too large/)
  assert.match(failure(await run(ex, order('withFunction', null))), /^result is not serializable/)
  assert.match(failure(await run(ex, order('withSymbol', null))), /^result is not serializable/)
  assert.match(failure(await run(ex, order('cyclic', null))), /^result is not serializable/)
})

test('handlers: a handler ignoring its signal still times out promptly', async () => {
  const ex = await executors({ handlers: handlersPath })
  const outcome = await run(ex, order('stubborn', null, { timeoutMs: 100 }))
  assert.is(failure(outcome), 'timed out after 100ms')
  assert.is(ex.runningCount(), 0)
  const polite = await run(ex, order('polite', null, { timeoutMs: 50 }))
  assert.is(failure(polite), 'timed out after 50ms')
})

test('handlers: cancel via the caller signal, and stop() aborts what runs', async () => {
  const ex = await executors({ handlers: handlersPath })
  const controller = new AbortController()
  const cancelled = ex.run(order('stubborn', null), controller.signal)
  assert.is(ex.runningCount(), 1)
  controller.abort('cancelled')
  assert.is(failure(await cancelled), 'aborted: cancelled')

  const first = ex.run(order('stubborn', null), new AbortController().signal)
  const second = ex.run(order('polite', null), new AbortController().signal)
  assert.is(ex.runningCount(), 2)
  await ex.stop()
  assert.is(ex.runningCount(), 0)
  assert.is(failure(await first), 'aborted: node is stopping')
  assert.is(failure(await second), 'aborted: node is stopping')
  assert.match(failure(await run(ex, order('echo', null))), /stopping/)
})

test('handlers: reserved names and missing modules fail at load with clear errors', async () => {
  const shellPath = join(tempDir, 'reserved-shell.mjs')
  await writeFile(shellPath, 'export function shell () {}\n')
  const httpPath = join(tempDir, 'reserved-http.mjs')
  await writeFile(httpPath, 'export default { http () {} }\n')
  const brokenPath = join(tempDir, 'broken.mjs')
  await writeFile(brokenPath, 'export function (\n')

  await rejectsWith(() => loadHandlers(shellPath), /"shell", a reserved task type/)
  await rejectsWith(() => loadHandlers(httpPath), /"http", a reserved task type/)
  await rejectsWith(() => Executors.create({ allowExec: false, log: createLogger('silent'), handlers: shellPath }), /reserved/)
  await rejectsWith(() => loadHandlers({ http: () => 1 }), /reserved/)
  const missing = join(tempDir, 'nope.mjs')
  await rejectsWith(() => loadHandlers(missing), (err: Error) => err.message === `handlers module not found: ${missing}`)
  await rejectsWith(() => loadHandlers(brokenPath), /failed to load handlers module .*broken\.mjs/)

  const fromObject = await loadHandlers({ add: (p: { a: number, b: number }) => p.a + p.b, junk: 3 as any })
  assert.equal(Object.keys(fromObject), ['add'])
  assert.equal(await loadHandlers(undefined), {})
})

test.run()
