// cluster.ts: a local cluster of taskmesh nodes, each a child process running `taskmesh start`
// on loopback. Used by `taskmesh cluster` (npm start), by tests and by the local simulator.
// Why child processes: each node then has its own event loop, its own crash and its own
// restart, exactly like a real deployment; only the network is loopback.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { LogLevel } from '../runtime/options.js'

export interface ClusterOptions {
  /** Number of nodes; default 3. */
  nodes?: number
  /** Parent folder: `swarm.key` and one `node-<i>` data folder per node; default ./.taskmesh. */
  dataDir?: string
  /** API port of node 1; node i listens on apiPort + i - 1. 0 lets every node pick a free port. Default 7070. */
  apiPort?: number
  replicas?: number
  capacity?: number
  handlers?: string
  /** Log level of the children; default warn. */
  logLevel?: LogLevel
  /** Enable the shell executor on every node; default true (a loopback cluster is local). */
  allowExec?: boolean
  /** Extra `taskmesh start` arguments for every node. */
  extraArgs?: string[]
  /** How long to wait for every node to be healthy and see N alive members; default 60 s. */
  readyTimeoutMs?: number
  /** How long stop() waits after SIGTERM before SIGKILL; default 15 s. */
  stopTimeoutMs?: number
  /** Receives every output line of every child; default: lines are discarded. */
  relay?: (index: number, stream: 'stdout' | 'stderr', line: string) => void
  /** Called when a node exits after the launch and not because of stop(). */
  onUnexpectedExit?: (node: ClusterNode, code: number | null, signal: NodeJS.Signals | null) => void
  /** Aborting stops the launch (and the nodes started so far). */
  signal?: AbortSignal
  /** The `taskmesh` entry point to run; default this package's bin/taskmesh. */
  bin?: string
  /** Environment variables for the children, over this process's. */
  env?: NodeJS.ProcessEnv
}

export interface ClusterNode {
  /** 1-based. */
  index: number
  peerId: string
  /** The node's HTTP API base URL. */
  api: string
  addrs: string[]
  process: ChildProcess
  dataDir: string
}

export interface Cluster {
  nodes: ClusterNode[]
  /** SIGTERM every node (they drain), SIGKILL the ones still running after stopTimeoutMs. Idempotent. */
  stop (): Promise<void>
}

interface ReadyLine {
  peerId: string
  addrs: string[]
  api: string | null
}

interface Child {
  index: number
  dataDir: string
  process: ChildProcess
  ready: Promise<ReadyLine>
  exited: Promise<void>
  hasExited: boolean
  outputTail: string[]
}

const READY_PREFIX = 'taskmesh ready '
const OUTPUT_TAIL_LINES_MAX = 20
const POLL_INTERVAL_MS = 250
const CLOSE_GRACE_MS = 200
const POLL_REQUEST_TIMEOUT_MS = 2000
const DEFAULT_BIN = fileURLToPath(new URL('../../../bin/taskmesh', import.meta.url))

