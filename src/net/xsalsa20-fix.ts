// xsalsa20-fix.ts: work around a memory leak in xsalsa20 1.2.0, the cipher of @libp2p/pnet.
//
// Every cipher instance keeps its own Uint8Array view of one shared WebAssembly memory. When
// one instance grows that memory, the views of all the others are detached (length 0), and the
// next update() of each of them then grows the memory again by its whole working size. With a
// few connections carrying large frames the memory doubles its way to the 64 MiB cap within
// seconds and the node dies with "WebAssembly.Memory.grow(): Maximum memory size exceeded"
// (seen under load; reproduced in test/net-xsalsa20.test.ts).
//
// The fix refreshes a detached view before each update: the instance's own realloc(0) asks for
// zero new pages, which only re-reads the current buffer. If the module's shape is not the one
// this was written for, nothing is patched.
import { createRequire } from 'node:module'

interface WasmCipher { _memory?: Uint8Array, realloc?: (size: number) => void }
interface CipherPrototype { update: (this: { _xor?: WasmCipher }, input: Uint8Array, output?: Uint8Array) => Uint8Array, __taskmeshFixed?: boolean }

const require = createRequire(import.meta.url)

export function applyXsalsa20Fix (): boolean {
  let XSalsa20: { prototype: CipherPrototype }
  try {
    XSalsa20 = require('xsalsa20')
  } catch {
    return false
  }
  const prototype = XSalsa20.prototype
  if (prototype.__taskmeshFixed === true) return true
  if (typeof prototype.update !== 'function') return false
  const update = prototype.update
  prototype.update = function (input, output) {
    const cipher = this._xor
    if (cipher?._memory !== undefined && cipher._memory.byteLength === 0 && typeof cipher.realloc === 'function') cipher.realloc(0)
    return update.call(this, input, output)
  }
  prototype.__taskmeshFixed = true
  return true
}
