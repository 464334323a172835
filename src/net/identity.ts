// identity.ts: the node's persistent libp2p identity (an Ed25519 private key).
// Why persistent: the peer id is the node's name on the ring; it must survive restarts
// so that a restarted node owns the same key ranges and its peers recognise it.
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

export const PEER_KEY_FILE_NAME = 'peer.key'

/** A peer key file exists but does not hold a libp2p private key. Never overwritten silently. */
export class PeerKeyCorruptError extends Error {
  override name = 'PeerKeyCorruptError'
}

/**
 * Load `<dataDir>/peer.key` (a protobuf-encoded libp2p private key), or create an Ed25519
 * key there (mode 0o600, directory created recursively) when the file does not exist.
 * A file that exists but does not decode throws PeerKeyCorruptError: replacing it would
 * silently give the node a new peer id, and with it another node's key ranges.
 */
export async function loadOrCreatePrivateKey (dataDir: string): Promise<PrivateKey> {
  const file = join(dataDir, PEER_KEY_FILE_NAME)
  let bytes: Uint8Array | undefined
  try {
    bytes = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (bytes !== undefined) return decodeKey(file, bytes)

  await mkdir(dataDir, { recursive: true })
  const key = await generateKeyPair('Ed25519')
  await writeFileAtomic(file, privateKeyToProtobuf(key))
  return key
}

function decodeKey (file: string, bytes: Uint8Array): PrivateKey {
  try {
    return privateKeyFromProtobuf(bytes)
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    throw new PeerKeyCorruptError(`peer key file ${file} is not a valid libp2p private key (${reason}); ` +
      'restore it from a backup, or delete it to give this node a new peer id')
  }
}

/** Write to a temporary file first, so that a crash mid-write never leaves a half key behind. */
async function writeFileAtomic (file: string, bytes: Uint8Array): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`
  const handle = await open(temporary, 'wx', 0o600)
  try {
    await handle.writeFile(bytes)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await rename(temporary, file)
  } catch (err) {
    await unlink(temporary).catch(() => {})
    throw err
  }
}
