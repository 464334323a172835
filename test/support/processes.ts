// processes.ts: real `taskmesh start` child processes for integration tests.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Client } from '../../src/api/client.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')
export const BIN = join(root, 'bin', 'taskmesh')
export const HANDLERS = join(root, 'dist', 'sim', 'handlers.js')

export async function tempDir (prefix: string): Promise<string> {
  return await mkdtemp(join(tmpdir(), `taskmesh-${prefix}-`))
}

/** Log lines kept per node process (the newest). */
const OUTPUT_LINES_MAX = 20_000

/** `taskmesh start` arguments of test node `index` in `dir` (its data folder, loopback, the swarm key there). */
export function loopbackNodeArgs (dir: string, index: number, bootstrap: string[], extra: string[] = []): string[] {
  return [
    '--data', join(dir, `node-${index}`), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0',
    '--swarm-key', join(dir, 'swarm.key'), '--handlers', HANDLERS, '--allow-exec', '--log-level', 'warn',
    ...extra, ...bootstrap.flatMap(addr => ['--bootstrap', addr])
  ]
}

export interface NodeProcess {
  peerId: string
  api: string
  addrs: string[]
  args: string[]
  process: ChildProcess
  client: Client
  output: string[]
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

/** Start `taskmesh start <args>` and resolve once it printed its ready line. */
export async function spawnNode (args: string[], timeoutMs = 30_000): Promise<NodeProcess> {
  const child = spawn(process.execPath, [BIN, 'start', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const output: string[] = []
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>(resolve => child.once('exit', (code, signal) => resolve({ code, signal })))
  createInterface({ input: child.stderr! }).on('line', line => { output.push(line); if (output.length > OUTPUT_LINES_MAX) output.shift() })
  const ready = await new Promise<{ peerId: string, addrs: string[], api: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start in ${timeoutMs} ms:\n${output.slice(-20).join('\n')}`)), timeoutMs)
    createInterface({ input: child.stdout! }).on('line', line => {
      if (!line.startsWith('taskmesh ready ')) return
      clearTimeout(timer)
      resolve(JSON.parse(line.slice('taskmesh ready '.length)))
    })
    void exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`node exited (${code ?? signal}) before ready:\n${output.slice(-20).join('\n')}`)) })
  })
  return { ...ready, args, process: child, client: new Client(ready.api), output, exited }
}

/** SIGTERM (drain) then SIGKILL after graceMs. */
export async function stopNode (node: NodeProcess, graceMs = 15_000): Promise<void> {
  if (node.process.exitCode !== null || node.process.signalCode !== null) return
  try { node.process.kill('SIGCONT') } catch {}
  node.process.kill('SIGTERM')
  const timer = setTimeout(() => { try { node.process.kill('SIGKILL') } catch {} }, graceMs)
  await node.exited
  clearTimeout(timer)
}

export async function until<T> (what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError !== undefined ? `: ${String(lastError)}` : ''}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

/** Every node is healthy and sees `count` alive members. */
export async function untilFormed (nodes: NodeProcess[], count = nodes.length, timeoutMs = 30_000): Promise<void> {
  const describe = async (): Promise<string> => (await Promise.all(nodes.map(async node => {
    try {
      const view = await node.client.cluster()
      return `${node.peerId.slice(-6)} healthy=${String(await node.client.health())} sees ${view.members.map(member => `${member.peerId.slice(-6)}:${member.state}`).join(',')}`
    } catch (error) { return `${node.peerId.slice(-6)}: ${String(error)}` }
  }))).join('; ')
  await until(`a cluster of ${count}`, async () => {
    for (const node of nodes) {
      if (!(await node.client.health())) return false
      const view = await node.client.cluster()
      if (view.members.filter(member => member.state === 'alive').length !== count) return false
    }
    return true
  }, timeoutMs).catch(async (error: Error) => { throw new Error(`${error.message}: ${await describe()}`) })
}

/** A raw HTTP request (for bad-input tests the client would refuse to send). */
export async function rawRequest (url: string, init: RequestInit): Promise<{ status: number, body: any }> {
  const response = await fetch(url, init)
  const text = await response.text()
  let body: any = text
  try { body = JSON.parse(text) } catch {}
  return { status: response.status, body }
}
