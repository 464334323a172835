// bench.ts: throughput of a local cluster of real nodes (child processes, loopback).
// Submits --tasks no-op tasks in batches of --batch, round-robin over the nodes with --inflight
// batches in flight, then waits until every task is succeeded and reports tasks/s.
// Run: npm run bench -- [--nodes 3] [--tasks 10000] [--batch 500] [--inflight 6] [--capacity 64]
import '../src/polyfill.js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Client } from '../src/api/client.js'
import { launchCluster } from '../src/cli/cluster.js'

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
    relay: (index, stream, line) => { if (stream === 'stderr') console.error(`[node-${index}] ${line}`) }
  })
  try {
    const clients = cluster.nodes.map(node => new Client(node.api))
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
    // Completion: the succeeded counters of all nodes, then an exact check by listing.
    for (;;) {
      let succeeded = 0
      for (const client of clients) succeeded += Number(/taskmesh_executions_succeeded_total (\d+)/.exec(await client.metrics())?.[1] ?? 0)
      if (succeeded >= tasks) break
      await new Promise(resolve => setTimeout(resolve, 20))
    }
    const doneMs = performance.now()
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
    if (listed !== tasks) {
      console.error(`MISMATCH: ${tasks} submitted, ${listed} listed as succeeded`)
      process.exitCode = 1
    }
  } finally {
    await cluster.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

main().catch(error => {
  console.error(error)
  process.exit(1)
})
