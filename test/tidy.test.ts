// tidy.test.ts: src/core stays pure (design.md section 1): no clock, no randomness, no
// timers, no I/O, no libp2p or level. The runtime and the simulator depend on it.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const coreDir = join(root, 'src', 'core')

const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\.now\b/, 'Date.now'],
  [/\bnew Date\s*\(\s*\)/, 'new Date()'],
  [/\bMath\.random\b/, 'Math.random'],
  [/\bperformance\.now\b/, 'performance.now'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'timers'],
  [/\bprocess\./, 'process'],
  [/\bawait\b|\basync\b/, 'async code'],
  [/from\s+['"]node:/, 'node: modules'],
  [/from\s+['"](fs|path|os|net|http|crypto|child_process)['"]/, 'node modules'],
  [/from\s+['"](libp2p|@libp2p\/[^'"]+|@chainsafe\/[^'"]+|level|classic-level|msgpackr)['"]/, 'libp2p, level or msgpackr'],
  [/import\(\s*['"](?!\.)/, 'dynamic imports of packages'],
  [/from\s+['"]\.\.\/(net|store|exec\/(?!types)|runtime|api|cli)/, 'imports from the adapters']
]

test('src/core reaches for no clock, randomness, timers, I/O, libp2p or level', () => {
  const files = readdirSync(coreDir).filter(name => name.endsWith('.ts'))
  assert.ok(files.length >= 5, 'core files found')
  const violations: string[] = []
  for (const file of files) {
    const lines = readFileSync(join(coreDir, file), 'utf8').split('\n')
    lines.forEach((line, index) => {
      const code = line.replace(/\/\/.*$/, '')
      for (const [pattern, what] of FORBIDDEN) if (pattern.test(code)) violations.push(`${file}:${index + 1}: ${what}: ${line.trim()}`)
    })
  }
  assert.equal(violations, [], violations.join('\n'))
})

test('the guard itself catches a violation', () => {
  const sample = 'const t = Date.now()'
  assert.ok(FORBIDDEN.some(([pattern]) => pattern.test(sample)))
})

test.run()
