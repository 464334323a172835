// virtual-schedules.ts: schedules in the deterministic simulator, and how their occurrences are
// judged (invariant 3: each occurrence exists at most once, and exactly once while the cluster
// is up). Occurrence ids are `<schedule>@<tick>`, so "at most once" is about ticks that should
// not exist (off the schedule, or after its deletion) and "exactly once" about ticks with none.
import { nextTick } from '../src/core/schedule.js'
import type { ScheduleSpec, TaskRecord } from '../src/core/types.js'
import { checkSchedule } from './checkers.js'

/** The schedules a run creates, in turn: two intervals and a 6-field cron, all catching up every tick. */
export const scheduleSpecs: ScheduleSpec[] = [
  { cron: null, timezone: null, everyMs: 1000, catchUp: 'all', overlap: 'allow' },
  { cron: '*/3 * * * * *', timezone: 'Europe/Berlin', everyMs: null, catchUp: 'all', overlap: 'allow' },
  { cron: null, timezone: null, everyMs: 2500, catchUp: 'all', overlap: 'allow' }
]

/** Clock skew between simulated nodes is at most ±200 ms; a tick fired just before a delete may be that far ahead. */
const SKEW_MS = 400

export interface ScheduleRunReport {
  schedules: number
  /** Ticks that had to have an occurrence (from the schedule's start to the healing). */
  expected: number
  occurrences: number
  /** Occurrences of ticks the schedule does not have, or after its deletion. */
  extra: number
  /** Expected ticks without an occurrence. */
  missed: number
  problems: Array<{ schedule: string, detail: string }>
}

export function judgeSchedules (
  schedules: Array<{ id: string, record: TaskRecord | null, owesTicks: boolean, deletedAtMs: number | null }>,
  occurrenceIds: string[],
  healAtMs: number
): ScheduleRunReport {
  const report: ScheduleRunReport = { schedules: schedules.length, expected: 0, occurrences: 0, extra: 0, missed: 0, problems: [] }
  for (const { id, record, owesTicks, deletedAtMs } of schedules) {
    const ticks = occurrenceIds.filter(occurrence => occurrence.startsWith(`${id}@`)).map(occurrence => Date.parse(occurrence.slice(id.length + 1)))
    report.occurrences += ticks.length
    const spec = record?.schedule ?? null
    if (record === null || spec === null) {
      if (ticks.length > 0) report.problems.push({ schedule: id, detail: `${ticks.length} occurrences of a schedule that was never accepted` })
      report.extra += ticks.length
      continue
    }
    // Every tick of the schedule up to its deletion may exist; up to the healing, each must.
    const possible = new Set<number>()
    const expected: number[] = []
    const end = (deletedAtMs ?? healAtMs) + SKEW_MS
    for (let tick = nextTick(spec, record.runAtMs, record.runAtMs); tick !== null && tick <= end; tick = nextTick(spec, record.runAtMs, tick)) {
      possible.add(tick)
      if (tick <= healAtMs && owesTicks) expected.push(tick)
    }
    const extra = ticks.filter(tick => !possible.has(tick))
    const { missed } = checkSchedule({ expected, actual: ticks, toleranceMs: 0 })
    report.expected += expected.length
    report.extra += extra.length
    report.missed += missed.length
    if (extra.length > 0) report.problems.push({ schedule: id, detail: `occurrences at ${extra.map(tick => new Date(tick).toISOString()).join(', ')} are not ticks of the schedule before its deletion` })
    if (missed.length > 0) report.problems.push({ schedule: id, detail: `no occurrence for ${missed.length} ticks, first ${new Date(missed[0]!).toISOString()}` })
  }
  return report
}
