// faults.ts: the fault schedule of the local simulator (`taskmesh sim --faults`): a strict
// parser, a printer that gives back the same text, a seeded random schedule, and the steps
// (signals and restarts) a schedule turns into. Pure: no clock, no processes.
//
// Grammar (items separated by commas; T and D are durations such as 500ms, 5s, 1.5m; T counts
// from the start of the workload; nodes are numbered from 1):
//   kill:N@T                SIGKILL node N
//   restart@T               start every node killed by then again, from its data folder
//   restart:N@T             start node N again
//   pause:N@T+D             SIGSTOP node N, SIGCONT it D later
//   slow:N@T+D              pause and resume node N in a 100 ms duty cycle for D
//   partition:A|B@T+D       groups of nodes such as 1|2,3,4,5 (every node in one group); each
//                           node drops every message of the other groups for D
//   lag:N=L@T+D             node N's outgoing messages are delayed by L (e.g. 200ms) for D
//   loss:N=P%@T+D           node N drops P percent of the messages it sends and receives for D
// There is no netem on this kernel: partitions, lag and loss are done by a fault layer in each
// node's runtime (started with --fault-injection).
//   none                    no faults
import { formatDurationMs, parseDurationMs } from '../src/core/duration.js'
import { prng } from './prng.js'

export type Fault =
  | { kind: 'kill', node: number, atMs: number }
  | { kind: 'restart', node: number | null, atMs: number }
  | { kind: 'pause', node: number, atMs: number, forMs: number }
  | { kind: 'slow', node: number, atMs: number, forMs: number }
  | { kind: 'partition', groups: number[][], atMs: number, forMs: number }
  | { kind: 'lag', node: number, delayMs: number, atMs: number, forMs: number }
  | { kind: 'loss', node: number, percent: number, atMs: number, forMs: number }

/** One thing the runner does at one time. */
export type FaultStep =
  | { atMs: number, action: 'kill', node: number, fault: Fault }
  | { atMs: number, action: 'restart', node: number, fault: Fault }
  | { atMs: number, action: 'pause' | 'resume' | 'slow' | 'unslow', node: number, fault: Fault }
  /** Start or end a lag or loss on one node. */
  | { atMs: number, action: 'impair' | 'unimpair', node: number, fault: Extract<Fault, { kind: 'lag' | 'loss' }> }
  /** Start (cut) or end (mend) a partition: every node drops the messages of the other groups. */
  | { atMs: number, action: 'cut' | 'mend', node: -1, fault: Extract<Fault, { kind: 'partition' }> }

/** A schedule that does not parse or does not make sense; `item` is the offending item. */
export class FaultScheduleError extends Error {
  override name = 'FaultScheduleError'
  readonly item: string
  constructor (item: string, message: string) {
    super(item === '' ? message : `fault '${item}': ${message}`)
    this.item = item
  }
}

/** Why bounded: a schedule is typed by hand or drawn from a seed; beyond these it is a mistake. */
export const FAULT_LIMITS = {
  itemsMax: 1000,
  atMsMax: 24 * 3_600_000,
  forMsMax: 24 * 3_600_000,
  /** Period of a slow node's pause/resume cycle; it is stopped for half of each period. */
  slowPeriodMs: 100,
  lagMsMax: 60_000
} as const

const KINDS = ['kill', 'restart', 'pause', 'slow', 'partition', 'lag', 'loss'] as const
const EXAMPLES: Record<(typeof KINDS)[number], string> = {
  kill: 'kill:N@T, e.g. kill:2@5s',
  restart: 'restart@T or restart:N@T, e.g. restart@15s',
  pause: 'pause:N@T+D, e.g. pause:1@20s+5s',
  slow: 'slow:N@T+D, e.g. slow:3@10s+5s',
  partition: 'partition:A|B@T+D, e.g. partition:1|2,3,4,5@30s+10s',
  lag: 'lag:N=L@T+D, e.g. lag:2=200ms@5s+10s',
  loss: 'loss:N=P%@T+D, e.g. loss:2=10%@5s+10s'
}

/**
 * Parses a schedule for a cluster of `nodes` nodes and checks that it makes sense in time
 * order (no kill of a node already down, no restart of a node that is up, no two overlapping
 * pauses of one node). The result is sorted by time; equal times keep their written order.
 */
