// sim-faults.test.ts: the local simulator's fault schedule (sim/faults.ts): what parses, what is
// refused and how the error names the item, the seeded random schedule, and the steps a
// schedule turns into. Also the workload's duration and rate options.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { FaultScheduleError, faultSteps, faultsOverAtMs, formatFaults, parseFaults, pausedSide, randomFaults, resolveFaults } from '../sim/faults.js'
import { parseDurationSpec, parseRate, sampleDurationMs } from '../sim/workload.js'
import { prng } from '../sim/prng.js'

test('faults: the issue\'s example parses, in time order, and prints back the same', () => {
  const text = 'kill:2@5s,restart@15s,pause:1@20s+5s,partition:1|2,3,4,5@30s+10s'
  const faults = parseFaults(text, 5)
  assert.equal(faults, [
    { kind: 'kill', node: 2, atMs: 5000 },
    { kind: 'restart', node: null, atMs: 15_000 },
    { kind: 'pause', node: 1, atMs: 20_000, forMs: 5000 },
    { kind: 'partition', groups: [[1], [2, 3, 4, 5]], atMs: 30_000, forMs: 10_000 }
  ])
  assert.is(formatFaults(faults), text)
  assert.is(faultsOverAtMs(faults), 40_000)
})

test('faults: every kind, units, spaces, unsorted input, none', () => {
  const faults = parseFaults(' slow:3@1.5s+500ms , kill:1@250 ,restart:1@2m, partition:4,5|1,2,3@3s+1s ', 5)
  assert.equal(faults.map(fault => fault.kind), ['kill', 'slow', 'partition', 'restart'])
  assert.equal(faults[0], { kind: 'kill', node: 1, atMs: 250 })
  assert.equal(faults[1], { kind: 'slow', node: 3, atMs: 1500, forMs: 500 })
  assert.equal(faults[3], { kind: 'restart', node: 1, atMs: 120_000 })
  assert.is(formatFaults(faults), 'kill:1@250ms,slow:3@1.5s+500ms,partition:4,5|1,2,3@3s+1s,restart:1@2m')
  assert.equal(parseFaults('none', 3), [])
  assert.equal(parseFaults('', 3), [])
  assert.is(formatFaults([]), 'none')
  // Kill at the very end of a pause of the same node, and again after a restart: fine.
  assert.is(parseFaults('pause:2@1s+2s,kill:2@3s,restart@4s,kill:2@6s', 3).length, 4)
  // Every killed node restarted by one restart@T.
  assert.is(parseFaults('kill:1@1s,kill:3@2s,restart@3s', 3).length, 3)
})

test('faults: a bad schedule is refused with an error naming the item', () => {
  const cases: Array<[string, string, string]> = [
    ['kil:2@5s', 'kil:2@5s', "unknown kind 'kil'"],
    ['kill:9@5s', 'kill:9@5s', 'node 9 does not exist (nodes are numbered 1 to 5)'],
    ['kill:0@5s', 'kill:0@5s', 'node 0 does not exist'],
    ['kill:two@5s', 'kill:two@5s', "'two' is not a node number"],
    ['kill:2', 'kill:2', 'no time: write kill:N@T'],
    ['kill@5s', 'kill@5s', 'which node?'],
    ['kill:2@5s+1s', 'kill:2@5s+1s', 'a kill takes no duration'],
    ['pause:2@5s', 'pause:2@5s', 'a pause needs a duration: write pause:N@T+D'],
    ['slow:2@5s+0s', 'slow:2@5s+0s', 'the duration must be more than 0'],
    ['kill:2@soon', 'kill:2@soon', "'soon' is not a time"],
    ['pause:1@1s+later', 'pause:1@1s+later', "'later' is not a duration"],
    ['kill:2@2d', 'kill:2@2d', 'over the limit'],
    ['restart@5s', 'restart@5s', 'no node is down at 5s: nothing to restart'],
    ['kill:2@1s,restart:3@2s', 'restart:3@2s', 'node 3 is not down at 2s'],
    ['kill:2@1s,kill:2@3s', 'kill:2@3s', "node 2 is down at 3s (killed by 'kill:2@1s' and not restarted)"],
    ['kill:1@1s,pause:1@2s+1s', 'pause:1@2s+1s', 'node 1 is down at 2s'],
    ['pause:1@1s+5s,pause:1@3s+1s', 'pause:1@3s+1s', "node 1 is already paused by 'pause:1@1s+5s'"],
    ['pause:1@1s+5s,kill:1@3s', 'kill:1@3s', 'already paused'],
    ['partition:1|2@3s+1s', 'partition:1|2@3s+1s', 'nodes 3, 4, 5 are in no group'],
    ['partition:1|1,2,3,4,5@3s+1s', 'partition:1|1,2,3,4,5@3s+1s', 'node 1 is in more than one group'],
    ['partition:1,2,3,4,5@3s+1s', 'partition:1,2,3,4,5@3s+1s', 'at least two groups'],
    ['partition:1||2,3,4,5@3s+1s', 'partition:1||2,3,4,5@3s+1s', 'a group is empty'],
    ['partition:1|2,3,4,5@3s', 'partition:1|2,3,4,5@3s', 'a partition needs a duration']
  ]
  for (const [text, item, message] of cases) {
    try {
      parseFaults(text, 5)
      assert.unreachable(`${text} parsed`)
    } catch (error) {
      assert.instance(error, FaultScheduleError, text)
      const fault = error as FaultScheduleError
      assert.is(fault.item, item, text)
      assert.match(fault.message, `fault '${item}': `, text)
      assert.match(fault.message, message, `${text}: ${fault.message}`)
    }
  }
  assert.throws(() => parseFaults('kill:1@1s,,kill:2@2s', 5), /empty item/)
  assert.throws(() => parseFaults('kill:1@1s,', 5), /empty item/)
  // A partition cuts links, not processes: its nodes may be paused or killed meanwhile.
  assert.is(parseFaults('pause:1@1s+5s,partition:1|2,3,4,5@3s+1s,kill:2@3500ms', 5).length, 3)
})

