// agenda.ts: the virtual simulator's event queue, a binary min-heap on (atMs, order of
// scheduling). Ties in time go first-scheduled-first, so one seed gives one order of events.
// Why not src/core/heap.ts: at 1,000 nodes one heartbeat round puts a million events in the
// queue, and a comparison function that chases two objects per step was 40% of a run. Here
// the keys sit side by side in typed arrays and the events only move.

const CAPACITY_INITIAL = 1024

export class Agenda<T> {
  #atMs = new Float64Array(CAPACITY_INITIAL)
  #sequence = new Float64Array(CAPACITY_INITIAL)
  #items: Array<T | undefined> = new Array(CAPACITY_INITIAL)
  #size = 0
  #nextSequence = 0

  get size (): number { return this.#size }

  push (atMs: number, item: T): void {
    if (this.#size === this.#atMs.length) this.#grow()
    const times = this.#atMs
    const sequences = this.#sequence
    const items = this.#items
    const sequence = this.#nextSequence++
    let hole = this.#size++
    while (hole > 0) {
      const parent = (hole - 1) >> 1
      const parentAtMs = times[parent]!
      if (parentAtMs < atMs || (parentAtMs === atMs && sequences[parent]! < sequence)) break
      times[hole] = parentAtMs
      sequences[hole] = sequences[parent]!
      items[hole] = items[parent]
      hole = parent
    }
    times[hole] = atMs
    sequences[hole] = sequence
    items[hole] = item
  }

  pop (): T | undefined {
    if (this.#size === 0) return undefined
    const times = this.#atMs
    const sequences = this.#sequence
    const items = this.#items
    const top = items[0]
    const last = --this.#size
    const atMs = times[last]!
    const sequence = sequences[last]!
    const item = items[last]
    items[last] = undefined
    if (last === 0) return top
    let hole = 0
    for (;;) {
      let child = 2 * hole + 1
      if (child >= last) break
      const right = child + 1
      if (right < last && (times[right]! < times[child]! || (times[right] === times[child] && sequences[right]! < sequences[child]!))) child = right
      const childAtMs = times[child]!
      if (atMs < childAtMs || (atMs === childAtMs && sequence < sequences[child]!)) break
      times[hole] = childAtMs
      sequences[hole] = sequences[child]!
      items[hole] = items[child]
      hole = child
    }
    times[hole] = atMs
    sequences[hole] = sequence
    items[hole] = item
    return top
  }

  #grow (): void {
    const capacity = this.#atMs.length * 2
    const times = new Float64Array(capacity)
    times.set(this.#atMs)
    const sequences = new Float64Array(capacity)
    sequences.set(this.#sequence)
    this.#atMs = times
    this.#sequence = sequences
    this.#items.length = capacity
  }
}