export async function launchCluster (options: ClusterOptions = {}): Promise<Cluster> {
  const nodeCount = options.nodes ?? 3
  const dataDir = resolve(options.dataDir ?? './.taskmesh')
  const apiPort = options.apiPort ?? 7070
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000
  const stopTimeoutMs = options.stopTimeoutMs ?? 15_000
  const bin = options.bin ?? DEFAULT_BIN
  if (!Number.isSafeInteger(nodeCount) || nodeCount < 1) throw new Error(`nodes must be a whole number ≥ 1, not ${nodeCount}`)
  if (!Number.isSafeInteger(apiPort) || apiPort < 0 || (apiPort > 0 && apiPort + nodeCount - 1 > 65535)) {
    throw new Error(`api port ${apiPort} does not leave room for ${nodeCount} nodes (ports up to 65535)`)
  }

  if (apiPort !== 0) await assertPortsFree(apiPort, nodeCount)
  await mkdir(dataDir, { recursive: true })
  const swarmKeyFile = join(dataDir, 'swarm.key')
  if (!existsSync(swarmKeyFile)) {
    const { writeSwarmKeyFile } = await import('../net/swarm-key.js')
    await writeSwarmKeyFile(swarmKeyFile)
  }

  const children: Child[] = []
  let stopping = false
  let stopped: Promise<void> | null = null
  // A parent that exits for any reason must not leave orphans behind: the children run in
  // their own process group (so a terminal's Ctrl-C reaches only the parent, which then
  // stops them in order), hence nobody else would stop them.
  const killAll = (): void => { for (const child of children) if (!child.hasExited) child.process.kill('SIGKILL') }
  process.on('exit', killAll)

  const stop = async (): Promise<void> => {
    stopping = true
    stopped ??= (async () => {
      for (const child of children) if (!child.hasExited) child.process.kill('SIGTERM')
      const all = Promise.all(children.map(child => child.exited))
      const timer = setTimeout(killAll, stopTimeoutMs)
      await all
      clearTimeout(timer)
      process.off('exit', killAll)
    })()
    return await stopped
  }

  const common = [
    '--swarm-key', swarmKeyFile,
    '--log-level', options.logLevel ?? 'warn',
    ...(options.allowExec ?? true ? ['--allow-exec'] : []),
    ...(options.replicas === undefined ? [] : ['--replicas', String(options.replicas)]),
    ...(options.capacity === undefined ? [] : ['--capacity', String(options.capacity)]),
    ...(options.handlers === undefined ? [] : ['--handlers', options.handlers]),
    ...(options.extraArgs ?? [])
  ]
  const spawnNode = (index: number, bootstrap: string[]): Child => {
    const nodeDataDir = join(dataDir, `node-${index}`)
    const port = apiPort === 0 ? 0 : apiPort + index - 1
    const args = [
      bin, 'start',
      '--data', nodeDataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0',
      '--api', `127.0.0.1:${port}`,
      ...bootstrap.flatMap(address => ['--bootstrap', address]),
      ...common
    ]
    const child = startChild(index, nodeDataDir, args, { ...process.env, ...options.env }, options.relay)
    children.push(child)
    return child
  }

  const abortion = new Promise<never>((_resolve, reject) => {
    const onAbort = (): void => reject(new Error('cluster launch aborted'))
    if (options.signal?.aborted === true) onAbort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
  })
  abortion.catch(() => {})
  const deadline = Date.now() + readyTimeoutMs
  const withinDeadline = async <T>(promise: Promise<T>, what: () => string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`cluster not ready after ${Math.round(readyTimeoutMs / 1000)} s: ${what()}`)), Math.max(0, deadline - Date.now()))
    })
    try {
      return await Promise.race([promise, timeout, abortion])
    } finally {
      clearTimeout(timer)
    }
  }

  try {
    const first = spawnNode(1, [])
    const firstReady = await withinDeadline(whenReady(first, options.relay !== undefined), () => 'node-1 printed no ready line')
    const seed = dialable(firstReady)
    const rest = Array.from({ length: nodeCount - 1 }, (_value, offset) => spawnNode(offset + 2, [seed]))
    const readyLines = [firstReady, ...await withinDeadline(Promise.all(rest.map(child => whenReady(child, options.relay !== undefined))), () => 'a node printed no ready line')]

    const nodes: ClusterNode[] = children.map((child, position) => {
      const line = readyLines[position]!
      if (line.api === null) throw new Error(`node-${child.index} started without an HTTP API`)
      return { index: child.index, peerId: line.peerId, api: line.api, addrs: line.addrs, process: child.process, dataDir: child.dataDir }
    })
    const anyExit = Promise.race(children.map(child => child.exited.then(() => {
      throw new Error(`node-${child.index} exited (code ${child.process.exitCode ?? child.process.signalCode}) before the cluster was ready${tail(child, options.relay !== undefined)}`)
    })))
    anyExit.catch(() => {})
    const progress = { detail: 'no answer yet' }
    const polling = new AbortController()
    try {
      await withinDeadline(Promise.race([waitHealthy(nodes, progress, polling.signal), anyExit]), () => `last check: ${progress.detail}`)
    } finally {
      polling.abort() // whichever way the race ended, stop polling
    }

    for (const node of nodes) {
      const child = children[node.index - 1]!
      void child.exited.then(() => {
        if (!stopping) options.onUnexpectedExit?.(node, node.process.exitCode, node.process.signalCode)
      })
    }
    return { nodes, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

function startChild (index: number, dataDir: string, args: string[], env: NodeJS.ProcessEnv, relay: ClusterOptions['relay']): Child {
  const childProcess = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env })
  const outputTail: string[] = []
  let resolveReady!: (line: ReadyLine) => void
  let rejectReady!: (error: Error) => void
  const ready = new Promise<ReadyLine>((resolve, reject) => { resolveReady = resolve; rejectReady = reject })
  ready.catch(() => {})
  const child: Child = {
    index,
    dataDir,
    process: childProcess,
    ready,
    // 'exit' says the process is gone; 'close' that its output is read too. A grandchild that
    // inherited the pipes could hold 'close' back forever, so wait for it only briefly.
    exited: new Promise<void>(resolve => {
      childProcess.once('exit', () => {
        child.hasExited = true
        setTimeout(resolve, CLOSE_GRACE_MS).unref()
        childProcess.once('close', () => resolve())
      })
      childProcess.once('error', error => {
        rejectReady(new Error(`node-${index} could not be started: ${error.message}`))
        if (childProcess.pid === undefined) { child.hasExited = true; resolve() }
      })
    }),
    hasExited: false,
    outputTail
  }

  const follow = (stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr'): void => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity })
    lines.on('line', line => {
      outputTail.push(line)
      if (outputTail.length > OUTPUT_TAIL_LINES_MAX) outputTail.shift()
      relay?.(index, name, line)
      if (name === 'stdout' && line.startsWith(READY_PREFIX)) {
        const parsed = parseReadyLine(line.slice(READY_PREFIX.length))
        if (parsed === null) rejectReady(new Error(`node-${index} printed a malformed ready line: ${line}`))
        else resolveReady(parsed)
      }
    })
  }
  follow(childProcess.stdout!, 'stdout')
  follow(childProcess.stderr!, 'stderr')
  return child
}

