// shell.ts: the `shell` executor — one child process per attempt, in its own process group.
// Why a process group: `sh -c 'a | b'` and scripts that start children must die whole on
// timeout or cancel, so the child is spawned detached and killed by negative pid.
import { spawn } from 'node:child_process'
import { stat } from 'node:fs/promises'
import { StringDecoder } from 'node:string_decoder'
import { abortMessage } from './abort.js'
import type { ExecutionOutcome } from './types.js'

/** A validated shell payload: exactly one of argv / cmd. */
export type ShellPayload =
  | { argv: string[], cmd?: undefined, cwd?: string, env?: Record<string, string> }
  | { cmd: string, argv?: undefined, cwd?: string, env?: Record<string, string> }

export interface ShellResult {
  /** null when the process was ended by a signal. */
  exitCode: number | null
  signal: string | null
  stdout: string
  stderr: string
  /** Present when stdout or stderr was cut at outputBytesMax (the first bytes are kept). */
  truncated?: true
}

export interface ShellOptions {
  /** Per-stream cap on captured output; default 64 KiB. */
  outputBytesMax?: number
  /** Time between SIGTERM and SIGKILL of the group on abort; default 250 ms. */
  killGraceMs?: number
  /** After the leader exits, how long to wait for the pipes to close before giving up; default 2 s. */
  closeWaitMs?: number
}

// Limits on the payload (every field that grows with input is bounded).
export const shellArgvItemsMax = 4096
export const shellArgBytesMax = 128 * 1024
export const shellArgvBytesMax = 1024 * 1024
export const shellCmdBytesMax = 128 * 1024
export const shellCwdBytesMax = 4096
export const shellEnvEntriesMax = 1024
export const shellEnvValueBytesMax = 128 * 1024

const outputBytesMaxDefault = 64 * 1024
const killGraceMsDefault = 250
const closeWaitMsDefault = 2000
const fields = new Set(['argv', 'cmd', 'cwd', 'env'])

type Parsed<T> = { ok: true, value: T } | { ok: false, error: string }

