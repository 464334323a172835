// wire.ts: turns decoded bytes from peers (and from disk) into validated values.
// Everything a peer sends passes through here before the core sees it; anything that does
// not fit is refused with a reason, never thrown past this file. Objects are rebuilt field by
// field, so unknown keys (including __proto__) never reach the core.
//
// Records travel (and are stored) as opaque byte strings: a msgpack array in a fixed field
// order (RECORD_LAYOUT) inside a msgpack `bin`. Why: a record is packed once and the same
// bytes go to every replica and to disk (encodeRecord caches them per record object), a
// received record is written to disk with the bytes it came in, and a positional array has no
// key strings, so it is about 2.5x smaller and decodes about 4x faster than a msgpack map.
import { pack, unpack } from 'msgpackr'
import type { PeerMessage, TaskEventData } from '../core/protocol.js'
import type { Backoff, Heartbeat, HistoryEntry, ListQuery, StoredEntry, StoredState, TaskRecord, TaskState } from '../core/types.js'

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
const BACKOFF_KINDS: ReadonlySet<string> = new Set(['fixed', 'exponential'])

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
  const items = array(value, path, maxItems)
  // Checked in place, not copied: msgpack arrays are plain arrays of the decoded values.
  // The item's path is only built for the error (this runs for every record received).
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    if (typeof item !== 'string' || item.length < 1 || item.length > maxLength) string(item, `${path}[${i}]`, maxLength, 1)
  }
  return items as string[]
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
    kind: oneOf<'fixed' | 'exponential'>(o.kind, `${path}.kind`, BACKOFF_KINDS),
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

/** A record as it travels: RECORD_LAYOUT bytes, or (older peers and stores) a msgpack map. */
export function readRecord (value: unknown, path = 'record'): TaskRecord {
  if (value instanceof Uint8Array) return readRecordBytes(value, path)
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
    history: array(o.history, `${path}.history`, WIRE_LIMITS.history).map((item, i) => readHistoryEntry(item, `${path}.history[${i}]`))
  }
}

function readRecords (value: unknown, path: string): TaskRecord[] {
  const items = array(value, path, WIRE_LIMITS.recordsPerMessage)
  const records = new Array<TaskRecord>(items.length)
  for (let i = 0; i < items.length; i++) records[i] = readRecord(items[i], path + '[' + i + ']')
  return records
}

// ------------------------------------------------------------------ record bytes

/**
 * Version tag and field order of the positional record encoding. Changing the fields means a
 * new tag (and a decoder for the old one: records on disk keep theirs).
 *   [1, id, type, payload, state, priority, attempt, maxAttempts, backoff.kind, backoff.delayMs,
 *    backoff.delayMsMax, timeoutMs, epoch, owner, replicas, coordinator, committed, runAtMs,
 *    createdAtMs, startedAtMs, finishedAtMs, result, error, idempotencyKey, dependsOn,
 *    scheduleId, history]
 * with history entries as [state, atMs, node, attempt] or [state, atMs, node, attempt, error].
 * owner, coordinator and history nodes that are in `replicas` are written as their index
 * there: peer ids are long (52 characters) and a record repeats them up to 7 times.
 */
const RECORD_LAYOUT = 1
const RECORD_LAYOUT_FIELDS = 27

/** A peer id, or its index in the record's replicas. */
function peerReference (replicas: readonly string[], peer: string): string | number {
  const index = replicas.indexOf(peer)
  return index >= 0 ? index : peer
}

function readPeerReference (value: unknown, replicas: readonly string[], path: string, minLength = 0): string {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0 && value < replicas.length) return replicas[value]!
    throw new WireError(`${path}: expected a replica index below ${replicas.length}`)
  }
  return string(value, path, WIRE_LIMITS.peerIdLength, minLength)
}

function recordToLayout (record: TaskRecord): unknown[] {
  const replicas = record.replicas
  const history = new Array<unknown[]>(record.history.length)
  for (let i = 0; i < history.length; i++) {
    const entry = record.history[i]!
    history[i] = entry.error === undefined
      ? [entry.state, entry.atMs, peerReference(replicas, entry.node), entry.attempt]
      : [entry.state, entry.atMs, peerReference(replicas, entry.node), entry.attempt, entry.error]
  }
  return [
    RECORD_LAYOUT, record.id, record.type, record.payload, record.state, record.priority, record.attempt,
    record.maxAttempts, record.backoff.kind, record.backoff.delayMs, record.backoff.delayMsMax,
    record.timeoutMs, record.epoch, record.owner === null ? null : peerReference(replicas, record.owner),
    replicas, peerReference(replicas, record.coordinator), record.committed, record.runAtMs,
    record.createdAtMs, record.startedAtMs, record.finishedAtMs, record.result, record.error,
    record.idempotencyKey, record.dependsOn, record.scheduleId, history
  ]
}

