// formation-stress.ts: launch and stop 5-node clusters in a loop, the way the fault tests launch
// them (one seed, the rest bootstrapping from it at once, no retry), and count how many form.
// Not a uvu test (the name does not end .test.js): a tool to reproduce rare formation stalls.
//   node dist/test/faults/formation-stress.js [rounds=20] [nodes=5] [timeoutMs=60000]
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeSwarmKeyFile } from '../../src/net/swarm-key.js'
import { HANDLERS, spawnNode, stopNode, tempDir, untilFormed } from '../support/processes.js'
import type { NodeProcess } from '../support/processes.js'

const rounds = Number(process.argv[2] ?? 20)
const size = Number(process.argv[3] ?? 5)
const timeoutMs = Number(process.argv[4] ?? 60_000)

function args (dir: string, index: number, bootstrap: string[]): string[] {
  return [
    '--data', join(dir, `node-${index}`), '--api', '127.0.0.1:0', '--listen', '/ip4/127.0.0.1/tcp/0',
    '--swarm-key', join(dir, 'swarm.key'), '--handlers', HANDLERS, '--log-level', process.env.TASKMESH_TEST_LOG_LEVEL ?? 'warn',
    ...bootstrap.flatMap(addr => ['--bootstrap', addr])
  ]
}

let formed = 0
const stalls: string[] = []
for (let round = 1; round <= rounds; round++) {
  const dir = await tempDir('formation')
  const nodes: NodeProcess[] = []
  const startedAtMs = Date.now()
  try {
    await writeSwarmKeyFile(join(dir, 'swarm.key'))
    nodes.push(await spawnNode(args(dir, 1, [])))
    nodes.push(...await Promise.all(Array.from({ length: size - 1 }, async (_, i) => await spawnNode(args(dir, i + 2, [nodes[0]!.addrs[0]!])))))
    await untilFormed(nodes, size, timeoutMs)
    formed++
    console.log(`round ${round}: formed in ${Date.now() - startedAtMs} ms`)
  } catch (error) {
    const message = (error as Error).message
    stalls.push(`round ${round}: ${message}`)
    console.log(`round ${round}: STALL ${message}`)
    for (const [i, node] of nodes.entries()) {
      console.log(`  node-${i + 1} ${node.peerId.slice(-6)} log tail:\n    ${node.output.slice(-15).join('\n    ')}`)
    }
  } finally {
    await Promise.all(nodes.map(async node => await stopNode(node, 5000)))
    const keep = process.env.TASKMESH_TEST_LOGS
    if (keep !== undefined) {
      await mkdir(join(keep, `round-${round}`), { recursive: true })
      await Promise.all(nodes.map(async (node, i) => await writeFile(join(keep, `round-${round}`, `node-${i + 1}-${node.peerId.slice(-6)}.log`), node.output.join('\n') + '\n')))
    }
    await rm(dir, { recursive: true, force: true })
  }
}
console.log(`formations: ${formed}/${rounds} formed`)
process.exit(formed === rounds ? 0 : 1)
