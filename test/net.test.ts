// net.test.ts: the libp2p adapter against the real stack, in-process nodes on 127.0.0.1.
// Why real libp2p: framing, batching, pnet and re-dial only show on real streams.
import '../src/polyfill.js'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { pack } from 'msgpackr'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { loadOrCreatePrivateKey, PeerKeyCorruptError } from '../src/net/identity.js'
import { PeerNet, RPC_PROTOCOL_DEFAULT } from '../src/net/peer-net.js'
import { generateSwarmKey, readSwarmKeyFile, SwarmKeyExistsError, SwarmKeyInvalidError, writeSwarmKeyFile } from '../src/net/swarm-key.js'
import { createLogger, silentLogger } from '../src/runtime/log.js'
import type { PeerNetOptions } from '../src/net/peer-net.js'
import type { Libp2p, PrivateKey } from '@libp2p/interface'

const TOPIC = 'taskmesh/test'
const FRAME_BYTES_MAX = 1024 * 1024

interface Received {
  messages: Array<{ from: string, value: unknown }>
  gossip: Array<{ topic: string, from: string, value: unknown }>
  disconnects: string[]
}

interface TestNode { net: PeerNet, received: Received, key: PrivateKey }

const directories: string[] = []
const nodes: PeerNet[] = []
const rawNodes: Libp2p[] = []

async function temporaryDirectory (): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'taskmesh-net-'))
  directories.push(directory)
  return directory
}

