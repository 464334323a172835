// wire.ts: turns decoded bytes from peers (and from disk) into validated values.
// Everything a peer sends passes through here before the core sees it; anything that does
// not fit is refused with a reason, never thrown past this file. Objects are rebuilt field by
// field, so unknown keys (including __proto__) never reach the core.
import type { PeerMessage, TaskEventData } from '../core/protocol.js'
import type { Backoff, CatchUpPolicy, Heartbeat, HistoryEntry, ListQuery, OverlapPolicy, ScheduleState, StoredEntry, StoredState, TaskRecord, TaskState } from '../core/types.js'

export const WIRE_LIMITS = {
  idLength: 200,
  typeLength: 64,
  peerIdLength: 128,
  replicas: 64,
  history: 10_000,
  errorLength: 65_536,
  dependsOn: 100,
  idsPerMessage: 100_000,
  recordsPerMessage: 100_000,
  addrs: 32,
  addrLength: 512,
  types: 512,
  events: 100_000
} as const

const TASK_STATES: ReadonlySet<string> = new Set(['pending', 'queued', 'running', 'retrying', 'succeeded', 'dead', 'cancelled'])
const STORED_STATES: ReadonlySet<string> = new Set([...TASK_STATES, 'aborted'])

class WireError extends Error {
  override name = 'WireError'
}

export type Validated<T> = { ok: true, value: T } | { ok: false, reason: string }

function attempt<T> (read: () => T): Validated<T> {
  try {
    return { ok: true, value: read() }
  } catch (error) {
    if (error instanceof WireError) return { ok: false, reason: error.message }
    return { ok: false, reason: `unexpected: ${(error as Error)?.message ?? String(error)}` }
  }
}

// ------------------------------------------------------------------ primitive readers

function object (value: unknown, path: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new WireError(`${path}: expected an object`)
  }
  return value as Record<string, unknown>
}

function string (value: unknown, path: string, maxLength: number, minLength = 0): string {
  if (typeof value !== 'string' || value.length < minLength || value.length > maxLength) {
    throw new WireError(`${path}: expected a string of ${minLength}..${maxLength} characters`)
  }
  return value
}

function nullableString (value: unknown, path: string, maxLength: number): string | null {
  return value === null || value === undefined ? null : string(value, path, maxLength)
}

function integer (value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new WireError(`${path}: expected an integer in ${min}..${max}`)
  }
  return value
}

function finite (value: unknown, path: string, min = -Number.MAX_VALUE): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw new WireError(`${path}: expected a finite number`)
  return value
}

function nullableFinite (value: unknown, path: string): number | null {
  return value === null || value === undefined ? null : finite(value, path)
}

function boolean (value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw new WireError(`${path}: expected a boolean`)
  return value
}

function array (value: unknown, path: string, maxItems: number): unknown[] {
  if (!Array.isArray(value) || value.length > maxItems) throw new WireError(`${path}: expected an array of at most ${maxItems} items`)
  return value
}

function strings (value: unknown, path: string, maxItems: number, maxLength: number): string[] {
  return array(value, path, maxItems).map((item, i) => string(item, `${path}[${i}]`, maxLength, 1))
}

function oneOf<T extends string> (value: unknown, path: string, allowed: ReadonlySet<string>): T {
  if (typeof value !== 'string' || !allowed.has(value)) throw new WireError(`${path}: unknown value`)
  return value as T
}

/** Payloads and results are opaque data: anything msgpack decodes to, except functions. */
function data (value: unknown): unknown {
  return value === undefined ? null : value
}

// ------------------------------------------------------------------ domain readers

function readBackoff (value: unknown, path: string): Backoff {
  const o = object(value, path)
  return {
    kind: oneOf<'fixed' | 'exponential'>(o.kind, `${path}.kind`, new Set(['fixed', 'exponential'])),
    delayMs: finite(o.delayMs, `${path}.delayMs`, 0),
    delayMsMax: finite(o.delayMsMax, `${path}.delayMsMax`, 0)
  }
}

