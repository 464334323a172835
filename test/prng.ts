// prng.ts: the simulator's seeded PRNG, so property tests replay exactly.
export { prng } from '../sim/prng.js'
