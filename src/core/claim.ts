// claim.ts: whose promises a claim needs before its run may start.
// A claim needs a majority of the task's replica set: any two majorities overlap, so an older
// owner's late result can never reach a majority past a newer claim. But the replica set only
// changes when a dead member is removed from the ring (removeAfterMs, many seconds), and while
// two of three replicas are dead no majority of it can answer: takeovers then wait for the
// removal. So when the live members of the set are no majority, the next live members of the
// ring stand in for the dead ones (they are the members that will replace them once the
// ring drops them), and the claim needs every live member of the set plus stand-ins up to a
// majority. Every live member having promised the new epoch keeps the overlap with any late
// write that involves a live member; a late write that gets past it needs the replicas
// declared dead to be alive together elsewhere: a partition that put a majority of this set on
// the other side. So the node only uses stand-ins while it sees a majority of the whole ring
// (node.ts): of two sides of a partition, at most one can. The claimed record lists the
// stand-ins among its replicas, so the run's outcome is written to them too and counts there.
import { writeQuorum } from './ring.js'

export interface ClaimQuorum {
  /** Who the claim goes to: the replica set, then any stand-ins. */
  targets: string[]
  /** Acks needed: a majority of the replica set. */
  needed: number
  /** The replica set under the current ring. */
  replicaSet: string[]
  /** Live members of the replica set that must all ack (empty unless stand-ins are used). */
  required: string[]
  /** Live ring members standing in for dead members of the replica set. */
  standIns: string[]
}

/**
 * @param replicaSet the first R ring members clockwise from the task's key
 * @param liveSet the first R ring members clockwise from the key that are not dead
 * @param isDead whether a member is dead (silent past deadAfterMs), not merely suspect
 */
export function claimQuorum (replicaSet: string[], liveSet: string[], isDead: (peer: string) => boolean): ClaimQuorum {
  const needed = writeQuorum(replicaSet.length)
  const live = replicaSet.filter(peer => !isDead(peer))
  if (live.length >= needed) return { targets: replicaSet, needed, replicaSet, required: [], standIns: [] }
  const standIns = liveSet.filter(peer => !replicaSet.includes(peer))
  return { targets: [...replicaSet, ...standIns], needed, replicaSet, required: live, standIns }
}

/** 'won' once the acks make a quorum, 'lost' once the nacks rule one out, else 'open'. */
export function claimOutcome (quorum: ClaimQuorum, acks: ReadonlySet<string>, nacks: ReadonlySet<string>): 'won' | 'lost' | 'open' {
  const setAcks = quorum.replicaSet.filter(peer => acks.has(peer)).length
  if (setAcks >= quorum.needed) return 'won'
  if (quorum.required.length > 0 && acks.size >= quorum.needed && quorum.required.every(peer => acks.has(peer))) return 'won'
  const setPossible = quorum.replicaSet.length - quorum.replicaSet.filter(peer => nacks.has(peer)).length
  const standInPossible = quorum.required.some(peer => nacks.has(peer))
    ? false
    : quorum.targets.length - nacks.size >= quorum.needed && quorum.required.length > 0
  return setPossible >= quorum.needed || standInPossible ? 'open' : 'lost'
}
