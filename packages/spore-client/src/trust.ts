import { createPublicKey, type KeyObject } from 'node:crypto'
import { InvalidInputError, signingKeyId, type SigningKey, type TrustBundle } from '@mycelium/core-interfaces'

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** Spore keys of a trust bundle, parsed once for fast verification. */
export interface TrustedKeys {
  networkId: string
  threshold: number
  keys: ReadonlyMap<string, KeyObject>
}

export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

function parseKeys(keys: SigningKey[], where: string): Map<string, KeyObject> {
  const parsed = new Map<string, KeyObject>()
  keys.forEach((key, i) => {
    const at = `${where}[${i}]`
    if (key.publicKey.length !== 32) {
      throw new InvalidInputError(`public key is ${key.publicKey.length} bytes, an Ed25519 key is 32`, at)
    }
    const expectedId = signingKeyId(key.publicKey)
    if (key.keyId !== expectedId) {
      throw new InvalidInputError(`key id "${key.keyId}" does not match the key (expected "${expectedId}")`, at)
    }
    if (parsed.has(key.keyId)) throw new InvalidInputError(`key "${key.keyId}" is listed twice`, at)
    parsed.set(key.keyId, ed25519PublicKey(key.publicKey))
  })
  return parsed
}

/**
 * Validates a trust bundle for `networkId` and parses its spore keys.
 * Throws InvalidInputError naming `where` and the offending field.
 */
export function trustedSporeKeys(bundle: TrustBundle, networkId: string, where = 'trust bundle'): TrustedKeys {
  if (bundle.networkId !== networkId) {
    throw new InvalidInputError(`is for network "${bundle.networkId}", not "${networkId}"`, `${where}.networkId`)
  }
  const keys = parseKeys(bundle.sporeKeys, `${where}.sporeKeys`)
  if (bundle.sporeThreshold < 1 || bundle.sporeThreshold > keys.size) {
    throw new InvalidInputError(
      `threshold ${bundle.sporeThreshold} is not between 1 and the ${keys.size} spore keys`,
      `${where}.sporeThreshold`
    )
  }
  parseKeys(bundle.operatorKeys, `${where}.operatorKeys`)
  return { networkId, threshold: bundle.sporeThreshold, keys }
}

/**
 * The operator keys of a trust bundle (they sign emergency operations), with
 * their threshold (at least 1). Throws InvalidInputError naming the field.
 */
export function trustedOperatorKeys(bundle: TrustBundle, networkId: string, where = 'trust bundle'): TrustedKeys {
  if (bundle.networkId !== networkId) {
    throw new InvalidInputError(`is for network "${bundle.networkId}", not "${networkId}"`, `${where}.networkId`)
  }
  const keys = parseKeys(bundle.operatorKeys, `${where}.operatorKeys`)
  const threshold = Math.max(1, bundle.operatorThreshold)
  return { networkId, threshold, keys }
}

/**
 * The release keys of a trust bundle (they sign release manifests) with their
 * threshold, or undefined when the bundle names none. Throws InvalidInputError naming the field.
 */
export function trustedReleaseKeys(bundle: TrustBundle, networkId: string, where = 'trust bundle'): TrustedKeys | undefined {
  if (bundle.networkId !== networkId) {
    throw new InvalidInputError(`is for network "${bundle.networkId}", not "${networkId}"`, `${where}.networkId`)
  }
  const releaseKeys = bundle.releaseKeys ?? []
  if (releaseKeys.length === 0) return undefined
  const keys = parseKeys(releaseKeys, `${where}.releaseKeys`)
  if (bundle.releaseThreshold < 1 || bundle.releaseThreshold > keys.size) {
    throw new InvalidInputError(
      `threshold ${bundle.releaseThreshold} is not between 1 and the ${keys.size} release keys`,
      `${where}.releaseThreshold`
    )
  }
  return { networkId, threshold: bundle.releaseThreshold, keys }
}