function readHistoryEntry (value: unknown, path: string): HistoryEntry {
  const o = object(value, path)
  const entry: HistoryEntry = {
    state: oneOf<TaskState>(o.state, `${path}.state`, TASK_STATES),
    atMs: finite(o.atMs, `${path}.atMs`),
    node: string(o.node, `${path}.node`, WIRE_LIMITS.peerIdLength),
    attempt: integer(o.attempt, `${path}.attempt`, 0, 1_000_000)
  }
  if (o.error !== undefined) entry.error = string(o.error, `${path}.error`, WIRE_LIMITS.errorLength)
  return entry
}

function readScheduleState (value: unknown, path: string): ScheduleState {
  const o = object(value, path)
  return {
    cron: nullableString(o.cron, `${path}.cron`, 256),
    timezone: nullableString(o.timezone, `${path}.timezone`, 64),
    everyMs: nullableFinite(o.everyMs, `${path}.everyMs`),
    catchUp: oneOf<CatchUpPolicy>(o.catchUp, `${path}.catchUp`, new Set(['all', 'latest'])),
    overlap: oneOf<OverlapPolicy>(o.overlap, `${path}.overlap`, new Set(['allow', 'forbid'])),
    paused: boolean(o.paused, `${path}.paused`),
    firedUpToMs: finite(o.firedUpToMs, `${path}.firedUpToMs`),
    lastOccurrence: nullableString(o.lastOccurrence, `${path}.lastOccurrence`, WIRE_LIMITS.idLength),
    fired: integer(o.fired, `${path}.fired`, 0, Number.MAX_SAFE_INTEGER),
    skipped: integer(o.skipped, `${path}.skipped`, 0, Number.MAX_SAFE_INTEGER),
    revision: integer(o.revision, `${path}.revision`, 0, Number.MAX_SAFE_INTEGER)
  }
}

export function readRecord (value: unknown, path = 'record'): TaskRecord {
  const o = object(value, path)
  return {
    id: string(o.id, `${path}.id`, WIRE_LIMITS.idLength, 1),
    type: string(o.type, `${path}.type`, WIRE_LIMITS.typeLength, 1),
    payload: data(o.payload),
    state: oneOf<StoredState>(o.state, `${path}.state`, STORED_STATES),
    priority: integer(o.priority, `${path}.priority`, -1_000_000, 1_000_000),
    attempt: integer(o.attempt, `${path}.attempt`, 0, 1_000_000),
    maxAttempts: integer(o.maxAttempts, `${path}.maxAttempts`, 1, 1_000_000),
    backoff: readBackoff(o.backoff, `${path}.backoff`),
    timeoutMs: nullableFinite(o.timeoutMs, `${path}.timeoutMs`),
    epoch: integer(o.epoch, `${path}.epoch`, 0, Number.MAX_SAFE_INTEGER),
    owner: nullableString(o.owner, `${path}.owner`, WIRE_LIMITS.peerIdLength),
    replicas: strings(o.replicas, `${path}.replicas`, WIRE_LIMITS.replicas, WIRE_LIMITS.peerIdLength),
    coordinator: string(o.coordinator, `${path}.coordinator`, WIRE_LIMITS.peerIdLength, 1),
    committed: boolean(o.committed, `${path}.committed`),
    runAtMs: finite(o.runAtMs, `${path}.runAtMs`),
    createdAtMs: finite(o.createdAtMs, `${path}.createdAtMs`),
    startedAtMs: nullableFinite(o.startedAtMs, `${path}.startedAtMs`),
    finishedAtMs: nullableFinite(o.finishedAtMs, `${path}.finishedAtMs`),
    result: data(o.result),
    error: nullableString(o.error, `${path}.error`, WIRE_LIMITS.errorLength),
    idempotencyKey: nullableString(o.idempotencyKey, `${path}.idempotencyKey`, 256),
    dependsOn: strings(o.dependsOn, `${path}.dependsOn`, WIRE_LIMITS.dependsOn, WIRE_LIMITS.idLength),
    scheduleId: nullableString(o.scheduleId, `${path}.scheduleId`, WIRE_LIMITS.idLength),
    // Absent in records written before schedules and manual retries existed: defaults.
    schedule: o.schedule === undefined || o.schedule === null ? null : readScheduleState(o.schedule, `${path}.schedule`),
    generation: o.generation === undefined ? 0 : integer(o.generation, `${path}.generation`, 0, 1_000_000),
    retryBase: o.retryBase === undefined ? 0 : integer(o.retryBase, `${path}.retryBase`, 0, 1_000_000),
    progress: o.progress === undefined || o.progress === null ? null : finite(o.progress, `${path}.progress`, 0),
    history: array(o.history, `${path}.history`, WIRE_LIMITS.history).map((item, i) => readHistoryEntry(item, `${path}.history[${i}]`))
  }
}

