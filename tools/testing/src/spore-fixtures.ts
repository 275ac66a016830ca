import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { signingKeyId, Spore, type SignedSpore, type SigningKey, type TrustBundle } from '@mycelium/core-interfaces'

/** An Ed25519 spore-signing key for tests. */
export interface TestSigningKey {
  keyId: string
  publicKey: Buffer
  privateKey: KeyObject
  signingKey: SigningKey
}

export function testSigningKey(): TestSigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  // The raw key is the last 32 bytes of the SPKI DER.
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
  const keyId = signingKeyId(raw)
  return { keyId, publicKey: raw, privateKey, signingKey: { keyId, publicKey: raw, label: '' } }
}

export function testTrustBundle(networkId: string, keys: TestSigningKey[], threshold: number, caPem: string[] = []): TrustBundle {
  return {
    networkId,
    caCertificatesPem: caPem,
    sporeKeys: keys.map((k) => k.signingKey),
    sporeThreshold: threshold,
    operatorKeys: [],
    operatorThreshold: 0,
    releaseKeys: [],
    releaseThreshold: 0
  }
}

/** Signs the serialized spore with each key (in order; a key may repeat). */
export function signSporeForTest(spore: Spore | Uint8Array, keys: TestSigningKey[]): SignedSpore {
  const bytes = Buffer.from(spore instanceof Uint8Array ? spore : Spore.encode(spore).finish())
  return { spore: bytes, signatures: keys.map((k) => ({ keyId: k.keyId, signature: sign(null, bytes, k.privateKey) })) }
}

const DAY_MS = 86_400_000

/** A valid service spore for `networkId`, issued now, expiring in a day. */
export function serviceSpore(networkId: string, service: string, sequence: number, addresses: string[], nowMs = Date.now()): Spore {
  return {
    networkId,
    name: `service/${service}`,
    sequence,
    issuedAt: new Date(nowMs - 1000),
    expiresAt: new Date(nowMs + DAY_MS),
    body: {
      $case: 'service',
      value: {
        service,
        endpoints: addresses.map((address, i) => ({ address, expectedIdentity: '', zone: '', priority: i })),
        contractVersions: { min: 1, max: 1 }
      }
    }
  }
}
