// main.ts: the `taskmesh` command line: one function per command of the contract's table.
// Why the heavy modules are imported inside the commands: `taskmesh status` should not load
// libp2p, and a usage error should be reported before anything is loaded at all.
import { existsSync, readFileSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { helpText, parseArgs, parseInteger, UsageError, type CommandSpec, type OptionSpec, type ParsedArgs } from './args.js'
import { launchCluster, type Cluster, type ClusterNode } from './cluster.js'
import { parseDurationMs } from '../core/duration.js'
import type { LogLevel, NodeOptions } from '../runtime/options.js'
import type { RunningNode } from '../runtime/node.js'
import type { Client } from '../api/client.js'
import type { CreateBody, PublicRecord } from '../api/present.js'

/** Where a command writes; tests pass their own. */
export interface Io {
  stdout (text: string): void
  stderr (text: string): void
  env: NodeJS.ProcessEnv
}

const processIo: Io = {
  stdout: text => { process.stdout.write(text) },
  stderr: text => { process.stderr.write(text) },
  env: process.env
}

const DEFAULT_NODE_URL = 'http://127.0.0.1:7070'
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent']
const TERMINAL_STATES = new Set(['succeeded', 'dead', 'cancelled'])
const WAIT_ROUND_MS = 30_000
const CLUSTER_NODES_MAX = 64
/** Commands that own the process until a signal: main() ends the process when they return. */
const LONG_RUNNING = new Set(['start', 'cluster', 'sim'])

export async function main (argv: string[]): Promise<void> {
  const code = await run(argv, processIo)
  process.exitCode = code
  // A stopped node or cluster may leave libp2p timers or sockets behind; nothing is left to do.
  if (LONG_RUNNING.has(argv[0] ?? '')) process.exit(code)
}

/** Runs one command line and answers its exit code: 0 success, 1 failure, 2 usage error. */
export async function run (argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv
  try {
    if (name === undefined) {
      io.stderr(generalHelp() + '\n')
      return 2
    }
    if (name === '--version' || name === 'version') {
      io.stdout(packageVersion() + '\n')
      return 0
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      const topic = name === 'help' ? rest[0] : undefined
      if (topic === 'sim') return await run(['sim', '--help'], io)
      if (topic === undefined) {
        io.stdout(generalHelp() + '\n')
        return 0
      }
      const command = commandNamed(topic)
      if (command === undefined) throw new UsageError(`unknown command '${topic}'`, generalUsage())
      io.stdout(helpText(command.spec) + '\n')
      return 0
    }
    if (name === 'sim' && rest.includes('--virtual')) return await runVirtualSim(rest, io)
    const command = commandNamed(name)
    if (command === undefined) throw new UsageError(`unknown command '${name}'`, generalUsage())
    const args = parseArgs(rest, command.spec)
    if (args.help) {
      io.stdout(helpText(command.spec) + '\n')
      return 0
    }
    return await command.run(args, io)
  } catch (error) {
    return report(error, io)
  }
}

function report (error: unknown, io: Io): number {
  if (error instanceof UsageError) {
    io.stderr(`error: ${error.message}\n${error.usage}\n`)
    return 2
  }
  if (isTaskmeshError(error)) {
    io.stderr(`error: ${error.code}: ${error.message}\n`)
    return 1
  }
  io.stderr(`error: ${error instanceof Error ? error.message : String(error)}\n`)
  return 1
}

/** By shape as well as by name: the client module is loaded lazily, so no instanceof. */
function isTaskmeshError (error: unknown): error is Error & { code: string, status: number } {
  if (!(error instanceof Error)) return false
  const fields = error as Error & { code?: unknown, status?: unknown }
  return error.name === 'TaskmeshError' || (typeof fields.code === 'string' && typeof fields.status === 'number')
}

// ---------------------------------------------------------------------------------------
// Command table

interface Command {
  spec: CommandSpec
  run (args: ParsedArgs, io: Io): Promise<number>
}

const clientOptions: Record<string, OptionSpec> = {
  node: { kind: 'string', valueName: '<url>', description: `the node to ask (default $TASKMESH_NODE, else ${DEFAULT_NODE_URL})` },
  token: { kind: 'string', valueName: '<file>', description: 'file holding the API bearer token (default $TASKMESH_TOKEN)' }
}

const COMMANDS: Record<string, Command> = {
  start: {
    spec: {
      name: 'taskmesh start',
      usage: ['[options]'],
      summary: 'Run one node in the foreground until SIGINT (stop now) or SIGTERM (drain, then stop).\nOnce listening it prints one line: taskmesh ready {"peerId","addrs","api"}.',
      positionals: [],
      options: {
        data: { kind: 'string', valueName: '<dir>', description: 'identity and database folder (default ./.taskmesh/node)' },
        listen: { kind: 'string', repeatable: true, valueName: '<multiaddr>', description: 'libp2p listen address (default /ip4/127.0.0.1/tcp/0)' },
        api: { kind: 'string', valueName: '<host:port>', description: 'HTTP API address, port 0 picks one, "none" disables it (default 127.0.0.1:7070)' },
        bootstrap: { kind: 'string', repeatable: true, valueName: '<multiaddr|host:port>', description: 'a peer to join through' },
        replicas: { kind: 'string', valueName: '<R>', description: 'replication factor (default 3)' },
        capacity: { kind: 'string', valueName: '<n>', description: 'concurrent tasks this node runs (default 8)' },
        limit: { kind: 'string', repeatable: true, valueName: '<type=N>', description: 'at most N concurrent runs of this task type on this node' },
        retention: { kind: 'string', valueName: '<D>', description: 'how long finished tasks (results, output, history) are kept (default 7d)' },
        handlers: { kind: 'string', valueName: '<module>', description: 'module whose exports are task handlers, by type' },
        'allow-exec': { kind: 'boolean', description: 'enable the shell executor' },
        'stand-ins': { kind: 'boolean', description: 'faster takeover when 2 of 3 replicas die (next ring members stand in); unsafe under long partitions' },
        'fault-injection': { kind: 'boolean', description: 'for tests: accept POST /v1/debug/faults (drop or delay messages of chosen peers)' },
        'swarm-key': { kind: 'string', valueName: '<file>', description: 'swarm key of a private network (see taskmesh keygen)' },
        'api-token': { kind: 'string', valueName: '<file>', description: 'file holding the bearer token the HTTP API requires' },
        'log-level': { kind: 'string', valueName: '<level>', description: 'debug, info, warn, error or silent (default info)' },
        'payload-max': { kind: 'string', valueName: '<bytes>', description: 'largest accepted task payload (default 1 MiB)' },
        heartbeat: { kind: 'string', valueName: '<D>', description: 'membership heartbeat interval' },
        'suspect-after': { kind: 'string', valueName: '<D>', description: 'silence after which a peer is suspect' },
        'dead-after': { kind: 'string', valueName: '<D>', description: 'silence after which a peer is dead' },
        'submit-timeout': { kind: 'string', valueName: '<D>', description: 'how long a submit waits for its write quorum (default 5s)' },
        'remove-after': { kind: 'string', valueName: '<D>', description: 'how long a dead peer keeps its place on the ring before its ranges move (default 30s)' },
        'drain-grace': { kind: 'string', valueName: '<D>', description: 'how long a drain waits for running tasks (default 30s)' }
      }
    },
    run: runStart
  },
  cluster: {
    spec: {
      name: 'taskmesh cluster',
      usage: ['[--nodes 3] [options]'],
      summary: 'Run a local cluster of N nodes as child processes on loopback until Ctrl-C.\nNode i keeps its data in <data>/node-i and serves its API on port api-port + i - 1.',
      positionals: [],
      options: {
        nodes: { kind: 'string', valueName: '<N>', description: 'number of nodes (default 3)' },
        data: { kind: 'string', valueName: '<dir>', description: 'parent folder of the nodes\' data and the swarm key (default ./.taskmesh)' },
        'api-port': { kind: 'string', valueName: '<port>', description: 'API port of node 1, 0 picks free ports (default 7070)' },
        replicas: { kind: 'string', valueName: '<R>', description: 'replication factor (default 3)' },
        capacity: { kind: 'string', valueName: '<n>', description: 'concurrent tasks per node' },
        handlers: { kind: 'string', valueName: '<module>', description: 'handlers module for every node' },
        'log-level': { kind: 'string', valueName: '<level>', description: 'log level of the nodes (default warn)' },
        'no-exec': { kind: 'boolean', description: 'do not enable the shell executor (enabled by default: the cluster is local)' }
      }
    },
    run: runCluster
  },
  submit: {
    spec: {
      name: 'taskmesh submit',
      usage: ['<type> [payload-json] [task options]'],
      summary: 'Submit a task (or, with --cron/--every, a schedule) and print its id.\nWith --wait, wait for the end and print the final record; exit 0 only if it succeeded.',
      positionals: ['type', 'payload-json?'],
      options: {
        priority: { kind: 'string', valueName: '<N>', description: 'higher runs first' },
        delay: { kind: 'string', valueName: '<D>', description: 'do not start before this long from now' },
        'run-at': { kind: 'string', valueName: '<ISO time>', description: 'do not start before this time' },
        cron: { kind: 'string', valueName: '"<expr>"', description: 'a schedule: run at every match of the cron expression (5 fields, or 6 with seconds first)' },
        every: { kind: 'string', valueName: '<D>', description: 'a schedule: run at this interval (at least 1s)' },
        tz: { kind: 'string', valueName: '<zone>', description: 'time zone of --cron, e.g. Europe/Paris (default UTC)' },
        'catch-up': { kind: 'string', valueName: 'latest|all', description: 'after an outage run only the latest missed tick (default) or all' },
        overlap: { kind: 'string', valueName: 'allow|forbid', description: 'forbid: skip a tick while the previous occurrence still runs (default allow)' },
        attempts: { kind: 'string', valueName: '<N>', description: 'maximum attempts' },
        backoff: { kind: 'string', valueName: 'fixed:D|exp:D[:maxD]', description: 'delay between attempts' },
        timeout: { kind: 'string', valueName: '<D>', description: 'abort an attempt after this long' },
        key: { kind: 'string', valueName: '<key>', description: 'idempotency key: the same key answers the same task' },
        after: { kind: 'string', repeatable: true, valueName: '<id>[,<id>...]', description: 'start only once these tasks succeeded' },
        wait: { kind: 'boolean', description: 'wait for the task to finish and print its record' },
        ...clientOptions
      }
    },
    run: runSubmit
  },
  status: {
    spec: { name: 'taskmesh status', usage: ['<id>'], summary: 'Print a task\'s record as JSON.', positionals: ['id'], options: { ...clientOptions } },
    run: async (args, io) => await withClient(args, io, async client => {
      io.stdout(json(await client.get(args.positionals[0]!)))
      return 0
    })
  },
  list: {
    spec: {
      name: 'taskmesh list',
      usage: ['[--state S] [--type T] [--schedule ID] [--limit N] [--cursor C] [--json]'],
      summary: 'List tasks, newest page first.',
      positionals: [],
      options: {
        state: { kind: 'string', valueName: '<S>', description: 'pending, queued, running, retrying, succeeded, dead or cancelled' },
        type: { kind: 'string', valueName: '<T>', description: 'only tasks of this type' },
        schedule: { kind: 'string', valueName: '<ID>', description: 'only occurrences of this schedule' },
        limit: { kind: 'string', valueName: '<N>', description: 'page size' },
        cursor: { kind: 'string', valueName: '<C>', description: 'the next page, as printed by the previous one' },
        json: { kind: 'boolean', description: 'print the answer as JSON' },
        ...clientOptions
      }
    },
    run: runList
  },
  cancel: commandOf('cancel', 'Cancel a task (a running one is killed) or delete a schedule, and print its record.'),
  retry: commandOf('retry', 'Run a dead or cancelled task again and print its record.'),
  pause: commandOf('pause', 'Pause a schedule (no ticks fire until resume) and print its record.'),
  resume: commandOf('resume', 'Resume a paused schedule and print its record.'),
  peers: {
    spec: {
      name: 'taskmesh peers',
      usage: ['[--json]'],
      summary: 'The cluster as the node sees it: members, state, load, ring share.',
      positionals: [],
      options: { json: { kind: 'boolean', description: 'print the answer as JSON' }, ...clientOptions }
    },
    run: runPeers
  },
  drain: {
    spec: { name: 'taskmesh drain', usage: [''], summary: 'Ask the node to hand off its work and leave.', positionals: [], options: { ...clientOptions } },
    run: async (args, io) => await withClient(args, io, async client => {
      await client.drain()
      io.stdout('draining\n')
      return 0
    })
  },
  sim: {
    spec: {
      name: 'taskmesh sim',
      usage: ['[--nodes 5] [--tasks 1000] [--rate 100] [--duration 200ms] [--faults SCHEDULE|random] [options]', '--virtual [options]'],
      summary: [
        'The local cluster simulator: starts N real nodes (child processes on loopback, each with its own',
        'data folder), submits simwork tasks at a rate while a fault schedule kills, pauses, slows and',
        'restarts nodes, waits for every accepted task to finish, then reports accepted, completed, lost,',
        'duplicated, throughput, latency, failover times and load per node. Exit 1 if a task was lost.',
        '--virtual runs the deterministic simulator instead (its own options).',
        '',
        'Fault schedule: comma-separated items, T counts from the start of the workload, nodes from 1:',
        '  kill:N@T            SIGKILL node N            restart@T       start every killed node again',
        '  restart:N@T         start node N again        pause:N@T+D     SIGSTOP node N for D',
        '  slow:N@T+D          stop node N 50 ms of every 100 ms for D',
        '  partition:A|B@T+D   e.g. 1|2,3,4,5: each node drops the other groups\' messages for D',
        '  lag:N=L@T+D         node N\'s messages leave L late (e.g. lag:2=200ms@5s+10s)',
        '  loss:N=P%@T+D       node N drops P% of its messages in and out (e.g. loss:2=10%@5s+10s)',
        '  e.g. kill:2@5s,restart@15s,pause:1@20s+5s,partition:1|2,3,4,5@30s+10s; random or random:N',
        '  draws N (3) faults from --seed.'
      ].join('\n'),
      positionals: [],
      options: {
        nodes: { kind: 'string', valueName: '<N>', description: 'number of nodes (default 5)' },
        replicas: { kind: 'string', valueName: '<R>', description: 'replication factor (default 3)' },
        capacity: { kind: 'string', valueName: '<n>', description: 'concurrent tasks per node (default: the node\'s, 8)' },
        tasks: { kind: 'string', valueName: '<N>', description: 'tasks to have accepted (default 1000)' },
        rate: { kind: 'string', valueName: '<per-second|unlimited>', description: 'tasks submitted per second (default 100)' },
        duration: { kind: 'string', valueName: '<D|exp:D|uniform:D-D>', description: 'how long each task runs: fixed, exponential with mean D, or uniform (default 200ms)' },
        faults: { kind: 'string', valueName: '<schedule|random[:N]|none>', description: 'the fault schedule (default none)' },
        seed: { kind: 'string', valueName: '<n>', description: 'seed of the random schedule and the task durations (default: drawn, and printed)' },
        settle: { kind: 'string', valueName: '<D>', description: 'how long, after the workload and the last fault, accepted tasks may take to finish before they count as lost (default 2m)' },
        json: { kind: 'string', valueName: '<file>', description: 'write the report as JSON' },
        html: { kind: 'string', valueName: '<file>', description: 'write the report as a self-contained HTML page with charts' },
        keep: { kind: 'boolean', description: 'keep the run\'s folder (node data and logs, the execution log)' },
        virtual: { kind: 'boolean', description: 'run the deterministic simulator (sim/virtual) instead' }
      }
    },
    run: runSim
  },
  keygen: {
    spec: { name: 'taskmesh keygen', usage: ['<file>'], summary: 'Write a new swarm key for a private network (never overwrites a file).', positionals: ['file'], options: {} },
    run: runKeygen
  }
}

/** `taskmesh cancel|retry|pause|resume <id>`: one request, the updated record as JSON. */
function commandOf (name: 'cancel' | 'retry' | 'pause' | 'resume', summary: string): Command {
  return {
    spec: { name: `taskmesh ${name}`, usage: ['<id>'], summary, positionals: ['id'], options: { ...clientOptions } },
    run: async (args, io) => await withClient(args, io, async client => {
      io.stdout(json(await client[name](args.positionals[0]!)))
      return 0
    })
  }
}

function commandNamed (name: string): Command | undefined {
  return Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
}

function generalUsage (): string {
  return 'usage: taskmesh <command> [options]\n(see \'taskmesh help\')'
}

function generalHelp (): string {
  const lines = ['usage: taskmesh <command> [options]', '', 'commands:']
  const summaries: Array<[string, string]> = [
    ...Object.values(COMMANDS).map(command => [`${command.spec.name.replace('taskmesh ', '')} ${command.spec.usage[0] ?? ''}`.trim(), command.spec.summary.split('\n')[0]!] as [string, string]),
    ['help [command]', 'this help, or a command\'s'],
    ['--version', 'print the version']
  ]
  const width = Math.max(...summaries.map(([usage]) => Math.min(usage.length, 34)))
  for (const [usage, summary] of summaries) {
    lines.push(usage.length > width ? `  ${usage}\n  ${''.padEnd(width)}  ${summary}` : `  ${usage.padEnd(width)}  ${summary}`)
  }
  lines.push('', `Client commands take --node <url> (default $TASKMESH_NODE, else ${DEFAULT_NODE_URL})`, 'and --token <file> (default $TASKMESH_TOKEN).')
  return lines.join('\n')
}

function packageVersion (): string {
  let folder = dirname(fileURLToPath(import.meta.url))
  for (let depth = 0; depth < 6; depth++) {
    const file = resolve(folder, 'package.json')
    if (existsSync(file)) {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as { name?: string, version?: string }
      if (manifest.name === 'taskmesh' && typeof manifest.version === 'string') return manifest.version
    }
    folder = dirname(folder)
  }
  return 'unknown'
}

// ---------------------------------------------------------------------------------------
// Option values

function durationOption (args: ParsedArgs, name: string): number | undefined {
  const text = args.string(name)
  if (text === undefined) return undefined
  const ms = parseDurationMs(text)
  if (ms === null) throw args.error(`--${name}: '${text}' is not a duration (use a number of ms, or 250ms, 5s, 2m, 1h)`)
  return ms
}

function integerOption (args: ParsedArgs, name: string, min: number, max?: number): number | undefined {
  const text = args.string(name)
  if (text === undefined) return undefined
  const value = parseInteger(text, min, max)
  if (value === null) throw args.error(`--${name}: '${text}' is not a whole number${max === undefined ? ` ≥ ${min}` : ` from ${min} to ${max}`}`)
  return value
}

function logLevelOption (args: ParsedArgs, fallback: LogLevel): LogLevel {
  const text = args.string('log-level') ?? fallback
  if (!(LOG_LEVELS as readonly string[]).includes(text)) throw args.error(`--log-level: '${text}' is not one of ${LOG_LEVELS.join(', ')}`)
  return text as LogLevel
}

/** A path to a file on disk is made absolute (the node imports it from elsewhere); a package name is kept. */
function handlersOption (args: ParsedArgs): string | undefined {
  const text = args.string('handlers')
  if (text === undefined) return undefined
  const path = resolve(text)
  return existsSync(path) || text.startsWith('.') || text.startsWith('/') ? path : text
}

async function readSecretFile (file: string, what: string): Promise<string> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new Error(`cannot read the ${what} file ${file}: ${error instanceof Error ? error.message : String(error)}`)
  }
  const secret = text.trim()
  if (secret === '') throw new Error(`the ${what} file ${file} is empty`)
  return secret
}