/** Poll until `condition` holds; fail with `what` after `timeoutMs`. */
async function until (condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function startNode (options: Partial<PeerNetOptions> & { swarmKey: Uint8Array | undefined }, key?: PrivateKey): Promise<TestNode> {
  const privateKey = key ?? await generateKeyPair('Ed25519')
  const received: Received = { messages: [], gossip: [], disconnects: [] }
  const net = await PeerNet.create({
    privateKey,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    topics: [TOPIC],
    frameBytesMax: FRAME_BYTES_MAX,
    onMessages: (from, messages) => { for (const value of messages) received.messages.push({ from, value }) },
    onGossip: (topic, from, value) => { received.gossip.push({ topic, from, value }) },
    onPeerDisconnected: peerId => { received.disconnects.push(peerId) },
    // TASKMESH_TEST_LOG=debug shows the adapter's events while debugging this file.
    log: process.env.TASKMESH_TEST_LOG === 'debug' ? createLogger('debug', { node: nodes.length }) : silentLogger,
    redialMs: 250,
    ...options
  })
  nodes.push(net)
  return { net, received, key: privateKey }
}

function tcpPort (net: PeerNet): number {
  const address = net.multiaddrs().find(text => text.startsWith('/ip4/127.0.0.1/tcp/'))
  assert.ok(address, 'node listens on 127.0.0.1')
  return Number(address.split('/')[4])
}

test.after(async () => {
  await Promise.all(nodes.map(async net => { await net.stop() }))
  await Promise.all(rawNodes.map(async node => { await node.stop() }))
  await Promise.all(directories.map(async directory => { await rm(directory, { recursive: true, force: true }) }))
})

// ---- identity ----

test('identity: the same peer id after reload; file is 0600', async () => {
  const dataDir = join(await temporaryDirectory(), 'nested', 'data')
  const first = await loadOrCreatePrivateKey(dataDir)
  const second = await loadOrCreatePrivateKey(dataDir)
  assert.is(peerIdFromPrivateKey(first).toString(), peerIdFromPrivateKey(second).toString())
  assert.is(first.type, 'Ed25519')
  assert.is((await stat(join(dataDir, 'peer.key'))).mode & 0o777, 0o600)
})

test('identity: a corrupt key file is a clear error and is left alone', async () => {
  const dataDir = await temporaryDirectory()
  const file = join(dataDir, 'peer.key')
  await writeFile(file, 'not a key')
  try {
    await loadOrCreatePrivateKey(dataDir)
    assert.unreachable('should have thrown')
  } catch (err) {
    assert.instance(err, PeerKeyCorruptError)
    assert.match((err as Error).message, file)
  }
  assert.is((await readFile(file)).toString(), 'not a key')
})

// ---- swarm key ----

test('swarm key: write, read back, refuse to overwrite', async () => {
  const file = join(await temporaryDirectory(), 'keys', 'swarm.key')
  await writeSwarmKeyFile(file)
  const written = await readFile(file)
  assert.is(written.byteLength, 95)
  assert.is((await stat(file)).mode & 0o777, 0o600)
  assert.equal(await readSwarmKeyFile(file), new Uint8Array(written))
  try {
    await writeSwarmKeyFile(file)
    assert.unreachable('should have refused')
  } catch (err) {
    assert.instance(err, SwarmKeyExistsError)
  }
  assert.equal(new Uint8Array(await readFile(file)), new Uint8Array(written))
  // A hand-edited file with a trailing newline and upper-case hex is the same key.
  const edited = join(await temporaryDirectory(), 'edited.key')
  const text = new TextDecoder().decode(written)
  await writeFile(edited, text.replace(/[0-9a-f]{64}$/, hex => hex.toUpperCase()) + '\n')
  assert.equal(await readSwarmKeyFile(edited), new Uint8Array(written))
  assert.is.not(new TextDecoder().decode(generateSwarmKey()), text)
})

test('swarm key: a file that is not a swarm key is rejected, naming the file', async () => {
  const directory = await temporaryDirectory()
  const cases = ['hello\n', '/key/swarm/psk/1.0.0/\n/base16/\nabcd\n', '/key/swarm/psk/1.0.0/\n/base64/\n' + 'a'.repeat(64)]
  for (const [index, content] of cases.entries()) {
    const file = join(directory, `bad-${index}.key`)
    await writeFile(file, content)
    try {
      await readSwarmKeyFile(file)
      assert.unreachable('should have thrown')
    } catch (err) {
      assert.instance(err, SwarmKeyInvalidError)
      assert.match((err as Error).message, file)
    }
  }
})

// ---- a private cluster: A bootstraps to B (full multiaddr) and C (host:port) ----

const swarmKey = generateSwarmKey()
let a: TestNode
let b: TestNode
let c: TestNode

test('bootstrap by full multiaddr and by host:port', async () => {
  b = await startNode({ swarmKey })
  c = await startNode({ swarmKey })
  a = await startNode({
    swarmKey,
    bootstrap: [b.net.multiaddrs()[0]!, `127.0.0.1:${tcpPort(c.net)}`, '127.0.0.1:1']
  })
  await until(() => a.net.connectedPeers().includes(b.net.peerId) && a.net.connectedPeers().includes(c.net.peerId), 'A connected to B and C')
  for (const address of a.net.multiaddrs()) assert.ok(address.endsWith(`/p2p/${a.net.peerId}`))
})

test('10,000 send() calls arrive in order, batched into few frames', async () => {
  const count = 10_000
  const before = b.net.stats()
  const start = performance.now()
  for (let seq = 0; seq < count; seq++) a.net.send(b.net.peerId, [{ kind: 'Test', seq }])
  await until(() => b.received.messages.length >= count, `${count} messages at B`)
  const elapsedMs = performance.now() - start
  const after = b.net.stats()
  const seqs = b.received.messages.map(({ from, value }) => {
    assert.is(from, a.net.peerId)
    return (value as { seq: number }).seq
  })
  assert.equal(seqs, Array.from({ length: count }, (_, seq) => seq))
  const frames = after.framesReceived - before.framesReceived
  const messages = after.messagesReceived - before.messagesReceived
  assert.is(messages, count)
  assert.ok(frames * 10 < messages, `batched: ${frames} frames for ${messages} messages`)
  assert.is(a.net.stats().dropped, 0)
  console.log(`  burst: ${count} messages in ${frames} frame(s), ${elapsedMs.toFixed(0)} ms (${Math.round(count / elapsedMs * 1000)} msg/s)`)
})

test('sustained throughput: many small bursts over several event-loop turns, order kept', async () => {
  const bursts = 200
  const perBurst = 500
  const payload = 'x'.repeat(100)
  b.received.messages.length = 0
  const before = b.net.stats()
  const start = performance.now()
  let seq = 0
  for (let burst = 0; burst < bursts; burst++) {
    for (let index = 0; index < perBurst; index++) a.net.send(b.net.peerId, [{ kind: 'Test', seq: seq++, payload }])
    await new Promise(resolve => setImmediate(resolve))
  }
  const total = bursts * perBurst
  await until(() => b.received.messages.length >= total, `${total} messages at B`, 30_000)
  const elapsedMs = performance.now() - start
  const frames = b.net.stats().framesReceived - before.framesReceived
  let expected = 0
  for (const { value } of b.received.messages) assert.is((value as { seq: number }).seq, expected++)
  assert.is(a.net.stats().dropped, 0)
  console.log(`  sustained: ${total} messages (~${pack({ kind: 'Test', seq: 1, payload }).byteLength} B each) in ${frames} frames, ${elapsedMs.toFixed(0)} ms (${Math.round(total / elapsedMs * 1000)} msg/s)`)
  b.received.messages.length = 0
})

test('an unencodable message or one bigger than frameBytesMax is dropped and counted; frames are split at the limit', async () => {
  const droppedBefore = a.net.stats().dropped
  a.net.send(b.net.peerId, [Symbol('not encodable')]) // dropped and counted, never thrown
  const framesBefore = b.net.stats().framesReceived
  const big = 'y'.repeat(FRAME_BYTES_MAX / 4)
  a.net.send(b.net.peerId, [{ seq: 0, big: 'z'.repeat(FRAME_BYTES_MAX) }])
  a.net.send(b.net.peerId, [1, 2, 3, 4, 5, 6].map(seq => ({ seq, big })))
  await until(() => b.received.messages.length >= 6, 'six large messages at B')
  assert.is(a.net.stats().dropped - droppedBefore, 2)
  assert.equal(b.received.messages.map(({ value }) => (value as { seq: number }).seq), [1, 2, 3, 4, 5, 6])
  assert.ok(b.net.stats().framesReceived - framesBefore >= 2, 'split into several frames')
  b.received.messages.length = 0
})

test('gossip reaches the other nodes once the mesh is formed, and not the publisher', async () => {
  await until(() => {
    const mesh = a.net.meshPeers(TOPIC)
    return mesh.includes(b.net.peerId) && mesh.includes(c.net.peerId)
  }, 'A mesh has B and C')
  a.net.publish(TOPIC, { kind: 'Heartbeat', load: 3 })
  await until(() => b.received.gossip.length >= 1 && c.received.gossip.length >= 1, 'gossip at B and C')
  for (const node of [b, c]) {
    assert.equal(node.received.gossip[0], { topic: TOPIC, from: a.net.peerId, value: { kind: 'Heartbeat', load: 3 } })
  }
  // B publishes too; once A has it, A's own earlier message has had every chance to come back.
  b.net.publish(TOPIC, { kind: 'Heartbeat', load: 4 })
  await until(() => a.received.gossip.length >= 1, 'gossip at A')
  assert.ok(a.received.gossip.every(({ from }) => from !== a.net.peerId), 'no self-delivery')
  a.net.publish('taskmesh/nobody-listens', 1) // no subscribers: must not throw
  a.net.publish(TOPIC, 2n ** 70n) // not encodable: logged, must not throw
})

test('a node with a different swarm key cannot exchange messages', async () => {
  const outsider = await startNode({ swarmKey: generateSwarmKey(), dialTimeoutMs: 1000, bootstrap: [b.net.multiaddrs()[0]!] })
  outsider.net.addAddresses(b.net.peerId, b.net.multiaddrs())
  outsider.net.send(b.net.peerId, [{ seq: 1 }, { seq: 2 }])
  await until(() => outsider.net.stats().dropped === 2, 'outsider drops its messages', 10_000)
  assert.is(outsider.net.connectedPeers().length, 0)
  assert.not.ok(b.net.connectedPeers().includes(outsider.net.peerId))
  assert.ok(b.received.messages.every(({ from }) => from !== outsider.net.peerId))
  await outsider.net.stop()
})

test('malformed frames are counted, abort only their stream, and never crash the node', async () => {
  const raw = await createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionProtector: preSharedKey({ psk: swarmKey })
  })
  rawNodes.push(raw)
  const target = multiaddr(b.net.multiaddrs()[0]!)
  const lengthPrefixed = (body: Uint8Array): Uint8Array => {
    assert.ok(body.byteLength < 128)
    return Uint8Array.of(body.byteLength, ...body)
  }
  const writeRaw = async (bytes: Uint8Array): Promise<void> => {
    const stream = await raw.dialProtocol(target, RPC_PROTOCOL_DEFAULT)
    stream.send(bytes)
  }
  const malformedBefore = b.net.stats().malformed
  const cases: Uint8Array[] = [
    lengthPrefixed(Uint8Array.of(0x93, 0x01)), // truncated msgpack array
    lengthPrefixed(new Uint8Array(pack({ not: 'an array' }))), // valid msgpack, not an array
    Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x7f), // length prefix far above frameBytesMax
    Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), // length prefix too long
    Uint8Array.of(0x00) // empty frame
  ]
  for (const [index, bytes] of cases.entries()) {
    await writeRaw(bytes)
    await until(() => b.net.stats().malformed === malformedBefore + index + 1, `malformed case ${index} counted`)
  }
  // A well-formed frame from the same foreign client is delivered, attributed to it.
  await writeRaw(lengthPrefixed(new Uint8Array(pack(['hello', 42]))))
  await until(() => b.received.messages.some(({ from }) => from === raw.peerId.toString()), 'raw frame delivered')
  assert.equal(b.received.messages.filter(({ from }) => from === raw.peerId.toString()).map(({ value }) => value), ['hello', 42])
  // B still works for everyone else.
  a.net.send(b.net.peerId, [{ kind: 'AfterGarbage' }])
  await until(() => b.received.messages.some(({ value }) => (value as { kind?: string }).kind === 'AfterGarbage'), 'normal send after garbage')
  b.received.messages.length = 0
})