function readRecordBytes (bytes: Uint8Array, path: string): TaskRecord {
  let value: unknown
  try {
    value = unpack(bytes)
  } catch (error) {
    throw new WireError(`${path}: bad msgpack (${(error as Error)?.message ?? String(error)})`)
  }
  if (!Array.isArray(value) || value[0] !== RECORD_LAYOUT || value.length !== RECORD_LAYOUT_FIELDS) {
    throw new WireError(`${path}: expected a layout ${RECORD_LAYOUT} record of ${RECORD_LAYOUT_FIELDS} fields`)
  }
  const a = value
  // Paths are constant strings here: building one per field of every record showed in profiles.
  const replicas = strings(a[14], 'record.replicas', WIRE_LIMITS.replicas, WIRE_LIMITS.peerIdLength)
  const record: TaskRecord = {
    id: string(a[1], 'record.id', WIRE_LIMITS.idLength, 1),
    type: string(a[2], 'record.type', WIRE_LIMITS.typeLength, 1),
    payload: data(a[3]),
    state: oneOf<StoredState>(a[4], 'record.state', STORED_STATES),
    priority: integer(a[5], 'record.priority', -1_000_000, 1_000_000),
    attempt: integer(a[6], 'record.attempt', 0, 1_000_000),
    maxAttempts: integer(a[7], 'record.maxAttempts', 1, 1_000_000),
    backoff: {
      kind: oneOf<'fixed' | 'exponential'>(a[8], 'record.backoff.kind', BACKOFF_KINDS),
      delayMs: finite(a[9], 'record.backoff.delayMs', 0),
      delayMsMax: finite(a[10], 'record.backoff.delayMsMax', 0)
    },
    timeoutMs: nullableFinite(a[11], 'record.timeoutMs'),
    epoch: integer(a[12], 'record.epoch', 0, Number.MAX_SAFE_INTEGER),
    owner: a[13] === null || a[13] === undefined ? null : readPeerReference(a[13], replicas, 'record.owner'),
    replicas,
    coordinator: readPeerReference(a[15], replicas, 'record.coordinator', 1),
    committed: boolean(a[16], 'record.committed'),
    runAtMs: finite(a[17], 'record.runAtMs'),
    createdAtMs: finite(a[18], 'record.createdAtMs'),
    startedAtMs: nullableFinite(a[19], 'record.startedAtMs'),
    finishedAtMs: nullableFinite(a[20], 'record.finishedAtMs'),
    result: data(a[21]),
    error: nullableString(a[22], 'record.error', WIRE_LIMITS.errorLength),
    idempotencyKey: nullableString(a[23], 'record.idempotencyKey', 256),
    dependsOn: strings(a[24], 'record.dependsOn', WIRE_LIMITS.dependsOn, WIRE_LIMITS.idLength),
    scheduleId: nullableString(a[25], 'record.scheduleId', WIRE_LIMITS.idLength),
    history: readHistoryLayout(a[26], replicas)
  }
  // A copy (Buffer's own slice() would be a view): the frame it came in can then be freed.
  recordBytes.remember(record, Uint8Array.prototype.slice.call(bytes))
  return record
}

function readHistoryLayout (value: unknown, replicas: readonly string[]): HistoryEntry[] {
  const items = array(value, 'record.history', WIRE_LIMITS.history)
  const history = new Array<HistoryEntry>(items.length)
  for (let i = 0; i < items.length; i++) {
    const item = items[i]
    if (!Array.isArray(item) || item.length < 4 || item.length > 5) throw new WireError(`record.history[${i}]: expected [state, atMs, node, attempt, error?]`)
    const entry: HistoryEntry = {
      state: oneOf<TaskState>(item[0], 'record.history.state', TASK_STATES),
      atMs: finite(item[1], 'record.history.atMs'),
      node: readPeerReference(item[2], replicas, 'record.history.node'),
      attempt: integer(item[3], 'record.history.attempt', 0, 1_000_000)
    }
    if (item.length === 5) entry.error = string(item[4], 'record.history.error', WIRE_LIMITS.errorLength)
    history[i] = entry
  }
  return history
}

