import { decodeStrict, ReleaseManifest, type ReleaseBody, type TrustBundle } from '@mycelium/core-interfaces'
import { tallySignatures } from './verify.js'
import { trustedReleaseKeys } from './trust.js'

/** A release manifest that is not signed by enough release keys, or cannot be read: what and where in `message`. */
export class ReleaseVerificationError extends Error {
  static readonly NAME = 'ReleaseVerificationError'
  override readonly name = ReleaseVerificationError.NAME
}
export const isReleaseVerificationError = (err: unknown): err is ReleaseVerificationError =>
  err instanceof Error && err.name === ReleaseVerificationError.NAME

/**
 * The manifest of a release body, once release_threshold distinct release keys
 * of `bundle` signed it (the release role, separate from the spore keys that
 * signed the spore around it), and it is for `networkId`.
 */
export function verifyReleaseManifest(body: ReleaseBody, bundle: TrustBundle, networkId: string, where = 'release'): ReleaseManifest {
  const trust = trustedReleaseKeys(bundle, networkId)
  if (trust == null) throw new ReleaseVerificationError(`${where}: the trust bundle names no release keys`)
  const { valid, unknown, failed } = tallySignatures(body.manifest, body.signatures, trust)
  if (valid.size < trust.threshold) {
    const why =
      failed.length > 0
        ? `signature by ${failed.join(', ')} does not verify`
        : unknown.length > 0
          ? `signed by unknown key ${unknown.join(', ')}`
          : 'too few signatures'
    throw new ReleaseVerificationError(`${where}: ${why} (${valid.size} valid release signatures of ${trust.threshold} required)`)
  }
  let manifest: ReleaseManifest
  try {
    manifest = decodeStrict(ReleaseManifest, body.manifest, where)
  } catch (err) {
    throw new ReleaseVerificationError(`${where}: not a ReleaseManifest: ${(err as Error).message}`)
  }
  if (manifest.networkId !== networkId)
    throw new ReleaseVerificationError(`${where}: is for network "${manifest.networkId}", not "${networkId}"`)
  return manifest
}