// ---------------------------------------------------------------------------------------
// start

async function startOptions (args: ParsedArgs): Promise<NodeOptions> {
  const options: NodeOptions = { dataDir: resolve(args.string('data') ?? './.taskmesh/node'), logLevel: logLevelOption(args, 'info') }
  const listen = args.strings('listen')
  if (listen.length > 0) options.listen = listen
  const api = args.string('api')
  if (api !== undefined) options.api = apiOption(args, api)
  const bootstrap = args.strings('bootstrap')
  if (bootstrap.length > 0) options.bootstrap = bootstrap
  const replicas = integerOption(args, 'replicas', 1)
  if (replicas !== undefined) options.replicas = replicas
  const capacity = integerOption(args, 'capacity', 1)
  if (capacity !== undefined) options.capacity = capacity
  const handlers = handlersOption(args)
  if (handlers !== undefined) options.handlers = handlers
  if (args.flag('allow-exec')) options.allowExec = true
  if (args.flag('fault-injection')) options.faultInjection = true
  if (args.flag('stand-ins')) options.standIns = true
  const payloadMax = integerOption(args, 'payload-max', 1)
  if (payloadMax !== undefined) options.payloadBytesMax = payloadMax
  const heartbeat = durationOption(args, 'heartbeat')
  if (heartbeat !== undefined) options.heartbeatMs = heartbeat
  const suspectAfter = durationOption(args, 'suspect-after')
  if (suspectAfter !== undefined) options.suspectAfterMs = suspectAfter
  const deadAfter = durationOption(args, 'dead-after')
  if (deadAfter !== undefined) options.deadAfterMs = deadAfter
  const submitTimeout = durationOption(args, 'submit-timeout')
  if (submitTimeout !== undefined) options.submitTimeoutMs = submitTimeout
  const removeAfter = durationOption(args, 'remove-after')
  if (removeAfter !== undefined) options.removeAfterMs = removeAfter
  const drainGrace = durationOption(args, 'drain-grace')
  if (drainGrace !== undefined) options.drainGraceMs = drainGrace
  const limits = args.strings('limit')
  if (limits.length > 0) options.typeLimits = typeLimitsOption(args, limits)
  const retention = durationOption(args, 'retention')
  if (retention !== undefined) {
    if (retention < 1000) throw args.error(`--retention: at least 1s (a finished task must stay readable for a moment)`)
    options.retentionMs = retention
  }

  // Files last: every usage error above is reported before anything is read.
  const apiToken = args.string('api-token')
  if (apiToken !== undefined) options.apiToken = await readSecretFile(apiToken, '--api-token')
  const swarmKey = args.string('swarm-key')
  if (swarmKey !== undefined) {
    const { readSwarmKeyFile } = await import('../net/swarm-key.js')
    options.swarmKey = await readSwarmKeyFile(resolve(swarmKey))
  }
  return options
}