/**
 * The encoded bytes of records encoded or decoded lately, by object identity. Safe because a
 * record is an immutable value: the core makes a new object for every change (record.ts's
 * canonicalText cache relies on the same). Two generations of WeakMaps, turned over once the
 * newer holds RECORD_BYTES_GENERATION_MAX bytes: a record is looked up within a tick or two of
 * being encoded or decoded, so this keeps only recent records' bytes and never keeps a record.
 */
const RECORD_BYTES_GENERATION_MAX = 8 * 1024 * 1024

class RecordBytesCache {
  #current = new WeakMap<TaskRecord, Uint8Array>()
  #previous = new WeakMap<TaskRecord, Uint8Array>()
  #currentBytes = 0

  get (record: TaskRecord): Uint8Array | undefined {
    return this.#current.get(record) ?? this.#previous.get(record)
  }

  remember (record: TaskRecord, bytes: Uint8Array): void {
    if (this.#currentBytes + bytes.byteLength > RECORD_BYTES_GENERATION_MAX) {
      this.#previous = this.#current
      this.#current = new WeakMap()
      this.#currentBytes = 0
    }
    this.#current.set(record, bytes)
    this.#currentBytes += bytes.byteLength
  }
}

const recordBytes = new RecordBytesCache()

/** A record's RECORD_LAYOUT bytes: packed once per record object, then reused. Do not modify them. */
export function encodeRecord (record: TaskRecord): Uint8Array {
  const cached = recordBytes.get(record)
  if (cached !== undefined) return cached
  const bytes = pack(recordToLayout(record))
  recordBytes.remember(record, bytes)
  return bytes
}

/**
 * One peer message as msgpack: a map with its records as RECORD_LAYOUT bytes. Kinds that carry
 * no record are packed as they are; a record in a kind not listed here still works, as a map.
 */
export function encodePeerMessage (message: PeerMessage): Uint8Array {
  switch (message.kind) {
    case 'store':
    case 'claim':
      return writeRecordEnvelope(message.kind === 'store' ? STORE_HEAD : CLAIM_HEAD, message.rid, encodeRecord(message.record))
    case 'stored':
    case 'claimed':
      return message.record === null
        ? writeAck(message.kind === 'stored' ? STORED_HEAD : CLAIMED_HEAD, message.rid, message.id, message.ok)
        : pack({ kind: message.kind, rid: message.rid, id: message.id, ok: message.ok, record: encodeRecord(message.record) })
    case 'readReply':
    case 'listReply':
      return pack({ kind: message.kind, rid: message.rid, records: message.records.map(encodeRecord) })
    default:
      return pack(message)
  }
}

// ------------------------------------------------------------------ hand-written envelopes

// store/claim with their record, and the stored/claimed acks without one, are four messages
// of every five a node sends, and every write to disk is a stored entry; msgpackr's general
// pack() spent several µs on each of them (the largest part of sending in the profiles).
// These write the same msgpack maps by hand into shared slabs: a slab is written once, front
// to back, so a returned view never changes.

const SLAB_BYTES = 64 * 1024
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES)
let slabOffset = 0

function allocate (length: number): number {
  if (slabOffset + length > slab.byteLength) {
    slab = Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, length))
    slabOffset = 0
  }
  const start = slabOffset
  slabOffset += length
  return start
}

const text = (value: string): number[] => [0xa0 | value.length, ...Buffer.from(value)]
/** { kind: 'store' | 'claim', rid, record }: map header, "kind", the kind, "rid". */
const STORE_HEAD = Uint8Array.from([0x83, ...text('kind'), ...text('store'), ...text('rid')])
const CLAIM_HEAD = Uint8Array.from([0x83, ...text('kind'), ...text('claim'), ...text('rid')])
const RECORD_KEY = Uint8Array.from(text('record'))
/** { kind: 'stored' | 'claimed', rid, id, ok, record: null }: map header, "kind", the kind, "rid". */
const STORED_HEAD = Uint8Array.from([0x85, ...text('kind'), ...text('stored'), ...text('rid')])
const CLAIMED_HEAD = Uint8Array.from([0x85, ...text('kind'), ...text('claimed'), ...text('rid')])
const ID_KEY = Uint8Array.from(text('id'))
const OK_KEY = Uint8Array.from(text('ok'))
const NULL_RECORD = Uint8Array.from([...text('record'), 0xc0])
/** { record, promised }: map header, "record". */
const ENTRY_HEAD = Uint8Array.from([0x82, ...text('record')])
const PROMISED_KEY = Uint8Array.from(text('promised'))