test("faults: a partition's fault window names every group but the largest", () => {
  assert.equal(pausedSide([[1], [2, 3, 4, 5]]), [1])
  assert.equal(pausedSide([[1, 2, 3], [4, 5]]), [4, 5])
  assert.equal(pausedSide([[1, 2], [3, 4]]), [3, 4], 'a tie keeps the first group up')
  assert.equal(pausedSide([[5], [1, 2, 3], [4]]), [4, 5])
})

test('faults: steps resolve restart@T and partitions, ends before beginnings', () => {
  const steps = faultSteps(parseFaults('kill:3@1s,kill:1@2s,restart@4s,pause:2@5s+1s,kill:2@6s,partition:1|2,3@8s+2s', 3))
  assert.equal(steps.map(step => [step.atMs, step.action, step.node]), [
    [1000, 'kill', 3],
    [2000, 'kill', 1],
    [4000, 'restart', 1],
    [4000, 'restart', 3],
    [5000, 'pause', 2],
    [6000, 'resume', 2],
    [6000, 'kill', 2],
    [8000, 'cut', -1],
    [10_000, 'mend', -1]
  ])
})

test('faults: random with a seed is deterministic, valid and heals', () => {
  for (const nodes of [1, 2, 3, 5, 9]) {
    for (let seed = 0; seed < 40; seed++) {
      const options = { seed, nodes, spanMs: 20_000, count: 4 }
      const faults = randomFaults(options)
      assert.equal(randomFaults(options), faults, `seed ${seed} again`)
      const text = formatFaults(faults)
      assert.equal(parseFaults(text, nodes), faults, `seed ${seed}, ${nodes} nodes: ${text} parses back`)
      // Every kill has its restart; never more than a minority down at once.
      const killed = faults.filter(fault => fault.kind === 'kill').length
      const restarted = faults.filter(fault => fault.kind === 'restart').length
      assert.is(killed, restarted, text)
      const downMax = Math.max(1, Math.floor((nodes - 1) / 2))
      const steps = faultSteps(faults)
      const down = new Set<number>()
      for (const step of steps) {
        if (step.action === 'kill' || step.action === 'pause') down.add(step.node)
        if (step.action === 'restart' || step.action === 'resume') down.delete(step.node)
        assert.ok(down.size <= downMax, `${text}: ${down.size} down at ${step.atMs}`)
      }
      assert.is(down.size, 0, `${text}: everything heals`)
    }
  }
  const a = formatFaults(randomFaults({ seed: 7, nodes: 5, spanMs: 30_000 }))
  const b = formatFaults(randomFaults({ seed: 8, nodes: 5, spanMs: 30_000 }))
  assert.is.not(a, b, 'another seed, another schedule')
  assert.is(formatFaults(randomFaults({ seed: 7, nodes: 5, spanMs: 30_000 })), a)
})