/** Strict validation; the error names the offending field. */
export function parseShellPayload (payload: unknown): Parsed<ShellPayload> {
  const invalid = (field: string, why: string): Parsed<ShellPayload> => ({ ok: false, error: `invalid shell payload: ${field} ${why}` })
  if (!isPlainObject(payload)) return invalid('payload', 'must be an object with argv or cmd')
  for (const key of Object.keys(payload)) {
    if (!fields.has(key)) return invalid(key, 'is not a known field (argv, cmd, cwd, env)')
  }
  const { argv, cmd, cwd, env } = payload
  if (argv !== undefined && cmd !== undefined) return invalid('argv', 'and cmd are exclusive: give exactly one')
  if (argv === undefined && cmd === undefined) return invalid('argv', 'or cmd is required')

  let command: { argv: string[] } | { cmd: string }
  if (argv !== undefined) {
    if (!Array.isArray(argv)) return invalid('argv', 'must be an array of strings')
    if (argv.length === 0) return invalid('argv', 'must not be empty')
    if (argv.length > shellArgvItemsMax) return invalid('argv', `has more than ${shellArgvItemsMax} items`)
    let total = 0
    for (let i = 0; i < argv.length; i++) {
      const item: unknown = argv[i]
      if (typeof item !== 'string') return invalid(`argv[${i}]`, 'must be a string')
      if (item.includes('\0')) return invalid(`argv[${i}]`, 'must not contain NUL')
      const bytes = Buffer.byteLength(item)
      if (bytes > shellArgBytesMax) return invalid(`argv[${i}]`, `is longer than ${shellArgBytesMax} bytes`)
      total += bytes
    }
    if (argv[0] === '') return invalid('argv[0]', 'must not be empty')
    if (total > shellArgvBytesMax) return invalid('argv', `is longer than ${shellArgvBytesMax} bytes in total`)
    command = { argv: [...argv] as string[] }
  } else {
    if (typeof cmd !== 'string') return invalid('cmd', 'must be a string')
    if (cmd.trim() === '') return invalid('cmd', 'must not be empty')
    if (cmd.includes('\0')) return invalid('cmd', 'must not contain NUL')
    if (Buffer.byteLength(cmd) > shellCmdBytesMax) return invalid('cmd', `is longer than ${shellCmdBytesMax} bytes`)
    command = { cmd }
  }

  const value: Record<string, unknown> = { ...command }
  if (cwd !== undefined) {
    if (typeof cwd !== 'string' || cwd === '') return invalid('cwd', 'must be a non-empty string')
    if (cwd.includes('\0')) return invalid('cwd', 'must not contain NUL')
    if (Buffer.byteLength(cwd) > shellCwdBytesMax) return invalid('cwd', `is longer than ${shellCwdBytesMax} bytes`)
    value.cwd = cwd
  }
  if (env !== undefined) {
    if (!isPlainObject(env)) return invalid('env', 'must be an object of strings')
    const entries = Object.entries(env)
    if (entries.length > shellEnvEntriesMax) return invalid('env', `has more than ${shellEnvEntriesMax} entries`)
    const copy: Record<string, string> = {}
    for (const [name, text] of entries) {
      if (name === '' || name.includes('=') || name.includes('\0')) return invalid(`env.${name}`, 'is not a valid variable name')
      if (typeof text !== 'string') return invalid(`env.${name}`, 'must be a string')
      if (text.includes('\0')) return invalid(`env.${name}`, 'must not contain NUL')
      if (Buffer.byteLength(text) > shellEnvValueBytesMax) return invalid(`env.${name}`, `is longer than ${shellEnvValueBytesMax} bytes`)
      copy[name] = text
    }
    value.env = copy
  }
  return { ok: true, value: value as ShellPayload }
}

/**
 * Run one shell attempt. Never rejects. On abort the whole process group gets SIGTERM,
 * then SIGKILL after killGraceMs; the outcome is reported once the leader has exited.
 * When the leader exits on its own, what is left of its group is killed too:
 * a task's processes do not outlive it.
 */
export async function runShell (payload: unknown, signal: AbortSignal, options: ShellOptions = {}): Promise<ExecutionOutcome> {
  const parsed = parseShellPayload(payload)
  if (!parsed.ok) return parsed
  const { value } = parsed
  if (signal.aborted) return { ok: false, error: abortMessage(signal.reason) }

  if (value.cwd !== undefined) {
    // Checked here because spawn reports a missing cwd as ENOENT of the command, which misleads.
    const info = await stat(value.cwd).catch(() => undefined)
    if (info === undefined || !info.isDirectory()) return { ok: false, error: `cwd is not a directory: ${value.cwd}` }
    if (signal.aborted) return { ok: false, error: abortMessage(signal.reason) }
  }

  const file = value.argv !== undefined ? value.argv[0] : '/bin/sh'
  const args = value.argv !== undefined ? value.argv.slice(1) : ['-c', value.cmd]
  return await new Promise<ExecutionOutcome>(resolve => {
    spawnAndWait(file, args, value, signal, options, resolve)
  })
}

