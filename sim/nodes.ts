// nodes.ts: the local simulator's nodes: `taskmesh start` child processes on loopback, each
// with its own data folder, that can be killed (SIGKILL), paused (SIGSTOP/SIGCONT) and started
// again from their data folder. Why not cli/cluster.ts's launchCluster: it has no restart, and a
// restarted node takes a new API port, so the simulator keeps the processes itself.
import { checkNode } from '../src/cli/cluster.js'
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, type WriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Client } from '../src/api/client.js'
import { writeSwarmKeyFile } from '../src/net/swarm-key.js'

const READY_PREFIX = 'taskmesh ready '
const POLL_INTERVAL_MS = 200
const OUTPUT_TAIL_LINES_MAX = 20
const DEFAULT_BIN = fileURLToPath(new URL('../../bin/taskmesh', import.meta.url))
/**
 * Why long: a batch is answered once every item is decided, and an item whose replica set lost
 * its majority is decided (accepted, or refused with its abort durable) only when enough of
 * its replicas are back. A shorter wait would turn the whole batch into unanswered submits.
 */
const CLIENT_REQUEST_TIMEOUT_MS = 60_000

export interface LocalNodesOptions {
  nodes: number
  /** The run's folder: swarm.key, node-<i>/ (data) and node-<i>.log (output) per node. */
  dir: string
  replicas: number
  capacity?: number
  /** The handlers module every node loads. */
  handlers: string
  /** Environment variables for the children, over this process's. */
  env: NodeJS.ProcessEnv
  /** How long the first start of all nodes may take; default 60 s. */
  readyTimeoutMs?: number
  signal?: AbortSignal
  bin?: string
}

export interface LocalNode {
  /** 1-based. */
  readonly index: number
  readonly dataDir: string
  /** The same across restarts: the identity lives in the data folder. */
  peerId: string
  /** Changes on a restart (port 0). */
  api: string
  addrs: string[]
  client: Client
  process: ChildProcess | null
  /** starting: spawned, not yet healthy; down: killed or exited; paused: SIGSTOPped. */
  state: 'starting' | 'up' | 'paused' | 'down'
  /** Incarnation number, 0 for the first start. */
  restarts: number
}

interface Ready { peerId: string, addrs: string[], api: string }

export class LocalNodes {
  readonly nodes: LocalNode[] = []
  readonly #options: LocalNodesOptions
  readonly #swarmKeyFile: string
  readonly #children = new Set<ChildProcess>()
  readonly #logs: WriteStream[] = []
  /** Per node, its latest restart: true once it printed its ready line. */
  readonly #restarted = new Map<number, Promise<boolean>>()
  readonly #killAll = (): void => { for (const child of this.#children) signal(child, 'SIGKILL') }
  #stopping: Promise<void> | null = null

