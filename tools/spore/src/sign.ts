import { sign } from 'node:crypto'
import { Spore, type SignedSpore } from '@mycelium/core-interfaces'
import type { SigningPrivateKey } from './keys.js'

/** Serializes the spore once and signs those exact bytes with each key. */
export function signSpore(spore: Spore, keys: SigningPrivateKey[]): SignedSpore {
  const bytes = Buffer.from(Spore.encode(spore).finish())
  return { spore: bytes, signatures: keys.map((k) => ({ keyId: k.keyId, signature: sign(null, bytes, k.privateKey) })) }
}
