// cluster.test.ts: three real nodes (`taskmesh start` processes, libp2p over TCP on loopback,
// level on disk). Submit to any node, read from any node, and lose nothing on a no-quorum 503.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { PublicRecord } from '../src/api/present.js'
import { writeSwarmKeyFile } from '../src/net/swarm-key.js'
import { loopbackNodeArgs, rawRequest, spawnNode, stopNode, tempDir, until, untilFormed } from './support/processes.js'
import type { NodeProcess } from './support/processes.js'

let dir = ''
let nodes: NodeProcess[] = []

function startArgs (index: number, bootstrap: string[]): string[] {
  return loopbackNodeArgs(dir, index, bootstrap, ['--submit-timeout', '2s'])
}

test.before(async () => {
  dir = await tempDir('cluster')
  await writeSwarmKeyFile(join(dir, 'swarm.key'))
  const first = await spawnNode(startArgs(1, []))
  const rest = await Promise.all([2, 3].map(async index => await spawnNode(startArgs(index, [first.addrs[0]!]))))
  nodes = [first, ...rest]
  await untilFormed(nodes)
})

test.after(async () => {
  await Promise.all(nodes.map(async node => await stopNode(node)))
  await rm(dir, { recursive: true, force: true })
})

const TERMINAL = new Set(['succeeded', 'dead', 'cancelled'])

test('100 tasks submitted round-robin to all three nodes all succeed; every node reads the same records; owners spread over all three', async () => {
  const accepted: PublicRecord[] = []
  for (let i = 0; i < 100; i++) {
    const record = await nodes[i % 3]!.client.submit({ type: 'echo', payload: { i } })
    assert.is(record.state, 'queued')
    accepted.push(record)
  }
  const finished = await Promise.all(accepted.map(async (record, i) => await nodes[(i + 1) % 3]!.client.wait(record.id, 60_000)))
  const states = finished.map(record => record.state)
  assert.equal(states.filter(state => state === 'succeeded').length, 100, `states: ${JSON.stringify(states.filter(state => state !== 'succeeded'))}`)
  finished.forEach((record, i) => assert.equal(record.result, { i }))

  // Identical from every node, once the replicas have the final record.
  for (const record of accepted) {
    const views = await until(`replicas of ${record.id} to agree`, async () => {
      const seen = await Promise.all(nodes.map(async node => await node.client.get(record.id)))
      const texts = seen.map(view => JSON.stringify(view))
      return texts.every(text => text === texts[0]) && TERMINAL.has(seen[0]!.state) ? seen : undefined
    }, 20_000)
    assert.is(views.length, 3)
  }

  const owners = new Map<string, number>()
  for (const record of finished) owners.set(record.owner!, (owners.get(record.owner!) ?? 0) + 1)
  console.log(`    100 tasks: ${states.length} succeeded; owners per node: ${[...owners.values()].join(', ')}`)
  assert.is(owners.size, 3, 'every node owned some tasks')
  for (const node of nodes) assert.ok(owners.has(node.peerId))

  // Listing from any node shows them all.
  const listed = new Set<string>()
  let cursor: string | undefined
  do {
    const page = await nodes[2]!.client.list({ type: 'echo', limit: 30, cursor })
    for (const task of page.tasks) listed.add(task.id)
    cursor = page.next ?? undefined
  } while (cursor !== undefined)
  for (const record of accepted) assert.ok(listed.has(record.id), `listed ${record.id}`)
})

test('a batch submit is accepted whole and each item is durable', async () => {
  const results = await nodes[1]!.client.submitMany(Array.from({ length: 50 }, (_, i) => ({ type: 'noop', payload: { i } })))
  assert.is(results.length, 50)
  for (const result of results) assert.ok('id' in result, JSON.stringify(result))
  const done = await Promise.all(results.map(async result => await nodes[0]!.client.wait((result as PublicRecord).id, 60_000)))
  assert.ok(done.every(record => record.state === 'succeeded'))
})

test('a shell task runs on the cluster and reports its output', async () => {
  const record = await nodes[0]!.client.submit({ type: 'shell', payload: { argv: ['echo', 'hello from taskmesh'] } })
  const done = await nodes[2]!.client.wait(record.id, 30_000)
  assert.is(done.state, 'succeeded')
  assert.is((done.result as any).stdout, 'hello from taskmesh\n')
})

