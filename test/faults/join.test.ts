// join.test.ts: a sixth node joins a five-node cluster under load; nothing is lost and about
// 1/6 of the tasks change owner.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { buildRing, replicaSet } from '../../src/core/ring.js'
import { useCluster } from './support.js'

const cluster = useCluster(test, 5)

test('a node joins under load: no task lost; fraction of tasks that changed owner printed', async () => {
  const first = cluster().submit(Array.from({ length: 400 }, () => ({ type: 'sleep', payload: { ms: 50 } })), 50)
  const newcomer = await cluster().add()
  const accepted = [...await first, ...await cluster().submit(Array.from({ length: 200 }, () => ({ type: 'sleep', payload: { ms: 50 } })), 50)]
  await cluster().formed()
  const final = await cluster().settle(accepted.map(task => task.id), 120_000)
  const lost = accepted.filter(task => final.get(task.id)?.state !== 'succeeded')
  const before = buildRing(cluster().nodes.slice(0, 5).map(node => node.peerId))
  const after = buildRing(cluster().nodes.map(node => node.peerId))
  const moved = accepted.filter(task => replicaSet(before, task.id, 1)[0] !== replicaSet(after, task.id, 1)[0]).length
  const ranOnNewcomer = [...final.values()].filter(record => record.owner === newcomer.peerId).length
  console.log(`    join: accepted ${accepted.length}, lost ${lost.length}, owner changed for ${(100 * moved / accepted.length).toFixed(1)}% of tasks (1/6 = 16.7%), ${ranOnNewcomer} ran on the newcomer`)
  assert.is(lost.length, 0)
  assert.ok(moved / accepted.length < 0.35)
})

test.run()
