// scheduling.test.ts: the scheduling features on three real nodes (`taskmesh start` processes,
// libp2p over TCP on loopback, level on disk), for what only the real stack shows: timers,
// process groups killed, concurrent submits through different coordinators, failover of a
// schedule's owner. No fixed sleeps: everything polls a condition with a generous timeout.
// The figures (lateness, occurrences expected/actual/extra/missed) are printed for CI.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { PublicRecord } from '../src/api/present.js'
import { writeSwarmKeyFile } from '../src/net/swarm-key.js'
import { checkSchedule } from '../sim/checkers.js'
import { loopbackNodeArgs, rawRequest, spawnNode, stopNode, tempDir, until, untilFormed } from './support/processes.js'
import type { NodeProcess } from './support/processes.js'

let dir = ''
let nodes: NodeProcess[] = []

function startArgs (index: number, bootstrap: string[]): string[] {
  // As in the fault tests: a SIGKILLed node leaves the ring after 8 s, not 30 s (a task whose
  // replica set lost two of three waits for that; see README, stand-ins).
  return loopbackNodeArgs(dir, index, bootstrap, ['--remove-after', '8s'])
}

async function launch (): Promise<void> {
  dir = await tempDir('scheduling')
  await writeSwarmKeyFile(join(dir, 'swarm.key'))
  const first = await spawnNode(startArgs(1, []))
  nodes = [first]
  nodes.push(...await Promise.all([2, 3].map(async index => await spawnNode(startArgs(index, [first.addrs[0]!])))))
  await untilFormed(nodes, 3, 60_000)
}

// A launch that does not form is retried once (formation stall: an open finding, see README).
test.before(async () => {
  try {
    await launch()
  } catch (error) {
    console.error(`    cluster of 3 did not form, retrying once: ${(error as Error).message}`)
    await Promise.all(nodes.map(async node => await stopNode(node)))
    await rm(dir, { recursive: true, force: true })
    await launch()
  }
})

test.after(async () => {
  await Promise.all(nodes.map(async node => await stopNode(node)))
  await rm(dir, { recursive: true, force: true })
})

const ms = (iso: string | null): number => iso === null ? NaN : Date.parse(iso)

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]!
}

/** A live process (a zombie counts as gone: it has exited, only its parent has not reaped it). */
function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

/** A shell task whose `sleep 30` child writes its pid to a file first: the test can see it die. */
function sleeperPayload (pidFile: string): { cmd: string } {
  return { cmd: `sleep 30 & echo $! > '${pidFile}'; wait` }
}

async function pidFrom (file: string): Promise<number> {
  return await until(`the pid in ${file}`, () => {
    try {
      const pid = Number(readFileSync(file, 'utf8').trim())
      return Number.isInteger(pid) && pid > 0 ? pid : undefined
    } catch {
      return undefined
    }
  }, 30_000)
}

test('a delayed task never starts before its time; lateness is small', async () => {
  const submitted: PublicRecord[] = []
  for (let i = 0; i < 20; i++) {
    submitted.push(await nodes[i % 3]!.client.submit({ type: 'noop', delay: 1000 + (i % 5) * 500 }))
  }
  const done = await Promise.all(submitted.map(async (record, i) => await nodes[(i + 1) % 3]!.client.wait(record.id, 60_000)))
  const lateness = done.map(record => {
    assert.is(record.state, 'succeeded', JSON.stringify(record))
    const late = ms(record.startedAt) - ms(record.runAt)
    assert.ok(late >= 0, `${record.id} started ${-late} ms before its time`)
    return late
  })
  console.log(`    delay lateness over ${lateness.length} tasks: p50 ${percentile(lateness, 50)} ms, p99 ${percentile(lateness, 99)} ms, max ${Math.max(...lateness)} ms`)
  assert.ok(percentile(lateness, 50) < 1000, 'lateness p50 under a second')
})