  private constructor (options: LocalNodesOptions) {
    this.#options = options
    this.#swarmKeyFile = join(options.dir, 'swarm.key')
    // Whatever ends this process, no node outlives it: they run in their own process group.
    process.on('exit', this.#killAll)
  }

  /** Starts every node, node 1 first, and resolves once each is healthy and sees all alive. */
  static async launch (options: LocalNodesOptions): Promise<LocalNodes> {
    const nodes = new LocalNodes(options)
    try {
      await mkdir(options.dir, { recursive: true })
      await writeSwarmKeyFile(nodes.#swarmKeyFile)
      const readyTimeoutMs = options.readyTimeoutMs ?? 60_000
      const deadlineMs = Date.now() + readyTimeoutMs
      const first = await nodes.#start(1, [], deadlineMs)
      const bootstrap = dialable(first)
      await Promise.all(Array.from({ length: options.nodes - 1 }, async (_, i) => await nodes.#start(i + 2, [bootstrap], deadlineMs)))
      await nodes.#untilFormed(deadlineMs)
      return nodes
    } catch (error) {
      await nodes.stop()
      throw error
    }
  }

  node (index: number): LocalNode {
    const node = this.nodes[index - 1]
    if (node === undefined) throw new Error(`no node ${index}`)
    return node
  }

  /** Nodes to send requests to: running, healthy and not paused. */
  live (): LocalNode[] {
    return this.nodes.filter(node => node.state === 'up')
  }

  kill (index: number): void {
    const node = this.node(index)
    if (node.process !== null) signal(node.process, 'SIGKILL')
    node.state = 'down'
  }

  /** SIGSTOP; `quiet` leaves the state alone (a slow node's duty cycle stays 'up'). */
  pause (index: number, quiet = false): void {
    const node = this.node(index)
    if (node.process === null || node.state === 'down') return
    signal(node.process, 'SIGSTOP')
    if (!quiet) node.state = 'paused'
  }

  resume (index: number, quiet = false): void {
    const node = this.node(index)
    if (node.process === null || node.state === 'down') return
    signal(node.process, 'SIGCONT')
    if (!quiet && node.state === 'paused') node.state = 'up'
  }

  /**
   * Starts a killed node again from its data folder, joining through a live node; resolves once
   * it is healthy. With no node up (the whole cluster was killed), it joins through another
   * node that is restarting, or starts alone as the first.
   */
  async restart (index: number, timeoutMs = 60_000): Promise<void> {
    const node = this.node(index)
    if (node.state !== 'down') throw new Error(`node ${index} is ${node.state}, not down`)
    node.restarts++
    const deadlineMs = Date.now() + timeoutMs
    let others = this.nodes.filter(other => other !== node && other.state === 'up').map(dialable)
    if (others.length === 0) {
      const restarting = this.nodes.filter(other => other !== node && other.state === 'starting')
      for (const other of restarting) {
        if (await this.#restarted.get(other.index)) {
          others = [dialable(other)]
          break
        }
      }
    }
    const started = this.#start(index, others, deadlineMs)
    this.#restarted.set(index, started.then(() => true, () => false))
    await started
    await until(deadlineMs, this.#options.signal, async () => await healthy(node) === null, () => `node ${index} did not become healthy after its restart`)
    // A pause or a kill may have come while it started: only a starting node becomes up.
    if ((node.state as LocalNode['state']) === 'starting') node.state = 'up'
  }

  /** SIGCONT and SIGTERM every node (they drain), SIGKILL those still running after graceMs. Idempotent. */
  async stop (graceMs = 10_000): Promise<void> {
    this.#stopping ??= (async () => {
      const children = [...this.#children]
      for (const child of children) {
        signal(child, 'SIGCONT')
        signal(child, 'SIGTERM')
      }
      const timer = setTimeout(this.#killAll, graceMs)
      await Promise.all(children.map(exited))
      clearTimeout(timer)
      process.off('exit', this.#killAll)
      await Promise.all(this.#logs.map(async log => await new Promise<void>(resolve => log.end(resolve))))
      for (const node of this.nodes) node.state = 'down'
    })()
    return await this.#stopping
  }

  /** SIGKILL every node now (a second Ctrl-C). */
  killNow (): void {
    this.#killAll()
  }

  async #start (index: number, bootstrap: string[], deadlineMs: number): Promise<LocalNode> {
    const dataDir = join(this.#options.dir, `node-${index}`)
    const args = [
      this.#options.bin ?? DEFAULT_BIN, 'start',
      '--data', dataDir,
      '--listen', '/ip4/127.0.0.1/tcp/0',
      '--api', '127.0.0.1:0',
      '--swarm-key', this.#swarmKeyFile,
      '--handlers', this.#options.handlers,
      '--replicas', String(this.#options.replicas),
      ...(this.#options.capacity === undefined ? [] : ['--capacity', String(this.#options.capacity)]),
      '--log-level', 'warn',
      // Partitions are cut in each node's transport (no netem on this kernel).
      '--fault-injection',
      ...bootstrap.flatMap(address => ['--bootstrap', address])
    ]
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, ...this.#options.env } })
    this.#children.add(child)
    child.once('exit', () => this.#children.delete(child))
    const log = createWriteStream(join(this.#options.dir, `node-${index}.log`), { flags: 'a' })
    this.#logs.push(log)
    const tail: string[] = []
    const ready = new Promise<Ready>((resolve, reject) => {
      const follow = (stream: NodeJS.ReadableStream, name: string): void => {
        createInterface({ input: stream, crlfDelay: Infinity }).on('line', line => {
          log.write(`${new Date().toISOString()} ${name} ${line}\n`)
          tail.push(line)
          if (tail.length > OUTPUT_TAIL_LINES_MAX) tail.shift()
          if (name === 'stdout' && line.startsWith(READY_PREFIX)) {
            const parsed = parseReady(line.slice(READY_PREFIX.length))
            if (parsed === null) reject(new Error(`node ${index} printed a malformed ready line: ${line}`))
            else resolve(parsed)
          }
        })
      }
      follow(child.stdout!, 'stdout')
      follow(child.stderr!, 'stderr')
      child.once('error', error => reject(new Error(`node ${index} could not be started: ${error.message}`)))
      child.once('exit', (code, signalName) => reject(new Error(`node ${index} exited (${code ?? signalName}) before it was ready${tail.length > 0 ? ':\n' + tail.slice(-8).map(line => `  [node-${index}] ${line}`).join('\n') : ''}`)))
    })
    ready.catch(() => {})

    let node = this.nodes[index - 1]
    if (node === undefined) {
      node = { index, dataDir, peerId: '', api: '', addrs: [], client: new Client('http://127.0.0.1:1'), process: child, state: 'starting', restarts: 0 }
      this.nodes[index - 1] = node
    } else {
      node.process = child
      node.state = 'starting'
    }
    const started = node
    child.once('exit', () => { if (started.process === child) started.state = 'down' })

    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`node ${index} printed no ready line in time${tail.length > 0 ? ':\n' + tail.slice(-8).join('\n') : ''}`)), Math.max(0, deadlineMs - Date.now()))
    })
    try {
      const line = await Promise.race([ready, timeout, aborted(this.#options.signal)])
      if (started.peerId !== '' && started.peerId !== line.peerId) throw new Error(`node ${index} came back as ${line.peerId}, not ${started.peerId}`)
      started.peerId = line.peerId
      started.api = line.api
      started.addrs = line.addrs
      started.client = new Client(line.api, { requestTimeoutMs: CLIENT_REQUEST_TIMEOUT_MS })
      return started
    } finally {
      clearTimeout(timer)
    }
  }

  async #untilFormed (deadlineMs: number): Promise<void> {
    const progress = { detail: 'no answer yet' }
    await until(deadlineMs, this.#options.signal, async () => {
      for (const node of this.nodes) {
        if (node.state === 'down') throw new Error(`node ${node.index} exited while the cluster was forming`)
        const problem = await healthy(node, this.nodes.length)
        if (problem !== null) {
          progress.detail = `node ${node.index}: ${problem}`
          return false
        }
      }
      return true
    }, () => `the cluster did not form: ${progress.detail}`)
    for (const node of this.nodes) node.state = 'up'
  }
}

function signal (child: ChildProcess, name: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null) return
  try { child.kill(name) } catch {}
}

async function exited (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  await new Promise<void>(resolve => child.once('exit', () => resolve()))
}

function aborted (signal: AbortSignal | undefined): Promise<never> {
  return new Promise<never>((_resolve, reject) => {
    if (signal === undefined) return
    const onAbort = (): void => reject(new Error('interrupted'))
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
}

/** Polls `probe` until it answers true; a thrown error ends the wait at once. */
async function until (deadlineMs: number, signal: AbortSignal | undefined, probe: () => Promise<boolean>, what: () => string): Promise<void> {
  for (;;) {
    if (signal?.aborted === true) throw new Error('interrupted')
    if (await probe()) return
    if (Date.now() > deadlineMs) throw new Error(what())
    await new Promise(resolve => setTimeout(resolve, POLL_INTERVAL_MS))
  }
}

/** null when the node answers /healthz with 200 (and, given `members`, sees that many alive); else why not. */
async function healthy (node: LocalNode, members?: number): Promise<string | null> {
  return await checkNode(node, members)
}

function parseReady (json: string): Ready | null {
  try {
    const value = JSON.parse(json) as Partial<Ready>
    if (typeof value.peerId !== 'string' || !Array.isArray(value.addrs) || typeof value.api !== 'string') return null
    return { peerId: value.peerId, addrs: value.addrs.map(String), api: value.api }
  } catch {
    return null
  }
}

/** A multiaddr other nodes can bootstrap from: loopback TCP first, with the peer id. */
function dialable (node: { peerId: string, addrs: string[] }): string {
  const address = node.addrs.find(addr => addr.startsWith('/ip4/127.0.0.1/tcp/')) ?? node.addrs[0]
  if (address === undefined) throw new Error(`node ${node.peerId} printed no multiaddr`)
  return address.includes('/p2p/') ? address : `${address}/p2p/${node.peerId}`
}
