// membership.ts: who is in the cluster and whether they are alive, from heartbeats and time.
// A closed connection is only a hint (it makes a peer suspect at once); only silence past
// deadAfterMs makes it dead, and only deadness past removeAfterMs takes it off the ring.
import { vouchSorted } from './ring.js'
import type { Heartbeat, Load, MemberState } from './types.js'

export interface MembershipConfig {
  selfId: string
  suspectAfterMs: number
  deadAfterMs: number
  /** How long a dead peer stays on the ring (its ranges keep their replica sets). */
  removeAfterMs: number
}

export interface Member {
  peerId: string
  state: MemberState
  lastSeenMs: number
  stateSinceMs: number
  heartbeat: Heartbeat | null
  /** Whether the member counted on the ring at the last evaluation. */
  onRing: boolean
}

export const EMPTY_LOAD: Load = { running: 0, queued: 0, capacity: 0, durationMsEwma: 0 }

export interface MembershipChange {
  /** The set of ring members changed. */
  ring: boolean
  /** Some member's liveness changed. */
  liveness: boolean
}

export class Membership {
  readonly config: MembershipConfig
  readonly members = new Map<string, Member>()
  #lastTickMs: number | null = null
  /**
   * Why the two caches: a cluster of N nodes forming makes N^2 membership changes and N^2
   * ticks scan N members. Both are exact: ringMembers is sorted once per change of the ring
   * that the node takes up (at most once per tick; a new array each time, never changed after,
   * so rings built from it keep it uncopied), and
   * no member can change state before quietUntilMs (transitions only move later on a
   * heartbeat; anything else that could bring one earlier resets it).
   */
  #ringMembers: readonly string[] | null = null
  #quietUntilMs = -Infinity

  constructor (config: MembershipConfig, selfHeartbeat: Heartbeat, atMs: number) {
    this.config = config
    this.members.set(config.selfId, { peerId: config.selfId, state: 'alive', lastSeenMs: atMs, stateSinceMs: atMs, heartbeat: selfHeartbeat, onRing: true })
  }

  updateSelf (heartbeat: Heartbeat, atMs: number): void {
    const self = this.members.get(this.config.selfId)!
    self.heartbeat = heartbeat
    self.lastSeenMs = atMs
  }