test('retries reach dead after maxAttempts, with the backoff between attempts honoured', async () => {
  const record = await nodes[0]!.client.submit({ type: 'fail', payload: { message: 'nope' }, maxAttempts: 3, backoff: 'fixed:700ms' })
  const done = await nodes[1]!.client.wait(record.id, 60_000)
  assert.is(done.state, 'dead', JSON.stringify(done))
  assert.is(done.attempt, 3)
  assert.match(done.error ?? '', /nope/)
  const runs = done.history.filter(entry => entry.state === 'running')
  assert.equal(runs.map(entry => entry.attempt), [1, 2, 3], JSON.stringify(done.history))
  const gaps: number[] = []
  for (const run of runs.slice(1)) {
    // The failure of the previous attempt: the last entry before this run.
    const failed = done.history.filter(entry => entry.attempt === run.attempt - 1 && entry.state !== 'running').pop()
    assert.ok(failed !== undefined, `a failure entry for attempt ${run.attempt - 1}: ${JSON.stringify(done.history)}`)
    assert.ok(failed.error !== undefined, 'the failed attempt keeps its error')
    const gap = ms(run.at) - ms(failed.at)
    gaps.push(gap)
    assert.ok(gap >= 700, `attempt ${run.attempt} started ${gap} ms after attempt ${run.attempt - 1} failed (backoff 700 ms)`)
  }
  console.log(`    retry gaps with fixed:700ms backoff: ${gaps.join(', ')} ms`)
})

test('a timeout kills a running `sleep 30` with its process group; the attempt fails', async () => {
  const pidFile = join(dir, 'timeout.pid')
  const startedMs = Date.now()
  const record = await nodes[1]!.client.submit({ type: 'shell', payload: sleeperPayload(pidFile), timeout: '1s' })
  const pid = await pidFrom(pidFile)
  const done = await nodes[2]!.client.wait(record.id, 30_000)
  assert.is(done.state, 'dead', JSON.stringify(done))
  assert.match(done.error ?? '', /timed out after 1000ms/)
  await until(`sleep (pid ${pid}) to be killed`, () => !alive(pid), 10_000)
  assert.ok(Date.now() - startedMs < 20_000, 'well before the 30 s sleep would have ended')
})

test('cancel of a running shell task kills it, and the task stays cancelled', async () => {
  const pidFile = join(dir, 'cancel.pid')
  const record = await nodes[2]!.client.submit({ type: 'shell', payload: sleeperPayload(pidFile) })
  const pid = await pidFrom(pidFile)
  await until('the task to be running', async () => (await nodes[0]!.client.get(record.id)).state === 'running', 20_000)
  const cancelled = await nodes[0]!.client.cancel(record.id)
  assert.is(cancelled.state, 'cancelled', JSON.stringify(cancelled))
  await until(`sleep (pid ${pid}) to be killed`, () => !alive(pid), 10_000)
  // Final: through the window in which the aborted run reports, every node says cancelled.
  const watchUntil = Date.now() + 3000
  while (Date.now() < watchUntil) {
    for (const node of nodes) {
      const seen = await node.client.get(record.id)
      assert.is(seen.state, 'cancelled', `${node.peerId}: ${JSON.stringify(seen)}`)
    }
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  const final = await nodes[1]!.client.get(record.id)
  assert.is(final.history.filter(entry => entry.state === 'running').length, 1, 'it never ran again')
  const again = await nodes[1]!.client.cancel(record.id).catch((error: unknown) => error)
  assert.ok((again as PublicRecord).state === 'cancelled' || (again as { code?: string }).code === 'conflict', 'a second cancel changes nothing')
})

test('20 concurrent submits of one idempotency key through three nodes give one task', async () => {
  const key = `idem-${Date.now()}`
  const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await rawRequest(`${nodes[i % 3]!.api}/v1/tasks`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'echo', payload: { i }, idempotencyKey: key })
  })))
  const statuses = answers.map(answer => answer.status)
  for (const answer of answers) assert.ok(answer.status === 200 || answer.status === 201, JSON.stringify(answer.body))
  const ids = new Set(answers.map(answer => answer.body.id as string))
  const created = statuses.filter(status => status === 201).length
  console.log(`    idempotency: 20 concurrent submits → ${ids.size} task id(s), ${created} answered 201, ${statuses.length - created} answered 200`)
  assert.is(ids.size, 1, `ids: ${[...ids].join(', ')}`)
  assert.ok(created <= 1, `${created} answers said created`)
  const id = [...ids][0]!
  const done = await nodes[0]!.client.wait(id, 30_000)
  assert.is(done.state, 'succeeded')
  assert.is(done.history.filter(entry => entry.state === 'running').length, 1, 'ran once')
  const listed = await nodes[2]!.client.list({ type: 'echo', limit: 1000 })
  assert.is(listed.tasks.filter(task => task.idempotencyKey === key).length, 1)
})

