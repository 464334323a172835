// cli.test.ts: the command line: the argument parser, usage errors, keygen, --version, the
// client commands against a stand-in HTTP server, and the cluster launcher with stand-in nodes.
// End-to-end runs of `start` and `cluster` with the real runtime live with the runtime's tests.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs, parseInteger, UsageError, type CommandSpec } from '../src/cli/args.js'
import { launchCluster } from '../src/cli/cluster.js'
import { run, type Io } from '../src/cli/main.js'

const BIN = fileURLToPath(new URL('../../bin/taskmesh', import.meta.url))
const PACKAGE_JSON = fileURLToPath(new URL('../../package.json', import.meta.url))

const spec: CommandSpec = {
  name: 'taskmesh demo',
  usage: ['<type> [payload] [options]'],
  summary: 'A demo command.',
  positionals: ['type', 'payload?'],
  options: {
    priority: { kind: 'string', valueName: '<N>', description: 'priority' },
    after: { kind: 'string', repeatable: true, valueName: '<id>', description: 'dependencies' },
    wait: { kind: 'boolean', description: 'wait' }
  }
}

function usageErrorOf (fn: () => unknown): UsageError {
  try {
    fn()
  } catch (error) {
    assert.instance(error, UsageError)
    return error as UsageError
  }
  throw new Error('expected a UsageError')
}

const createdFolders: string[] = []

function tempDir (): string {
  const folder = mkdtempSync(join(tmpdir(), 'taskmesh-cli-'))
  createdFolders.push(folder)
  return folder
}

interface Captured extends Io {
  out: string
  err: string
}

function captureIo (env: NodeJS.ProcessEnv = {}): Captured {
  const io: Captured = {
    out: '',
    err: '',
    stdout: text => { io.out += text },
    stderr: text => { io.err += text },
    env
  }
  return io
}

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

async function runBin (args: string[], bin = BIN): Promise<Ran> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += String(chunk) })
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  return { code, stdout, stderr }
}

// ---------------------------------------------------------------------------------------
// parser

test('args: positionals, a string option, a boolean', () => {
  const args = parseArgs(['shell', '{"a":1}', '--priority', '5', '--wait'], spec)
  assert.equal(args.positionals, ['shell', '{"a":1}'])
  assert.is(args.string('priority'), '5')
  assert.is(args.flag('wait'), true)
  assert.is(args.help, false)
})

test('args: options may come before, between and after positionals', () => {
  const args = parseArgs(['--wait', 'shell', '--priority', '1', '{}'], spec)
  assert.equal(args.positionals, ['shell', '{}'])
  assert.is(args.string('priority'), '1')
  assert.is(args.flag('wait'), true)
})

test('args: absent options', () => {
  const args = parseArgs(['shell'], spec)
  assert.is(args.string('priority'), undefined)
  assert.equal(args.strings('after'), [])
  assert.is(args.flag('wait'), false)
})

test('args: --flag=value form, with = and spaces inside the value', () => {
  const args = parseArgs(['shell', '--priority=7', '--after=a=b c'], spec)
  assert.is(args.string('priority'), '7')
  assert.equal(args.strings('after'), ['a=b c'])
})

test('args: repeatable options collect every value in order', () => {
  const args = parseArgs(['shell', '--after', 'x', '--after=y,z', '--after', 'w'], spec)
  assert.equal(args.strings('after'), ['x', 'y,z', 'w'])
})

test('args: a single-valued option given twice keeps the last value', () => {
  assert.is(parseArgs(['shell', '--priority', '1', '--priority', '2'], spec).string('priority'), '2')
})

test('args: negative numbers are values and positionals, not options', () => {
  const args = parseArgs(['shell', '--priority', '-3'], spec)
  assert.is(args.string('priority'), '-3')
  assert.equal(parseArgs(['shell', '-1'], spec).positionals, ['shell', '-1'])
})

test('args: -- ends the options', () => {
  const args = parseArgs(['shell', '--', '--wait'], spec)
  assert.equal(args.positionals, ['shell', '--wait'])
  assert.is(args.flag('wait'), false)
})