  onHeartbeat (heartbeat: Heartbeat, atMs: number): MembershipChange {
    const existing = this.members.get(heartbeat.peerId)
    if (heartbeat.peerId === this.config.selfId) return { ring: false, liveness: false }
    const state: MemberState = heartbeat.left ? 'left' : 'alive'
    if (existing === undefined) {
      this.members.set(heartbeat.peerId, { peerId: heartbeat.peerId, state, lastSeenMs: atMs, stateSinceMs: atMs, heartbeat, onRing: state !== 'left' })
      this.#aliveCount = null
      this.#quietUntilMs = -Infinity
      if (state !== 'left') this.#ringMembers = null
      return { ring: state !== 'left', liveness: true }
    }
    // A heartbeat older than the newest seen (gossip reorders) must not revive state.
    if (existing.heartbeat !== null && heartbeat.sequence < existing.heartbeat.sequence &&
        existing.heartbeat.protocol === heartbeat.protocol) {
      return { ring: false, liveness: false }
    }
    const drainingChanged = existing.heartbeat?.leaving !== heartbeat.leaving
    existing.heartbeat = heartbeat
    existing.lastSeenMs = atMs
    if (existing.state === state) return { ring: false, liveness: drainingChanged }
    existing.state = state
    this.#aliveCount = null
    existing.stateSinceMs = atMs
    this.#quietUntilMs = -Infinity
    return { ring: this.#reevaluate(existing, atMs), liveness: true }
  }

  /**
   * A peer named in this node's own records (read back from disk after a restart) that it has
   * not heard yet: it counts on the ring as suspect, then dead and removed on the usual clock,
   * as it does for the members that never restarted. Why: a node that comes back inside a
   * partition would otherwise build its ring from the few peers it hears, and claim and hand
   * off by replica sets that nobody else uses.
   */
  onMentioned (peerId: string, atMs: number): MembershipChange {
    if (this.members.has(peerId)) return { ring: false, liveness: false }
    this.members.set(peerId, { peerId, state: 'suspect', lastSeenMs: atMs, stateSinceMs: atMs, heartbeat: null, onRing: true })
    this.#aliveCount = null
    this.#quietUntilMs = -Infinity
    this.#ringMembers = null
    return { ring: true, liveness: true }
  }

  /** A connection closed: a hint, not proof. */
  onDisconnected (peerId: string, atMs: number): MembershipChange {
    const member = this.members.get(peerId)
    if (member === undefined || member.state !== 'alive' || peerId === this.config.selfId) return { ring: false, liveness: false }
    member.state = 'suspect'
    this.#aliveCount = null
    member.stateSinceMs = atMs
    this.#quietUntilMs = -Infinity
    return { ring: false, liveness: true }
  }

  tick (atMs: number): MembershipChange {
    const change: MembershipChange = { ring: false, liveness: false }
    // A long gap between our own ticks means WE were paused (SIGSTOP, a stalled event loop):
    // the silence was ours, so shift everyone's last-seen time by the gap before judging them.
    const gapMs = this.#lastTickMs === null ? 0 : atMs - this.#lastTickMs
    this.#lastTickMs = atMs
    if (gapMs > this.config.suspectAfterMs) {
      for (const member of this.members.values()) if (member.state !== 'dead' && member.state !== 'left') member.lastSeenMs += gapMs
    }
    if (atMs < this.#quietUntilMs) return change
    let quietUntilMs = Infinity
    for (const member of this.members.values()) {
      if (member.peerId === this.config.selfId) continue
      const silentMs = atMs - member.lastSeenMs
      if (member.state === 'alive' && silentMs >= this.config.suspectAfterMs) {
        member.state = 'suspect'
        this.#aliveCount = null
        member.stateSinceMs = atMs
        change.liveness = true
      }
      if (member.state === 'suspect' && silentMs >= this.config.deadAfterMs) {
        member.state = 'dead'
        this.#aliveCount = null
        member.stateSinceMs = atMs
        change.liveness = true
      }
      if (this.#reevaluate(member, atMs)) change.ring = true
      quietUntilMs = Math.min(quietUntilMs, this.#nextChangeMs(member))
    }
    this.#quietUntilMs = quietUntilMs
    return change
  }

  /** The earliest time tick() could change this member, given no news of it. */
  #nextChangeMs (member: Member): number {
    if (member.state === 'alive') return member.lastSeenMs + this.config.suspectAfterMs
    if (member.state === 'suspect') return member.lastSeenMs + this.config.deadAfterMs
    if (member.state === 'dead' && member.onRing) return member.stateSinceMs + this.config.removeAfterMs
    return Infinity
  }

  /** Recompute member.onRing; true when it changed. */
  #reevaluate (member: Member, atMs: number): boolean {
    const onRing = this.#onRing(member, atMs)
    if (onRing === member.onRing) return false
    member.onRing = onRing
    this.#ringMembers = null
    return true
  }

  #onRing (member: Member, atMs: number): boolean {
    if (member.state === 'left') return false
    if (member.state === 'dead') return atMs - member.stateSinceMs < this.config.removeAfterMs
    return true
  }

  /** Sorted; shared, so a caller that wants to change it must copy it. */
  ringMembers (): readonly string[] {
    if (this.#ringMembers === null) {
      const members: string[] = []
      for (const member of this.members.values()) if (member.onRing) members.push(member.peerId)
      this.#ringMembers = vouchSorted(members.sort())
    }
    return this.#ringMembers
  }

  isAlive (peerId: string): boolean {
    return this.members.get(peerId)?.state === 'alive'
  }

  state (peerId: string): MemberState | undefined {
    return this.members.get(peerId)?.state
  }

  /** How many members (self included) are alive; counted on demand, cached until a change. */
  aliveCount (): number {
    if (this.#aliveCount === null) {
      let count = 0
      for (const member of this.members.values()) if (member.state === 'alive') count++
      this.#aliveCount = count
    }
    return this.#aliveCount
  }

  #aliveCount: number | null = null

  aliveMembers (): string[] {
    const alive: string[] = []
    for (const member of this.members.values()) if (member.state === 'alive') alive.push(member.peerId)
    return alive
  }

  /** Does any alive member (self included) advertise this task type? */
  anyCanRun (type: string): boolean {
    for (const member of this.members.values()) {
      if (member.state === 'alive' && member.heartbeat?.types.includes(type) === true) return true
    }
    return false
  }
}
