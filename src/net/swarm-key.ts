// swarm-key.ts: the pre-shared key of a private network (@libp2p/pnet, "PSK v1" format).
// Only peers holding the same key can open a connection; it is what keeps strangers off
// the ring (design.md section 2).
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

const HEADER = '/key/swarm/psk/1.0.0/'
const CODEC = '/base16/'
const KEY_BYTES = 32
/** A real swarm key file is 95 bytes; anything far bigger is certainly something else. */
const FILE_BYTES_MAX = 4096

/** The file is missing the PSK v1 header, codec line or 64 hex digits. */
export class SwarmKeyInvalidError extends Error {
  override name = 'SwarmKeyInvalidError'
}

/** writeSwarmKeyFile refused to replace an existing file. */
export class SwarmKeyExistsError extends Error {
  override name = 'SwarmKeyExistsError'
}

/** A fresh random key, as the bytes of a swarm key file. */
export function generateSwarmKey (): Uint8Array {
  return encode(randomBytes(KEY_BYTES).toString('hex'))
}

/**
 * Create `file` (mode 0o600, parent directories created) holding a fresh key.
 * Refuses to overwrite: replacing a cluster's key would lock this node out of it.
 */
export async function writeSwarmKeyFile (file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  try {
    await writeFile(file, generateSwarmKey(), { mode: 0o600, flag: 'wx' })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new SwarmKeyExistsError(`swarm key file ${file} already exists; refusing to overwrite it`)
    }
    throw err
  }
}

/**
 * Read and validate a swarm key file. Returns the canonical bytes (lower-case hex, no
 * trailing newline) to pass to PeerNetOptions.swarmKey. A file written by hand with a
 * trailing newline or CRLF line ends is accepted.
 */
export async function readSwarmKeyFile (file: string): Promise<Uint8Array> {
  const info = await stat(file)
  if (!info.isFile() || info.size > FILE_BYTES_MAX) {
    throw new SwarmKeyInvalidError(`${file} is not a swarm key file (expected a ~95-byte file, found ${info.isFile() ? `${info.size} bytes` : 'not a regular file'})`)
  }
  const text = (await readFile(file)).toString('utf8')
  const lines = text.split(/\r?\n/)
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop()
  const [header, codec, hex] = lines.map(line => line.trim())
  if (lines.length !== 3 || header !== HEADER || codec !== CODEC || hex === undefined || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new SwarmKeyInvalidError(`${file} is not a swarm key file: expected the three lines "${HEADER}", "${CODEC}" and 64 hex digits (create one with writeSwarmKeyFile)`)
  }
  return encode(hex.toLowerCase())
}

function encode (hex: string): Uint8Array {
  return new TextEncoder().encode(`${HEADER}\n${CODEC}\n${hex}`)
}