function readRecords (value: unknown, path: string): TaskRecord[] {
  return array(value, path, WIRE_LIMITS.recordsPerMessage).map((item, i) => readRecord(item, `${path}[${i}]`))
}

function readListQuery (value: unknown, path: string): ListQuery {
  const o = object(value, path)
  return {
    state: o.state === null || o.state === undefined ? null : oneOf<TaskState>(o.state, `${path}.state`, TASK_STATES),
    type: nullableString(o.type, `${path}.type`, WIRE_LIMITS.typeLength),
    scheduleId: nullableString(o.scheduleId, `${path}.scheduleId`, WIRE_LIMITS.idLength),
    limit: integer(o.limit, `${path}.limit`, 1, 10_000),
    cursor: nullableString(o.cursor, `${path}.cursor`, 400)
  }
}

const rid = (o: Record<string, unknown>): number => integer(o.rid, 'rid', 0, Number.MAX_SAFE_INTEGER)

function readPeerMessage (value: unknown): PeerMessage {
  const o = object(value, 'message')
  switch (o.kind) {
    case 'store': return { kind: 'store', rid: rid(o), record: readRecord(o.record) }
    case 'stored':
    case 'claimed':
      return {
        kind: o.kind,
        rid: rid(o),
        id: string(o.id, 'id', WIRE_LIMITS.idLength, 1),
        ok: boolean(o.ok, 'ok'),
        record: o.record === null || o.record === undefined ? null : readRecord(o.record)
      }
    case 'decide': return { kind: 'decide', ids: strings(o.ids, 'ids', WIRE_LIMITS.idsPerMessage, WIRE_LIMITS.idLength), commit: boolean(o.commit, 'commit') }
    case 'claim': return { kind: 'claim', rid: rid(o), record: readRecord(o.record) }
    case 'read': return { kind: 'read', rid: rid(o), ids: strings(o.ids, 'ids', WIRE_LIMITS.idsPerMessage, WIRE_LIMITS.idLength) }
    case 'readReply': return { kind: 'readReply', rid: rid(o), records: readRecords(o.records, 'records') }
    case 'list': return { kind: 'list', rid: rid(o), query: readListQuery(o.query, 'query') }
    case 'listReply': return { kind: 'listReply', rid: rid(o), records: readRecords(o.records, 'records') }
    case 'sync': return { kind: 'sync', rid: rid(o), digests: array(o.digests, 'digests', 1024).map((item, i) => integer(item, `digests[${i}]`, 0, 0xffffffff)) }
    case 'syncKeys': return {
      kind: 'syncKeys',
      rid: rid(o),
      buckets: array(o.buckets, 'buckets', 1024).map((item, i) => integer(item, `buckets[${i}]`, 0, 1023)),
      keys: array(o.keys, 'keys', WIRE_LIMITS.idsPerMessage).map((item, i) => {
        const pair = array(item, `keys[${i}]`, 2)
        const version = array(pair[1], `keys[${i}][1]`, 16).map((part, j) => integer(part, `keys[${i}][1][${j}]`, 0, Number.MAX_SAFE_INTEGER))
        return [string(pair[0], `keys[${i}][0]`, WIRE_LIMITS.idLength, 1), version] as [string, number[]]
      })
    }
    case 'ask': return { kind: 'ask', ids: strings(o.ids, 'ids', WIRE_LIMITS.idsPerMessage, WIRE_LIMITS.idLength) }
    case 'want': return { kind: 'want', ids: strings(o.ids, 'ids', WIRE_LIMITS.idsPerMessage, WIRE_LIMITS.idLength) }
    default: throw new WireError('message.kind: unknown message kind')
  }
}