/** Bytes of a msgpack unsigned integer (rids and epochs are safe integers, never negative). */
function uintBytes (value: number): number {
  return value < 0x80 ? 1 : value < 0x100 ? 2 : value < 0x10000 ? 3 : value < 2 ** 32 ? 5 : 9
}

function writeUint (offset: number, value: number, bytes: number): number {
  if (bytes === 1) {
    slab[offset] = value
  } else if (bytes === 2) {
    slab[offset] = 0xcc
    slab[offset + 1] = value
  } else if (bytes === 3) {
    slab[offset] = 0xcd
    slab.writeUInt16BE(value, offset + 1)
  } else if (bytes === 5) {
    slab[offset] = 0xce
    slab.writeUInt32BE(value, offset + 1)
  } else {
    slab[offset] = 0xcb // float64: exact for every safe integer, and decodes to a number
    slab.writeDoubleBE(value, offset + 1)
  }
  return offset + bytes
}

function binHeaderBytes (length: number): number {
  return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5
}

/** A msgpack bin: header and bytes. */
function writeBin (offset: number, bytes: Uint8Array, headerBytes: number): number {
  const length = bytes.byteLength
  if (headerBytes === 2) {
    slab[offset] = 0xc4
    slab[offset + 1] = length
  } else if (headerBytes === 3) {
    slab[offset] = 0xc5
    slab.writeUInt16BE(length, offset + 1)
  } else {
    slab[offset] = 0xc6
    slab.writeUInt32BE(length, offset + 1)
  }
  slab.set(bytes, offset + headerBytes)
  return offset + headerBytes + length
}

/** TypedArray.set costs more than a loop for the few bytes of a key or a header. */
function copySmall (bytes: Uint8Array, offset: number): number {
  for (let i = 0; i < bytes.length; i++) slab[offset + i] = bytes[i]!
  return offset + bytes.length
}

/** UTF-8 length of a string, with a fast path for ASCII (task ids are). */
function utf8Length (value: string): number {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) >= 0x80) return Buffer.byteLength(value)
  return value.length
}

function writeRecordEnvelope (head: Uint8Array, rid: number, record: Uint8Array): Uint8Array {
  const ridBytes = uintBytes(rid)
  const binBytes = binHeaderBytes(record.byteLength)
  const total = head.byteLength + ridBytes + RECORD_KEY.byteLength + binBytes + record.byteLength
  const start = allocate(total)
  let offset = copySmall(head, start)
  offset = writeUint(offset, rid, ridBytes)
  offset = copySmall(RECORD_KEY, offset)
  writeBin(offset, record, binBytes)
  return slab.subarray(start, start + total)
}

function writeAck (head: Uint8Array, rid: number, id: string, ok: boolean): Uint8Array {
  const ridBytes = uintBytes(rid)
  const idBytes = utf8Length(id)
  const idHeaderBytes = idBytes < 0x20 ? 1 : idBytes < 0x100 ? 2 : idBytes < 0x10000 ? 3 : 5
  const total = head.byteLength + ridBytes + ID_KEY.byteLength + idHeaderBytes + idBytes + OK_KEY.byteLength + 1 + NULL_RECORD.byteLength
  const start = allocate(total)
  let offset = copySmall(head, start)
  offset = writeUint(offset, rid, ridBytes)
  offset = copySmall(ID_KEY, offset)
  if (idHeaderBytes === 1) {
    slab[offset] = 0xa0 | idBytes
  } else if (idHeaderBytes === 2) {
    slab[offset] = 0xd9
    slab[offset + 1] = idBytes
  } else if (idHeaderBytes === 3) {
    slab[offset] = 0xda
    slab.writeUInt16BE(idBytes, offset + 1)
  } else {
    slab[offset] = 0xdb
    slab.writeUInt32BE(idBytes, offset + 1)
  }
  offset += idHeaderBytes
  if (idBytes === id.length) {
    for (let i = 0; i < idBytes; i++) slab[offset + i] = id.charCodeAt(i)
  } else {
    slab.write(id, offset, idBytes, 'utf8')
  }
  offset = copySmall(OK_KEY, offset + idBytes)
  slab[offset++] = ok ? 0xc3 : 0xc2
  copySmall(NULL_RECORD, offset)
  return slab.subarray(start, start + total)
}

