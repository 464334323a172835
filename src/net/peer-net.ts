// peer-net.ts: the libp2p adapter. Bytes and libp2p events in, decoded values and peer
// events out; it decides nothing about tasks.
// Why batching lives here: one msgpack frame carries every message queued for a peer since
// the last flush, so the per-frame costs (yamux, noise, syscalls) are paid once per burst,
// not once per message. That is where replication throughput comes from.
import { isIPv4, isIPv6 } from 'node:net'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromString } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { pack, unpack } from 'msgpackr'
import type { GossipSub, Message as GossipMessage } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { Connection, Libp2p, PeerId, PrivateKey, Stream, StreamMessageEvent } from '@libp2p/interface'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from '../runtime/log.js'
import { applyXsalsa20Fix } from './xsalsa20-fix.js'

export const RPC_PROTOCOL_DEFAULT = '/taskmesh/rpc/1.0.0'
export const DHT_PROTOCOL_DEFAULT = '/taskmesh/kad/1.0.0'

export interface PeerNetOptions {
  privateKey: PrivateKey
  /** Multiaddrs to listen on, e.g. '/ip4/127.0.0.1/tcp/0'. */
  listen: string[]
  /** Full multiaddrs ending /p2p/<id>, or plain 'host:port' (the peer id is learned on connect). */
  bootstrap: string[]
  /** Swarm key file bytes; enables the private network (@libp2p/pnet). */
  swarmKey?: Uint8Array
  /** Gossipsub topics to subscribe to. */
  topics: string[]
  /** Largest frame sent or accepted. A bigger inbound frame is dropped and its stream aborted. */
  frameBytesMax: number
  /** One decoded frame: an array of msgpack-decoded values. The caller validates each. */
  onMessages: (from: string, messages: unknown[]) => void
  onGossip: (topic: string, from: string, value: unknown) => void
  onPeerConnected?: (peerId: string) => void
  onPeerDisconnected: (peerId: string) => void
  log: Logger
  /** Default '/taskmesh/rpc/1.0.0'. */
  protocol?: string
  /** Default '/taskmesh/kad/1.0.0'. */
  dhtProtocol?: string
  /** Bootstrap re-dial loop: first retry after this long, doubling per failure up to redialMsMax. Default 2000. */
  redialMs?: number
  /** Longest wait between two dials of one bootstrap peer. Default 30,000. */
  redialMsMax?: number
  /**
   * Set when every peer is a member that subscribes to our topics and publishes on them at
   * least this often (taskmesh heartbeats). Then a connection over which, after this long,
   * gossipsub has not exchanged subscriptions both ways, or (before any gossip arrived) a
   * bootstrap connection that brought no gossip, is closed and dialled again. Unset: no checks.
   */
  memberGossipGraceMs?: number
  /** Deadline for one dial (bootstrap or lazy stream open). Default 5000. */
  dialTimeoutMs?: number
  /** Per-peer bound on queued (not yet framed) message bytes. Default 64 MiB. */
  queuedBytesMax?: number
  /** Per-peer bound on queued (not yet framed) messages. Default 100,000. */
  queuedMessagesMax?: number
}

export interface PeerNetStats {
  framesSent: number
  framesReceived: number
  messagesSent: number
  messagesReceived: number
  /** Bytes handed to / read from our protocol streams, length prefixes included. */
  bytesSent: number
  bytesReceived: number
  /** Messages given to send() that never reached a stream (overflow, oversize, dial or stream failure). */
  dropped: number
  /** Inbound frames or gossip messages that did not decode (bad msgpack, not an array, oversize). */
  malformed: number
}

// A type alias, not an interface: libp2p's ServiceMap constraint needs an index signature.
type Services = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dht: KadDHT
}

/** The class has getMeshPeers; the exported GossipSub type does not (libp2p-notes P13). */
interface MeshView {
  getMeshPeers (topic: string): string[]
}

/** Gossipsub's per-peer state, read only for the formation diagnostics (not part of its API: may be absent). */
interface GossipInternals {
  peers?: Map<string, unknown>
  streamsOutbound?: Map<string, unknown>
  streamsInbound?: Map<string, unknown>
}

const REDIAL_MS_DEFAULT = 2000
const REDIAL_MS_MAX_DEFAULT = 30_000
/** The re-dial loop looks at the bootstrap peers this often (each has its own backoff). */
const REDIAL_TICK_MS_MAX = 500
const DIAL_TIMEOUT_MS_DEFAULT = 5000
const QUEUED_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
const QUEUED_MESSAGES_MAX_DEFAULT = 100_000
/** Streams per connection on our protocol; each peer needs one per direction. */
const STREAMS_PER_CONNECTION_MAX = 64
/** A msgpack array header takes at most 5 bytes (0xdd + uint32). */
const ARRAY_HEADER_BYTES_MAX = 5
/** A frame length prefix takes at most 5 varint bytes (up to 2^35 - 1). */
const LENGTH_PREFIX_BYTES_MAX = 5
/** Address hints accepted per call, and peers whose last hint we remember. */
const HINT_ADDRESSES_MAX = 16
const HINT_PEERS_MAX = 4096
/** stop() waits this long for queued messages to reach their streams. */
const STOP_FLUSH_MS_MAX = 1000