test('args: an unknown option is an error naming it, with the usage', () => {
  const error = usageErrorOf(() => parseArgs(['shell', '--frobnicate', '1'], spec))
  assert.match(error.message, '--frobnicate')
  assert.match(error.message, 'taskmesh demo')
  assert.match(error.usage, 'usage: taskmesh demo <type> [payload] [options]')
  assert.match(usageErrorOf(() => parseArgs(['shell', '--frobnicate=1'], spec)).message, '--frobnicate')
  assert.match(usageErrorOf(() => parseArgs(['shell', '-x'], spec)).message, '-x')
})

test('args: a string option without its value is an error', () => {
  assert.match(usageErrorOf(() => parseArgs(['shell', '--priority'], spec)).message, '--priority needs a value')
  assert.match(usageErrorOf(() => parseArgs(['shell', '--priority', '--wait'], spec)).message, '--priority needs a value')
})

test('args: a boolean given a value is an error', () => {
  assert.match(usageErrorOf(() => parseArgs(['shell', '--wait=yes'], spec)).message, '--wait takes no value')
})

test('args: missing and extra positionals', () => {
  assert.match(usageErrorOf(() => parseArgs([], spec)).message, 'missing <type>')
  assert.match(usageErrorOf(() => parseArgs(['a', 'b', 'c'], spec)).message, "unexpected argument 'c'")
})

test('args: -h and --help ask for help and skip every other check', () => {
  assert.is(parseArgs(['-h'], spec).help, true)
  assert.is(parseArgs(['--bogus', '--help'], spec).help, true)
  assert.is(parseArgs(['shell', '--', '--help'], spec).help, false)
})

test('args: reading an undeclared option is a programmer error', () => {
  const args = parseArgs(['shell'], spec)
  assert.throws(() => args.string('nope'), /not declared/)
  assert.throws(() => args.string('after'), /not declared/) // repeatable: use strings()
  assert.throws(() => args.flag('priority'), /not declared/)
})

test('args: parseInteger', () => {
  assert.is(parseInteger('42', 1), 42)
  assert.is(parseInteger('-3', -10), -3)
  assert.is(parseInteger('0', 1), null)
  assert.is(parseInteger('1.5', 0), null)
  assert.is(parseInteger('12abc', 0), null)
  assert.is(parseInteger('70000', 0, 65535), null)
})

// ---------------------------------------------------------------------------------------
// usage errors, in process