test('faults: resolveFaults takes none, random, random:N or a schedule', () => {
  const options = { nodes: 5, seed: 42, spanMs: 20_000 }
  assert.equal(resolveFaults('none', options), { faults: [], random: false })
  const random = resolveFaults('random', options)
  assert.ok(random.random)
  assert.equal(random.faults, randomFaults({ ...options, count: 3 }))
  const many = resolveFaults('random:6', options)
  assert.ok(many.faults.length >= 6, 'six faults, kills with their restarts')
  assert.equal(resolveFaults('kill:1@1s', options), { faults: [{ kind: 'kill', node: 1, atMs: 1000 }], random: false })
  assert.throws(() => resolveFaults('random:lots', options), (error: Error) => error instanceof FaultScheduleError && /random:N/.test(error.message))
})

test('workload: durations and rates', () => {
  assert.equal(parseDurationSpec('200ms'), { kind: 'fixed', ms: 200 })
  assert.equal(parseDurationSpec('1.5s'), { kind: 'fixed', ms: 1500 })
  assert.equal(parseDurationSpec('exp:200ms'), { kind: 'exp', meanMs: 200 })
  assert.equal(parseDurationSpec('uniform:50ms-500ms'), { kind: 'uniform', minMs: 50, maxMs: 500 })
  assert.throws(() => parseDurationSpec('gauss:5ms'), /unknown distribution 'gauss'/)
  assert.throws(() => parseDurationSpec('uniform:500ms-50ms'), /minimum is above the maximum/)
  assert.throws(() => parseDurationSpec('uniform:50ms'), /uniform:MIN-MAX/)
  assert.throws(() => parseDurationSpec('exp:0'), /more than 0/)
  assert.throws(() => parseDurationSpec('soon'), /'soon' is not a duration/)
  assert.is(parseRate('unlimited'), null)
  assert.is(parseRate('250'), 250)
  assert.is(parseRate('0.5'), 0.5)
  assert.throws(() => parseRate('0'), /not a rate/)
  assert.throws(() => parseRate('-3'), /not a rate/)

  const random = prng(3)
  const uniform = Array.from({ length: 2000 }, () => sampleDurationMs({ kind: 'uniform', minMs: 50, maxMs: 500 }, random))
  assert.ok(uniform.every(ms => ms >= 50 && ms <= 500))
  const exp = Array.from({ length: 5000 }, () => sampleDurationMs({ kind: 'exp', meanMs: 200 }, random))
  const mean = exp.reduce((sum, ms) => sum + ms, 0) / exp.length
  assert.ok(mean > 170 && mean < 230, `exponential mean ${mean}`)
  assert.ok(exp.every(ms => ms >= 0 && ms <= 4000), 'cut at 20 means')
  const again = prng(3)
  assert.is(sampleDurationMs({ kind: 'exp', meanMs: 200 }, again), sampleDurationMs({ kind: 'exp', meanMs: 200 }, prng(3)))
})

test('faults: lag and loss impair one node for a while, and print back as written', () => {
  const faults = parseFaults('lag:2=200ms@5s+10s,loss:3=12.5%@6s+4s', 5)
  assert.equal(faults, [
    { kind: 'lag', node: 2, delayMs: 200, atMs: 5000, forMs: 10_000 },
    { kind: 'loss', node: 3, percent: 12.5, atMs: 6000, forMs: 4000 }
  ])
  assert.is(formatFaults(faults), 'lag:2=200ms@5s+10s,loss:3=12.5%@6s+4s')
  assert.equal(faultSteps(faults).map(step => [step.atMs, step.action, step.node]), [
    [5000, 'impair', 2], [6000, 'impair', 3], [10_000, 'unimpair', 3], [15_000, 'unimpair', 2]
  ])
  for (const [text, message] of [
    ['lag:2@5s+1s', 'how much?'],
    ['lag:2=0@5s+1s', 'more than 0'],
    ['loss:2=0%@5s+1s', 'not a loss'],
    ['loss:2=150%@5s+1s', 'not a loss'],
    ['loss:2=10@5s+1s', 'not a loss'],
    ['lag:9=10ms@5s+1s', 'node 9 does not exist'],
    ['loss:2=10%@5s', 'needs a duration']
  ]) {
    try {
      parseFaults(text!, 5)
      assert.unreachable(`${text} parsed`)
    } catch (error) {
      assert.instance(error, FaultScheduleError, text)
      assert.match((error as Error).message, message!, `${text}: ${(error as Error).message}`)
    }
  }
})

test.run()
