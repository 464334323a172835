// local.ts: `taskmesh sim`, the local cluster simulator. Starts N real nodes (`taskmesh start`
// child processes on loopback, each with its own data folder), runs a workload of `simwork`
// tasks against them while a fault schedule kills, pauses, slows and restarts nodes, waits for
// every accepted task to finish (bounded), then reports: accepted, completed, lost, duplicated,
// unexpected, throughput, latency, failover times, load per node, as a table, JSON and HTML.
// Why real processes: the deterministic simulator (sim/virtual.ts) checks the core; this one
// checks what only the real stack shows: libp2p, level, signals, restarts from disk.
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PublicRecord } from '../src/api/present.js'
import { formatDurationMs } from '../src/core/duration.js'
import { formatFault, formatFaults, faultSteps, faultsOverAtMs, pausedSide, FAULT_LIMITS, type Fault, type FaultStep } from './faults.js'
import { LocalNodes } from './nodes.js'
import { prng } from './prng.js'
import { buildReport, renderHtml, renderTable, type FaultWindow, type RunData, type SimReport, type TimelineEntry } from './report.js'
import { formatDurationSpec, Workload, type DurationSpec } from './workload.js'

export interface LocalSimOptions {
  nodes: number
  replicas: number
  /** Concurrent tasks per node; undefined keeps the node's default. */
  capacity?: number
  tasks: number
  /** Tasks per second; null = as fast as the nodes accept. */
  ratePerSecond: number | null
  duration: DurationSpec
  faults: Fault[]
  randomFaults: boolean
  seed: number
  /** How long to wait, after the workload and the last fault, for every accepted task to finish. */
  settleMs: number
  jsonFile?: string
  htmlFile?: string
  /** Keep the run's folder (data, node logs, execution log) instead of deleting it. */
  keep: boolean
}

export interface SimIo {
  stdout (text: string): void
  stderr (text: string): void
  /** Progress redraws one line with \r on a terminal, else prints a line every 2 s. */
  stderrIsTty: boolean
  /** The terminal's width: a longer progress line is cut (it would wrap and break the redraw). */
  columns?: number
}

const TERMINAL: ReadonlySet<string> = new Set(['succeeded', 'dead', 'cancelled'])
const HANDLERS = fileURLToPath(new URL('./handlers.js', import.meta.url))
const PROGRESS_TTY_MS = 250
const PROGRESS_LINE_MS = 2000
const LOG_POLL_MS = 250
const SETTLE_POLL_MS = 1000
/** Below this many unfinished tasks, read each one (a merged read); above, list them all. */
const SETTLE_READ_EACH_MAX = 200
const READS_PARALLEL_MAX = 16
/** After Ctrl-C, how long to look at the records before stopping the nodes. */
const INTERRUPTED_COLLECT_MS = 5000
const LIST_PAGE = 1000
/** A half of each slow-node period stopped, the other half running. */
const SLOW_STOPPED_MS = FAULT_LIMITS.slowPeriodMs / 2
/** How long a killed node's restart may take to become healthy. */
const RESTART_TIMEOUT_MS = 60_000

/** Runs one simulation; answers the exit code: 0 nothing lost, 1 lost tasks or a failure, 130 interrupted. */
export async function runLocal (options: LocalSimOptions, io: SimIo): Promise<number> {
  const abort = new AbortController()
  let nodes: LocalNodes | null = null
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) {
      io.stderr(`\ntaskmesh sim: ${signal} again, killing the nodes\n`)
      nodes?.killNow()
      process.exit(130)
    }
    interrupted = true
    io.stderr(`\ntaskmesh sim: ${signal}, stopping the nodes (again to kill them)\n`)
    abort.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const dir = await mkdtemp(join(tmpdir(), 'taskmesh-sim-'))
  const logFile = join(dir, 'executions.log')
  await writeFile(logFile, '')
  const progress = new Progress(io)
  try {
    progress.note(`starting ${options.nodes} nodes (R=${options.replicas}) in ${dir}`)
    try {
      nodes = await LocalNodes.launch({
        nodes: options.nodes, dir, replicas: options.replicas, capacity: options.capacity, handlers: HANDLERS,
        env: { TASKMESH_SIM_LOG: logFile }, signal: abort.signal
      })
    } catch (error) {
      if (interrupted) return 130
      throw error
    }
    const run = await simulate(options, nodes, logFile, progress, abort.signal)
    run.interrupted = interrupted
    progress.stop()
    const report = buildReport(run)
    await writeOutputs(report, options, io)
    io.stdout(renderTable(report))
    return interrupted ? 130 : report.exitCode
  } finally {
    progress.stop()
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await nodes?.stop(interrupted ? 3000 : 10_000)
    if (options.keep) io.stderr(`kept the run's folder (data, node logs, executions.log): ${dir}\n`)
    else await rm(dir, { recursive: true, force: true })
  }
}