test('a dependency chain A → B → C on three different owners runs in order', async () => {
  const owner = (record: PublicRecord): string => record.replicas[0]!
  const a = await nodes[0]!.client.submit({ type: 'sleep', payload: { ms: 1500 } })
  // Owners follow from the ids the cluster draws: submit until a child lands on a new owner,
  // and cancel the candidates that did not (a cancelled candidate is simply not part of the chain).
  const childOf = async (parent: PublicRecord, avoid: Set<string>): Promise<PublicRecord> => {
    for (let tries = 0; tries < 40; tries++) {
      const candidate = await nodes[tries % 3]!.client.submit({ type: 'sleep', payload: { ms: 300 }, dependsOn: [parent.id] })
      if (!avoid.has(owner(candidate))) return candidate
      await nodes[tries % 3]!.client.cancel(candidate.id)
    }
    throw new Error('no child landed on a new owner in 40 tries')
  }
  const b = await childOf(a, new Set([owner(a)]))
  const c = await childOf(b, new Set([owner(a), owner(b)]))
  const [doneA, doneB, doneC] = await Promise.all([a, b, c].map(async (record, i) => await nodes[(i + 1) % 3]!.client.wait(record.id, 60_000)))
  for (const done of [doneA!, doneB!, doneC!]) assert.is(done.state, 'succeeded', JSON.stringify(done))
  assert.ok(ms(doneB!.startedAt) >= ms(doneA!.finishedAt), `B started ${doneB!.startedAt}, A finished ${doneA!.finishedAt}`)
  assert.ok(ms(doneC!.startedAt) >= ms(doneB!.finishedAt), `C started ${doneC!.startedAt}, B finished ${doneB!.finishedAt}`)
  const owners = new Set([doneA!.owner, doneB!.owner, doneC!.owner])
  console.log(`    chain A→B→C: ${owners.size} distinct owners; B waited ${ms(doneB!.startedAt) - ms(doneA!.finishedAt)} ms after A, C ${ms(doneC!.startedAt) - ms(doneB!.finishedAt)} ms after B`)
  assert.is(owners.size, 3, `owners: ${[...owners].join(', ')}`)
})

