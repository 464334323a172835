// fault-gate.ts: a userland network fault layer for testing (the kernel here has no netem).
// Why in the runtime: a partition must cut both the direct streams and the gossip that a third
// node relays, so messages are judged by their origin peer, where they enter and leave the
// node. Off unless a node is started with --fault-injection; the local simulator drives it
// through POST /v1/debug/faults.

export interface FaultConfig {
  /** Peer ids this node neither hears nor reaches (one side of a partition). */
  block: string[]
  /** Extra delay of every outgoing message, ms. */
  delayMs: number
  /** Fraction of messages (in and out) dropped at random. */
  lossRate: number
}

export const NO_FAULTS: FaultConfig = { block: [], delayMs: 0, lossRate: 0 }

export class FaultGate {
  #blocked = new Set<string>()
  #config: FaultConfig = NO_FAULTS
  dropped = 0

  set (config: FaultConfig): void {
    this.#config = { block: [...config.block], delayMs: config.delayMs, lossRate: config.lossRate }
    this.#blocked = new Set(config.block)
  }

  get config (): FaultConfig {
    return this.#config
  }

  get delayMs (): number {
    return this.#config.delayMs
  }

  /** Does a message from (or to) this peer get through? */
  passes (peer: string): boolean {
    if (this.#blocked.has(peer) || (this.#config.lossRate > 0 && Math.random() < this.#config.lossRate)) {
      this.dropped++
      return false
    }
    return true
  }
}
