// handlers.ts: load the named task handlers of `--handlers <module>` (or an object of functions).
// Every exported function becomes a task type of that name.
import { access } from 'node:fs/promises'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Handler } from './types.js'

/** Types served by built-in executors; a handler may not take them. */
export const reservedTypes: readonly string[] = ['shell', 'http']

/** Thrown when a handlers module cannot be loaded or breaks the rules above. */
export class HandlersLoadError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'HandlersLoadError'
  }
}

/**
 * A path is resolved against process.cwd() (absolute paths as they are) and imported.
 * Exported functions become handlers by export name; other exports are ignored. A `default`
 * export counts only when it is an object: its function properties are merged in
 * (named exports win on a clash).
 */
export async function loadHandlers (spec: string | Record<string, Handler> | undefined): Promise<Record<string, Handler>> {
  if (spec === undefined) return {}
  if (typeof spec === 'string') return await loadModule(spec)
  if (typeof spec !== 'object' || spec === null) throw new HandlersLoadError('handlers must be a module path or an object of functions')
  return pickFunctions(spec, 'the handlers object')
}

async function loadModule (spec: string): Promise<Record<string, Handler>> {
  if (spec.trim() === '') throw new HandlersLoadError('handlers module path is empty')
  const path = resolve(process.cwd(), spec)
  try {
    await access(path)
  } catch {
    throw new HandlersLoadError(`handlers module not found: ${path}`)
  }
  let namespace: Record<string, unknown>
  try {
    namespace = await import(pathToFileURL(path).href) as Record<string, unknown>
  } catch (err) {
    throw new HandlersLoadError(`failed to load handlers module ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  const origin = `handlers module ${path}`
  const named: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(namespace)) {
    if (name !== 'default') named[name] = value
  }
  const fromDefault = isObject(namespace.default) ? pickFunctions(namespace.default, origin) : {}
  return { ...fromDefault, ...pickFunctions(named, origin) }
}

function pickFunctions (source: object, origin: string): Record<string, Handler> {
  const handlers: Record<string, Handler> = {}
  for (const [name, value] of Object.entries(source)) {
    if (typeof value !== 'function') continue
    if (reservedTypes.includes(name)) {
      throw new HandlersLoadError(`${origin} exports "${name}", a reserved task type (built-in executor); rename it`)
    }
    handlers[name] = value as Handler
  }
  return handlers
}

function isObject (value: unknown): value is object {
  return typeof value === 'object' && value !== null
}
