// node.test.ts: one real node in-process (libp2p, level, HTTP) for what a single node must do
// at its edge: token, exec disabled, loopback rule, restart from its data directory.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { startNode } from '../src/index.js'
import type { RunningNode } from '../src/index.js'
import { rawRequest, tempDir, until } from './support/processes.js'

let dir = ''
const started: RunningNode[] = []

test.before(async () => { dir = await tempDir('node') })
test.after(async () => {
  for (const node of started) await node.close()
  await rm(dir, { recursive: true, force: true })
})

async function start (name: string, options: Partial<Parameters<typeof startNode>[0]> = {}): Promise<RunningNode> {
  const node = await startNode({ dataDir: join(dir, name), api: '127.0.0.1:0', logLevel: 'silent', handlers: { echo: async (payload: unknown) => payload }, ...options })
  started.push(node)
  return node
}

test('the API needs the bearer token when one is configured', async () => {
  const node = await start('token', { apiToken: 's3cret-token' })
  const body = JSON.stringify({ type: 'echo', payload: 1 })
  const headers = { 'content-type': 'application/json' }
  let response = await rawRequest(`${node.apiUrl}/v1/tasks`, { method: 'POST', headers, body })
  assert.is(response.status, 401)
  assert.is(response.body.error.code, 'unauthorized')
  response = await rawRequest(`${node.apiUrl}/v1/tasks`, { method: 'POST', headers: { ...headers, authorization: 'Bearer wrong' }, body })
  assert.is(response.status, 401)
  response = await rawRequest(`${node.apiUrl}/v1/tasks`, { method: 'POST', headers: { ...headers, authorization: 'Bearer s3cret-token' }, body })
  assert.is(response.status, 201)
  const done = await node.wait(response.body.id, 10_000)
  assert.is(done?.state, 'succeeded')
})

test('a shell task on a node without --allow-exec is refused with 400 and the node keeps serving', async () => {
  const node = await start('noexec')
  const response = await rawRequest(`${node.apiUrl}/v1/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'shell', payload: { argv: ['true'] } }) })
  assert.is(response.status, 400)
  assert.is(response.body.error.code, 'exec_disabled')
  assert.match(response.body.error.message, /--allow-exec/)
  const record = await node.submit({ type: 'echo', payload: 'still here' })
  assert.is((await node.wait(record.id, 10_000))?.result, 'still here')
})

test('a node refuses to serve its API beyond loopback without a token', async () => {
  let error: unknown
  try {
    await start('open', { api: '0.0.0.0:0' })
  } catch (caught) {
    error = caught
  }
  assert.ok(error instanceof Error, 'refused')
  assert.match((error as Error).message, /token/)
})

test('restarted with the same data directory, a node keeps its peer id and its records', async () => {
  const first = await start('restart', { api: false })
  const record = await first.submit({ type: 'echo', payload: { n: 42 } })
  await first.wait(record.id, 10_000)
  const peerId = first.peerId
  await first.stop()
  const second = await start('restart', { api: false })
  assert.is(second.peerId, peerId)
  const again = await second.get(record.id)
  assert.is(again?.state, 'succeeded')
  assert.equal(again?.result, { n: 42 })
})

test('a node given bootstrap peers answers /healthz 503 until it heard from another member', async () => {
  const seed = await start('seed', { heartbeatMs: 100 })
  const unreachable = seed.multiaddrs[0]!.replace(/\/tcp\/\d+\//, '/tcp/1/')
  const lonely = await start('lonely', { heartbeatMs: 100, bootstrap: [unreachable] })
  // Joined by the clock (it accepts work on its own ring), yet it never reached anyone.
  await until('the lonely node to accept work', async () => {
    try { return (await lonely.submit({ type: 'echo', payload: 1 })) !== undefined } catch { return false }
  }, 20_000)
  assert.is(lonely.api.healthy(), false)
  assert.is((await rawRequest(`${lonely.apiUrl}/healthz`, {})).status, 503)
  const joiner = await start('joiner', { heartbeatMs: 100, bootstrap: [seed.multiaddrs[0]!] })
  await until('the joiner to be healthy', () => joiner.api.healthy(), 20_000)
  assert.is((await rawRequest(`${joiner.apiUrl}/healthz`, {})).status, 200)
  assert.is((await rawRequest(`${seed.apiUrl}/healthz`, {})).status, 200, 'a node without bootstrap peers is healthy alone')
})

test.run()
