// kill.test.ts: 5 nodes, R = 3. 1,000 short shell tasks spread over all nodes; two nodes (one of
// them running tasks) are SIGKILLed mid-run. Every accepted task must succeed.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { until } from '../support/processes.js'
import { useCluster, executionsByMarker, percentile } from './support.js'

const cluster = useCluster(test, 5)

test('SIGKILL two of five nodes mid-run: nothing lost, failover in seconds', async () => {
  const log = join(cluster().dir, 'executions.log')
  const bodies = Array.from({ length: 1000 }, (_, i) => ({ type: 'shell', payload: { cmd: `echo m${i} >> '${log}'; sleep 0.2` } }))
  const accepted = await cluster().submit(bodies, 100)
  assert.is(accepted.length, 1000, 'all accepted')

  // Mid-run: kill a node that is running tasks right now, and one more.
  const victims = await until('a node running tasks', async () => {
    for (const node of cluster().nodes) {
      const running = Number(/taskmesh_tasks_running (\d+)/.exec(await node.client.metrics())?.[1] ?? 0)
      if (running > 0) return [node, cluster().nodes.find(other => other !== node)!]
    }
    return undefined
  }, 30_000, 50)
  const killedAtMs = Date.now()
  for (const victim of victims) victim.process.kill('SIGKILL')
  await Promise.all(victims.map(async victim => await victim.exited))
  const victimIds = new Set(victims.map(victim => victim.peerId))

  const final = await cluster().settle(accepted.map(record => record.id), 180_000)
  const lost = accepted.filter(record => final.get(record.id)?.state !== 'succeeded')
  const counts = await executionsByMarker(log)
  const markers = Array.from({ length: 1000 }, (_, i) => `m${i}`)
  const duplicated = markers.filter(marker => (counts.get(marker) ?? 0) > 1).length
  const neverRan = markers.filter(marker => (counts.get(marker) ?? 0) === 0).length

  // Failover time: kill → the first run elsewhere of a task a victim was running.
  const failoverMs: number[] = []
  for (const record of final.values()) {
    const runs = record.history.filter(entry => entry.state === 'running')
    const onVictim = runs.some(entry => victimIds.has(entry.node) && Date.parse(entry.at) <= killedAtMs)
    const lastOnVictim = [...runs].reverse().find(entry => victimIds.has(entry.node))
    if (!onVictim || lastOnVictim === undefined || record.history.some(entry => entry.state === 'succeeded' && victimIds.has(entry.node))) continue
    const rerun = runs.find(entry => !victimIds.has(entry.node) && Date.parse(entry.at) > killedAtMs)
    if (rerun !== undefined) failoverMs.push(Date.parse(rerun.at) - killedAtMs)
  }
  console.log(`    kill: accepted 1000, succeeded ${1000 - lost.length}, lost ${lost.length}, ` +
    `duplicate executions ${duplicated} (tasks run more than once), affected running tasks ${failoverMs.length}, ` +
    `failover p50 ${percentile(failoverMs, 0.5)} ms, max ${Math.max(...failoverMs)} ms`)
  const twice = markers.filter(marker => (counts.get(marker) ?? 0) > 1).slice(0, 4)
  for (const marker of twice) {
    const record = [...final.values()].find(r => ((accepted.find(a => a.id === r.id)?.payload as any)?.cmd ?? '').includes(`echo ${marker} `))
    if (record !== undefined) console.log(`    ${marker} ran ${counts.get(marker)}x: ` + record.history.map(entry => `${entry.state}@${entry.node.slice(-6)}#${entry.attempt}+${Date.parse(entry.at) - killedAtMs}ms`).join(' '))
  }
  console.log(`    victims: ${[...victimIds].map(id => id.slice(-6)).join(', ')}, killed at ${new Date(killedAtMs).toISOString()}`)
  assert.is(lost.length, 0, `lost: ${lost.slice(0, 5).map(record => `${record.id}=${final.get(record.id)?.state}`).join(', ')}`)
  assert.is(neverRan, 0, 'every task ran')
  assert.ok(failoverMs.length > 0, 'some running tasks were taken over')
  assert.ok(Math.max(...failoverMs) < 30_000, 'taken over within seconds')
})

test.run()
