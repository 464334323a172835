// schedule.ts: the ticks of a schedule (cron expression in a time zone, or a fixed interval).
// Why here: the core decides which ticks are due, so it must compute them from the record
// alone; croner does the calendar work (time zones, DST, 5 or 6 fields) as a pure function of
// the time it is given.
import { Cron } from 'croner'
import type { ScheduleSpec } from './types.js'

/** Most ticks computed in one call (a long outage with catch-up `all` fires them over several calls). */
export const TICKS_PER_CALL_MAX = 1_000

const crons = new Map<string, Cron>()

function cronOf (spec: ScheduleSpec): Cron {
  const key = `${spec.timezone ?? ''}|${spec.cron!}`
  let cron = crons.get(key)
  if (cron === undefined) {
    // No time zone means UTC (types.ts), never the node's local zone: nodes may disagree on it.
    cron = new Cron(spec.cron!, { paused: true, mode: '5-or-6-parts', timezone: spec.timezone ?? 'UTC' })
    if (crons.size > 10_000) crons.clear()
    crons.set(key, cron)
  }
  return cron
}

/**
 * The first tick strictly after `afterMs`, or null if there is none (a cron expression that
 * never fires again). `anchorMs` is where an interval schedule's ticks are counted from.
 */
export function nextTick (spec: ScheduleSpec, anchorMs: number, afterMs: number): number | null {
  if (spec.everyMs !== null) {
    const k = Math.max(0, Math.floor((afterMs - anchorMs) / spec.everyMs)) + 1
    return anchorMs + k * spec.everyMs
  }
  if (spec.cron === null) return null
  try {
    const next = cronOf(spec).nextRun(new Date(afterMs))
    return next === null ? null : next.getTime()
  } catch {
    return null
  }
}

export interface DueTicks {
  /** The oldest due tick. */
  first: number
  /** The newest due tick found (the real newest unless `capped`). */
  latest: number
  /** How many ticks are due from first to latest. */
  count: number
  /** More than TICKS_PER_CALL_MAX cron ticks are due: `latest` is only as far as the search went. */
  capped: boolean
}

/** The ticks in (afterMs, nowMs], or null when none is due. */
export function dueTicks (spec: ScheduleSpec, anchorMs: number, afterMs: number, nowMs: number): DueTicks | null {
  const first = nextTick(spec, anchorMs, afterMs)
  if (first === null || first > nowMs) return null
  if (spec.everyMs !== null) {
    // An interval's ticks are arithmetic: no need to walk them.
    const latest = anchorMs + Math.floor((nowMs - anchorMs) / spec.everyMs) * spec.everyMs
    return { first, latest, count: Math.round((latest - first) / spec.everyMs) + 1, capped: false }
  }
  let latest = first
  let count = 1
  while (count < TICKS_PER_CALL_MAX) {
    const next = nextTick(spec, anchorMs, latest)
    if (next === null || next > nowMs) return { first, latest, count, capped: false }
    latest = next
    count++
  }
  return { first, latest, count, capped: true }
}

/** The deterministic id of the occurrence a schedule fires at `tickMs`. */
export function occurrenceId (scheduleId: string, tickMs: number): string {
  return `${scheduleId}@${new Date(tickMs).toISOString()}`
}
