// bench.ts: throughput of a local cluster of real nodes (child processes, loopback).
// Submits --tasks no-op tasks in batches of --batch, round-robin over the nodes with --inflight
// batches in flight, then waits until every task is succeeded and reports tasks/s.
// Run: npm run bench -- [--nodes 3] [--tasks 10000] [--batch 500] [--inflight 6] [--capacity 64]
// Also reports the CPU the node processes used per task (Linux), the number to compare
// variants by on a busy machine. Environment: TASKMESH_BENCH_NODE_OPTIONS (the nodes'
// NODE_OPTIONS), TASKMESH_BENCH_BIN (another entry point, e.g. a wrapper that runs
// bin/taskmesh under --cpu-prof), TASKMESH_BENCH_METRICS (a regexp: print those metrics of
// every node at completion, e.g. "net_|driver_|store_").
import '../src/polyfill.js'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from '../src/api/client.js'
import { launchCluster } from '../src/cli/cluster.js'

const STALL_MS = 30_000

function option (name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`)
  return index >= 0 ? Number(process.argv[index + 1]) : fallback
}

async function main (): Promise<void> {
  const nodes = option('nodes', 3)
  const tasks = option('tasks', 10_000)
  const batch = option('batch', 500)
  const inflight = option('inflight', 6)
  const capacity = option('capacity', 64)
  const replicas = option('replicas', 3)
  const dataDir = await mkdtemp(join(tmpdir(), 'taskmesh-bench-'))
  const handlers = join(dirname(fileURLToPath(import.meta.url)), 'handlers.js')
  console.log(`bench: ${nodes} nodes (processes), R=${replicas}, capacity ${capacity}, ${tasks} no-op tasks in batches of ${batch}, ${inflight} batches in flight`)
  const cluster = await launchCluster({
    nodes, dataDir, apiPort: 0, capacity, replicas, handlers, logLevel: 'error',
    env: process.env.TASKMESH_BENCH_NODE_OPTIONS !== undefined ? { NODE_OPTIONS: process.env.TASKMESH_BENCH_NODE_OPTIONS } : undefined,
    bin: process.env.TASKMESH_BENCH_BIN,
    relay: (index, stream, line) => { if (stream === 'stderr') console.error(`[node-${index}] ${line}`) }
  }).catch(async (error: unknown) => {
    await rm(dataDir, { recursive: true, force: true }) // a launch that failed leaves no data behind
    throw error
  })
  try {
    const clients = cluster.nodes.map(node => new Client(node.api))
    const cpuAtStart = cluster.nodes.map(node => processCpuSeconds(node.process.pid))
    const startedMs = performance.now()
    const ids: string[] = []
    let next = 0
    const batches = Math.ceil(tasks / batch)
    const worker = async (): Promise<void> => {
      while (next < batches) {
        const index = next++
        const size = Math.min(batch, tasks - index * batch)
        const results = await clients[index % clients.length]!.submitMany(Array.from({ length: size }, () => ({ type: 'noop' })))
        for (const result of results) {
          if (!('id' in result)) throw new Error(`submit failed: ${result.error.code}: ${result.error.message}`)
          ids.push(result.id)
        }
      }
    }
    await Promise.all(Array.from({ length: inflight }, worker))
    const acceptedMs = performance.now()
    // Completion: the succeeded counters of all nodes, then an exact check by listing. A run
    // that makes no progress for STALL_MS fails instead of waiting forever.
    let progress = { succeeded: -1, atMs: performance.now() }
    for (;;) {
      let succeeded = 0
      for (const client of clients) succeeded += Number(/taskmesh_executions_succeeded_total (\d+)/.exec(await client.metrics())?.[1] ?? 0)
      if (succeeded >= tasks) break
      if (succeeded !== progress.succeeded) progress = { succeeded, atMs: performance.now() }
      else if (performance.now() - progress.atMs > STALL_MS) throw new Error(`STALLED: ${succeeded} of ${tasks} executions succeeded, no progress for ${STALL_MS / 1000} s`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const doneMs = performance.now()
    const cpuAtDone = cluster.nodes.map(node => processCpuSeconds(node.process.pid))
    const metricsPattern = process.env.TASKMESH_BENCH_METRICS
    if (metricsPattern !== undefined) {
      for (const client of clients) {
        const lines = (await client.metrics()).split('\n')
        console.log(lines.filter(line => !line.startsWith('#') && new RegExp(metricsPattern).test(line)).join(' | '))
      }
    }
    let listed = 0
    let cursor: string | undefined
    do {
      const page = await clients[0]!.list({ state: 'succeeded', limit: 1000, cursor })
      listed += page.tasks.length
      cursor = page.next ?? undefined
    } while (cursor !== undefined)
    const seconds = (doneMs - startedMs) / 1000
    console.log(`accepted ${ids.length} in ${((acceptedMs - startedMs) / 1000).toFixed(2)} s (${Math.round(ids.length / ((acceptedMs - startedMs) / 1000))} tasks/s accepted)`)
    console.log(`completed ${listed} succeeded (listed) in ${seconds.toFixed(2)} s end to end: ${Math.round(tasks / seconds)} tasks/s`)
    if (cpuAtStart.every(value => value !== null) && cpuAtDone.every(value => value !== null)) {
      const cpuSeconds = cpuAtDone.map((value, index) => value! - cpuAtStart[index]!)
      const total = cpuSeconds.reduce((sum, value) => sum + value, 0)
      const own = process.cpuUsage()
      console.log(`bench process CPU (whole run) ${((own.user + own.system) / 1e6).toFixed(2)} s`)
      console.log(`node CPU ${cpuSeconds.map(value => value.toFixed(2)).join(' + ')} = ${total.toFixed(2)} s from first submit to last completion: ${Math.round(total * 1e6 / tasks)} µs per task`)
    }
    if (listed !== tasks) {
      console.error(`MISMATCH: ${tasks} submitted, ${listed} listed as succeeded`)
      process.exitCode = 1
    }
  } finally {
    await cluster.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

/** User + system CPU seconds of a process so far (Linux /proc; null elsewhere). */
function processCpuSeconds (pid: number | undefined): number | null {
  if (pid === undefined) return null
  try {
    // Fields after the command name: utime and stime are the 12th and 13th (clock ticks, 100 per second).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  } catch {
    return null
  }
}

main().catch(error => {
  console.error(error)
  process.exit(1)
})