test('run: usage errors answer 2 and say what is wrong', async () => {
  const cases: Array<[string[], string]> = [
    [['submit'], 'missing <type>'],
    [['submit', 'shell', '{not json'], 'payload-json is not valid JSON'],
    [['submit', 'shell', '--bogus'], 'unknown option --bogus'],
    [['submit', 'shell', '--priority', 'high'], '--priority'],
    [['submit', 'shell', '--delay', '1s', '--run-at', '2030-01-01T00:00:00Z'], '--delay or --run-at'],
    [['submit', 'shell', '--cron', '* * * * *', '--every', '1m'], '--cron or --every'],
    [['submit', 'shell', '--every', '1m', '--wait'], '--wait'],
    [['submit', 'shell', '--every', '1m', '--delay', '5s'], '--delay does not apply to a schedule'],
    [['submit', 'shell', '--cron', '* * * * *', '--run-at', '2030-01-01T00:00:00Z'], '--run-at does not apply to a schedule'],
    [['submit', 'shell', '--every', '1m', '--after', 't1'], '--after does not apply to a schedule'],
    [['submit', 'shell', '--tz', 'Europe/Paris'], '--tz applies to a schedule only'],
    [['submit', 'shell', '--every', '1m', '--tz', 'Europe/Paris'], '--tz applies to --cron only'],
    [['submit', 'shell', '--catch-up', 'all'], '--catch-up applies to a schedule only'],
    [['submit', 'shell', '--every', '1m', '--catch-up', 'some'], "--catch-up: 'some' is not latest or all"],
    [['submit', 'shell', '--every', '1m', '--overlap', 'deny'], "--overlap: 'deny' is not allow or forbid"],
    [['pause'], 'missing <id>'],
    [['resume', 'a', 'b'], "unexpected argument 'b'"],
    [['start', '--limit', 'gpu'], "--limit: 'gpu' is not type=N"],
    [['start', '--limit', 'gpu=0'], "--limit: 'gpu=0' is not type=N"],
    [['start', '--limit', 'bad type=2'], '--limit'],
    [['start', '--retention', 'forever'], '--retention'],
    [['start', '--retention', '10ms'], '--retention: at least 1s'],
    [['list', '--limit', '0'], '--limit'],
    [['status'], 'missing <id>'],
    [['status', 'a', 'b'], "unexpected argument 'b'"],
    [['start', '--heartbeat', 'soon'], '--heartbeat'],
    [['start', '--log-level', 'loud'], '--log-level'],
    [['start', '--api', 'localhost'], '--api'],
    [['start', '--replicas', '0'], '--replicas'],
    [['cluster', '--nodes', 'many'], '--nodes'],
    [['cluster', '--api-port', '65535', '--nodes', '3'], '--api-port'],
    [['status', 'x', '--node', 'ftp://example.com'], '--node'],
    [['frobnicate'], "unknown command 'frobnicate'"],
    [['help', 'frobnicate'], "unknown command 'frobnicate'"]
  ]
  for (const [argv, message] of cases) {
    const io = captureIo()
    const code = await run(argv, io)
    assert.is(code, 2, `${argv.join(' ')} → ${code}: ${io.err}`)
    assert.match(io.err, message, `${argv.join(' ')}: ${io.err}`)
    assert.match(io.err, /^error: /)
    assert.match(io.err, 'usage: taskmesh')
    assert.is(io.out, '')
  }
})

test('run: sim checks its options (and its fault schedule) before it starts anything', async () => {
  const cases: Array<[string[], string]> = [
    [['sim', '--faults', 'kill:9@1s', '--nodes', '3'], "--faults: fault 'kill:9@1s': node 9 does not exist (nodes are numbered 1 to 3)"],
    [['sim', '--faults', 'kill:2@5s,restart@4s'], "fault 'restart@4s': no node is down at 4s"],
    [['sim', '--rate', 'fast'], "--rate: 'fast' is not a rate"],
    [['sim', '--duration', 'gauss:5ms'], "--duration: unknown distribution 'gauss'"],
    [['sim', '--nodes', '0'], '--nodes'],
    [['sim', '--settle', 'soon'], '--settle']
  ]
  for (const [argv, message] of cases) {
    const io = captureIo()
    assert.is(await run(argv, io), 2, `${argv.join(' ')}: ${io.err}`)
    assert.match(io.err, message)
    assert.match(io.err, 'usage: taskmesh sim')
  }
  const io = captureIo()
  assert.is(await run(['help', 'sim'], io), 0)
  assert.match(io.out, '--faults <schedule|random[:N]|none>')
  assert.match(io.out, 'partition:A|B@T+D')
})

test('run: help, general and per command', async () => {
  let io = captureIo()
  assert.is(await run(['help'], io), 0)
  for (const command of ['start', 'cluster', 'submit', 'status', 'list', 'cancel', 'retry', 'peers', 'drain', 'sim', 'keygen']) {
    assert.match(io.out, `  ${command}`)
  }
  io = captureIo()
  assert.is(await run(['submit', '--help'], io), 0)
  assert.match(io.out, '--backoff fixed:D|exp:D[:maxD]')
  assert.match(io.out, '--after <id>[,<id>...]')
  io = captureIo()
  assert.is(await run(['help', 'start'], io), 0)
  assert.match(io.out, '--swarm-key <file>')
  io = captureIo()
  assert.is(await run([], io), 2)
  assert.match(io.err, 'usage: taskmesh <command>')
})

test('run: an unreadable token file is an error before any request', async () => {
  const io = captureIo({ TASKMESH_TOKEN: join(tempDir(), 'missing-token') })
  assert.is(await run(['status', 'x'], io), 1)
  assert.match(io.err, 'cannot read the token file')
})

