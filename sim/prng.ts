// prng.ts: a small seeded PRNG (mulberry32) for both simulators and the property tests: one
// seed draws a whole run (faults, durations, network), so it can be repeated exactly.
// Why not Math.random: a schedule worth keeping must be reproducible from the printed seed.

/** Numbers in [0, 1), the same sequence for the same seed. */
export function prng (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