test('a schedule every 1s with catch-up all fires each tick exactly once while its owner is SIGKILLed', async () => {
  const everyMs = 1000
  const created = await nodes[0]!.client.submit({ type: 'noop', every: everyMs, catchUp: 'all' })
  assert.ok(created.schedule !== undefined, JSON.stringify(created))
  const ownerId = created.replicas[0]!
  const victim = nodes.find(node => node.peerId === ownerId)!
  const survivors = nodes.filter(node => node !== victim)
  const reader = survivors[0]!
  const firedAtLeast = async (count: number): Promise<boolean> => (await reader.client.list({ schedule: created.id, limit: 1000 })).tasks.length >= count
  await until('the schedule to fire 3 times', async () => await firedAtLeast(3), 30_000)
  const killedAtMs = Date.now()
  victim.process.kill('SIGKILL')
  await victim.exited
  await until('the schedule to fire after the kill', async () => {
    const page = await reader.client.list({ schedule: created.id, limit: 1000 })
    return page.tasks.some(task => ms(task.runAt) > killedAtMs + 6000)
  }, 60_000)
  // Stop it (DELETE = cancel a schedule), then let the last occurrences finish.
  const deleted = await reader.client.cancel(created.id)
  assert.is(deleted.state, 'cancelled')
  const stoppedAtMs = Date.now()
  const listAll = async (): Promise<PublicRecord[]> => {
    const all: PublicRecord[] = []
    let cursor: string | undefined
    do {
      const page = await reader.client.list({ schedule: created.id, limit: 1000, cursor })
      all.push(...page.tasks)
      cursor = page.next ?? undefined
    } while (cursor !== undefined)
    return all
  }
  const occurrences = await until('every occurrence to finish', async () => {
    const all = await listAll()
    return all.every(task => task.state === 'succeeded' || task.state === 'dead' || task.state === 'cancelled') ? all : undefined
  }, 60_000)
  const schedule = (await reader.client.get(created.id)).schedule!
  // Expected: every tick after the schedule was created, up to its watermark (ticks after the
  // delete never fire; the watermark says how far firing got).
  const anchorMs = ms(created.createdAt)
  const firedUpToMs = ms(schedule.firedUpTo)
  const expected: number[] = []
  for (let tick = anchorMs + everyMs; tick <= firedUpToMs; tick += everyMs) expected.push(tick)
  const ticks = occurrences.map(task => ms(task.runAt))
  const outside = ticks.filter(tick => (tick - anchorMs) % everyMs !== 0 || tick <= anchorMs || tick > stoppedAtMs)
  // Every start counts: an occurrence that ran twice is an extra run of its tick.
  const actual = occurrences.flatMap(task => task.history.filter(entry => entry.state === 'running').map(entry => ms(entry.at)))
  const reruns = occurrences.filter(task => task.history.filter(entry => entry.state === 'running').length > 1)
  // Tolerance: an occurrence may start as late as the failover window (dead after 3 s, off the
  // ring after 8 s, then catch-up).
  const report = checkSchedule({ expected, actual, toleranceMs: 15_000 })
  for (const task of occurrences) {
    if (reruns.includes(task) || ms(task.startedAt) - ms(task.runAt) > 5000) {
      console.log(`      ${task.id} (killed node ${ownerId.slice(-6)}): ${task.history.map(entry => `${entry.state}@${ms(entry.at) - anchorMs}ms/${entry.node.slice(-6)}/a${entry.attempt}${entry.error === undefined ? '' : ` (${entry.error})`}`).join(' → ')}`)
    }
  }
  const lateness = occurrences.map(task => ms(task.startedAt) - ms(task.runAt)).filter(Number.isFinite)
  console.log(`    schedule every 1s, owner SIGKILLed ${killedAtMs - anchorMs} ms in, ${occurrences.length} occurrences: expected ${report.expected}, actual ${actual.length}, matched ${report.matched}, extra ${report.extra.length}, missed ${report.missed.length}; ids off the tick grid ${outside.length}; re-run occurrences ${reruns.length}; lateness p50 ${percentile(lateness, 50)} ms, max ${Math.max(...lateness)} ms; fired ${schedule.fired}, skipped ${schedule.skipped}`)
  assert.is(report.extra.length, 0, `extra runs at ${report.extra.map(tick => new Date(tick).toISOString()).join(', ')}`)
  assert.is(report.missed.length, 0, `missed ticks ${report.missed.map(tick => new Date(tick).toISOString()).join(', ')}`)
  assert.is(outside.length, 0)
  assert.is(new Set(occurrences.map(task => task.id)).size, occurrences.length)
  assert.ok(report.expected >= 8, `at least 8 ticks expected, got ${report.expected}`)
})

test.run()