// ---------------------------------------------------------------------------------------
// the binary

test('bin: --version prints the package version', async () => {
  const manifest = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }
  const ran = await runBin(['--version'])
  assert.is(ran.code, 0)
  assert.is(ran.stdout, `${manifest.version}\n`)
})

test('bin: usage errors exit 2 with a message', async () => {
  let ran = await runBin(['submit'])
  assert.is(ran.code, 2)
  assert.match(ran.stderr, 'error: missing <type>')
  ran = await runBin(['list', '--colour', 'red'])
  assert.is(ran.code, 2)
  assert.match(ran.stderr, "unknown option --colour for 'taskmesh list'")
  ran = await runBin(['sim', '--faults', 'pause:1@2s'])
  assert.is(ran.code, 2)
  assert.match(ran.stderr, "fault 'pause:1@2s': a pause needs a duration")
})

test('bin: is executable', () => {
  assert.ok((statSync(BIN).mode & 0o111) !== 0)
})

test('bin: without dist it says how to build', async () => {
  const folder = tempDir()
  mkdirSync(join(folder, 'bin'))
  writeFileSync(join(folder, 'package.json'), '{"type":"module"}')
  copyFileSync(BIN, join(folder, 'bin', 'taskmesh'))
  const ran = await runBin(['--version'], join(folder, 'bin', 'taskmesh'))
  assert.is(ran.code, 1)
  assert.match(ran.stderr, 'taskmesh is not built: run npm install (or npm run build)')
})

test('bin: keygen writes a mode-600 swarm key and refuses to overwrite it', async () => {
  const file = join(tempDir(), 'keys', 'swarm.key')
  const ran = await runBin(['keygen', file])
  assert.is(ran.code, 0, ran.stderr)
  assert.is(ran.stdout, `${file}\n`)
  assert.ok(existsSync(file))
  assert.is(statSync(file).mode & 0o777, 0o600)
  const key = readFileSync(file, 'utf8')
  assert.match(key, /^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}/)

  const again = await runBin(['keygen', file])
  assert.is(again.code, 1)
  assert.match(again.stderr, /^error: .*exists/)
  assert.is(readFileSync(file, 'utf8'), key)
})

test('bin: keygen without a file is a usage error', async () => {
  const ran = await runBin(['keygen'])
  assert.is(ran.code, 2)
  assert.match(ran.stderr, 'missing <file>')
})

// ---------------------------------------------------------------------------------------
// client commands against a stand-in node

interface Exchange {
  method: string
  url: string
  headers: IncomingMessage['headers']
  body: unknown
}

type Answer = (exchange: Exchange) => { status: number, body: unknown }