export function parseFaults (text: string, nodes: number): Fault[] {
  if (!Number.isSafeInteger(nodes) || nodes < 1) throw new Error(`nodes must be a whole number ≥ 1, not ${nodes}`)
  const trimmed = text.trim()
  if (trimmed === '' || trimmed === 'none') return []
  const items = splitItems(trimmed)
  if (items.length > FAULT_LIMITS.itemsMax) throw new FaultScheduleError('', `a schedule has at most ${FAULT_LIMITS.itemsMax} items, this one ${items.length}`)
  const faults = items.map(item => ({ item, fault: parseItem(item, nodes) }))
  const ordered = faults
    .map((entry, position) => ({ ...entry, position }))
    .sort((a, b) => a.fault.atMs - b.fault.atMs || a.position - b.position)
  checkSense(ordered)
  return ordered.map(entry => entry.fault)
}

/** Items are comma-separated, but a partition's groups contain commas up to its '@'. */
function splitItems (text: string): string[] {
  const items: string[] = []
  for (const word of text.split(',')) {
    const last = items[items.length - 1]
    if (last !== undefined && last.startsWith('partition:') && !last.includes('@')) items[items.length - 1] = `${last},${word.trim()}`
    else items.push(word.trim())
  }
  for (const item of items) if (item === '') throw new FaultScheduleError('', `empty item in the schedule '${text}' (items are separated by single commas)`)
  return items
}

function parseItem (item: string, nodes: number): Fault {
  const word = /^([a-z]*)/.exec(item)![1]!
  if (!(KINDS as readonly string[]).includes(word)) {
    throw new FaultScheduleError(item, `unknown kind '${word === '' ? item : word}' (use ${KINDS.join(', ')}; or the whole schedule none or random)`)
  }
  const kind = word as (typeof KINDS)[number]
  const at = item.indexOf('@')
  if (at < 0) throw new FaultScheduleError(item, `no time: write ${EXAMPLES[kind]}`)
  const head = item.slice(kind.length, at)
  const tail = item.slice(at + 1)
  const wantsDuration = kind !== 'kill' && kind !== 'restart'
  const plus = tail.indexOf('+')
  if (wantsDuration && plus < 0) throw new FaultScheduleError(item, `a ${kind} needs a duration: write ${EXAMPLES[kind]}`)
  if (!wantsDuration && plus >= 0) throw new FaultScheduleError(item, `a ${kind} takes no duration: write ${EXAMPLES[kind]}`)
  const atMs = parseTime(item, plus < 0 ? tail : tail.slice(0, plus), 'time', FAULT_LIMITS.atMsMax)
  const forMs = plus < 0 ? 0 : parseTime(item, tail.slice(plus + 1), 'duration', FAULT_LIMITS.forMsMax)
  if (wantsDuration && forMs === 0) throw new FaultScheduleError(item, 'the duration must be more than 0')

  if (kind === 'restart') {
    if (head === '') return { kind, node: null, atMs }
    return { kind, node: parseNode(item, head, nodes, kind), atMs }
  }
  if (kind === 'partition') return { kind, groups: parseGroups(item, head, nodes), atMs, forMs }
  if (kind === 'lag' || kind === 'loss') {
    const equals = head.indexOf('=')
    if (equals < 0) throw new FaultScheduleError(item, `how much? write ${EXAMPLES[kind]}`)
    const node = parseNode(item, head.slice(0, equals), nodes, kind)
    const amount = head.slice(equals + 1)
    if (kind === 'lag') {
      const delayMs = parseTime(item, amount, 'duration', FAULT_LIMITS.lagMsMax)
      if (delayMs === 0) throw new FaultScheduleError(item, 'the lag must be more than 0')
      return { kind, node, delayMs, atMs, forMs }
    }
    const match = /^(\d{1,3}(?:\.\d+)?)%$/.exec(amount)
    const percent = match === null ? NaN : Number(match[1])
    if (!(percent > 0 && percent <= 100)) throw new FaultScheduleError(item, `'${amount}' is not a loss: write a percentage above 0 and at most 100, e.g. ${EXAMPLES.loss}`)
    return { kind, node, percent, atMs, forMs }
  }
  const node = parseNode(item, head, nodes, kind)
  if (kind === 'kill') return { kind, node, atMs }
  return { kind, node, atMs, forMs }
}

function parseTime (item: string, text: string, what: 'time' | 'duration', maxMs: number): number {
  const ms = parseDurationMs(text)
  if (ms === null) throw new FaultScheduleError(item, `'${text}' is not a ${what} (use 500ms, 5s, 1.5m or a number of ms)`)
  if (ms > maxMs) throw new FaultScheduleError(item, `the ${what} ${text} is over the limit of ${formatDurationMs(maxMs)}`)
  return ms
}

