// restart.test.ts: the whole cluster is SIGKILLed mid-run and restarted from its data
// directories; every accepted task finishes.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../support/processes.js'
import { useCluster } from './support.js'

const cluster = useCluster(test, 3)

test('SIGKILL every node, restart all from their data: every accepted task finishes', async () => {
  const accepted = await cluster().submit(Array.from({ length: 300 }, () => ({ type: 'sleep', payload: { ms: 100 } })), 100)
  await until('some progress', async () => {
    const record = await cluster().read(accepted[accepted.length - 1]!.id)
    let done = 0
    for (const task of accepted.slice(0, 50)) if ((await cluster().read(task.id))?.state === 'succeeded') done++
    return done >= 10 && record !== null
  }, 30_000, 100)
  for (const node of cluster().nodes) node.process.kill('SIGKILL')
  await Promise.all(cluster().nodes.map(async node => await node.exited))
  await cluster().restart(1)
  await Promise.all([2, 3].map(async index => await cluster().restart(index)))
  await cluster().formed()
  const final = await cluster().settle(accepted.map(task => task.id), 120_000)
  const lost = accepted.filter(task => final.get(task.id)?.state !== 'succeeded')
  console.log(`    restart: accepted ${accepted.length}, succeeded ${accepted.length - lost.length}, lost ${lost.length}`)
  assert.is(lost.length, 0)
})

test.run()
