import { createHash } from 'node:crypto'
import type { ContractVersionRange } from './generated/mycelium/core/v1/common.js'

/** Lowest contract version this build speaks. */
export const CONTRACT_VERSION_MIN = 1
/** Highest contract version this build speaks. */
export const CONTRACT_VERSION_MAX = 1

/** The range a node sends when it registers or opens a command session. */
export function supportedContractVersions(): ContractVersionRange {
  return { min: CONTRACT_VERSION_MIN, max: CONTRACT_VERSION_MAX }
}

/**
 * The highest version both ranges contain, or `undefined` when they do not
 * overlap (the manager then refuses with FAILED_PRECONDITION).
 */
export function negotiateContractVersion(ours: ContractVersionRange, theirs: ContractVersionRange): number | undefined {
  const low = Math.max(ours.min, theirs.min)
  const high = Math.min(ours.max, theirs.max)
  return low <= high && high > 0 ? high : undefined
}

/**
 * Trailing metadata key a manager sets on UNAVAILABLE / RESOURCE_EXHAUSTED to
 * ask the node to wait (decimal milliseconds).
 */
export const RETRY_AFTER_METADATA_KEY = 'retry-after-ms'

/**
 * The key id of a raw Ed25519 public key, as SigningKey.key_id defines it:
 * lower-case hex of the first 16 bytes of its SHA-256.
 */
export function signingKeyId(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 16).toString('hex')
}

/**
 * The wait a manager asked for in a status error's trailing metadata
 * (RETRY_AFTER_METADATA_KEY), or undefined when it gave none or nonsense.
 */
export function retryAfterFromStatus(err: { metadata?: { get(key: string): unknown[] } }): number | undefined {
  const value = err.metadata?.get(RETRY_AFTER_METADATA_KEY)[0]
  const n = Number(value)
  return value != null && Number.isFinite(n) && n > 0 ? n : undefined
}