function parseNode (item: string, head: string, nodes: number, kind: string): number {
  if (!head.startsWith(':') || head.length === 1) throw new FaultScheduleError(item, `which node? write ${EXAMPLES[kind as keyof typeof EXAMPLES]}`)
  return nodeNumber(item, head.slice(1), nodes)
}

function nodeNumber (item: string, text: string, nodes: number): number {
  if (!/^\d{1,6}$/.test(text)) throw new FaultScheduleError(item, `'${text}' is not a node number (nodes are numbered 1 to ${nodes})`)
  const node = Number(text)
  if (node < 1 || node > nodes) throw new FaultScheduleError(item, `node ${node} does not exist (nodes are numbered 1 to ${nodes})`)
  return node
}

function parseGroups (item: string, head: string, nodes: number): number[][] {
  if (!head.startsWith(':') || head.length === 1) throw new FaultScheduleError(item, `which groups? write ${EXAMPLES.partition}`)
  const words = head.slice(1).split('|')
  if (words.length < 2) throw new FaultScheduleError(item, `a partition needs at least two groups separated by '|': write ${EXAMPLES.partition}`)
  const seen = new Set<number>()
  const groups = words.map(word => {
    if (word === '') throw new FaultScheduleError(item, 'a group is empty')
    return word.split(',').map(text => {
      const node = nodeNumber(item, text, nodes)
      if (seen.has(node)) throw new FaultScheduleError(item, `node ${node} is in more than one group`)
      seen.add(node)
      return node
    })
  })
  const missing = Array.from({ length: nodes }, (_, i) => i + 1).filter(node => !seen.has(node))
  if (missing.length > 0) {
    throw new FaultScheduleError(item, `node${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} in no group (list every node, e.g. 1|${Array.from({ length: nodes - 1 }, (_, i) => i + 2).join(',')})`)
  }
  return groups
}

/** The nodes a partition pauses: every group but the largest (the first largest on a tie). */
export function pausedSide (groups: number[][]): number[] {
  let largest = 0
  groups.forEach((group, index) => { if (group.length > groups[largest]!.length) largest = index })
  return groups.filter((_, index) => index !== largest).flat().sort((a, b) => a - b)
}

interface Busy { fromMs: number, toMs: number, item: string }

function checkSense (ordered: Array<{ item: string, fault: Fault }>): void {
  const killedBy = new Map<number, string>()
  const busy = new Map<number, Busy[]>()
  const at = (ms: number): string => formatDurationMs(ms)
  const busyAt = (node: number, fromMs: number, toMs: number): Busy | undefined =>
    (busy.get(node) ?? []).find(entry => entry.fromMs < toMs && fromMs < entry.toMs)
  const checkUp = (item: string, node: number, fromMs: number, toMs: number): void => {
    const killer = killedBy.get(node)
    if (killer !== undefined) throw new FaultScheduleError(item, `node ${node} is down at ${at(fromMs)} (killed by '${killer}' and not restarted)`)
    const other = busyAt(node, fromMs, toMs)
    if (other !== undefined) throw new FaultScheduleError(item, `node ${node} is already paused by '${other.item}' then (from ${at(other.fromMs)} to ${at(other.toMs)})`)
  }
  const occupy = (item: string, node: number, fromMs: number, toMs: number): void => {
    const list = busy.get(node) ?? []
    list.push({ fromMs, toMs, item })
    busy.set(node, list)
  }

  for (const { item, fault } of ordered) {
    switch (fault.kind) {
      case 'kill':
        // An instant: a kill at the very end of a pause is fine, one inside it is not.
        checkUp(item, fault.node, fault.atMs, fault.atMs + 1)
        killedBy.set(fault.node, item)
        break
      case 'restart': {
        if (fault.node === null) {
          if (killedBy.size === 0) throw new FaultScheduleError(item, `no node is down at ${at(fault.atMs)}: nothing to restart`)
          killedBy.clear()
        } else {
          if (!killedBy.has(fault.node)) throw new FaultScheduleError(item, `node ${fault.node} is not down at ${at(fault.atMs)}: only a killed node can be restarted`)
          killedBy.delete(fault.node)
        }
        break
      }
      case 'pause':
      case 'slow':
        checkUp(item, fault.node, fault.atMs, fault.atMs + fault.forMs)
        occupy(item, fault.node, fault.atMs, fault.atMs + fault.forMs)
        break
      case 'partition':
      case 'lag':
      case 'loss':
        // These impair links, not processes: their nodes may be killed or paused meanwhile.
        break
      default: unreachable(fault)
    }
  }
}

