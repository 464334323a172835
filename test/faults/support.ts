// support.ts: a real cluster for fault tests, and the checkers they report with.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { PublicRecord } from '../../src/api/present.js'
import { writeSwarmKeyFile } from '../../src/net/swarm-key.js'
import { HANDLERS, spawnNode, stopNode, tempDir, until, untilFormed } from '../support/processes.js'
import type { NodeProcess } from '../support/processes.js'

export const TERMINAL = new Set(['succeeded', 'dead', 'cancelled'])

/** Diagnostics: TASKMESH_TEST_LOG_LEVEL sets the nodes' log level; TASKMESH_TEST_LOGS=<dir> keeps their logs. */
const LOG_LEVEL = process.env.TASKMESH_TEST_LOG_LEVEL ?? 'warn'
const LOGS_DIR = process.env.TASKMESH_TEST_LOGS

/**
 * Register a suite's hooks: a cluster of `size` started before its tests and stopped after.
 * Returns a getter (the cluster exists only once the hook ran).
 */
export function useCluster (suite: { before: (fn: () => Promise<void>) => void, after: (fn: () => Promise<void>) => void }, size: number): () => TestCluster {
  let cluster: TestCluster | undefined
  suite.before(async () => {
    try {
      cluster = await TestCluster.start(size)
    } catch (error) {
      console.error('cluster did not start:', error) // uvu does not print errors from hooks
      throw error
    }
  })
  suite.after(async () => { await cluster?.stop() })
  return () => cluster!
}

export class TestCluster {
  readonly dir: string
  nodes: NodeProcess[] = []
  readonly extra: string[]

  private constructor (dir: string, extra: string[]) {
    this.dir = dir
    this.extra = extra
  }

  /**
   * Launch and wait until every node sees every other alive. A launch that does not form fails
   * the suite, with every node's view in the message (untilFormed).
   */
  static async start (size: number, extra: string[] = []): Promise<TestCluster> {
    const cluster = new TestCluster(await tempDir('faults'), extra)
    try {
      await cluster.#form(size)
    } catch (error) {
      await cluster.stop()
      throw error
    }
    return cluster
  }

  async #form (size: number): Promise<void> {
    const cluster = this
    await writeSwarmKeyFile(join(cluster.dir, 'swarm.key'))
    const first = await spawnNode(cluster.args(1, []))
    cluster.nodes.push(first)
    const rest = await Promise.all(Array.from({ length: size - 1 }, async (_, i) => await spawnNode(cluster.args(i + 2, [first.addrs[0]!]))))
    cluster.nodes.push(...rest)
    await untilFormed(cluster.nodes, size, 60_000)
  }

  args (index: number, bootstrap: string[]): string[] {
    return [
      '--data', join(this.dir, `node-${index}`), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0',
      '--swarm-key', join(this.dir, 'swarm.key'), '--handlers', HANDLERS, '--allow-exec', '--log-level', LOG_LEVEL,
      '--submit-timeout', '3s', '--remove-after', '8s', ...this.extra, ...bootstrap.flatMap(addr => ['--bootstrap', addr])
    ]
  }

  /** Start node `index` again from its data directory, joining through a live node. */
  async restart (index: number): Promise<NodeProcess> {
    const live = this.live().find(node => node !== this.nodes[index - 1])
    const node = await spawnNode(this.args(index, live !== undefined ? [live.addrs[0]!] : []))
    this.nodes[index - 1] = node
    return node
  }

  /** Every node's log lines (stderr), one file per node process, for a look after the run. */
  async #keepLogs (dir: string): Promise<void> {
    const run = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`)
    await mkdir(run, { recursive: true })
    await Promise.all(this.nodes.map(async (node, i) => await writeFile(join(run, `node-${i + 1}-${node.peerId.slice(-6)}.log`), node.output.join('\n') + '\n')))
    console.log(`    node logs kept in ${run}`)
  }

  live (): NodeProcess[] {
    return this.nodes.filter(node => node.process.exitCode === null && node.process.signalCode === null)
  }

  async add (): Promise<NodeProcess> {
    const node = await spawnNode(this.args(this.nodes.length + 1, [this.live()[0]!.addrs[0]!]))
    this.nodes.push(node)
    return node
  }

  async formed (timeoutMs = 60_000): Promise<void> {
    await untilFormed(this.live(), this.live().length, timeoutMs)
  }

  async stop (): Promise<void> {
    await Promise.all(this.nodes.map(async node => await stopNode(node, 5000)))
    if (LOGS_DIR !== undefined) await this.#keepLogs(LOGS_DIR)
    await rm(this.dir, { recursive: true, force: true })
  }

  /** Submit bodies round-robin over live nodes in batches; a 503 from a draining node is retried elsewhere. */
  async submit (bodies: Array<Record<string, unknown>>, batch = 100): Promise<PublicRecord[]> {
    const accepted: PublicRecord[] = []
    for (let i = 0; i < bodies.length; i += batch) {
      const chunk = bodies.slice(i, i + batch)
      for (let attempt = 0; ; attempt++) {
        const live = this.live()
        const node = live[(i / batch + attempt) % live.length]!
        try {
          const results = await node.client.submitMany(chunk as any)
          const refused = results.filter(result => !('id' in result))
          accepted.push(...results.filter((result): result is PublicRecord => 'id' in result))
          if (refused.length === 0) break
          chunk.splice(0, chunk.length, ...chunk.filter((_, j) => !('id' in results[j]!)))
        } catch {
          // unreachable (restarting): try the next node
        }
        if (attempt > 50) throw new Error('no node accepted the batch')
        await new Promise(resolve => setTimeout(resolve, 100))
      }
    }
    return accepted
  }

  /** The record as any live node answers it (null when none knows it). */
  async read (id: string): Promise<PublicRecord | null> {
    for (const node of this.live()) {
      try { return await node.client.get(id) } catch (error: any) { if (error?.code === 'not_found') return null }
    }
    return null
  }

  /** Wait until every id is terminal; returns the final records. */
  async settle (ids: string[], timeoutMs: number): Promise<Map<string, PublicRecord>> {
    const done = new Map<string, PublicRecord>()
    await until(`${ids.length} tasks to finish`, async () => {
      for (const id of ids) {
        if (done.has(id)) continue
        const record = await this.read(id)
        if (record === null || !TERMINAL.has(record.state)) return false
        done.set(id, record)
      }
      return true
    }, timeoutMs, 250)
    return done
  }
}

/** Executions per marker, from the log file shell tasks append to. */
export async function executionsByMarker (logFile: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  let text = ''
  try { text = await readFile(logFile, 'utf8') } catch {}
  for (const line of text.split('\n')) if (line !== '') counts.set(line, (counts.get(line) ?? 0) + 1)
  return counts
}

export function percentile (values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!
}