function spawnAndWait (file: string, args: string[], value: ShellPayload, signal: AbortSignal, options: ShellOptions,
  resolve: (outcome: ExecutionOutcome) => void): void {
  const outputBytesMax = options.outputBytesMax ?? outputBytesMaxDefault
  const killGraceMs = options.killGraceMs ?? killGraceMsDefault
  const closeWaitMs = options.closeWaitMs ?? closeWaitMsDefault
  const stdout = new Capture(outputBytesMax)
  const stderr = new Capture(outputBytesMax)
  let settled = false
  let aborted = false
  let killTimer: NodeJS.Timeout | undefined
  let closeTimer: NodeJS.Timeout | undefined
  let exit: { code: number | null, signal: string | null } | undefined

  let child: ReturnType<typeof spawn>
  try {
    child = spawn(file, args, {
      cwd: value.cwd,
      env: value.env !== undefined ? { ...process.env, ...value.env } : process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      windowsHide: true
    })
  } catch (err) {
    resolve({ ok: false, error: `spawn failed: ${errorText(err)}` })
    return
  }

  const killGroup = (name: NodeJS.Signals): void => {
    if (child.pid === undefined) return
    try {
      process.kill(-child.pid, name)
    } catch {
      // ESRCH: the whole group is already gone.
    }
  }
  const onAbort = (): void => {
    if (exit !== undefined || settled) return
    aborted = true
    killGroup('SIGTERM')
    killTimer = setTimeout(() => killGroup('SIGKILL'), killGraceMs)
    killTimer.unref()
  }
  const finish = (outcome: ExecutionOutcome): void => {
    if (settled) return
    settled = true
    signal.removeEventListener('abort', onAbort)
    if (closeTimer !== undefined) clearTimeout(closeTimer)
    // The kill timer stays armed on purpose: a group member that ignores SIGTERM still gets SIGKILL.
    resolve(outcome)
  }
  const report = (): void => {
    const exitCode = exit?.code ?? null
    const exitSignal = exit?.signal ?? null
    const result: ShellResult = { exitCode, signal: exitSignal, stdout: stdout.text(), stderr: stderr.text() }
    if (stdout.truncated || stderr.truncated) result.truncated = true
    if (aborted) finish({ ok: false, error: abortMessage(signal.reason), result })
    else if (exitCode === 0) finish({ ok: true, result })
    else if (exitCode !== null) finish({ ok: false, error: `exit code ${exitCode}`, result })
    else finish({ ok: false, error: `killed by ${exitSignal ?? 'a signal'}`, result })
  }

  child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk))
  child.on('error', err => {
    // Spawn failures (ENOENT, EACCES) come here with no pid and no 'exit'.
    if (child.pid === undefined) finish({ ok: false, error: spawnErrorText(file, err) })
  })
  child.on('exit', (code, exitSignal) => {
    exit = { code, signal: exitSignal }
    if (!aborted) killGroup('SIGKILL') // leftovers of a finished task
    // Wait for the pipes to drain; a process that left the group may hold them open forever.
    closeTimer = setTimeout(() => {
      child.stdout?.destroy()
      child.stderr?.destroy()
      report()
    }, closeWaitMs)
    closeTimer.unref()
  })
  child.on('close', () => {
    if (exit !== undefined) report()
  })

  if (signal.aborted) onAbort()
  else signal.addEventListener('abort', onAbort, { once: true })
}

/** Keeps the first `bytesMax` bytes of a stream and drops the rest (still draining the pipe). */
class Capture {
  readonly #bytesMax: number
  readonly #chunks: Buffer[] = []
  #bytes = 0
  truncated = false

  constructor (bytesMax: number) {
    this.#bytesMax = bytesMax
  }

  push (chunk: Buffer): void {
    const room = this.#bytesMax - this.#bytes
    if (chunk.length > room) this.truncated = true
    if (room <= 0) return
    const kept = chunk.length > room ? chunk.subarray(0, room) : chunk
    this.#chunks.push(kept)
    this.#bytes += kept.length
  }

  text (): string {
    const all = Buffer.concat(this.#chunks)
    if (!this.truncated) return all.toString('utf8')
    // write() without end() holds back a UTF-8 sequence cut in the middle.
    return new StringDecoder('utf8').write(all)
  }
}

function spawnErrorText (file: string, err: Error): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return `command not found: ${file} (ENOENT)`
  if (code === 'EACCES') return `permission denied: ${file} (EACCES)`
  return `spawn failed: ${file}: ${err.message}`
}

function errorText (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