async function writeOutputs (report: SimReport, options: LocalSimOptions, io: SimIo): Promise<void> {
  if (options.jsonFile !== undefined) {
    await writeFile(resolve(options.jsonFile), JSON.stringify(report, null, 2) + '\n')
    io.stderr(`wrote ${options.jsonFile}\n`)
  }
  if (options.htmlFile !== undefined) {
    await writeFile(resolve(options.htmlFile), renderHtml(report))
    io.stderr(`wrote ${options.htmlFile}\n`)
  }
}

/** The run itself, between a formed cluster and its stop: workload, faults, settling, collection. */
async function simulate (options: LocalSimOptions, nodes: LocalNodes, logFile: string, progress: Progress, signal: AbortSignal): Promise<RunData> {
  const random = prng(options.seed)
  const executions = new ExecutionLog(logFile)
  const startedAtMs = Date.now()
  const since = (): number => Date.now() - startedAtMs
  const timeline: TimelineEntry[] = []
  const record = (kind: TimelineEntry['kind'], text: string): void => {
    const atMs = since()
    timeline.push({ atMs, kind, text })
    progress.note(`+${(atMs / 1000).toFixed(2)}s ${text}`)
  }
  const peerIds = nodes.nodes.map(node => node.peerId)

  const faultsOverMs = faultsOverAtMs(options.faults)
  const expectedWorkloadMs = options.ratePerSecond === null ? 60_000 : (options.tasks / options.ratePerSecond) * 1000
  const workload = new Workload({
    tasks: options.tasks,
    ratePerSecond: options.ratePerSecond,
    duration: options.duration,
    random,
    targets: () => nodes.live().map(node => ({ index: node.index, client: node.client })),
    // Never give up before the faults are over; then allow the settle wait for acceptance too.
    deadlineMs: startedAtMs + Math.max(expectedWorkloadMs * 3, faultsOverMs) + options.settleMs,
    signal
  })
  record('workload', `workload started: ${options.tasks} simwork tasks at ${options.ratePerSecond === null ? 'unlimited rate' : `${options.ratePerSecond}/s`}, duration ${formatDurationSpec(options.duration)}; faults ${formatFaults(options.faults)}`)

  const injector = new FaultInjector(nodes, startedAtMs, record, signal)
  const faultsDone = injector.run(faultSteps(options.faults))
  const logPolling = setInterval(() => { void executions.poll() }, LOG_POLL_MS)
  let phase = 'running'
  // Accepted tasks that ran at least once, counted as either side learns of it: a task can run
  // before its batch is answered.
  const acceptedMarkerSet = new Set<string>()
  let executedAccepted = 0
  workload.onAccepted = task => {
    acceptedMarkerSet.add(task.marker)
    if (executions.counts.has(task.marker)) executedAccepted++
  }
  executions.onFirstRun = marker => { if (acceptedMarkerSet.has(marker)) executedAccepted++ }
  const acceptedMarkers = (): number => executedAccepted
  progress.start(() => {
    const completed = executedAccepted
    return `${phase} +${(since() / 1000).toFixed(1)}s  accepted ${workload.accepted.length}/${options.tasks}  completed ${completed}  in flight ${Math.max(0, workload.accepted.length - completed)}  ` +
      `${executions.ratePerSecond().toFixed(0)} tasks/s  nodes up ${nodes.live().length}/${options.nodes}`
  })

  let settled = false
  const records = new Map<string, PublicRecord>()
  try {
    await workload.run()
    const workloadEndMs = workload.finishedAtMs === 0 ? since() : workload.finishedAtMs - startedAtMs
    if (workload.accepted.length < options.tasks && !signal.aborted) record('error', `the workload gave up: only ${workload.accepted.length} of ${options.tasks} tasks were accepted`)
    else if (!signal.aborted) record('workload', `workload submitted: ${workload.accepted.length} tasks accepted`)
    await faultsDone
    const healedAtMs = since()
    if (options.faults.length > 0 && !signal.aborted) record('heal', 'every fault is over')

    phase = 'settling'
    const settleDeadlineMs = Date.now() + options.settleMs
    const ids = workload.accepted.map(task => task.id)
    while (!signal.aborted) {
      // Reading every record costs the cluster work: wait until the execution log says that
      // nearly all tasks ran (or the wait is over), then read.
      await executions.poll()
      const last = Date.now() > settleDeadlineMs
      if (last || ids.length - acceptedMarkers() <= SETTLE_READ_EACH_MAX) await collect(nodes, ids, records, signal)
      const unfinished = ids.filter(id => !TERMINAL.has(records.get(id)?.state ?? '')).length
      if (unfinished === 0) {
        settled = true
        break
      }
      if (last) {
        record('settle', `${unfinished} accepted task${unfinished === 1 ? ' is' : 's are'} still unfinished ${formatDurationMs(options.settleMs)} after the last fault: lost`)
        break
      }
      await delay(SETTLE_POLL_MS, signal)
    }
    if (settled) record('settle', `every accepted task is finished (${formatDurationMs(since() - Math.max(healedAtMs, workloadEndMs))} after the workload and the faults)`)
    if (signal.aborted) {
      // Interrupted: one quick look at the records, so the report shows the run so far.
      const quick = new AbortController()
      await Promise.race([collect(nodes, ids, records, quick.signal), delay(INTERRUPTED_COLLECT_MS, quick.signal)])
      quick.abort()
    }
    await executions.poll()

    return {
      options: {
        nodes: options.nodes, replicas: options.replicas, capacity: options.capacity ?? null, tasks: options.tasks,
        rate: options.ratePerSecond, duration: formatDurationSpec(options.duration), faults: formatFaults(options.faults),
        randomFaults: options.randomFaults, seed: options.seed, settleMs: options.settleMs
      },
      startedAtMs,
      workloadEndMs,
      healedAtMs,
      endedAtMs: since(),
      nodes: nodes.nodes.map((node, i) => ({ index: node.index, peerId: peerIds[i]!, restarts: node.restarts })),
      submit: workload.stats,
      accepted: workload.accepted,
      refusedMarkers: workload.refusedMarkers,
      indeterminateMarkers: workload.indeterminateMarkers,
      records,
      executions: executions.counts,
      timeline,
      faultWindows: injector.windows(),
      settled,
      workloadComplete: workload.accepted.length >= options.tasks,
      interrupted: signal.aborted
    }
  } finally {
    clearInterval(logPolling)
    injector.stop()
  }
}

