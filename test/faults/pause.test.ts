// pause.test.ts: an owner SIGSTOPped past the dead timeout, then SIGCONTed: the task is taken
// over with a higher fencing token, the paused owner's late result is refused, nothing is lost.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { until } from '../support/processes.js'
import { useCluster } from './support.js'

const cluster = useCluster(test, 3)

test('a paused owner is taken over and its late result refused', async () => {
  const [task] = await cluster().submit([{ type: 'sleep', payload: { ms: 5000 } }])
  const running = await until('the task to run', async () => {
    const record = await cluster().read(task!.id)
    return record?.state === 'running' ? record : undefined
  }, 30_000, 50)
  const owner = cluster().nodes.find(node => node.peerId === running.owner)!
  owner.process.kill('SIGSTOP')
  const pausedAtMs = Date.now()
  let takenOver
  try {
    takenOver = await until('a takeover by another node', async () => {
      for (const node of cluster().nodes.filter(other => other !== owner)) {
        const record = await node.client.get(task!.id)
        if (record.state === 'running' && record.owner !== owner.peerId) return record
      }
      return undefined
    }, 30_000, 100)
  } finally {
    owner.process.kill('SIGCONT')
  }
  console.log(`    pause: taken over ${Date.now() - pausedAtMs} ms after SIGSTOP, epoch ${running.epoch} -> ${takenOver.epoch}, attempt ${takenOver.attempt}`)
  assert.ok(takenOver.epoch > running.epoch)
  // The paused run wakes up, finishes its sleep and reports: refused, and counted.
  await until('the late result to be refused', async () => {
    const refused = Number(/taskmesh_stale_results_refused_total (\d+)/.exec(await owner.client.metrics())?.[1] ?? 0)
    return refused >= 1
  }, 30_000, 200)
  const [final] = (await cluster().settle([task!.id], 30_000)).values()
  assert.is(final!.state, 'succeeded')
  assert.is(final!.epoch, takenOver.epoch, 'the outcome is the newer claim\'s')
  for (const node of cluster().nodes) {
    const view = await until('every node to agree', async () => {
      const record = await node.client.get(task!.id)
      return record.state === 'succeeded' ? record : undefined
    }, 20_000)
    assert.is(view.epoch, takenOver.epoch)
  }
})

test.run()
