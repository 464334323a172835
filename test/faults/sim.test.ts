// sim.test.ts: one short real run of the local simulator through the CLI: 3 nodes, 200 tasks,
// node 2 SIGKILLed mid-run and restarted from its data folder. Nothing may be lost, and the
// JSON report carries every field the issue asks for.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { BIN, tempDir } from '../support/processes.js'

const RUN_TIMEOUT_MS = 120_000

/** Runs `taskmesh sim` with these arguments; it must exit 0. */
async function runSim (args: string[]): Promise<{ stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', chunk => { stdout += String(chunk) })
  child.stderr.on('data', chunk => { stderr += String(chunk) })
  // A guard, not a measurement: a hung run is stopped (SIGINT: the simulator stops its nodes).
  const guard = setTimeout(() => child.kill('SIGINT'), RUN_TIMEOUT_MS)
  const code = await new Promise<number | null>(resolve => child.once('exit', resolve))
  clearTimeout(guard)
  assert.is(code, 0, `exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`)
  return { stdout, stderr }
}

test('taskmesh sim: kill and restart a node under load, nothing lost, a full JSON report', async () => {
  const dir = await tempDir('sim')
  const jsonFile = join(dir, 'report.json')
  const htmlFile = join(dir, 'report.html')
  try {
    // 25 tasks/s spreads the 200 tasks over 8 s, so the kill at 3 s lands mid-run.
    const args = ['sim', '--nodes', '3', '--tasks', '200', '--rate', '25', '--duration', '100ms',
      '--faults', 'kill:2@3s,restart@8s', '--seed', '11', '--json', jsonFile, '--html', htmlFile]
    const { stdout, stderr } = await runSim(args)

    const report = JSON.parse(await readFile(jsonFile, 'utf8'))
    console.log(`    sim: accepted ${report.accepted}, completed ${report.completed}, lost ${report.lost}, duplicated ${report.duplicated}, ` +
      `failover ${report.failover.map((entry: { firstMs: number | null }) => entry.firstMs).join(', ')} ms, ${report.throughput.completedPerSecond} tasks/s, ${(report.elapsedMs / 1000).toFixed(1)} s`)
    assert.is(report.lost, 0)
    assert.is(report.accepted, 200)
    assert.is(report.completed, 200)
    assert.is(report.unexpected, 0)
    for (const field of ['duplicated', 'recovered', 'underReplicatedTaskSeconds', 'elapsedMs']) assert.type(report[field], 'number', field)
    assert.equal(report.options.faults, 'kill:2@3s,restart@8s')
    assert.is(report.options.seed, 11)
    assert.type(report.throughput.completedPerSecond, 'number')
    assert.ok(report.throughput.series.length > 0)
    for (const name of ['submitToStart', 'submitToDone']) {
      const summary = report.latencyMs[name]
      assert.is(summary.count, 200, name)
      for (const p of ['p50', 'p95', 'p99']) assert.type(summary[p], 'number', `${name}.${p}`)
      assert.ok(summary.p50 <= summary.p95 && summary.p95 <= summary.p99, name)
    }
    assert.ok(report.latencyMs.histogram.counts.length > 0)
    assert.is(report.failover.length, 1)
    assert.is(report.failover[0].fault, 'kill:2@3s')
    assert.is(report.failover[0].node, 2)
    assert.is(report.perNode.nodes.length, 3)
    assert.is(report.perNode.nodes[1].restarts, 1)
    assert.type(report.perNode.executedMax, 'number')
    assert.type(report.perNode.executedAvg, 'number')
    assert.ok(report.underReplicatedTaskSeconds > 0, 'node 2 was down while tasks were in flight')
    assert.equal(report.faultWindows.map((window: { label: string }) => window.label), ['kill:2@3s'])
    const kinds = report.timeline.map((entry: { kind: string }) => entry.kind)
    for (const kind of ['workload', 'kill', 'restart', 'settle']) assert.ok(kinds.includes(kind), `timeline has ${kind}`)

    assert.match(stdout, /lost\s+0/)
    assert.match(stdout, 'OK: nothing lost')
    const html = await readFile(htmlFile, 'utf8')
    assert.is((html.match(/<svg /g) ?? []).length, 3)
    // The run's folder is gone (no --keep), and with it the nodes' data.
    const runDir = /in (\S+taskmesh-sim-\S+)/.exec(stderr)?.[1]
    assert.ok(runDir !== undefined, stderr)
    assert.not.ok(existsSync(runDir!), `${runDir} removed`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('taskmesh sim: a partition cuts the links in the transport; the minority side refuses, nothing is lost', async () => {
  const dir = await tempDir('sim-partition')
  const jsonFile = join(dir, 'report.json')
  try {
    const args = ['sim', '--nodes', '3', '--tasks', '200', '--rate', '25', '--duration', '50ms',
      '--faults', 'partition:1|2,3@2s+4s', '--seed', '12', '--json', jsonFile]
    const { stdout } = await runSim(args)
    const report = JSON.parse(await readFile(jsonFile, 'utf8'))
    console.log(`    sim partition: accepted ${report.accepted}, completed ${report.completed}, lost ${report.lost}, duplicated ${report.duplicated}, refused ${report.submit.refused}`)
    assert.is(report.lost, 0)
    assert.is(report.completed, report.accepted)
    assert.is(report.unexpected, 0)
    assert.match(stdout, /userland fault layer/)
    assert.match(stdout, /partition over/)
    assert.ok(report.submit.refused > 0, `node 1, cut off alone, answered 503 to the submits sent to it\n${stdout}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