/** Brings `records` up to date for `ids`: lists everything while many are unfinished, then reads each. */
async function collect (nodes: LocalNodes, ids: string[], records: Map<string, PublicRecord>, signal: AbortSignal): Promise<void> {
  const wanted = new Set(ids)
  const unfinished = ids.filter(id => !TERMINAL.has(records.get(id)?.state ?? ''))
  const live = nodes.live()
  if (live.length === 0 || unfinished.length === 0) return
  if (unfinished.length > SETTLE_READ_EACH_MAX) {
    for (const node of live) {
      try {
        let cursor: string | undefined
        do {
          const page = await node.client.list({ type: 'simwork', limit: LIST_PAGE, ...(cursor === undefined ? {} : { cursor }) })
          for (const task of page.tasks) if (wanted.has(task.id)) records.set(task.id, task)
          cursor = page.next ?? undefined
        } while (cursor !== undefined && !signal.aborted)
        return
      } catch {
        // This node did not answer: ask the next one.
      }
    }
    return
  }
  let next = 0
  const reader = async (worker: number): Promise<void> => {
    while (next < unfinished.length && !signal.aborted) {
      const id = unfinished[next++]!
      for (let attempt = 0; attempt < live.length; attempt++) {
        const node = live[(worker + attempt) % live.length]!
        try {
          records.set(id, await node.client.get(id))
          break
        } catch (error) {
          if ((error as { code?: unknown }).code === 'not_found') break
        }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(READS_PARALLEL_MAX, unfinished.length) }, async (_, worker) => await reader(worker)))
}