export function validatePeerMessage (value: unknown): Validated<PeerMessage> {
  return attempt(() => readPeerMessage(value))
}

/** A heartbeat is only believed from the peer that signed it. */
export function validateHeartbeat (value: unknown, from: string): Validated<Heartbeat> {
  return attempt(() => {
    const o = object(value, 'heartbeat')
    const load = object(o.load, 'heartbeat.load')
    const heartbeat: Heartbeat = {
      protocol: integer(o.protocol, 'heartbeat.protocol', 0, 1_000_000),
      peerId: string(o.peerId, 'heartbeat.peerId', WIRE_LIMITS.peerIdLength, 1),
      api: string(o.api, 'heartbeat.api', WIRE_LIMITS.addrLength),
      addrs: strings(o.addrs, 'heartbeat.addrs', WIRE_LIMITS.addrs, WIRE_LIMITS.addrLength),
      load: {
        running: integer(load.running, 'heartbeat.load.running', 0, 1_000_000_000),
        queued: integer(load.queued, 'heartbeat.load.queued', 0, 1_000_000_000),
        capacity: integer(load.capacity, 'heartbeat.load.capacity', 0, 1_000_000_000),
        durationMsEwma: finite(load.durationMsEwma, 'heartbeat.load.durationMsEwma', 0)
      },
      types: strings(o.types, 'heartbeat.types', WIRE_LIMITS.types, WIRE_LIMITS.typeLength),
      leaving: boolean(o.leaving, 'heartbeat.leaving'),
      left: boolean(o.left, 'heartbeat.left'),
      peers: o.peers === undefined ? [] : strings(o.peers, 'heartbeat.peers', 64, WIRE_LIMITS.addrLength),
      sequence: finite(o.sequence, 'heartbeat.sequence')
    }
    if (heartbeat.peerId !== from) throw new WireError('heartbeat.peerId: does not match the signing peer')
    return heartbeat
  })
}

export function validateEvents (value: unknown): Validated<TaskEventData[]> {
  return attempt(() => array(value, 'events', WIRE_LIMITS.events).map((item, i) => {
    const o = object(item, `events[${i}]`)
    return {
      id: string(o.id, `events[${i}].id`, WIRE_LIMITS.idLength, 1),
      state: oneOf<TaskState>(o.state, `events[${i}].state`, TASK_STATES),
      attempt: integer(o.attempt, `events[${i}].attempt`, 0, 1_000_000),
      atMs: finite(o.atMs, `events[${i}].atMs`),
      node: string(o.node, `events[${i}].node`, WIRE_LIMITS.peerIdLength)
    }
  }))
}

/** For the store: throws on anything that is not a stored entry. */
export function validateStoredEntry (value: unknown): StoredEntry {
  const result = attempt(() => {
    const o = object(value, 'entry')
    return { record: readRecord(o.record), promised: integer(o.promised, 'entry.promised', 0, Number.MAX_SAFE_INTEGER) }
  })
  if (!result.ok) throw new Error(result.reason)
  return result.value
}