async function standInNode (answer: Answer): Promise<{ url: string, exchanges: Exchange[], close: () => Promise<void> }> {
  const exchanges: Exchange[] = []
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let text = ''
    request.on('data', chunk => { text += String(chunk) })
    request.on('end', () => {
      const exchange: Exchange = { method: request.method ?? '', url: request.url ?? '', headers: request.headers, body: text === '' ? undefined : JSON.parse(text) }
      exchanges.push(exchange)
      const { status, body } = answer(exchange)
      response.writeHead(status, { 'content-type': 'application/json' })
      response.end(JSON.stringify(body))
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address() as { port: number }
  return {
    url: `http://127.0.0.1:${address.port}`,
    exchanges,
    close: async () => await new Promise<void>(resolve => { server.closeAllConnections(); server.close(() => resolve()) })
  }
}

function record (fields: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 't-1', type: 'shell', payload: {}, state: 'queued', priority: 0, attempt: 1, maxAttempts: 3,
    owner: '12D3KooWAbCdEfGhIjKlMnOpQrStUv', replicas: [], runAt: '2030-01-01T00:00:00.000Z',
    createdAt: '2030-01-01T00:00:00.000Z', startedAt: null, finishedAt: null, result: null, error: null,
    history: [], ...fields
  }
}

test('submit: sends the task options as the create body and prints the id', async () => {
  const node = await standInNode(() => ({ status: 201, body: record() }))
  try {
    const io = captureIo()
    const code = await run(['submit', 'shell', '{"argv":["echo","hi"]}', '--node', node.url,
      '--priority', '5', '--delay', '5s', '--attempts', '4', '--backoff', 'exp:1s:1m', '--timeout', '2m',
      '--key', 'k-1', '--after', 'a,b', '--after', 'c'], io)
    assert.is(code, 0, io.err)
    assert.is(io.out, 't-1\n')
    assert.is(node.exchanges.length, 1)
    const [exchange] = node.exchanges
    assert.is(exchange!.method, 'POST')
    assert.is(exchange!.url, '/v1/tasks')
    assert.equal(exchange!.body, {
      type: 'shell', payload: { argv: ['echo', 'hi'] }, priority: 5, delay: '5s', maxAttempts: 4,
      backoff: 'exp:1s:1m', timeout: '2m', idempotencyKey: 'k-1', dependsOn: ['a', 'b', 'c']
    })
  } finally {
    await node.close()
  }
})

test('submit: a schedule, the token from $TASKMESH_TOKEN, the node from $TASKMESH_NODE', async () => {
  const node = await standInNode(() => ({ status: 201, body: record({ id: 's-1' }) }))
  try {
    const tokenFile = join(tempDir(), 'token')
    writeFileSync(tokenFile, '  sesame\n')
    const io = captureIo({ TASKMESH_NODE: node.url, TASKMESH_TOKEN: tokenFile })
    assert.is(await run(['submit', 'report', '--cron', '0 9 * * 1-5', '--tz', 'Europe/Paris', '--catch-up', 'all', '--overlap', 'forbid', '--key', 'daily-report'], io), 0, io.err)
    assert.is(io.out, 's-1\n')
    assert.equal(node.exchanges[0]!.body, { type: 'report', cron: '0 9 * * 1-5', timezone: 'Europe/Paris', catchUp: 'all', overlap: 'forbid', idempotencyKey: 'daily-report' })
    const every = captureIo({ TASKMESH_NODE: node.url })
    assert.is(await run(['submit', 'tick', '--every', '30s', '--attempts', '2'], every), 0, every.err)
    assert.equal(node.exchanges[1]!.body, { type: 'tick', every: '30s', maxAttempts: 2 })
    assert.is(node.exchanges[0]!.headers.authorization, 'Bearer sesame')
  } finally {
    await node.close()
  }
})

test('submit --wait: prints the final record; exit 0 only when it succeeded', async () => {
  for (const [state, expected] of [['succeeded', 0], ['dead', 1]] as const) {
    let polls = 0
    const node = await standInNode(exchange => {
      if (exchange.method === 'POST') return { status: 201, body: record() }
      polls++
      return { status: 200, body: record(polls < 2 ? { state: 'running' } : { state, result: { exitCode: 0 } }) }
    })
    try {
      const io = captureIo()
      assert.is(await run(['submit', 'shell', '--wait', '--node', node.url], io), expected, io.err)
      const printed = JSON.parse(io.out) as { id: string, state: string }
      assert.is(printed.state, state)
      assert.is(printed.id, 't-1')
      assert.match(io.out, '\n  "id": "t-1"')
      assert.ok(node.exchanges.slice(1).every(exchange => exchange.method === 'GET' && exchange.url.startsWith('/v1/tasks/t-1')))
    } finally {
      await node.close()
    }
  }
})

test('status, cancel, retry, pause, resume: print the record as indented JSON', async () => {
  const node = await standInNode(exchange => ({ status: 200, body: record({ state: exchange.url.endsWith('/cancel') ? 'cancelled' : 'queued' }) }))
  try {
    for (const [command, path, method] of [
      ['status', '/v1/tasks/t-1', 'GET'], ['cancel', '/v1/tasks/t-1/cancel', 'POST'], ['retry', '/v1/tasks/t-1/retry', 'POST'],
      ['pause', '/v1/tasks/t-1/pause', 'POST'], ['resume', '/v1/tasks/t-1/resume', 'POST']
    ] as const) {
      const io = captureIo()
      assert.is(await run([command, 't-1', '--node', node.url], io), 0, io.err)
      assert.equal(JSON.parse(io.out), record({ state: command === 'cancel' ? 'cancelled' : 'queued' }))
      assert.match(io.out, /^\{\n {2}"id"/)
      const exchange = node.exchanges[node.exchanges.length - 1]!
      assert.is(exchange.method, method)
      assert.is(exchange.url.split('?')[0], path)
    }
  } finally {
    await node.close()
  }
})

test('errors from the node print error: <code>: <message> and exit 1', async () => {
  const node = await standInNode(() => ({ status: 404, body: { error: { code: 'not_found', message: 'no task t-9' } } }))
  try {
    const io = captureIo()
    assert.is(await run(['status', 't-9', '--node', node.url], io), 1)
    assert.is(io.err, 'error: not_found: no task t-9\n')
    assert.is(io.out, '')
  } finally {
    await node.close()
  }
})

test('an unreachable node is an error, exit 1', async () => {
  const server = createTcpServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  const io = captureIo()
  assert.is(await run(['status', 't-1', '--node', `http://127.0.0.1:${port}`], io), 1)
  assert.match(io.err, /^error: unreachable: .*ECONNREFUSED/)
})

test('list: a table, or JSON; the query carries the filters', async () => {
  const page = { tasks: [record(), record({ id: 't-2', state: 'running', owner: null })], next: 'c-2' }
  const node = await standInNode(() => ({ status: 200, body: page }))
  try {
    let io = captureIo()
    assert.is(await run(['list', '--state', 'queued', '--type', 'shell', '--limit', '2', '--node', node.url], io), 0, io.err)
    const lines = io.out.trimEnd().split('\n')
    assert.match(lines[0]!, /^ID\s+TYPE\s+STATE\s+ATTEMPT\s+OWNER\s+CREATED$/)
    assert.match(lines[1]!, /^t-1\s+shell\s+queued\s+1\/3\s+…OpQrStUv\s+2030-01-01T00:00:00.000Z$/)
    assert.match(lines[2]!, /^t-2\s+shell\s+running\s+1\/3\s+-\s+2030-01-01T00:00:00.000Z$/)
    assert.match(io.out, 'c-2')
    const query = new URL(node.exchanges[0]!.url, 'http://x').searchParams
    assert.is(query.get('state'), 'queued')
    assert.is(query.get('type'), 'shell')
    assert.is(query.get('limit'), '2')

    io = captureIo()
    assert.is(await run(['list', '--json', '--node', node.url], io), 0, io.err)
    assert.equal(JSON.parse(io.out), page)
  } finally {
    await node.close()
  }
})

test('peers: a table of members with self marked', async () => {
  const member = (peerId: string, state: string, running: number): Record<string, unknown> => ({
    peerId, addrs: [], api: `http://127.0.0.1:70${peerId.slice(-2)}`, state, types: ['shell'], ringShare: 0.5, lastSeen: null,
    load: { running, queued: 1, capacity: 8, durationMsEwma: 10 }
  })
  const view = { self: '12D3KooWselfselfself01', replicas: 3, members: [member('12D3KooWselfselfself01', 'alive', 2), member('12D3KooWotherotherot02', 'suspect', 0)] }
  const node = await standInNode(() => ({ status: 200, body: view }))
  try {
    const io = captureIo()
    assert.is(await run(['peers', '--node', node.url], io), 0, io.err)
    assert.match(io.out, /\* …lfself01\s+alive\s+http:\/\/127\.0\.0\.1:7001\s+2\/8\s+1\s+50\.0%/)
    assert.match(io.out, /  …therot02\s+suspect/)
    assert.is(node.exchanges[0]!.url, '/v1/cluster')
  } finally {
    await node.close()
  }
})

test('drain: asks the node and prints draining', async () => {
  const node = await standInNode(() => ({ status: 202, body: { draining: true } }))
  try {
    const io = captureIo()
    assert.is(await run(['drain', '--node', node.url], io), 0, io.err)
    assert.is(io.out, 'draining\n')
    assert.is(node.exchanges[0]!.method, 'POST')
    assert.is(node.exchanges[0]!.url, '/v1/drain')
  } finally {
    await node.close()
  }
})

// ---------------------------------------------------------------------------------------
// the cluster launcher, with stand-in nodes

// Answers like a node: prints the ready line, serves /healthz and /v1/cluster (every node
// alive once FAKE_ALIVE_AFTER_MS has passed), records its argv, stops on SIGTERM.
const FAKE_NODE = `
import { createServer } from 'node:http'
import { mkdirSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
const argv = process.argv.slice(2)
const get = name => { const index = argv.indexOf('--' + name); return index === -1 ? undefined : argv[index + 1] }
const data = get('data')
const name = basename(data)
mkdirSync(data, { recursive: true })
writeFileSync(join(data, 'argv.json'), JSON.stringify(argv))
if (process.env.FAKE_FAIL === name) { console.error('cannot start: boom'); process.exit(3) }
const api = get('api')
const colon = api.lastIndexOf(':')
const size = Number(process.env.FAKE_SIZE)
const aliveAt = Date.now() + Number(process.env.FAKE_ALIVE_AFTER_MS ?? 0)
const server = createServer((request, response) => {
  if (request.url === '/healthz') { response.writeHead(200); response.end('ok'); return }
  if (request.url === '/v1/cluster') {
    const alive = Date.now() >= aliveAt ? size : 1
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify({ self: name, replicas: 3, members: Array.from({ length: size }, (_, index) => ({ peerId: 'p' + index, state: index < alive ? 'alive' : 'suspect' })) }))
    return
  }
  response.writeHead(404); response.end()
})
server.listen(Number(api.slice(colon + 1)), api.slice(0, colon), () => {
  console.error('starting ' + name)
  console.log('taskmesh ready ' + JSON.stringify({ peerId: 'peer-' + name, addrs: ['/ip4/127.0.0.1/tcp/40' + name.slice(-1)], api: 'http://' + api.slice(0, colon) + ':' + server.address().port }))
})
process.on('SIGTERM', () => { server.close(); process.exit(0) })
`

function fakeNodeBin (): string {
  const file = join(tempDir(), 'fake-node.mjs')
  writeFileSync(file, FAKE_NODE)
  return file
}

test('launchCluster: starts node 1, then the rest bootstrapped from it, waits for all alive', async () => {
  const dataDir = join(tempDir(), 'cluster')
  const lines: string[] = []
  const cluster = await launchCluster({
    nodes: 3, dataDir, apiPort: 0, bin: fakeNodeBin(), replicas: 2, capacity: 4, logLevel: 'error',
    env: { FAKE_SIZE: '3', FAKE_ALIVE_AFTER_MS: '600' },
    relay: (index, stream, line) => lines.push(`${index} ${stream} ${line}`),
    readyTimeoutMs: 20_000
  })
  try {
    assert.equal(cluster.nodes.map(node => node.index), [1, 2, 3])
    assert.equal(cluster.nodes.map(node => node.peerId), ['peer-node-1', 'peer-node-2', 'peer-node-3'])
    assert.ok(cluster.nodes.every(node => /^http:\/\/127\.0\.0\.1:\d+$/.test(node.api)))
    assert.equal(cluster.nodes[0]!.addrs, ['/ip4/127.0.0.1/tcp/401'])
    assert.is(cluster.nodes[1]!.dataDir, join(dataDir, 'node-2'))
    assert.ok(existsSync(join(dataDir, 'swarm.key')))

    const argv = (index: number): string[] => JSON.parse(readFileSync(join(dataDir, `node-${index}`, 'argv.json'), 'utf8')) as string[]
    const first = argv(1)
    assert.is(first[0], 'start')
    assert.not.ok(first.includes('--bootstrap'))
    for (const [flag, value] of [['--listen', '/ip4/127.0.0.1/tcp/0'], ['--api', '127.0.0.1:0'], ['--swarm-key', join(dataDir, 'swarm.key')], ['--replicas', '2'], ['--capacity', '4'], ['--log-level', 'error']]) {
      assert.is(first[first.indexOf(flag!) + 1], value, flag)
    }
    assert.ok(first.includes('--allow-exec'))
    for (const index of [2, 3]) {
      const args = argv(index)
      assert.is(args[args.indexOf('--bootstrap') + 1], '/ip4/127.0.0.1/tcp/401/p2p/peer-node-1')
    }
    assert.ok(lines.includes('1 stderr starting node-1'))
    assert.ok(lines.some(line => line.startsWith('2 stdout taskmesh ready ')))
  } finally {
    await cluster.stop()
  }
  assert.ok(cluster.nodes.every(node => node.process.exitCode === 0))
})

test('launchCluster: a node that dies before it is ready fails the launch and stops the rest', async () => {
  const dataDir = join(tempDir(), 'cluster')
  try {
    await launchCluster({ nodes: 3, dataDir, apiPort: 0, bin: fakeNodeBin(), env: { FAKE_SIZE: '3', FAKE_FAIL: 'node-2' }, readyTimeoutMs: 20_000 })
    assert.unreachable('the launch should fail')
  } catch (error) {
    assert.instance(error, Error)
    assert.match((error as Error).message, 'node-2 exited (code 3) before it was ready')
    assert.match((error as Error).message, 'cannot start: boom')
  }
})

test('launchCluster: nodes that never see each other alive time out with the last check', async () => {
  const started = Date.now()
  const apis: string[] = []
  try {
    await launchCluster({
      nodes: 2, dataDir: join(tempDir(), 'cluster'), apiPort: 0, bin: fakeNodeBin(), readyTimeoutMs: 2000,
      env: { FAKE_SIZE: '2', FAKE_ALIVE_AFTER_MS: '600000' },
      relay: (_index, _stream, line) => {
        if (line.startsWith('taskmesh ready ')) apis.push((JSON.parse(line.slice('taskmesh ready '.length)) as { api: string }).api)
      }
    })
    assert.unreachable('the launch should time out')
  } catch (error) {
    assert.match((error as Error).message, 'cluster not ready after 2 s: last check: node-')
    assert.match((error as Error).message, 'sees 1 of 2 members alive')
  }
  assert.ok(Date.now() - started < 10_000)
  // The launch stopped the nodes before it failed.
  assert.is(apis.length, 2)
  for (const api of apis) {
    await fetch(`${api}/healthz`).then(() => assert.unreachable(`${api} still answers`), () => {})
  }
})

test('launchCluster: a busy API port is reported with a hint', async () => {
  const server = createTcpServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  try {
    await launchCluster({ nodes: 2, dataDir: join(tempDir(), 'cluster'), apiPort: port - 1, bin: fakeNodeBin(), env: { FAKE_SIZE: '2' } })
    assert.unreachable('the launch should fail')
  } catch (error) {
    assert.match((error as Error).message, `port ${port} (the API of node-2) is already in use`)
    assert.match((error as Error).message, '--api-port')
  } finally {
    await new Promise(resolve => server.close(resolve))
  }
})

test('launchCluster: reports a node that exits after the launch', async () => {
  let exited: ((index: number) => void) | undefined
  const seen = new Promise<number>(resolve => { exited = resolve })
  const cluster = await launchCluster({
    nodes: 2, dataDir: join(tempDir(), 'cluster'), apiPort: 0, bin: fakeNodeBin(), env: { FAKE_SIZE: '2' },
    onUnexpectedExit: node => exited!(node.index)
  })
  try {
    cluster.nodes[1]!.process.kill('SIGKILL')
    assert.is(await seen, 2)
  } finally {
    await cluster.stop()
  }
})

test.after(() => {
  for (const folder of createdFolders) rmSync(folder, { recursive: true, force: true })
})

test.run()