test('bootstrap re-dial: B restarts with its key on the same port; A reconnects and can send again', async () => {
  const port = tcpPort(b.net)
  const key = b.key
  await b.net.stop()
  await until(() => !a.net.connectedPeers().includes(b.net.peerId), 'A notices B is gone')
  assert.ok(a.received.disconnects.includes(b.net.peerId))
  const restarted = await startNode({ swarmKey, listen: [`/ip4/127.0.0.1/tcp/${port}`] }, key)
  assert.is(restarted.net.peerId, b.net.peerId)
  await until(() => a.net.connectedPeers().includes(restarted.net.peerId), 'A reconnects to the restarted B', 20_000)
  a.net.send(restarted.net.peerId, [{ kind: 'Again', seq: 1 }])
  await until(() => restarted.received.messages.length >= 1, 'message at the restarted B')
  assert.equal(restarted.received.messages[0], { from: a.net.peerId, value: { kind: 'Again', seq: 1 } })
})

test('with memberGossipGraceMs, a bootstrap connection that brings no gossip is reset and dialled again', async () => {
  // The seed subscribes but never publishes: to a member it looks like a connection gossip does not cross.
  const seed = await startNode({ swarmKey: undefined })
  const joiner = await startNode({ swarmKey: undefined, bootstrap: [seed.net.multiaddrs()[0]!], memberGossipGraceMs: 300, redialMs: 100 })
  await until(() => joiner.received.disconnects.includes(seed.net.peerId), 'the joiner to reset its seed connection')
  await until(() => joiner.net.connectedPeers().includes(seed.net.peerId), 'the joiner to dial the seed again')
  assert.is(joiner.net.gossipHeard(), false)
  seed.net.publish(TOPIC, { hello: 1 })
  await until(() => joiner.received.gossip.length > 0 || (seed.net.publish(TOPIC, { hello: 2 }), false), 'gossip to arrive once the seed publishes')
  assert.is(joiner.net.gossipHeard(), true)
})

test.run()