/** Per-peer outbound state: packed messages waiting for the writer, and the long-lived stream. */
interface Outbox {
  peer: PeerId
  /** Packed messages; the unsent ones are queue[head..]. */
  queue: Uint8Array[]
  head: number
  queuedBytes: number
  stream: Stream | undefined
  pump: Promise<void> | undefined
  scheduled: boolean
  /** True while the queue is over its bound: one warning per episode, not per message. */
  overflowing: boolean
}

interface BootstrapEntry {
  text: string
  address: Multiaddr
  /** From the /p2p/ part, or learned from the first successful dial of a 'host:port' entry. */
  peer: PeerId | undefined
  dialing: boolean
  failing: boolean
  /** Dials that failed, and connections reset for want of gossip, since the last good one: the backoff exponent. */
  failures: number
  /** No dial (or reset) before this time. */
  nextAttemptAtMs: number
}

export class PeerNet {
  readonly peerId: string
  readonly #node: Libp2p<Services>
  readonly #options: PeerNetOptions
  readonly #log: Logger
  readonly #protocol: string
  readonly #frameBytesMax: number
  readonly #dialTimeoutMs: number
  readonly #queuedBytesMax: number
  readonly #queuedMessagesMax: number
  readonly #topics: Set<string>
  readonly #bootstrap: BootstrapEntry[]
  readonly #outboxes = new Map<string, Outbox>()
  readonly #hints = new Map<string, string>()
  readonly #stats: PeerNetStats = {
    framesSent: 0, framesReceived: 0, messagesSent: 0, messagesReceived: 0,
    bytesSent: 0, bytesReceived: 0, dropped: 0, malformed: 0
  }

  #redialTimer: NodeJS.Timeout | undefined
  /** Per connected peer: connections reset because gossip did not work over them (the backoff exponent). */
  readonly #gossipResets = new Map<string, number>()
  readonly #resetting = new Set<string>()
  /** Whether any gossip message from another peer arrived: until then the cluster has not been reached. */
  #gossipHeard = false
  /** Set by stop(): send() and publish() become no-ops, callbacks stop firing. */
  #closing = false
  /** Set once the flush at stop() is over: writers stop. */
  #stopped = false
  #stopping: Promise<void> | undefined

  /** Create, start and listen. Bootstrap dials run in the background; an unreachable seed does not fail start. */
  static async create (options: PeerNetOptions): Promise<PeerNet> {
    if (!Number.isSafeInteger(options.frameBytesMax) || options.frameBytesMax < 64 || options.frameBytesMax > 2 ** 32 - 1) {
      throw new RangeError(`frameBytesMax must be an integer between 64 and 2^32 - 1, got ${options.frameBytesMax}`)
    }
    for (const name of ['redialMs', 'redialMsMax', 'memberGossipGraceMs', 'dialTimeoutMs', 'queuedBytesMax', 'queuedMessagesMax'] as const) {
      const value = options[name]
      if (value !== undefined && (!Number.isFinite(value) || value <= 0)) throw new RangeError(`${name} must be positive, got ${value}`)
    }
    const bootstrap = options.bootstrap.map(parseBootstrapEntry)
    // pnet's cipher leaks WASM memory under load without this (see xsalsa20-fix.ts). The
    // private network is used either way; only the leak fix can be missing.
    if (options.swarmKey !== undefined && !applyXsalsa20Fix()) options.log.warn('net.pnet.leak_fix_not_applied', {})
    const node = await createLibp2p<Services>({
      privateKey: options.privateKey,
      start: false,
      addresses: { listen: options.listen },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      ...(options.swarmKey !== undefined ? { connectionProtector: preSharedKey({ psk: options.swarmKey }) } : {}),
      // Every peer of a loopback or LAN cluster may share one IP: the default of 5 inbound
      // connections per second per IP fails dials at random (libp2p-notes P3).
      connectionManager: { inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100 },
      // A hung (SIGSTOPped) peer keeps its socket open; only a ping notices it (P11): here in
      // about 4 s instead of about 14 s with the defaults (heartbeats make it suspect sooner).
      // The timeout must stay below the interval: the monitor starts the next ping regardless,
      // ping allows one outbound stream per connection, and the second one's
      // TooManyOutboundProtocolStreamsError aborts the connection. With 1 s pings and up to 3 s
      // timeouts, every ping slower than 1 s (any busy startup) cut a healthy connection.
      connectionMonitor: { pingInterval: 2000, pingTimeout: { minTimeout: 1500, maxTimeout: 1800 } },
      services: {
        identify: identify(),
        ping: ping(),
        pubsub: gossipsub({
          globalSignaturePolicy: 'StrictSign',
          allowPublishToZeroTopicPeers: true,
          emitSelf: false,
          heartbeatInterval: 200
        }),
        // LAN settings (P4): serve queries, keep private addresses, our own protocol id.
        dht: kadDHT({
          protocol: options.dhtProtocol ?? DHT_PROTOCOL_DEFAULT,
          clientMode: false,
          peerInfoMapper: passthroughMapper,
          allowQueryWithZeroPeers: true
        })
      }
    })
    const net = new PeerNet(node, options, bootstrap)
    try {
      await net.#start()
    } catch (err) {
      try { await node.stop() } catch {}
      throw err
    }
    return net
  }

  private constructor (node: Libp2p<Services>, options: PeerNetOptions, bootstrap: BootstrapEntry[]) {
    this.#node = node
    this.#options = options
    this.#log = options.log
    this.peerId = node.peerId.toString()
    this.#protocol = options.protocol ?? RPC_PROTOCOL_DEFAULT
    this.#frameBytesMax = options.frameBytesMax
    this.#dialTimeoutMs = options.dialTimeoutMs ?? DIAL_TIMEOUT_MS_DEFAULT
    this.#queuedBytesMax = options.queuedBytesMax ?? QUEUED_BYTES_MAX_DEFAULT
    this.#queuedMessagesMax = options.queuedMessagesMax ?? QUEUED_MESSAGES_MAX_DEFAULT
    this.#topics = new Set(options.topics)
    this.#bootstrap = bootstrap
  }

  async #start (): Promise<void> {
    const node = this.#node
    await node.handle(this.#protocol, (stream, connection) => { this.#onInboundStream(stream, connection) }, {
      maxInboundStreams: STREAMS_PER_CONNECTION_MAX,
      maxOutboundStreams: STREAMS_PER_CONNECTION_MAX
    })
    node.addEventListener('peer:connect', event => {
      if (this.#closing) return
      this.#options.onPeerConnected?.(event.detail.toString())
    })
    node.addEventListener('peer:disconnect', event => { this.#onPeerDisconnect(event.detail.toString()) })
    node.services.pubsub.addEventListener('message', event => { this.#onGossipMessage(event.detail) })
    await node.start()
    for (const topic of this.#topics) node.services.pubsub.subscribe(topic)
    this.#log.info('net.started', { peer: this.peerId, addresses: this.multiaddrs(), private: this.#options.swarmKey !== undefined })

    this.#redialBootstrap()
    const tickMs = Math.min(this.#options.redialMs ?? REDIAL_MS_DEFAULT, REDIAL_TICK_MS_MAX)
    this.#redialTimer = setInterval(() => {
      this.#redialBootstrap()
      this.#checkGossip()
    }, tickMs)
    this.#redialTimer.unref()
  }

  /** Dialable addresses, each ending /p2p/<our id>. */
  multiaddrs (): string[] {
    return this.#node.getMultiaddrs().map(address => address.toString())
  }

  /**
   * Queue messages for a peer; never blocks, never throws. Each message is packed now (so
   * later mutation by the caller cannot change what is sent) and the peer's writer flushes
   * everything queued in as few frames as possible, in order. Messages that cannot be sent
   * are counted in stats().dropped and logged; the caller's timeouts handle the loss.
   */
  send (peerId: string, messages: unknown[]): void {
    if (messages.length === 0) return
    if (this.#closing) {
      this.#stats.dropped += messages.length
      return
    }
    const outbox = this.#outbox(peerId)
    if (outbox === undefined) {
      this.#stats.dropped += messages.length
      const reason = peerId === this.peerId ? 'self' : 'not a peer id'
      this.#log.warn('net.send.bad_peer', { peer: peerId, reason, dropped: messages.length })
      return
    }
    for (const message of messages) this.#enqueue(outbox, message)
    this.#schedulePump(outbox)
  }

  /** Best effort: never throws, fine with no subscribers. Our own messages are not delivered back to us. */
  publish (topic: string, value: unknown): void {
    if (this.#closing) return
    let data: Uint8Array
    try {
      data = pack(value)
    } catch (err) {
      this.#log.warn('net.publish.unencodable', { topic, error: err })
      return
    }
    this.#node.services.pubsub.publish(topic, data).catch(err => {
      if (!this.#closing) this.#log.debug('net.publish.failed', { topic, error: err })
    })
  }

  /** Address hints learned elsewhere (heartbeats). Invalid ones are ignored. */
  addAddresses (peerId: string, addrs: string[]): void {
    if (this.#closing || peerId === this.peerId || !Array.isArray(addrs)) return
    let peer: PeerId
    try {
      peer = peerIdFromString(peerId)
    } catch {
      return
    }
    const valid: Multiaddr[] = []
    for (const text of addrs.slice(0, HINT_ADDRESSES_MAX)) {
      const address = parseHint(text, peerId)
      if (address !== undefined) valid.push(address)
    }
    if (valid.length === 0) return
    const key = valid.map(address => address.toString()).sort().join(' ')
    if (this.#hints.get(peerId) === key) return
    if (this.#hints.size >= HINT_PEERS_MAX) this.#hints.clear()
    this.#hints.set(peerId, key)
    this.#node.peerStore.merge(peer, { multiaddrs: valid }).catch(err => {
      this.#log.debug('net.hint.failed', { peer: peerId, error: err })
    })
  }

  /** True once a gossip message from another peer arrived (the node reached the cluster). */
  gossipHeard (): boolean {
    return this.#gossipHeard
  }

  connectedPeers (): string[] {
    return this.#node.getPeers().map(peer => peer.toString())
  }

  meshPeers (topic: string): string[] {
    return (this.#node.services.pubsub as unknown as MeshView).getMeshPeers(topic)
  }

  stats (): PeerNetStats {
    return { ...this.#stats }
  }

  /**
   * Flush what is queued (up to about a second), close our streams, stop libp2p. Leaves no
   * timers or sockets behind. Idempotent.
   */
  stop (): Promise<void> {
    this.#stopping ??= this.#stop()
    return this.#stopping
  }

  async #stop (): Promise<void> {
    this.#closing = true
    clearInterval(this.#redialTimer)
    const pumps: Array<Promise<void>> = []
    for (const outbox of this.#outboxes.values()) {
      if (outbox.pump === undefined && outbox.head < outbox.queue.length) this.#startPump(outbox)
      if (outbox.pump !== undefined) pumps.push(outbox.pump)
    }
    if (pumps.length > 0) {
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>(resolve => { timer = setTimeout(resolve, STOP_FLUSH_MS_MAX) })
      await Promise.race([Promise.allSettled(pumps), deadline])
      clearTimeout(timer)
    }
    this.#stopped = true
    const closing: Array<Promise<void>> = []
    for (const outbox of this.#outboxes.values()) {
      const stream = outbox.stream
      outbox.stream = undefined
      if (stream === undefined) continue
      closing.push(stream.close({ signal: AbortSignal.timeout(STOP_FLUSH_MS_MAX) })
        .catch((err: Error) => { stream.abort(err) }))
    }
    await Promise.all(closing)
    this.#outboxes.clear()
    await this.#node.stop()
    this.#log.info('net.stopped', { peer: this.peerId, ...this.#stats })
  }

  // ---- outbound ----

  #outbox (peerId: string): Outbox | undefined {
    let outbox = this.#outboxes.get(peerId)
    if (outbox !== undefined) return outbox
    if (peerId === this.peerId) return undefined
    let peer: PeerId
    try {
      peer = peerIdFromString(peerId)
    } catch {
      return undefined
    }
    outbox = { peer, queue: [], head: 0, queuedBytes: 0, stream: undefined, pump: undefined, scheduled: false, overflowing: false }
    this.#outboxes.set(peerId, outbox)
    return outbox
  }

  #enqueue (outbox: Outbox, message: unknown): void {
    let bytes: Uint8Array
    try {
      bytes = pack(message)
    } catch (err) {
      this.#stats.dropped++
      this.#log.warn('net.send.unencodable', { peer: outbox.peer.toString(), error: err })
      return
    }
    if (bytes.byteLength + ARRAY_HEADER_BYTES_MAX > this.#frameBytesMax) {
      this.#stats.dropped++
      this.#log.warn('net.send.oversize', { peer: outbox.peer.toString(), bytes: bytes.byteLength, frameBytesMax: this.#frameBytesMax })
      return
    }
    const queued = outbox.queue.length - outbox.head
    if (queued >= this.#queuedMessagesMax || outbox.queuedBytes + bytes.byteLength > this.#queuedBytesMax) {
      this.#stats.dropped++
      if (!outbox.overflowing) {
        outbox.overflowing = true
        this.#log.warn('net.send.queue_full', { peer: outbox.peer.toString(), queued, queuedBytes: outbox.queuedBytes })
      }
      return
    }
    outbox.queue.push(bytes)
    outbox.queuedBytes += bytes.byteLength
  }

  /**
   * The writer runs on the next turn of the event loop, not inside send(): everything the
   * caller queues in the current turn (a driver applying a batch of effects) then goes out
   * in one frame.
   */
  #schedulePump (outbox: Outbox): void {
    if (outbox.scheduled || outbox.pump !== undefined) return
    outbox.scheduled = true
    setImmediate(() => {
      outbox.scheduled = false
      if (outbox.pump === undefined && !this.#stopped) this.#startPump(outbox)
    })
  }

  #startPump (outbox: Outbox): void {
    outbox.pump = this.#pump(outbox).finally(() => {
      outbox.pump = undefined
      if (this.#stopped) return
      if (outbox.head < outbox.queue.length) this.#schedulePump(outbox)
      else if (outbox.stream === undefined && !this.#closing) this.#outboxes.delete(outbox.peer.toString())
    })
  }

  /** One writer per peer: frames go out in queue order; it waits for drain between frames. */
  async #pump (outbox: Outbox): Promise<void> {
    try {
      while (outbox.head < outbox.queue.length && !this.#stopped) {
        const stream = outbox.stream ?? await this.#openStream(outbox)
        const { bytes, count } = this.#takeFrame(outbox)
        const writable = stream.send(bytes)
        this.#stats.framesSent++
        this.#stats.messagesSent += count
        this.#stats.bytesSent += bytes.byteLength
        if (!writable) await waitForDrain(stream)
      }
    } catch (err) {
      const lost = outbox.queue.length - outbox.head
      this.#stats.dropped += lost
      clearQueue(outbox)
      const stream = outbox.stream
      outbox.stream = undefined
      stream?.abort(err instanceof Error ? err : new Error(String(err)))
      if (!this.#stopped) this.#log.warn('net.send.failed', { peer: outbox.peer.toString(), dropped: lost, error: err })
    }
  }

  async #openStream (outbox: Outbox): Promise<Stream> {
    const stream = await this.#node.dialProtocol(outbox.peer, this.#protocol, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
    stream.addEventListener('close', () => {
      if (outbox.stream === stream) outbox.stream = undefined
    }, { once: true })
    if (this.#stopped) {
      stream.abort(new Error('peer net stopped'))
      throw new Error('peer net stopped')
    }
    outbox.stream = stream
    this.#log.debug('net.stream.opened', { peer: outbox.peer.toString() })
    return stream
  }

  /** Take as many queued messages as fit in one frame and encode it: varint length, msgpack array header, the packed messages. */
  #takeFrame (outbox: Outbox): { bytes: Uint8Array, count: number } {
    const budget = this.#frameBytesMax - ARRAY_HEADER_BYTES_MAX
    let end = outbox.head
    let bodyBytes = 0
    while (end < outbox.queue.length && bodyBytes + outbox.queue[end]!.byteLength <= budget) {
      bodyBytes += outbox.queue[end]!.byteLength
      end++
    }
    const count = end - outbox.head
    // enqueue() drops any message that cannot fit a frame alone, so a frame is never empty.
    if (count === 0) throw new Error('assertion failed: a queued message is larger than a frame')
    const header = arrayHeader(count)
    const frameBytes = header.byteLength + bodyBytes
    const prefix = varint(frameBytes)
    const bytes = new Uint8Array(prefix.byteLength + frameBytes)
    bytes.set(prefix, 0)
    bytes.set(header, prefix.byteLength)
    let offset = prefix.byteLength + header.byteLength
    for (let index = outbox.head; index < end; index++) {
      const message = outbox.queue[index]!
      bytes.set(message, offset)
      offset += message.byteLength
    }
    outbox.head = end
    outbox.queuedBytes -= bodyBytes
    if (outbox.head === outbox.queue.length) {
      clearQueue(outbox)
    } else if (outbox.head > 4096 && outbox.head * 2 > outbox.queue.length) {
      outbox.queue = outbox.queue.slice(outbox.head)
      outbox.head = 0
    }
    if (outbox.overflowing && outbox.queue.length - outbox.head < this.#queuedMessagesMax / 2) outbox.overflowing = false
    return { bytes, count }
  }

  // ---- inbound ----

  #onInboundStream (stream: Stream, connection: Connection): void {
    const from = connection.remotePeer.toString()
    const decoder = new FrameDecoder(this.#frameBytesMax)
    let failed = false
    const fail = (reason: string, extra: Record<string, unknown> = {}): void => {
      failed = true
      this.#stats.malformed++
      this.#log.warn('net.frame.malformed', { from, reason, ...extra })
      stream.abort(new Error(`malformed frame from ${from}: ${reason}`))
    }
    const onFrame = (frame: Uint8Array): boolean => {
      let value: unknown
      try {
        value = unpack(frame)
      } catch (err) {
        fail('bad msgpack', { error: err, bytes: frame.byteLength })
        return false
      }
      if (!Array.isArray(value)) {
        fail('not an array', { bytes: frame.byteLength })
        return false
      }
      this.#stats.framesReceived++
      this.#stats.messagesReceived += value.length
      if (value.length > 0 && !this.#closing) this.#options.onMessages(from, value)
      return true
    }
    const onMessage = (event: StreamMessageEvent): void => {
      if (failed) return
      const data = event.data
      this.#stats.bytesReceived += data.byteLength
      const chunks: Iterable<Uint8Array> = data instanceof Uint8Array ? [data] : data
      for (const chunk of chunks) {
        const problem = decoder.push(chunk, onFrame)
        if (failed) return
        if (problem !== undefined) {
          fail(problem)
          return
        }
      }
    }
    const onRemoteCloseWrite = (): void => {
      if (decoder.partial && !failed) this.#log.debug('net.frame.truncated', { from })
      stream.close().catch(() => {})
    }
    const onClose = (): void => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('remoteCloseWrite', onRemoteCloseWrite)
    }
    stream.addEventListener('message', onMessage)
    stream.addEventListener('remoteCloseWrite', onRemoteCloseWrite, { once: true })
    stream.addEventListener('close', onClose, { once: true })
  }

  #onGossipMessage (message: GossipMessage): void {
    if (this.#closing || !this.#topics.has(message.topic)) return
    // StrictSign rejects unsigned messages before they get here; this keeps `from` honest if that ever changes.
    if (message.type !== 'signed') return
    const from = message.from.toString()
    if (from === this.peerId) return
    if (!this.#gossipHeard) {
      this.#gossipHeard = true
      for (const entry of this.#bootstrap) entry.failures = 0
    }
    let value: unknown
    try {
      value = unpack(message.data)
    } catch (err) {
      this.#stats.malformed++
      this.#log.warn('net.gossip.malformed', { from, topic: message.topic, error: err })
      return
    }
    this.#options.onGossip(message.topic, from, value)
  }

  #onPeerDisconnect (peerId: string): void {
    const outbox = this.#outboxes.get(peerId)
    if (outbox !== undefined) {
      const stream = outbox.stream
      outbox.stream = undefined
      stream?.abort(new Error('peer disconnected'))
      if (outbox.pump === undefined && !outbox.scheduled && outbox.head === outbox.queue.length) this.#outboxes.delete(peerId)
    }
    if (!this.#closing) this.#options.onPeerDisconnected(peerId)
  }

  // ---- bootstrap ----

  /**
   * libp2p's bootstrap dials once (P7); this loop re-dials every seed that is not connected,
   * with a per-seed backoff. With memberGossipGraceMs, until gossip from some peer arrives it
   * also checks that a connected seed really let us in: a connection can be up while gossipsub never exchanged
   * topic subscriptions over it (its stream setup failed once and is not retried), and then
   * no heartbeat ever flows either way. Such a connection is closed and dialled again.
   */
  #redialBootstrap (): void {
    if (this.#closing) return
    const nowMs = Date.now()
    const graceMs = this.#options.memberGossipGraceMs
    for (const entry of this.#bootstrap) {
      if (entry.dialing || nowMs < entry.nextAttemptAtMs || this.#isSelf(entry)) continue
      if (!this.#isConnected(entry)) {
        void this.#dialBootstrap(entry)
      } else if (!this.#gossipHeard && graceMs !== undefined && entry.peer !== undefined && this.#connectedForMs(entry.peer, nowMs) >= Math.max(graceMs, this.#backoffMs(entry))) {
        void this.#resetBootstrap(entry, entry.peer, graceMs)
      }
    }
  }

  async #dialBootstrap (entry: BootstrapEntry): Promise<void> {
    entry.dialing = true
    try {
      const connection = await this.#node.dial(entry.address, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
      entry.peer = connection.remotePeer
      if (entry.failing) this.#log.info('net.bootstrap.connected', { address: entry.text, peer: entry.peer.toString(), failures: entry.failures })
      entry.failing = false
      // After a reset the count stands until gossip shows that the new connection works.
      if (this.#gossipHeard) entry.failures = 0
      entry.nextAttemptAtMs = 0
    } catch (err) {
      if (this.#closing) return
      entry.failures++
      const retryMs = this.#backoffMs(entry)
      entry.nextAttemptAtMs = Date.now() + retryMs
      if (entry.failing) {
        this.#log.debug('net.bootstrap.dial_failed', { address: entry.text, error: err, retryMs })
      } else {
        this.#log.warn('net.bootstrap.dial_failed', { address: entry.text, error: err, retryMs })
      }
      entry.failing = true
    } finally {
      entry.dialing = false
    }
  }

  /**
   * Connected to a seed, but no gossip from anyone: say what the connection looks like, close
   * it; the loop dials again at once. Each reset waits longer for gossip on the next connection.
   */
  async #resetBootstrap (entry: BootstrapEntry, peer: PeerId, graceMs: number): Promise<void> {
    entry.dialing = true
    entry.failures++
    try {
      this.#log.warn('net.bootstrap.no_gossip', { address: entry.text, peer: peer.toString(), resets: entry.failures, nextGraceMs: Math.max(graceMs, this.#backoffMs(entry)), ...await this.#gossipState(peer) })
      await this.#node.hangUp(peer, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
    } catch (err) {
      if (!this.#closing) this.#log.debug('net.bootstrap.reset_failed', { address: entry.text, error: err })
    } finally {
      entry.dialing = false
    }
  }

  /** What gossipsub and the connection manager know about a peer (diagnostics; gossipsub internals are read defensively). */
  async #gossipState (peer: PeerId): Promise<Record<string, unknown>> {
    const id = peer.toString()
    const pubsub = this.#node.services.pubsub as unknown as GossipInternals
    let protocols: string[] | string = []
    try {
      protocols = (await this.#node.peerStore.get(peer)).protocols
    } catch (err) {
      protocols = `unknown (${err instanceof Error ? err.name : String(err)})`
    }
    return {
      connections: this.#node.getConnections(peer).map(connection => ({
        direction: connection.direction,
        status: connection.status,
        ageMs: Date.now() - connection.timeline.open,
        streams: connection.streams.map(stream => stream.protocol ?? '?')
      })),
      gossipPeer: pubsub.peers?.has(id) ?? null,
      gossipOutbound: pubsub.streamsOutbound?.has(id) ?? null,
      gossipInbound: pubsub.streamsInbound?.has(id) ?? null,
      subscribedTopics: [...this.#topics].filter(topic => this.#node.services.pubsub.getSubscribers(topic).some(subscriber => subscriber.equals(peer))),
      meshTopics: [...this.#topics].filter(topic => this.meshPeers(topic).includes(id)),
      gossipPeers: this.#node.services.pubsub.getPeers().length,
      connectedPeers: this.#node.getPeers().length,
      protocols
    }
  }

  /**
   * Every connection to a peer should carry gossip both ways: the peer's subscriptions to our
   * topics known here, and gossipsub's outbound stream to it open. Gossipsub sets both up only
   * when a connection opens; if that fails once (a stream reset, a close racing a reconnect)
   * it never retries, and the peer stays connected but deaf to us or mute to us. After a
   * grace period such a connection is closed, so that the next dial (the bootstrap loop, the
   * member gossip, the DHT) starts gossipsub afresh.
   */
  #checkGossip (): void {
    const graceMs = this.#options.memberGossipGraceMs
    if (this.#closing || graceMs === undefined) return
    const nowMs = Date.now()
    const pubsub = this.#node.services.pubsub
    const outbound = (pubsub as unknown as GossipInternals).streamsOutbound
    const subscribers = new Set<string>()
    for (const topic of this.#topics) for (const peer of pubsub.getSubscribers(topic)) subscribers.add(peer.toString())
    for (const peer of this.#node.getPeers()) {
      const id = peer.toString()
      const working = subscribers.has(id) && (outbound === undefined || outbound.has(id))
      if (working) {
        this.#gossipResets.delete(id)
        continue
      }
      if (this.#resetting.has(id)) continue
      const resets = this.#gossipResets.get(id) ?? 0
      if (this.#connectedForMs(peer, nowMs) < Math.max(graceMs, this.#backoffAfter(resets))) continue
      void this.#resetGossip(peer, resets)
    }
    if (this.#gossipResets.size > HINT_PEERS_MAX) this.#gossipResets.clear()
  }

  async #resetGossip (peer: PeerId, resets: number): Promise<void> {
    const id = peer.toString()
    this.#resetting.add(id)
    try {
      const protocols = (await this.#node.peerStore.get(peer)).protocols
      // Only peers that speak gossipsub (every taskmesh node does); identify may still be running.
      if (!protocols.some(protocol => protocol.startsWith('/meshsub/'))) return
      this.#gossipResets.set(id, resets + 1)
      this.#log.warn('net.gossip.reset', { peer: id, resets: resets + 1, ...await this.#gossipState(peer) })
      await this.#node.hangUp(peer, { signal: AbortSignal.timeout(this.#dialTimeoutMs) })
    } catch (err) {
      if (!this.#closing) this.#log.debug('net.gossip.reset_failed', { peer: id, error: err })
    } finally {
      this.#resetting.delete(id)
    }
  }

  /** How long the oldest open connection to the peer has been up. */
  #connectedForMs (peer: PeerId, nowMs: number): number {
    let oldestMs = nowMs
    for (const connection of this.#node.getConnections(peer)) if (connection.status === 'open') oldestMs = Math.min(oldestMs, connection.timeline.open)
    return nowMs - oldestMs
  }

  #backoffMs (entry: BootstrapEntry): number {
    return this.#backoffAfter(entry.failures)
  }

  /** After `failures` failures in a row: 0, then redialMs doubling up to redialMsMax. */
  #backoffAfter (failures: number): number {
    if (failures <= 0) return 0
    const baseMs = this.#options.redialMs ?? REDIAL_MS_DEFAULT
    const maxMs = this.#options.redialMsMax ?? REDIAL_MS_MAX_DEFAULT
    return Math.min(maxMs, baseMs * 2 ** Math.min(failures - 1, 20))
  }

  #isConnected (entry: BootstrapEntry): boolean {
    return entry.peer !== undefined && this.#node.getConnections(entry.peer).length > 0
  }

  /** A shared cluster-wide seed list usually names this node too. */
  #isSelf (entry: BootstrapEntry): boolean {
    if (entry.peer !== undefined) return entry.peer.equals(this.#node.peerId)
    const text = entry.address.toString()
    return this.#node.getMultiaddrs().some(own => own.decapsulateCode(CODE_P2P).toString() === text)
  }
}

// ---- helpers ----

/** Splits a byte stream into varint-length-prefixed frames; a frame that arrives whole is not copied. */
class FrameDecoder {
  readonly #frameBytesMax: number
  #length = 0
  #lengthBytes = 0
  #frame: Uint8Array | undefined
  #filled = 0

  constructor (frameBytesMax: number) {
    this.#frameBytesMax = frameBytesMax
  }

  /** True when a length prefix or a frame is half read. */
  get partial (): boolean {
    return this.#lengthBytes > 0 || this.#frame !== undefined
  }

  /**
   * Feed one chunk; calls onFrame for every complete frame until it returns false.
   * Returns a reason when the length prefix is invalid (the stream cannot be resynchronised).
   */
  push (chunk: Uint8Array, onFrame: (frame: Uint8Array) => boolean): string | undefined {
    let offset = 0
    while (offset < chunk.byteLength) {
      if (this.#frame === undefined) {
        const byte = chunk[offset++]!
        this.#length += (byte & 0x7f) * 2 ** (7 * this.#lengthBytes)
        this.#lengthBytes++
        if ((byte & 0x80) !== 0) {
          if (this.#lengthBytes >= LENGTH_PREFIX_BYTES_MAX) return 'length prefix too long'
          continue
        }
        const length = this.#length
        this.#length = 0
        this.#lengthBytes = 0
        if (length === 0) return 'empty frame'
        if (length > this.#frameBytesMax) return `frame of ${length} bytes exceeds frameBytesMax ${this.#frameBytesMax}`
        if (chunk.byteLength - offset >= length) {
          const frame = chunk.subarray(offset, offset + length)
          offset += length
          if (!onFrame(frame)) return undefined
          continue
        }
        this.#frame = new Uint8Array(length)
        this.#filled = 0
        continue
      }
      const take = Math.min(this.#frame.byteLength - this.#filled, chunk.byteLength - offset)
      this.#frame.set(chunk.subarray(offset, offset + take), this.#filled)
      this.#filled += take
      offset += take
      if (this.#filled === this.#frame.byteLength) {
        const frame = this.#frame
        this.#frame = undefined
        if (!onFrame(frame)) return undefined
      }
    }
    return undefined
  }
}

/** Resolves when the stream can take more bytes; rejects if it closes first. */
function waitForDrain (stream: Stream): Promise<void> {
  if (stream.status !== 'open') return Promise.reject(new Error(`stream ${stream.status} while waiting for drain`))
  if (!stream.writableNeedsDrain) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onDrain = (): void => { cleanup(); resolve() }
    const onClose = (): void => { cleanup(); reject(new Error('stream closed while waiting for drain')) }
    const cleanup = (): void => {
      stream.removeEventListener('drain', onDrain)
      stream.removeEventListener('close', onClose)
    }
    stream.addEventListener('drain', onDrain)
    stream.addEventListener('close', onClose)
  })
}

function clearQueue (outbox: Outbox): void {
  outbox.queue = []
  outbox.head = 0
  outbox.queuedBytes = 0
}

/** The msgpack header of an array of `count` elements. */
function arrayHeader (count: number): Uint8Array {
  if (count < 16) return Uint8Array.of(0x90 | count)
  if (count < 0x10000) return Uint8Array.of(0xdc, count >>> 8, count & 0xff)
  return Uint8Array.of(0xdd, count >>> 24, (count >>> 16) & 0xff, (count >>> 8) & 0xff, count & 0xff)
}

/** Unsigned LEB128, the length prefix libp2p's lpStream and it-length-prefixed use. */
function varint (value: number): Uint8Array {
  const bytes: number[] = []
  let rest = value
  while (rest >= 0x80) {
    bytes.push((rest % 0x80) | 0x80)
    rest = Math.floor(rest / 0x80)
  }
  bytes.push(rest)
  return Uint8Array.from(bytes)
}

/** A full multiaddr (ideally ending /p2p/<id>), or 'host:port', '[v6]:port'. Throws a clear error otherwise. */
function parseBootstrapEntry (text: string): BootstrapEntry {
  try {
    const address = text.startsWith('/') ? multiaddr(text) : hostPortToMultiaddr(text)
    const last = address.getComponents().at(-1)
    const peer = last?.code === CODE_P2P && last.value !== undefined ? peerIdFromString(last.value) : undefined
    return { text, address, peer, dialing: false, failing: false, failures: 0, nextAttemptAtMs: 0 }
  } catch (err) {
    throw new Error(`invalid bootstrap entry "${text}": expected a multiaddr ending /p2p/<peer id> or host:port (${err instanceof Error ? err.message : String(err)})`)
  }
}

function hostPortToMultiaddr (text: string): Multiaddr {
  const match = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text)
  if (match === null) throw new Error('not host:port')
  const host = match[1]!
  const port = Number(match[2])
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port ${match[2]}`)
  const family = isIPv4(host) ? 'ip4' : isIPv6(host) ? 'ip6' : 'dns4'
  return multiaddr(`/${family}/${host}/tcp/${port}`)
}

/** An address hint without its /p2p/ part; undefined when invalid or naming another peer. */
function parseHint (text: unknown, peerId: string): Multiaddr | undefined {
  if (typeof text !== 'string' || text.length > 1024) return undefined
  try {
    const address = multiaddr(text)
    const last = address.getComponents().at(-1)
    if (last?.code !== CODE_P2P) return address
    if (last.value !== peerId) return undefined
    return address.decapsulateCode(CODE_P2P)
  } catch {
    return undefined
  }
}