function unreachable (value: never): never {
  throw new Error(`unreachable: ${JSON.stringify(value)}`)
}

/** The item as it would be written; parseFaults(formatFaults(x)) gives x back. */
export function formatFault (fault: Fault): string {
  const at = formatDurationMs(fault.atMs)
  switch (fault.kind) {
    case 'kill': return `kill:${fault.node}@${at}`
    case 'restart': return fault.node === null ? `restart@${at}` : `restart:${fault.node}@${at}`
    case 'pause':
    case 'slow': return `${fault.kind}:${fault.node}@${at}+${formatDurationMs(fault.forMs)}`
    case 'partition': return `partition:${fault.groups.map(group => group.join(',')).join('|')}@${at}+${formatDurationMs(fault.forMs)}`
    case 'lag': return `lag:${fault.node}=${formatDurationMs(fault.delayMs)}@${at}+${formatDurationMs(fault.forMs)}`
    case 'loss': return `loss:${fault.node}=${fault.percent}%@${at}+${formatDurationMs(fault.forMs)}`
    default: return unreachable(fault)
  }
}

export function formatFaults (faults: readonly Fault[]): string {
  return faults.length === 0 ? 'none' : faults.map(formatFault).join(',')
}

export interface RandomFaultOptions {
  seed: number
  nodes: number
  /** Faults start within [1 s, spanMs]. */
  spanMs: number
  /** How many faults to draw (a kill and its restart count as one); default 3. */
  count?: number
}

/**
 * A schedule drawn from the seed: kills (each followed by its restart), pauses, slow nodes
 * and partitions, 2 to 8 s long, never more than a minority of the nodes down at once and
 * never two faults on one node at once, so the cluster can always make progress and every
 * fault heals. The same options give the same schedule.
 */
export function randomFaults (options: RandomFaultOptions): Fault[] {
  const { seed, nodes, spanMs } = options
  const count = options.count ?? 3
  if (!Number.isSafeInteger(count) || count < 0 || count > FAULT_LIMITS.itemsMax / 2) throw new Error(`count must be a whole number from 0 to ${FAULT_LIMITS.itemsMax / 2}`)
  const random = prng(seed ^ 0x5A17FA17)
  const downMax = Math.max(1, Math.floor((nodes - 1) / 2))
  const kinds: Array<Fault['kind']> = nodes >= 2 ? ['kill', 'pause', 'slow', 'partition'] : ['kill', 'pause', 'slow']
  const tenths = (ms: number): number => Math.round(ms / 100) * 100
  const chosen: Array<{ kind: Fault['kind'], nodes: number[], fromMs: number, toMs: number }> = []
  const GAP_MS = 500
  // A restarted node takes a few seconds to be healthy: count them as part of its fault.
  const RESTART_ALLOWANCE_MS = 5000
  for (let drawn = 0; drawn < count; drawn++) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const kind = kinds[Math.floor(random() * kinds.length)]!
      const fromMs = tenths(1000 + random() * Math.max(1000, spanMs - 1000))
      const toMs = fromMs + tenths(2000 + random() * 6000)
      let targets: number[]
      if (kind === 'partition') {
        const size = 1 + Math.floor(random() * downMax)
        const pool = Array.from({ length: nodes }, (_, i) => i + 1)
        targets = []
        for (let i = 0; i < size; i++) targets.push(pool.splice(Math.floor(random() * pool.length), 1)[0]!)
        targets.sort((a, b) => a - b)
      } else {
        targets = [1 + Math.floor(random() * nodes)]
      }
      const overlapping = chosen.filter(other => other.fromMs < toMs + GAP_MS && fromMs < other.toMs + GAP_MS)
      if (overlapping.some(other => other.nodes.some(node => targets.includes(node)))) continue
      const down = (entry: { kind: Fault['kind'], nodes: number[] }): number => entry.kind === 'slow' ? 0 : entry.nodes.length
      if (overlapping.reduce((sum, other) => sum + down(other), 0) + down({ kind, nodes: targets }) > downMax) continue
      chosen.push({ kind, nodes: targets, fromMs, toMs: kind === 'kill' ? toMs + RESTART_ALLOWANCE_MS : toMs })
      break
    }
  }
  const faults: Fault[] = []
  for (const entry of chosen) {
    const forMs = entry.toMs - entry.fromMs
    switch (entry.kind) {
      case 'kill':
        faults.push({ kind: 'kill', node: entry.nodes[0]!, atMs: entry.fromMs }, { kind: 'restart', node: entry.nodes[0]!, atMs: entry.toMs - RESTART_ALLOWANCE_MS })
        break
      case 'pause':
      case 'slow':
        faults.push({ kind: entry.kind, node: entry.nodes[0]!, atMs: entry.fromMs, forMs })
        break
      case 'partition': {
        const rest = Array.from({ length: nodes }, (_, i) => i + 1).filter(node => !entry.nodes.includes(node))
        // The paused side is the smaller group; on a tie (two nodes) the second one.
        const groups = entry.nodes.length < rest.length ? [entry.nodes, rest] : [rest, entry.nodes]
        faults.push({ kind: 'partition', groups, atMs: entry.fromMs, forMs })
        break
      }
      default: break
    }
  }
  return faults.map((fault, position) => ({ fault, position }))
    .sort((a, b) => a.fault.atMs - b.fault.atMs || a.position - b.position)
    .map(entry => entry.fault)
}

