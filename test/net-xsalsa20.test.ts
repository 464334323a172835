// The pnet cipher must not leak WASM memory when several connections carry large frames.
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { spawnSync } from 'node:child_process'

// Each case runs in a fresh process: the WASM memory is per process and never shrinks.
function alternate (withFix: boolean): string {
  const script = `
    ${withFix ? "const { applyXsalsa20Fix } = await import('./dist/src/net/xsalsa20-fix.js'); if (!applyXsalsa20Fix()) throw new Error('not applied');" : ''}
    const { createRequire } = await import('node:module')
    const X = createRequire(import.meta.url)('xsalsa20')
    const key = new Uint8Array(32).fill(1)
    const a = X(new Uint8Array(24).fill(2), key), b = X(new Uint8Array(24).fill(3), key)
    const big = new Uint8Array(2 * 1024 * 1024), small = new Uint8Array(100)
    try { for (let i = 0; i < 200; i++) { a.update(big); b.update(small) } console.log('ok') } catch (e) { console.log('crash: ' + e.message) }
  `
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  return (result.stdout + result.stderr).trim()
}

test('without the fix, two ciphers alternating large and small updates exhaust WASM memory', () => {
  assert.match(alternate(false), /crash: .*Maximum memory size exceeded/)
})

test('with the fix they run indefinitely', () => {
  assert.is(alternate(true), 'ok')
})

test('the fix keeps the cipher correct: encrypting twice with the same nonce decrypts', async () => {
  const { applyXsalsa20Fix } = await import('../src/net/xsalsa20-fix.js')
  applyXsalsa20Fix()
  const { createRequire } = await import('node:module')
  const X = createRequire(import.meta.url)('xsalsa20')
  const key = new Uint8Array(32).fill(7)
  const nonce = new Uint8Array(24).fill(9)
  const plain = new TextEncoder().encode('taskmesh '.repeat(1000))
  const other = X(new Uint8Array(24).fill(1), key)
  other.update(new Uint8Array(3 * 1024 * 1024)) // grows the memory and detaches the views
  const sealed = X(nonce, key).update(plain)
  other.update(new Uint8Array(5 * 1024 * 1024))
  const opened = X(nonce, key).update(sealed)
  assert.equal(Buffer.from(opened), Buffer.from(plain))
})

test.run()