/** Carries out the fault steps at their times and keeps the timeline and the fault windows. */
class FaultInjector {
  readonly #nodes: LocalNodes
  readonly #startedAtMs: number
  readonly #record: (kind: TimelineEntry['kind'], text: string) => void
  readonly #signal: AbortSignal
  readonly #slow = new Map<number, NodeJS.Timeout>()
  readonly #restarts = new Set<Promise<void>>()
  readonly #windows: Array<FaultWindow & { open: boolean }> = []
  /** The partition in force (its groups), or null. */
  #partition: number[][] | null = null
  /** Lagged nodes and their delay; lossy nodes and their loss. */
  readonly #lagMs = new Map<number, number>()
  readonly #lossPercent = new Map<number, number>()

  constructor (nodes: LocalNodes, startedAtMs: number, record: (kind: TimelineEntry['kind'], text: string) => void, signal: AbortSignal) {
    this.#nodes = nodes
    this.#startedAtMs = startedAtMs
    this.#record = record
    this.#signal = signal
  }

  /** Resolves when every step is done and every restarted node is healthy (or failed to be). */
  async run (steps: FaultStep[]): Promise<void> {
    for (const step of steps) {
      await delay(this.#startedAtMs + step.atMs - Date.now(), this.#signal)
      if (this.#signal.aborted) return
      this.#apply(step)
    }
    await Promise.all([...this.#restarts])
  }

  /** The fault windows; one still open (a node never restarted) has toMs null. */
  windows (): FaultWindow[] {
    return this.#windows.map(({ open: _open, ...window }) => window)
  }

  /** Ends slow-node cycles and resumes paused nodes (on abort or at the end). */
  stop (): void {
    for (const [node, timer] of this.#slow) {
      clearInterval(timer)
      this.#nodes.resume(node, true)
    }
    this.#slow.clear()
  }

  #apply (step: FaultStep): void {
    const { node, fault } = step
    const label = formatFault(fault)
    const atMs = step.atMs
    switch (step.action) {
      case 'kill': {
        const pid = this.#nodes.node(node).process?.pid
        this.#nodes.kill(node)
        this.#open(label, 'kill', [node], atMs)
        this.#record('kill', `kill node ${node} (SIGKILL${pid === undefined ? '' : `, pid ${pid}`}) [${label}]`)
        return
      }
      case 'restart': {
        this.#record('restart', `restart node ${node} from its data folder [${label}]`)
        const restartedAtMs = Date.now()
        const restart = this.#nodes.restart(node, RESTART_TIMEOUT_MS).then(() => {
          // A node restarted inside a partition (or a lag or loss) keeps it.
          if (this.#partition !== null || this.#lagMs.has(node) || this.#lossPercent.has(node)) this.#cut(node)
          this.#close(node, 'kill', Date.now() - this.#startedAtMs)
          this.#record('restart', `node ${node} is back and healthy, ${formatDurationMs(Date.now() - restartedAtMs)} after its restart`)
        }, (error: unknown) => {
          if (!this.#signal.aborted) this.#record('error', `node ${node} did not come back: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`)
        })
        this.#restarts.add(restart)
        return
      }
      case 'pause':
        this.#nodes.pause(node)
        this.#open(label, 'pause', [node], atMs)
        this.#record('pause', `pause node ${node} (SIGSTOP) for ${formatDurationMs(fault.kind === 'pause' ? fault.forMs : 0)} [${label}]`)
        return
      case 'resume':
        this.#nodes.resume(node)
        this.#close(node, 'pause', atMs)
        this.#record('resume', `resume node ${node} (SIGCONT) [${label}]`)
        return
      case 'cut': {
        const groups = step.fault.groups
        this.#partition = groups
        this.#open(label, 'partition', pausedSide(groups), atMs)
        this.#record('partition', `partition ${groups.map(group => group.join(',')).join(' | ')} for ${formatDurationMs(step.fault.forMs)}: each node drops every message of the other side, direct or relayed (userland fault layer; no netem on this kernel) [${label}]`)
        for (const member of groups.flat()) this.#cut(member)
        return
      }
      case 'mend': {
        const groups = step.fault.groups
        this.#partition = null
        this.#closeLabel(label, atMs)
        this.#record('heal', `partition over: links between ${groups.map(group => group.join(',')).join(' | ')} restored [${label}]`)
        for (const member of groups.flat()) this.#cut(member)
        return
      }
      case 'impair': {
        const impaired = step.fault
        if (impaired.kind === 'lag') this.#lagMs.set(node, impaired.delayMs)
        else this.#lossPercent.set(node, impaired.percent)
        this.#open(label, impaired.kind, [node], atMs)
        this.#record(impaired.kind, impaired.kind === 'lag'
          ? `lag node ${node}: its messages leave ${formatDurationMs(impaired.delayMs)} late for ${formatDurationMs(impaired.forMs)} (userland fault layer) [${label}]`
          : `loss on node ${node}: it drops ${impaired.percent}% of the messages it sends and receives for ${formatDurationMs(impaired.forMs)} (userland fault layer) [${label}]`)
        this.#cut(node)
        return
      }
      case 'unimpair': {
        const impaired = step.fault
        if (impaired.kind === 'lag') this.#lagMs.delete(node)
        else this.#lossPercent.delete(node)
        this.#close(node, impaired.kind, atMs)
        this.#record('heal', `node ${node}: ${impaired.kind} over [${label}]`)
        this.#cut(node)
        return
      }
      case 'slow': {
        const timer = setInterval(() => {
          this.#nodes.pause(node, true)
          setTimeout(() => this.#nodes.resume(node, true), SLOW_STOPPED_MS).unref()
        }, FAULT_LIMITS.slowPeriodMs)
        this.#slow.set(node, timer)
        this.#open(label, 'slow', [node], atMs)
        this.#record('slow', `slow node ${node}: stopped ${SLOW_STOPPED_MS} ms of every ${FAULT_LIMITS.slowPeriodMs} ms for ${formatDurationMs(fault.kind === 'slow' ? fault.forMs : 0)} [${label}]`)
        return
      }
      case 'unslow': {
        const timer = this.#slow.get(node)
        if (timer !== undefined) clearInterval(timer)
        this.#slow.delete(node)
        setTimeout(() => this.#nodes.resume(node, true), SLOW_STOPPED_MS + 1).unref()
        this.#nodes.resume(node, true)
        this.#close(node, 'slow', atMs)
        this.#record('resume', `node ${node} runs at full speed again [${label}]`)
        return
      }
      default: throw new Error(`unknown fault step ${JSON.stringify(step satisfies never)}`)
    }
  }

  /**
   * Tell one node what its fault layer does now: drop the peers outside its group while a
   * partition lasts, delay what it sends while lagged, drop a share while lossy; nothing after.
   */
  #cut (member: number): void {
    const groups = this.#partition
    const own = groups?.find(group => group.includes(member)) ?? []
    const block = groups === null ? [] : groups.flat().filter(other => !own.includes(other)).map(other => this.#nodes.node(other).peerId).filter(peer => peer !== '')
    const config = { block, delay: this.#lagMs.get(member) ?? 0, lossRate: (this.#lossPercent.get(member) ?? 0) / 100 }
    const api = this.#nodes.node(member).api
    if (api === '') return
    fetch(`${api}/v1/debug/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(config), signal: AbortSignal.timeout(5000) })
      .then(async response => { if (!response.ok) this.#record('error', `node ${member} refused the partition change: ${response.status} ${await response.text()}`) })
      .catch(() => { /* a killed or paused node: it is cut again when it restarts */ })
  }

  #open (label: string, kind: FaultWindow['kind'], nodes: number[], fromMs: number): void {
    this.#windows.push({ label, kind, nodes, fromMs, toMs: null, open: true })
  }

  #close (node: number, kind: FaultWindow['kind'], toMs: number): void {
    const window = this.#windows.find(entry => entry.open && entry.kind === kind && entry.nodes.includes(node))
    if (window === undefined) return
    window.open = false
    window.toMs = toMs
  }

  #closeLabel (label: string, toMs: number): void {
    for (const window of this.#windows) {
      if (window.open && window.label === label) {
        window.open = false
        window.toMs = toMs
      }
    }
  }
}

/** Counts completed runs per marker from the log every node appends to. */
class ExecutionLog {
  readonly counts = new Map<string, number>()
  /** Called once per marker, when its first run is read. */
  onFirstRun: ((marker: string) => void) | null = null
  readonly #file: string
  #offset = 0
  #partial = ''
  #total = 0
  #polling: Promise<void> | null = null
  /** (time, total) samples for the live rate. */
  readonly #samples: Array<[number, number]> = []

  constructor (file: string) {
    this.#file = file
  }

  poll (): Promise<void> {
    this.#polling ??= this.#read().finally(() => { this.#polling = null })
    return this.#polling
  }

  /** Executions per second over the last 2 s. */
  ratePerSecond (): number {
    const now = Date.now()
    while (this.#samples.length > 1 && this.#samples[0]![0] < now - 2000) this.#samples.shift()
    const first = this.#samples[0]
    const last = this.#samples[this.#samples.length - 1]
    if (first === undefined || last === undefined || last[0] === first[0]) return 0
    return (last[1] - first[1]) / ((last[0] - first[0]) / 1000)
  }

  async #read (): Promise<void> {
    const handle = await open(this.#file, 'r')
    try {
      const buffer = Buffer.alloc(1 << 20)
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.#offset)
        if (bytesRead === 0) break
        this.#offset += bytesRead
        const text = this.#partial + buffer.toString('utf8', 0, bytesRead)
        const lines = text.split('\n')
        this.#partial = lines.pop()!
        for (const line of lines) {
          if (line === '') continue
          const count = (this.counts.get(line) ?? 0) + 1
          this.counts.set(line, count)
          if (count === 1) this.onFirstRun?.(line)
          this.#total++
        }
      }
    } finally {
      await handle.close()
    }
    this.#samples.push([Date.now(), this.#total])
  }
}

/** One line of progress on stderr: redrawn in place on a terminal, a line every 2 s otherwise. */
class Progress {
  readonly #io: SimIo
  #timer: NodeJS.Timeout | null = null
  #render: (() => string) | null = null
  #shown = 0

  constructor (io: SimIo) {
    this.#io = io
  }

  start (render: () => string): void {
    this.#render = render
    this.#timer = setInterval(() => this.#draw(), this.#io.stderrIsTty ? PROGRESS_TTY_MS : PROGRESS_LINE_MS)
  }

  /** A line of its own (an event), with the progress line redrawn under it. */
  note (text: string): void {
    this.#clear()
    this.#io.stderr(text + '\n')
    if (this.#io.stderrIsTty) this.#draw()
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#clear()
    this.#render = null
  }

  #draw (): void {
    if (this.#render === null) return
    const full = this.#render()
    const text = this.#io.columns !== undefined && this.#io.columns > 1 ? full.slice(0, this.#io.columns - 1) : full
    if (this.#io.stderrIsTty) {
      this.#io.stderr('\r' + text.padEnd(this.#shown))
      this.#shown = text.length
    } else {
      this.#io.stderr(text + '\n')
    }
  }

  #clear (): void {
    if (!this.#io.stderrIsTty || this.#shown === 0) return
    this.#io.stderr('\r' + ' '.repeat(this.#shown) + '\r')
    this.#shown = 0
  }
}

async function delay (ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
