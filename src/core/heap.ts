// heap.ts: a binary min-heap ordered by a comparison function. Used for timers and queues.
// Why holes instead of swaps: the node pushes a timer or two per task and message, and a
// destructuring swap allocates an array per level; moving the hole allocates nothing.
export class Heap<T> {
  readonly #items: T[] = []
  readonly #less: (a: T, b: T) => boolean

  constructor (less: (a: T, b: T) => boolean) {
    this.#less = less
  }

  get size (): number { return this.#items.length }

  peek (): T | undefined { return this.#items[0] }

  push (item: T): void {
    const items = this.#items
    let hole = items.length
    items.push(item)
    while (hole > 0) {
      const parent = (hole - 1) >> 1
      const above = items[parent]!
      if (!this.#less(item, above)) break
      items[hole] = above
      hole = parent
    }
    items[hole] = item
  }

  pop (): T | undefined {
    const items = this.#items
    if (items.length === 0) return undefined
    const top = items[0]!
    const last = items.pop()!
    const length = items.length
    if (length === 0) return top
    let hole = 0
    for (;;) {
      const left = 2 * hole + 1
      if (left >= length) break
      const right = left + 1
      const child = right < length && this.#less(items[right]!, items[left]!) ? right : left
      if (!this.#less(items[child]!, last)) break
      items[hole] = items[child]!
      hole = child
    }
    items[hole] = last
    return top
  }
}