test('with two of three nodes paused, a submit is answered as unknown (not 503) and the task never appears later', async () => {
  const [live, ...paused] = nodes as [NodeProcess, NodeProcess, NodeProcess]
  const marker = `no-quorum-${Date.now()}`
  for (const node of paused) node.process.kill('SIGSTOP')
  let response: { status: number, body: any }
  try {
    response = await rawRequest(`${live.api}/v1/tasks`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'echo', payload: { marker } })
    })
  } finally {
    for (const node of paused) node.process.kill('SIGCONT')
  }
  // Not 503: the paused nodes hold the store in their socket buffers and may store it on
  // resume, so "nothing was accepted" would be a guess. The abort is in those buffers too.
  assert.is(response.status, 500, JSON.stringify(response.body))
  assert.is(response.body.error.code, 'internal')
  assert.ok(String(response.body.error.message).startsWith('outcome unknown'), JSON.stringify(response.body))
  await untilFormed(nodes, 3, 30_000)
  // Watch through the whole window in which a stray copy could surface: the commit fallback
  // (2 x submit timeout + 1 s = 5 s) plus margin. Any appearance fails the test at once.
  const watchUntil = Date.now() + 8000
  while (Date.now() < watchUntil) {
    for (const node of nodes) {
      const page = await node.client.list({ type: 'echo', limit: 1000 })
      const stray = page.tasks.find(task => (task.payload as any)?.marker === marker)
      assert.is(stray, undefined, `the refused task appeared on ${node.peerId}: ${JSON.stringify(stray)}`)
    }
    await new Promise(resolve => setTimeout(resolve, 250))
  }
  // And the cluster still accepts work.
  const record = await live.client.submit({ type: 'noop' })
  assert.is((await live.client.wait(record.id, 30_000)).state, 'succeeded')
})

test('a node restarted from its data directory keeps its peer id and its records', async () => {
  const node = nodes[2]!
  const record = await node.client.submit({ type: 'echo', payload: { keep: true } })
  await node.client.wait(record.id, 30_000)
  const recordsBefore = Number(/taskmesh_records (\d+)/.exec(await node.client.metrics())![1])
  assert.ok(recordsBefore > 0)
  await stopNode(node)
  const restarted = await spawnNode(node.args)
  nodes[2] = restarted
  assert.is(restarted.peerId, node.peerId, 'same peer id')
  const recordsAfter = Number(/taskmesh_records (\d+)/.exec(await restarted.client.metrics())![1])
  assert.is(recordsAfter, recordsBefore, 'same records on disk')
  await untilFormed(nodes)
  const again = await restarted.client.get(record.id)
  assert.is(again.state, 'succeeded')
  assert.equal(again.result, { keep: true })
})

test('bad input gets a clear error and the node keeps serving', async () => {
  const api = nodes[0]!.api
  const post = async (body: string, type = 'application/json') => await rawRequest(`${api}/v1/tasks`, { method: 'POST', headers: { 'content-type': type }, body })
  let response = await post('{"type": "noop",')
  assert.is(response.status, 400)
  assert.is(response.body.error.code, 'invalid_input')
  response = await post(JSON.stringify({ type: 'noop', colour: 'red' }))
  assert.is(response.status, 400)
  assert.match(response.body.error.message, /colour/)
  response = await post(JSON.stringify({ type: 'noop', payload: 'x'.repeat(2 * 1024 * 1024) }))
  assert.is(response.status, 413)
  response = await post(JSON.stringify({ type: 'noop', priority: 'high' }))
  assert.is(response.status, 400)
  assert.match(response.body.error.message, /priority/)
  response = await rawRequest(`${api}/v1/tasks/does-not-exist`, {})
  assert.is(response.status, 404)
  assert.is((await rawRequest(`${api}/healthz`, {})).status, 200)
  const record = await nodes[0]!.client.submit({ type: 'noop' })
  assert.is((await nodes[0]!.client.wait(record.id, 30_000)).state, 'succeeded')
})

test.run()