/** `--limit type=N`, repeatable; a type given twice keeps the last N. */
function typeLimitsOption (args: ParsedArgs, values: string[]): Record<string, number> {
  const limits: Record<string, number> = Object.create(null)
  for (const value of values) {
    const match = /^([A-Za-z0-9_.:-]{1,64})=(\d{1,9})$/.exec(value)
    const count = match === null ? null : parseInteger(match[2]!, 1)
    if (match === null || count === null) throw args.error(`--limit: '${value}' is not type=N (a task type and a whole number ≥ 1)`)
    limits[match[1]!] = count
  }
  return { ...limits }
}

/** `host:port`, a bare port (loopback), or `none`. */
function apiOption (args: ParsedArgs, text: string): string | false {
  if (text === 'none') return false
  if (/^\d+$/.test(text)) text = `127.0.0.1:${text}`
  const colon = text.lastIndexOf(':')
  const host = text.slice(0, colon)
  const port = parseInteger(text.slice(colon + 1), 0, 65535)
  if (colon <= 0 || host === '' || port === null) throw args.error(`--api: '${text}' is not host:port (or none)`)
  return text
}

async function runStart (args: ParsedArgs, io: Io): Promise<number> {
  const options = await startOptions(args)
  let node: RunningNode | null = null
  let signalled: NodeJS.Signals | null = null
  let finish!: (code: number) => void
  const finished = new Promise<number>(resolve => { finish = resolve })

  // SIGINT stops now, SIGTERM drains first; a second signal of either kind does not wait.
  const shutdown = (running: RunningNode, signal: NodeJS.Signals): void => {
    const stopping = signal === 'SIGTERM' ? running.stop() : running.close()
    stopping.then(() => finish(0), (error: unknown) => {
      io.stderr(`error: stopping the node failed: ${error instanceof Error ? error.message : String(error)}\n`)
      finish(1)
    })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled !== null) {
      io.stderr(`taskmesh: ${signal} again, exiting now\n`)
      process.exit(1)
    }
    signalled = signal
    if (node !== null) shutdown(node, signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    const { startNode } = await import('../runtime/node.js')
    node = await startNode(options)
  } catch (error) {
    io.stderr(`error: the node did not start: ${error instanceof Error ? error.message : String(error)}\n`)
    return 1
  }
  if (signalled !== null) {
    shutdown(node, signalled)
  } else {
    io.stdout(`taskmesh ready ${JSON.stringify({ peerId: node.peerId, addrs: node.multiaddrs, api: node.apiUrl })}\n`)
  }
  // A node drained through the API (POST /v1/drain, `taskmesh drain`) stops itself; once
  // nothing is left to run, the command is done, like after SIGTERM.
  process.once('beforeExit', () => finish(0))
  return await finished
}