/**
 * `none`, `random` or `random:N` (N faults drawn from the seed), or a schedule. Throws
 * FaultScheduleError for a bad schedule.
 */
export function resolveFaults (text: string, options: { nodes: number, seed: number, spanMs: number }): { faults: Fault[], random: boolean } {
  const trimmed = text.trim()
  const random = /^random(?::(\d{1,3}))?$/.exec(trimmed)
  if (random !== null) {
    const count = random[1] === undefined ? 3 : Number(random[1])
    return { faults: randomFaults({ seed: options.seed, nodes: options.nodes, spanMs: options.spanMs, count }), random: true }
  }
  if (trimmed.startsWith('random')) throw new FaultScheduleError(trimmed, 'write random, or random:N for N faults (the seed is --seed)')
  return { faults: parseFaults(trimmed, options.nodes), random: false }
}

/**
 * The schedule as steps in time order. `restart@T` becomes one restart per node killed by
 * then; a partition becomes a cut and a mend of the links between its groups.
 */
export function faultSteps (faults: readonly Fault[]): FaultStep[] {
  const steps: Array<FaultStep & { order: number }> = []
  const killed = new Set<number>()
  let order = 0
  const push = (step: FaultStep): void => { steps.push({ ...step, order: order++ }) }
  for (const fault of faults) {
    switch (fault.kind) {
      case 'kill':
        killed.add(fault.node)
        push({ atMs: fault.atMs, action: 'kill', node: fault.node, fault })
        break
      case 'restart': {
        const nodes = fault.node === null ? [...killed].sort((a, b) => a - b) : [fault.node]
        for (const node of nodes) {
          killed.delete(node)
          push({ atMs: fault.atMs, action: 'restart', node, fault })
        }
        break
      }
      case 'pause':
        push({ atMs: fault.atMs, action: 'pause', node: fault.node, fault })
        push({ atMs: fault.atMs + fault.forMs, action: 'resume', node: fault.node, fault })
        break
      case 'slow':
        push({ atMs: fault.atMs, action: 'slow', node: fault.node, fault })
        push({ atMs: fault.atMs + fault.forMs, action: 'unslow', node: fault.node, fault })
        break
      case 'partition':
        push({ atMs: fault.atMs, action: 'cut', node: -1, fault })
        push({ atMs: fault.atMs + fault.forMs, action: 'mend', node: -1, fault })
        break
      case 'lag':
      case 'loss':
        push({ atMs: fault.atMs, action: 'impair', node: fault.node, fault })
        push({ atMs: fault.atMs + fault.forMs, action: 'unimpair', node: fault.node, fault })
        break
      default: unreachable(fault)
    }
  }
  // Ends before beginnings at the same instant: a pause ending at T frees the node for a kill at T.
  const rank = (step: FaultStep): number => step.action === 'resume' || step.action === 'unslow' || step.action === 'mend' || step.action === 'unimpair' ? 0 : 1
  return steps.sort((a, b) => a.atMs - b.atMs || rank(a) - rank(b) || a.order - b.order).map(({ order: _order, ...step }) => step)
}

/** When the last fault is over (its restart or its end); 0 for no faults. */
export function faultsOverAtMs (faults: readonly Fault[]): number {
  let overMs = 0
  for (const fault of faults) overMs = Math.max(overMs, fault.atMs + ('forMs' in fault ? fault.forMs : 0))
  return overMs
}
