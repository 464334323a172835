// ring.ts: consistent hashing of task keys onto peers (design.md section 3).
// A peer sits at sha256(peerId) and at virtual positions sha256(peerId ‖ i); a task's replica
// set is the first R distinct peers clockwise from sha256(taskId).
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

export function buildRing (peerIds: Iterable<string>, virtualPositions = VIRTUAL_POSITIONS_DEFAULT): Ring {
  const members = [...new Set(peerIds)].sort()
  const points: Array<[number, number]> = []
  members.forEach((peerId, index) => {
    points.push([keyPosition(peerId), index])
    for (let i = 1; i < virtualPositions; i++) points.push([keyPosition(`${peerId}#${i}`), index])
  })
  // Ties (vanishingly rare) are broken by member index so every node builds the same ring.
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1])
  const positions = new Float64Array(points.length)
  const owners = new Uint32Array(points.length)
  points.forEach(([position, owner], i) => { positions[i] = position; owners[i] = owner })
  return { positions, owners, members }
}

/** Index of the first position >= key, wrapping to 0. */
function successorIndex (ring: Ring, key: number): number {
  let low = 0
  let high = ring.positions.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (ring.positions[middle]! < key) low = middle + 1
    else high = middle
  }
  return low === ring.positions.length ? 0 : low
}

/**
 * The first min(r, members) distinct members clockwise from key; the first is the owner.
 * With `usable`, members it rejects are skipped (fewer than r come back when too few pass).
 */
export function replicaSetAt (ring: Ring, key: number, r: number, usable?: (member: string) => boolean): string[] {
  const wanted = Math.min(r, ring.members.length)
  const set: string[] = []
  if (wanted === 0) return set
  const start = successorIndex(ring, key)
  const count = ring.positions.length
  const skipped = new Set<string>()
  for (let step = 0; step < count && set.length < wanted && set.length + skipped.size < ring.members.length; step++) {
    const member = ring.members[ring.owners[(start + step) % count]!]!
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
  const shares = new Map<string, number>(ring.members.map(member => [member, 0]))
  const count = ring.positions.length
  if (count === 0) return shares
  if (ring.members.length === 1) return new Map([[ring.members[0]!, 1]])
  for (let i = 0; i < count; i++) {
    const previous = i === 0 ? ring.positions[count - 1]! - KEYSPACE : ring.positions[i - 1]!
    const member = ring.members[ring.owners[i]!]!
    shares.set(member, shares.get(member)! + (ring.positions[i]! - previous) / KEYSPACE)
  }
  return shares
}

/** Write quorum for a replica set of size n: a majority. */
export function writeQuorum (n: number): number {
  return Math.floor(n / 2) + 1
}