/**
 * A stored entry as msgpack { record: bin(record bytes), promised }, after `reserveBytes` bytes
 * left for the caller (store.ts puts its checksum there). A view on a shared slab: use it at
 * once (level copies a value when it is put), or copy it.
 */
export function encodeStoredEntry (entry: StoredEntry, reserveBytes: number): Uint8Array {
  const record = encodeRecord(entry.record)
  const binBytes = binHeaderBytes(record.byteLength)
  const promisedBytes = uintBytes(entry.promised)
  const total = reserveBytes + ENTRY_HEAD.byteLength + binBytes + record.byteLength + PROMISED_KEY.byteLength + promisedBytes
  const start = allocate(total)
  let offset = copySmall(ENTRY_HEAD, start + reserveBytes)
  offset = writeBin(offset, record, binBytes)
  offset = copySmall(PROMISED_KEY, offset)
  writeUint(offset, entry.promised, promisedBytes)
  return slab.subarray(start, start + total)
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
        const version = array(pair[1], `keys[${i}][1]`, 8).map((part, j) => integer(part, `keys[${i}][1][${j}]`, 0, Number.MAX_SAFE_INTEGER))
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
      sequence: finite(o.sequence, 'heartbeat.sequence')
    }
    if (heartbeat.peerId !== from) throw new WireError('heartbeat.peerId: does not match the signing peer')
    return heartbeat
  })
}

/**
 * Task events as gossiped: { nodes, base, events: [id, state, attempt, atMs - base, node index] }.
 * Why not an array of event objects: every node gossips every event it announces (a few per
 * task), and each byte is signed, checked by every receiver, forwarded and decoded again; this
 * form is about a third of the size (no keys, a 52-character peer id once per message).
 */
export function encodeEvents (events: TaskEventData[]): unknown {
  const nodes: string[] = []
  const base = events.length > 0 ? events[0]!.atMs : 0
  const rows = new Array<unknown[]>(events.length)
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!
    let node = nodes.indexOf(event.node)
    if (node < 0) node = nodes.push(event.node) - 1
    rows[i] = [event.id, event.state, event.attempt, event.atMs - base, node]
  }
  return { nodes, base, events: rows }
}

export function validateEvents (value: unknown): Validated<TaskEventData[]> {
  return attempt(() => {
    // An array of event objects is the form before encodeEvents.
    if (Array.isArray(value)) return array(value, 'events', WIRE_LIMITS.events).map((item, i) => readEvent(item, i))
    const o = object(value, 'events')
    const nodes = strings(o.nodes, 'events.nodes', WIRE_LIMITS.events, WIRE_LIMITS.peerIdLength)
    const base = finite(o.base, 'events.base')
    const rows = array(o.events, 'events.events', WIRE_LIMITS.events)
    const events = new Array<TaskEventData>(rows.length)
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]
      if (!Array.isArray(row) || row.length !== 5) throw new WireError(`events[${i}]: expected [id, state, attempt, atMs, node]`)
      const node = integer(row[4], 'events.node', 0, nodes.length - 1)
      events[i] = {
        id: string(row[0], 'events.id', WIRE_LIMITS.idLength, 1),
        state: oneOf<TaskState>(row[1], 'events.state', TASK_STATES),
        attempt: integer(row[2], 'events.attempt', 0, 1_000_000),
        atMs: base + finite(row[3], 'events.atMs'),
        node: nodes[node]!
      }
    }
    return events
  })
}

function readEvent (item: unknown, i: number): TaskEventData {
  const o = object(item, `events[${i}]`)
  return {
    id: string(o.id, `events[${i}].id`, WIRE_LIMITS.idLength, 1),
    state: oneOf<TaskState>(o.state, `events[${i}].state`, TASK_STATES),
    attempt: integer(o.attempt, `events[${i}].attempt`, 0, 1_000_000),
    atMs: finite(o.atMs, `events[${i}].atMs`),
    node: string(o.node, `events[${i}].node`, WIRE_LIMITS.peerIdLength)
  }
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
