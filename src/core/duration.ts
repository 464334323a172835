// duration.ts: durations as users write them (`250ms`, `5s`, `1.5m`, `1h`, `1d`, or a
// number of milliseconds) to whole milliseconds, and back for messages.
// Pure: no clock, no I/O. Why here: the API edge, the CLI and the core speak the same units.

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
type Unit = keyof typeof UNIT_MS

// A number with an optional fraction, then an optional unit (none = milliseconds, as in
// the contract's "durations accept ms numbers"). No sign, no exponent, no spaces.
const DURATION = /^(\d{1,15}(?:\.\d{1,9})?)(ms|s|m|h|d)?$/

/**
 * A non-negative finite number of milliseconds, or a string like `250ms`, `5s`, `2m`, `1h`,
 * `1d` (decimals allowed: `1.5s`; a bare `250` is milliseconds), rounded to whole
 * milliseconds. Anything else, and anything beyond Number.MAX_SAFE_INTEGER ms, is null.
 */
export function parseDurationMs (value: unknown): number | null {
  let ms: number
  if (typeof value === 'number') {
    ms = value
  } else if (typeof value === 'string') {
    const match = DURATION.exec(value)
    if (match === null) return null
    ms = Number(match[1]) * UNIT_MS[(match[2] ?? 'ms') as Unit]
  } else {
    return null
  }
  if (!Number.isFinite(ms) || ms < 0) return null
  const rounded = Math.round(ms)
  return rounded <= Number.MAX_SAFE_INTEGER ? rounded : null
}

const UNITS_DESCENDING: Array<[Unit, number]> = [['d', UNIT_MS.d], ['h', UNIT_MS.h], ['m', UNIT_MS.m], ['s', UNIT_MS.s]]

/** `1500` → `1.5s`, `60000` → `1m`, `250` → `250ms`; at most two decimals. */
export function formatDurationMs (ms: number): string {
  if (!Number.isFinite(ms)) return String(ms)
  const sign = ms < 0 ? '-' : ''
  const magnitude = Math.abs(ms)
  for (const [unit, unitMs] of UNITS_DESCENDING) {
    if (magnitude >= unitMs) return sign + trimDecimals(magnitude / unitMs) + unit
  }
  return sign + trimDecimals(magnitude) + 'ms'
}

function trimDecimals (value: number): string {
  return String(Math.round(value * 100) / 100)
}
