// ring.ts: consistent hashing of task keys onto peers (design.md section 3).
// A peer sits at sha256(peerId) and at virtual positions sha256(peerId ‖ i); a task's replica
// set is the first R distinct peers clockwise from sha256(taskId).
//
// Why a ring is lazy and shared: a node rebuilds its ring on every membership change, and a
// forming cluster of N nodes makes N^2 such changes before anyone asks for a replica set.
// buildRing therefore only records the members; the sorted positions are laid out on first
// use, and nodes with the same view (the common case) share one layout. The caches below
// memoize pure functions of their keys and are bounded, so results never depend on them.
import { KEYSPACE, keyPosition } from './hash.js'

export const VIRTUAL_POSITIONS_DEFAULT = 64

export interface Ring {
  /** Sorted positions. */
  readonly positions: Float64Array
  /** positions[i] belongs to members[owners[i]]. */
  readonly owners: Uint32Array
  /** Sorted peer ids. */
  readonly members: readonly string[]
}

interface Layout {
  positions: Float64Array
  owners: Uint32Array
}

/** Distinct layouts kept (one per distinct view; views differ only briefly between nodes). */
const LAYOUTS_MAX = 32
/** Peers whose positions are kept (a peer's positions never change). */
const PEER_POSITIONS_MAX = 200_000
const layouts = new Map<string, Layout>()
const peerPositions = new Map<string, Float64Array>()
/** Lists whose maker vouches that they are sorted, distinct and never changed again (weak: no bound needed). */
const vouched = new WeakSet<readonly string[]>()

/**
 * The caller vouches that ids are sorted, distinct and will never change: buildRing then keeps
 * the list as it is. Membership uses it; checking a 1,000-member list cost more than the rest
 * of a ring change.
 */
export function vouchSorted (ids: readonly string[]): readonly string[] {
  vouched.add(ids)
  return ids
}

export function buildRing (peerIds: Iterable<string>, virtualPositions = VIRTUAL_POSITIONS_DEFAULT): Ring {
  // A peer always sits at least at its own position (0 virtual positions behaves as 1).
  const given = vouched.has(peerIds as readonly string[]) ? peerIds as readonly string[] : sortedDistinct([...peerIds])
  return new LazyRing(given, Math.max(1, virtualPositions))
}

class LazyRing implements Ring {
  readonly #virtualPositions: number
  /** Sorted and distinct. */
  readonly members: readonly string[]
  #layout: Layout | null = null

  constructor (members: readonly string[], virtualPositions: number) {
    this.members = members
    this.#virtualPositions = virtualPositions
  }

  get positions (): Float64Array { return this.#layoutOf().positions }

  get owners (): Uint32Array { return this.#layoutOf().owners }

  #layoutOf (): Layout {
    if (this.#layout === null) {
      const key = `${this.#virtualPositions}\n${this.members.join('\n')}`
      let layout = layouts.get(key)
      if (layout === undefined) {
        layout = layOut(this.members, this.#virtualPositions)
        if (layouts.size >= LAYOUTS_MAX) layouts.delete(layouts.keys().next().value!)
        layouts.set(key, layout)
      }
      this.#layout = layout
    }
    return this.#layout
  }
}

/** Sorted, without duplicates; a list that already is is only checked. */
function sortedDistinct (ids: string[]): string[] {
  for (let i = 1; i < ids.length; i++) if (!(ids[i - 1]! < ids[i]!)) return [...new Set(ids)].sort()
  return ids
}

function layOut (members: readonly string[], virtualPositions: number): Layout {
  const count = members.length * virtualPositions
  const unsortedPositions = new Float64Array(count)
  const unsortedOwners = new Uint32Array(count)
  members.forEach((peerId, index) => {
    unsortedPositions.set(positionsOf(peerId, virtualPositions), index * virtualPositions)
    unsortedOwners.fill(index, index * virtualPositions, (index + 1) * virtualPositions)
  })
  // Ties (vanishingly rare) are broken by member index so every node builds the same ring.
  const order = new Uint32Array(count)
  for (let i = 0; i < count; i++) order[i] = i
  order.sort((a, b) => unsortedPositions[a]! - unsortedPositions[b]! || unsortedOwners[a]! - unsortedOwners[b]!)
  const positions = new Float64Array(count)
  const owners = new Uint32Array(count)
  for (let i = 0; i < count; i++) {
    positions[i] = unsortedPositions[order[i]!]!
    owners[i] = unsortedOwners[order[i]!]!
  }
  return { positions, owners }
}

/** A peer's positions: sha256(peerId), then sha256(peerId#i) for i in 1..virtualPositions-1. */
function positionsOf (peerId: string, virtualPositions: number): Float64Array {
  const key = `${virtualPositions}\n${peerId}`
  let positions = peerPositions.get(key)
  if (positions === undefined) {
    positions = new Float64Array(virtualPositions)
    positions[0] = keyPosition(peerId)
    for (let i = 1; i < virtualPositions; i++) positions[i] = keyPosition(`${peerId}#${i}`)
    if (peerPositions.size >= PEER_POSITIONS_MAX) peerPositions.clear()
    peerPositions.set(key, positions)
  }
  return positions
}

/** Index of the first position >= key, wrapping to 0. */
function successorIndex (positions: Float64Array, key: number): number {
  let low = 0
  let high = positions.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (positions[middle]! < key) low = middle + 1
    else high = middle
  }
  return low === positions.length ? 0 : low
}

/**
 * The first min(r, members) distinct members clockwise from key; the first is the owner.
 * With `usable`, members it rejects are skipped (fewer than r come back when too few pass).
 */
export function replicaSetAt (ring: Ring, key: number, r: number, usable?: (member: string) => boolean): string[] {
  const { members } = ring
  const wanted = Math.min(r, members.length)
  const set: string[] = []
  if (wanted === 0) return set
  const { positions, owners } = ring
  const start = successorIndex(positions, key)
  const count = positions.length
  const skipped = new Set<string>()
  for (let step = 0; step < count && set.length < wanted && set.length + skipped.size < members.length; step++) {
    const member = members[owners[(start + step) % count]!]!
    if (set.includes(member) || skipped.has(member)) continue
    if (usable === undefined || usable(member)) set.push(member)
    else skipped.add(member)
  }
  return set
}

export function replicaSet (ring: Ring, taskId: string, r: number): string[] {
  return replicaSetAt(ring, keyPosition(taskId), r)
}

/** Fraction of the keyspace each member owns as first of the replica set. */
export function ringShares (ring: Ring): Map<string, number> {
  const { members, positions, owners } = ring
  const shares = new Map<string, number>(members.map(member => [member, 0]))
  const count = positions.length
  if (count === 0) return shares
  if (members.length === 1) return new Map([[members[0]!, 1]])
  for (let i = 0; i < count; i++) {
    const previous = i === 0 ? positions[count - 1]! - KEYSPACE : positions[i - 1]!
    const member = members[owners[i]!]!
    shares.set(member, shares.get(member)! + (positions[i]! - previous) / KEYSPACE)
  }
  return shares
}

/** Write quorum for a replica set of size n: a majority. */
export function writeQuorum (n: number): number {
  return Math.floor(n / 2) + 1
}
