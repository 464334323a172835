// log.ts: structured transition events, one JSON line each on stderr.
// The same stream is the debug log at run time and the trace of a simulated run.
import type { LogLevel } from './options.js'

export interface Logger {
  debug (event: string, fields?: Record<string, unknown>): void
  info (event: string, fields?: Record<string, unknown>): void
  warn (event: string, fields?: Record<string, unknown>): void
  error (event: string, fields?: Record<string, unknown>): void
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export function createLogger (level: LogLevel, base: Record<string, unknown> = {}, write: (line: string) => void = line => process.stderr.write(line + '\n')): Logger {
  const threshold = RANK[level]
  const emit = (levelName: Exclude<LogLevel, 'silent'>, event: string, fields?: Record<string, unknown>): void => {
    if (RANK[levelName] < threshold) return
    let line: string
    try {
      line = JSON.stringify({ t: new Date().toISOString(), level: levelName, event, ...base, ...fields }, errorReplacer)
    } catch {
      line = JSON.stringify({ t: new Date().toISOString(), level: levelName, event, note: 'unserializable fields' })
    }
    write(line)
  }
  return {
    debug: (event, fields) => emit('debug', event, fields),
    info: (event, fields) => emit('info', event, fields),
    warn: (event, fields) => emit('warn', event, fields),
    error: (event, fields) => emit('error', event, fields)
  }
}

function errorReplacer (_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message }
  if (typeof value === 'bigint') return value.toString()
  return value
}

export const silentLogger: Logger = createLogger('silent')
