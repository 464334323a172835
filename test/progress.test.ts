// progress.test.ts: the runtime's progress throttle and the store's forget (retention) batch.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { newRecord } from '../src/core/record.js'
import { silentLogger } from '../src/runtime/log.js'
import { ProgressThrottle } from '../src/runtime/progress.js'
import { Store } from '../src/store/store.js'
import { tempDir, until } from './support/processes.js'

test('progress: the first report goes out at once, then at most one per interval, the latest on the trailing edge', async () => {
  let nowMs = 0
  const sent: Array<[string, number]> = []
  const throttle = new ProgressThrottle((taskId, progress) => sent.push([taskId, progress]), 50, () => nowMs)
  throttle.report('a', 1)
  throttle.report('a', 2)
  throttle.report('a', 3)
  throttle.report('b', 7)
  assert.equal(sent, [['a', 1], ['b', 7]], 'one per task at once')
  await until('the trailing report', () => sent.length === 3 || undefined, 5000, 5)
  assert.equal(sent[2], ['a', 3], 'the latest value, not the skipped ones')
  nowMs = 1000
  throttle.report('a', 4)
  assert.equal(sent[3], ['a', 4], 'after a quiet interval a report goes out at once')
  assert.is(throttle.size, 2)
  throttle.report('a', 5)
  throttle.finished('a')
  throttle.finished('b')
  assert.is(throttle.size, 0, 'bounded by the runs in progress; the pending trailing report is dropped with its timer')
})

test('store: forgotten ids are deleted in the same synced batch as the writes', async () => {
  const dir = await tempDir('store-forget')
  const store = await Store.open(join(dir, 'db'), silentLogger)
  try {
    const spec = { type: 'noop', payload: null, priority: 0, runAtMs: null, delayMs: null, maxAttempts: 1, backoff: { kind: 'fixed' as const, delayMs: 0, delayMsMax: 0 }, timeoutMs: null, idempotencyKey: null, dependsOn: [], schedule: null }
    const entry = (id: string) => ({ record: newRecord({ id, spec, atMs: 1000, coordinator: 'peer-a', replicas: ['peer-a'] }), promised: 0 })
    await store.write([entry('a'), entry('b'), entry('c')])
    await store.write([entry('d')], ['a', 'c'])
    assert.equal((await store.loadAll()).map(stored => stored.record.id).sort(), ['b', 'd'])
    assert.is(store.stats.entriesDeleted, 2)
    assert.is(store.stats.entriesWritten, 4)
    await store.write([], ['b', 'missing'])
    assert.equal((await store.loadAll()).map(stored => stored.record.id), ['d'])
  } finally {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
