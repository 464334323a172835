// hash.ts: positions in the 256-bit SHA-256 keyspace (the one kad-dht uses).
// Why only 52 bits: ring arithmetic on the top 52 bits fits a JS number exactly; with
// ~100 positions per peer, a collision in 2^52 is vanishingly rare and merely shifts one arc.
import { sha256 } from '@noble/hashes/sha2.js'

const encoder = new TextEncoder()

/** Size of the position space: positions are integers in [0, KEYSPACE). */
export const KEYSPACE = 2 ** 52

export function sha256Bytes (text: string): Uint8Array {
  return sha256(encoder.encode(text))
}

/**
 * Positions already computed. Every replica, the coordinator and every ring build hash the same
 * ids again; a pure function memoized, bounded (cleared when full), so results never depend on it.
 */
const POSITIONS_CACHED_MAX = 1 << 20
const positions = new Map<string, number>()

/** The top 52 bits of sha256(text) as an integer in [0, 2^52). */
export function keyPosition (text: string): number {
  let position = positions.get(text)
  if (position !== undefined) return position
  const digest = sha256Bytes(text)
  // 6 whole bytes = 48 bits, then the high nibble of the 7th byte.
  position = 0
  for (let i = 0; i < 6; i++) position = position * 256 + digest[i]!
  position = position * 16 + (digest[6]! >> 4)
  if (positions.size >= POSITIONS_CACHED_MAX) positions.clear()
  positions.set(text, position)
  return position
}

export function toHex (bytes: Uint8Array): string {
  let hex = ''
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0')
  return hex
}
