// rolling.test.ts: every node is drained (SIGTERM) and restarted, one at a time, while work
// keeps arriving: nothing lost, nothing run twice.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { join } from 'node:path'
import { stopNode } from '../support/processes.js'
import { useCluster, executionsByMarker } from './support.js'

const cluster = useCluster(test, 3)

test('rolling restart with drain under load: 0 lost, 0 duplicates', async () => {
  const log = join(cluster().dir, 'executions.log')
  let next = 0
  const accepted: string[] = []
  let loading = true
  const load = (async () => {
    while (loading) {
      const bodies = Array.from({ length: 20 }, () => ({ type: 'shell', payload: { cmd: `echo r${next++} >> '${log}'; echo r${next - 1} $PPID >> '${log}.pids'; sleep 0.1` } }))
      for (const record of await cluster().submit(bodies, 20)) accepted.push(record.id)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  })()
  for (let index = 1; index <= 3; index++) {
    console.log(`    draining node ${index} at ${new Date().toISOString().slice(17, 23)}`)
    await stopNode(cluster().nodes[index - 1]!) // SIGTERM: drain, hand off, leave
    console.log(`    restarting node ${index} at ${new Date().toISOString().slice(17, 23)}`)
    await cluster().restart(index)
    await cluster().formed()
  }
  loading = false
  await load
  const final = await cluster().settle(accepted, 120_000)
  const lost = accepted.filter(id => final.get(id)?.state !== 'succeeded')
  const counts = await executionsByMarker(log)
  const submitted = [...counts.keys()]
  const duplicates = submitted.filter(marker => counts.get(marker)! > 1)
  for (const marker of duplicates.slice(0, 3)) {
    for (const record of final.values()) {
      const history = record.history.map(entry => `${entry.state}@${entry.node.slice(-6)}#${entry.attempt}@${entry.at.slice(17, 23)}`).join(' ')
      if (record.payload !== null && JSON.stringify(record.payload).includes(`echo ${marker} `)) console.log(`    ${marker}: ${history}`)
    }
  }
  console.log(`    nodes: ${cluster().nodes.map(node => node.peerId.slice(-6) + '=' + node.process.pid).join(', ')}`)
  const { readFile } = await import('node:fs/promises')
  const pids = (await readFile(`${log}.pids`, 'utf8')).split('\n')
  for (const marker of duplicates.slice(0, 3)) console.log(`    ${marker} ran in: ${pids.filter(line => line.startsWith(marker + ' ')).join(' | ')}`)
  console.log(`    rolling: accepted ${accepted.length}, lost ${lost.length}, duplicate executions ${duplicates.length}`)
  assert.is(lost.length, 0)
  assert.is(duplicates.length, 0, `ran twice: ${duplicates.slice(0, 5).join(', ')}`)
  assert.is(counts.size, accepted.length, 'every accepted task ran')
})

test.run()
