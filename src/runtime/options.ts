// options.ts: what startNode() and `taskmesh start` accept.
import type { Handler } from '../exec/types.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

export interface NodeOptions {
  /** Folder for the identity key and the level database. Created if missing. */
  dataDir: string
  /** libp2p listen multiaddrs; default ['/ip4/127.0.0.1/tcp/0']. */
  listen?: string[]
  /** HTTP API 'host:port' (port 0 = pick one); default '127.0.0.1:7070'; false = no HTTP API. */
  api?: string | false
  /** Peers to join through: full multiaddrs or plain 'host:port'. */
  bootstrap?: string[]
  /** Replication factor R; default 3, capped by the number of ring members. */
  replicas?: number
  /** Concurrent tasks this node runs; default 8. */
  capacity?: number
  /** Most concurrent runs per task type on this node (`--limit type=N`); a type not listed is bounded by capacity only. */
  typeLimits?: Record<string, number>
  /** How long terminal tasks (results, output, history) are kept before every replica removes them; default 7 days. */
  retentionMs?: number
  /** Named handlers: a module path (its exports) or an object of functions. */
  handlers?: string | Record<string, Handler>
  /** Enable the shell executor. */
  allowExec?: boolean
  /** Swarm key bytes (the file's content) for a private network. */
  swarmKey?: Uint8Array
  /** Bearer token for the HTTP API. Required when the API listens beyond loopback. */
  apiToken?: string
  logLevel?: LogLevel
  /** Largest accepted task payload in bytes; default 1 MiB. */
  payloadBytesMax?: number
  heartbeatMs?: number
  suspectAfterMs?: number
  deadAfterMs?: number
  /** How long a submit waits for its write quorum before answering 503; default 5 s. */
  submitTimeoutMs?: number
  /** How long a dead peer keeps its place on the ring (damping for flapping peers); default 30 s. */
  removeAfterMs?: number
  /** How long a drain (SIGTERM, stop(), POST /v1/drain) waits for running tasks; default 30 s. */
  drainGraceMs?: number
  /**
   * Take over a run whose replica set lost its majority as soon as those members are dead, through
   * the next live ring members, instead of when the ring drops them (--remove-after). Faster
   * failover when two of three replicas die at once; unsafe under a partition that outlasts the
   * dead timeout (both sides may record a result). Default false.
   */
  standIns?: boolean
  /** Test only: accept POST /v1/debug/faults (drop messages of given peers, add delay or loss). */
  faultInjection?: boolean
}