async function whenReady (child: Child, relayed: boolean): Promise<ReadyLine> {
  return await Promise.race([
    child.ready,
    child.exited.then((): never => {
      const how = child.process.exitCode !== null ? `code ${child.process.exitCode}` : `signal ${child.process.signalCode}`
      throw new Error(`node-${child.index} exited (${how}) before it was ready${tail(child, relayed)}`)
    })
  ])
}

function tail (child: Child, relayed: boolean): string {
  if (relayed || child.outputTail.length === 0) return ''
  return ':\n' + child.outputTail.slice(-8).map(line => `  [node-${child.index}] ${line}`).join('\n')
}

function parseReadyLine (json: string): ReadyLine | null {
  try {
    const value = JSON.parse(json) as Partial<ReadyLine>
    if (typeof value.peerId !== 'string' || !Array.isArray(value.addrs)) return null
    return { peerId: value.peerId, addrs: value.addrs.map(String), api: typeof value.api === 'string' ? value.api : null }
  } catch {
    return null
  }
}

/** A multiaddr other nodes can bootstrap from: loopback TCP first, with the peer id. */
function dialable (line: ReadyLine): string {
  const address = line.addrs.find(addr => addr.startsWith('/ip4/127.0.0.1/tcp/')) ?? line.addrs[0]
  if (address === undefined) throw new Error('node-1 printed no multiaddr to bootstrap from')
  return address.includes('/p2p/') ? address : `${address}/p2p/${line.peerId}`
}

async function assertPortsFree (firstPort: number, count: number): Promise<void> {
  for (let index = 1; index <= count; index++) {
    const port = firstPort + index - 1
    if (!await portFree(port)) {
      throw new Error(`port ${port} (the API of node-${index}) is already in use; choose another first port with --api-port (node i uses port + i - 1)`)
    }
  }
}

async function portFree (port: number): Promise<boolean> {
  return await new Promise(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)))
  })
}

/** Polls every node until /healthz answers 200 and /v1/cluster lists every node alive. */
async function waitHealthy (nodes: ClusterNode[], progress: { detail: string }, signal: AbortSignal): Promise<void> {
  const pending = new Set(nodes)
  while (pending.size > 0) {
    if (signal.aborted) return
    for (const node of [...pending]) {
      const problem = await checkNode(node, nodes.length)
      if (problem === null) pending.delete(node)
      else progress.detail = `node-${node.index}: ${problem}`
    }
    if (pending.size > 0) await new Promise(resolve => setTimeout(resolve, POLL_INTERVAL_MS))
  }
}

/** null when the node answers /healthz with 200 (and, given `expected`, sees that many members alive); else why not. */
export async function checkNode (node: { api: string }, expected?: number): Promise<string | null> {
  try {
    const health = await fetch(new URL('/healthz', node.api), { signal: AbortSignal.timeout(POLL_REQUEST_TIMEOUT_MS) })
    await health.arrayBuffer()
    if (health.status !== 200) return `/healthz answered ${health.status}`
    if (expected === undefined) return null
    const answer = await fetch(new URL('/v1/cluster', node.api), { signal: AbortSignal.timeout(POLL_REQUEST_TIMEOUT_MS) })
    if (answer.status !== 200) {
      await answer.arrayBuffer()
      return `/v1/cluster answered ${answer.status}`
    }
    const view = await answer.json() as { members?: Array<{ state?: unknown }> }
    const alive = (view.members ?? []).filter(member => member.state === 'alive').length
    return alive >= expected ? null : `sees ${alive} of ${expected} members alive`
  } catch (error) {
    return `no answer (${error instanceof Error ? error.message : String(error)})`
  }
}