/** A foreground command lives until its signal handler finishes it, even with no socket open. */
async function keepAliveUntil (finished: Promise<number>): Promise<number> {
  const timer = setInterval(() => {}, 1 << 30)
  try {
    return await finished
  } finally {
    clearInterval(timer)
  }
}

// ---------------------------------------------------------------------------------------
// cluster

async function runCluster (args: ParsedArgs, io: Io): Promise<number> {
  const nodeCount = integerOption(args, 'nodes', 1, CLUSTER_NODES_MAX) ?? 3
  const apiPort = integerOption(args, 'api-port', 0, 65535) ?? 7070
  if (apiPort !== 0 && apiPort + nodeCount - 1 > 65535) throw args.error(`--api-port ${apiPort} leaves no room for ${nodeCount} nodes`)
  const replicas = integerOption(args, 'replicas', 1)
  const capacity = integerOption(args, 'capacity', 1)
  const handlers = handlersOption(args)
  const logLevel = logLevelOption(args, 'warn')
  const allowExec = !args.flag('no-exec')

  const abort = new AbortController()
  let cluster: Cluster | null = null
  let finishing = false
  let finish!: (code: number) => void
  const finished = new Promise<number>(resolve => { finish = resolve })
  const stopAll = (code: number): void => {
    if (cluster === null) return
    cluster.stop().then(() => finish(code), (error: unknown) => {
      io.stderr(`error: stopping the cluster failed: ${error instanceof Error ? error.message : String(error)}\n`)
      finish(1)
    })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (finishing) {
      io.stderr(`taskmesh: ${signal} again, killing the nodes\n`)
      process.exit(1) // the launcher's exit hook SIGKILLs every node still running
    }
    finishing = true
    io.stderr('stopping the cluster (again to force)\n')
    if (cluster === null) abort.abort()
    else stopAll(0)
  }
  let leftCount = 0
  const onUnexpectedExit = (node: ClusterNode, code: number | null, signal: NodeJS.Signals | null): void => {
    // Deferred: the launcher may report an exit before launchCluster()'s caller has resumed.
    setImmediate(() => {
      if (finishing) return
      if (code === 0) {
        // Drained (taskmesh drain): it left on purpose; the others carry on without it.
        io.stderr(`[node-${node.index}] drained and left the cluster\n`)
        if (++leftCount === nodeCount) finish(0)
        return
      }
      finishing = true
      io.stderr(`[node-${node.index}] exited unexpectedly (${code !== null ? `code ${code}` : `signal ${signal}`}); stopping the cluster\n`)
      stopAll(1)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    cluster = await launchCluster({
      nodes: nodeCount,
      dataDir: resolve(args.string('data') ?? './.taskmesh'),
      apiPort,
      logLevel,
      allowExec,
      ...(replicas === undefined ? {} : { replicas }),
      ...(capacity === undefined ? {} : { capacity }),
      ...(handlers === undefined ? {} : { handlers }),
      relay: (index, stream, line) => (stream === 'stdout' ? io.stdout : io.stderr)(`[node-${index}] ${line}\n`),
      onUnexpectedExit,
      signal: abort.signal
    })
  } catch (error) {
    if (abort.signal.aborted) return 0
    throw error
  }

  io.stdout('\n' + table(['NODE', 'PEER ID', 'API'], cluster.nodes.map(node => [`node-${node.index}`, node.peerId, node.api])) + '\n\n')
  const first = cluster.nodes[0]!
  const nodeFlag = sameOrigin(first.api, DEFAULT_NODE_URL) ? '' : ` --node ${first.api}`
  if (allowExec) io.stdout(`try:\n  ./bin/taskmesh submit shell '{"argv":["echo","hello"]}' --wait${nodeFlag}\n\n`)
  else io.stdout(`try:\n  ./bin/taskmesh peers${nodeFlag}\n\n`)
  io.stdout('cluster ready (Ctrl-C to stop)\n')
  return await keepAliveUntil(finished)
}

function sameOrigin (a: string, b: string): boolean {
  try {
    return new URL(a).origin === new URL(b).origin
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------
// sim

const SIM_TASKS_MAX = 1_000_000
const SIM_SEED_MAX = 2 ** 32 - 1

async function runSim (args: ParsedArgs, io: Io): Promise<number> {
  const nodes = integerOption(args, 'nodes', 1, CLUSTER_NODES_MAX) ?? 5
  const replicas = integerOption(args, 'replicas', 1, 9) ?? 3
  const capacity = integerOption(args, 'capacity', 1, 10_000)
  const tasks = integerOption(args, 'tasks', 1, SIM_TASKS_MAX) ?? 1000
  const seed = integerOption(args, 'seed', 0, SIM_SEED_MAX) ?? Math.floor(Math.random() * SIM_SEED_MAX)
  const settleMs = durationOption(args, 'settle') ?? 120_000
  const { parseRate, parseDurationSpec, meanDurationMs } = await import('../../sim/workload.js')
  const { resolveFaults, FaultScheduleError } = await import('../../sim/faults.js')
  const valueOf = <T>(name: string, fallback: string, parse: (text: string) => T): T => {
    const text = args.string(name) ?? fallback
    try {
      return parse(text)
    } catch (error) {
      throw args.error(`--${name}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  const ratePerSecond = valueOf('rate', '100', parseRate)
  const duration = valueOf('duration', '200ms', parseDurationSpec)
  // A random schedule spans the expected length of the workload.
  const capacityPerNode = capacity ?? 8
  const expectedMs = ratePerSecond === null
    ? tasks * meanDurationMs(duration) / (nodes * capacityPerNode)
    : tasks / ratePerSecond * 1000
  const spanMs = Math.min(120_000, Math.max(5000, expectedMs))
  let faults
  try {
    faults = resolveFaults(args.string('faults') ?? 'none', { nodes, seed, spanMs })
  } catch (error) {
    if (error instanceof FaultScheduleError) throw args.error(`--faults: ${error.message}`)
    throw error
  }
  const { runLocal } = await import('../../sim/local.js')
  return await runLocal({
    nodes, replicas, tasks, ratePerSecond, duration, seed, settleMs,
    ...(capacity === undefined ? {} : { capacity }),
    faults: faults.faults,
    randomFaults: faults.random,
    ...(args.string('json') === undefined ? {} : { jsonFile: args.string('json') }),
    ...(args.string('html') === undefined ? {} : { htmlFile: args.string('html') }),
    keep: args.flag('keep')
  }, {
    stdout: io.stdout,
    stderr: io.stderr,
    stderrIsTty: io === processIo && process.stderr.isTTY === true,
    ...(io === processIo && process.stderr.isTTY === true ? { columns: process.stderr.columns } : {})
  })
}

/** `taskmesh sim --virtual ...`: the deterministic simulator, when it is built. */
async function runVirtualSim (argv: string[], io: Io): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(helpText(COMMANDS.sim!.spec) + '\n')
    return 0
  }
  let module: { runVirtual?: (argv: string[], io?: Io) => Promise<number | void> }
  try {
    module = await import(VIRTUAL_SIM_MODULE) as typeof module
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_MODULE_NOT_FOUND') throw error
    io.stderr('taskmesh sim --virtual: the virtual (deterministic) simulator is not available yet; run taskmesh sim without --virtual for the local one\n')
    return 2
  }
  if (typeof module.runVirtual !== 'function') throw new Error('sim/virtual.js exports no runVirtual')
  const code = await module.runVirtual(argv, io)
  return typeof code === 'number' ? code : 0
}

/** A variable, so that TypeScript does not require the module at compile time. */
const VIRTUAL_SIM_MODULE: string = '../../sim/virtual.js'

// ---------------------------------------------------------------------------------------
// client commands

async function withClient (args: ParsedArgs, io: Io, use: (client: Client) => Promise<number>): Promise<number> {
  const url = args.string('node') ?? nonEmpty(io.env.TASKMESH_NODE) ?? DEFAULT_NODE_URL
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('not http')
  } catch {
    throw args.error(`--node: '${url}' is not an http:// or https:// URL`)
  }
  const tokenFile = args.string('token') ?? nonEmpty(io.env.TASKMESH_TOKEN)
  const token = tokenFile === undefined ? undefined : await readSecretFile(tokenFile, 'token')
  const { Client } = await import('../api/client.js')
  const client = new Client(url, token === undefined ? {} : { token })
  try {
    return await use(client)
  } catch (error) {
    if (!isTaskmeshError(error) && isNetworkError(error)) {
      throw new Error(`cannot reach a taskmesh node at ${url}: ${networkReason(error)} (pick one with --node or $TASKMESH_NODE)`)
    }
    throw error
  }
}

function nonEmpty (text: string | undefined): string | undefined {
  return text === undefined || text.trim() === '' ? undefined : text.trim()
}

function isNetworkError (error: unknown): error is Error {
  if (!(error instanceof Error)) return false
  const cause = (error as Error & { cause?: { code?: unknown } }).cause
  return error.message === 'fetch failed' || typeof cause?.code === 'string' || error.name === 'TimeoutError'
}

function networkReason (error: Error): string {
  const cause = (error as Error & { cause?: { code?: unknown, message?: unknown } }).cause
  if (typeof cause?.code === 'string') return cause.code
  if (typeof cause?.message === 'string') return cause.message
  return error.message
}

async function runSubmit (args: ParsedArgs, io: Io): Promise<number> {
  const [type, payloadText] = args.positionals as [string, string | undefined]
  const body: CreateBody = { type }
  if (payloadText !== undefined) {
    try {
      body.payload = JSON.parse(payloadText)
    } catch (error) {
      throw args.error(`payload-json is not valid JSON (${error instanceof Error ? error.message : String(error)}): ${payloadText}`)
    }
  }
  const priority = integerOption(args, 'priority', Number.MIN_SAFE_INTEGER)
  if (priority !== undefined) body.priority = priority
  const delay = args.string('delay')
  const runAt = args.string('run-at')
  if (delay !== undefined && runAt !== undefined) throw args.error('give --delay or --run-at, not both')
  if (delay !== undefined) body.delay = delay
  if (runAt !== undefined) body.runAt = runAt
  const cron = args.string('cron')
  const every = args.string('every')
  if (cron !== undefined && every !== undefined) throw args.error('give --cron or --every, not both')
  if (cron !== undefined) body.cron = cron
  if (every !== undefined) body.every = every
  if (cron !== undefined || every !== undefined) {
    for (const [name, given] of [['delay', delay !== undefined], ['run-at', runAt !== undefined], ['after', args.strings('after').length > 0]] as const) {
      if (given) throw args.error(`--${name} does not apply to a schedule (--cron, --every): its ticks are its start times`)
    }
  }
  const timezone = args.string('tz')
  const catchUp = args.string('catch-up')
  const overlap = args.string('overlap')
  if (cron === undefined && every === undefined) {
    for (const [name, value] of [['tz', timezone], ['catch-up', catchUp], ['overlap', overlap]] as const) {
      if (value !== undefined) throw args.error(`--${name} applies to a schedule only (give --cron or --every)`)
    }
  }
  if (timezone !== undefined) {
    if (cron === undefined) throw args.error('--tz applies to --cron only')
    body.timezone = timezone
  }
  if (catchUp !== undefined) {
    if (catchUp !== 'latest' && catchUp !== 'all') throw args.error(`--catch-up: '${catchUp}' is not latest or all`)
    body.catchUp = catchUp
  }
  if (overlap !== undefined) {
    if (overlap !== 'allow' && overlap !== 'forbid') throw args.error(`--overlap: '${overlap}' is not allow or forbid`)
    body.overlap = overlap
  }
  const attempts = integerOption(args, 'attempts', 1)
  if (attempts !== undefined) body.maxAttempts = attempts
  const backoff = args.string('backoff')
  if (backoff !== undefined) body.backoff = backoff
  const timeout = args.string('timeout')
  if (timeout !== undefined) body.timeout = timeout
  const key = args.string('key')
  if (key !== undefined) body.idempotencyKey = key
  const after = args.strings('after').flatMap(list => list.split(',')).map(id => id.trim()).filter(id => id !== '')
  if (after.length > 0) body.dependsOn = after
  const wait = args.flag('wait')
  if (wait && (cron !== undefined || every !== undefined)) throw args.error('--wait cannot wait for a schedule (--cron, --every): it never finishes')

  return await withClient(args, io, async client => {
    const created = await client.submit(body)
    if (!wait) {
      io.stdout(created.id + '\n')
      return 0
    }
    let record: PublicRecord = created
    while (!TERMINAL_STATES.has(record.state)) record = await client.wait(created.id, WAIT_ROUND_MS)
    io.stdout(json(record))
    return record.state === 'succeeded' ? 0 : 1
  })
}

async function runList (args: ParsedArgs, io: Io): Promise<number> {
  const query: Record<string, string | number> = {}
  for (const name of ['state', 'type', 'schedule', 'cursor']) {
    const value = args.string(name)
    if (value !== undefined) query[name] = value
  }
  const limit = integerOption(args, 'limit', 1)
  if (limit !== undefined) query.limit = limit
  return await withClient(args, io, async client => {
    const page = await client.list(query as Parameters<Client['list']>[0])
    if (args.flag('json')) {
      io.stdout(json(page))
      return 0
    }
    if (page.tasks.length === 0) io.stdout('no tasks\n')
    else {
      const rows = (page.tasks as PublicRecord[]).map(task => [
        task.id, task.type, task.state, `${task.attempt}/${task.maxAttempts}`,
        task.owner === null ? '-' : shortPeerId(task.owner), task.createdAt
      ])
      io.stdout(table(['ID', 'TYPE', 'STATE', 'ATTEMPT', 'OWNER', 'CREATED'], rows) + '\n')
    }
    if (page.next !== null && page.next !== undefined) io.stdout(`more: taskmesh list --cursor ${page.next}\n`)
    return 0
  })
}

async function runPeers (args: ParsedArgs, io: Io): Promise<number> {
  return await withClient(args, io, async client => {
    const view = await client.cluster()
    if (args.flag('json')) {
      io.stdout(json(view))
      return 0
    }
    const members = view.members
    // Defensive about optional parts: a newer or older node may answer with fewer fields.
    const rows = members.map(member => [
      `${member.peerId === view.self ? '*' : ' '} ${shortPeerId(member.peerId)}`,
      member.state,
      member.api ?? '-',
      `${member.load?.running ?? '?'}/${member.load?.capacity ?? '?'}`,
      String(member.load?.queued ?? '?'),
      typeof member.ringShare === 'number' ? `${(member.ringShare * 100).toFixed(1)}%` : '-'
    ])
    io.stdout(`${members.length} members, replicas ${view.replicas}, as seen by ${shortPeerId(view.self)} (*)\n`)
    io.stdout(table(['  PEER', 'STATE', 'API', 'RUNNING', 'QUEUED', 'RING'], rows) + '\n')
    return 0
  })
}

// ---------------------------------------------------------------------------------------
// keygen

async function runKeygen (args: ParsedArgs, io: Io): Promise<number> {
  const file = resolve(args.positionals[0]!)
  await mkdir(dirname(file), { recursive: true })
  const { writeSwarmKeyFile } = await import('../net/swarm-key.js')
  await writeSwarmKeyFile(file)
  io.stdout(file + '\n')
  return 0
}

// ---------------------------------------------------------------------------------------
// output

function json (value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n'
}

/** `12D3KooW…` ids share their head; the tail tells them apart. */
function shortPeerId (peerId: string): string {
  return peerId.length > 12 ? `…${peerId.slice(-8)}` : peerId
}

function table (headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map(row => (row[column] ?? '').length)))
  const line = (cells: string[]): string => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}
