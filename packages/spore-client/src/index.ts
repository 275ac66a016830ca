/**
 * @packageDocumentation
 * The node's read-only window on the network's discovery system: verified
 * spores from every source (bootstrap file, HTTPS, the Spore Manager, peers),
 * cached on disk for offline boot, resolved into manager endpoints,
 * components and the trust bundle.
 */
export { createSporeClient } from './spore-client.js'
export {
  type SporeClient,
  type SporeClientComponents,
  type SporeClientInit,
  type SporeClientEvents,
  type SporeClientMode,
  type SporeClientStatus,
  type RefreshResult,
  DEFAULT_CLOCK_SLACK_MS,
  DEFAULT_REFRESH_INTERVAL_MS
} from './spore-client-types.js'
export {
  verifySpore,
  decodeSignedSpore,
  sporeNameProblem,
  SPORE_NAME_PATTERN,
  SPORE_NAME_MAX_LENGTH,
  MAX_SPORE_SIGNATURES,
  MAX_SPORE_BYTES,
  tallySignatures,
  type SignatureTally,
  type VerifiedSpore,
  type VerifyContext,
  type TrustMark
} from './verify.js'
export { orderEndpoints, zoneOf, ZONE_LABEL, type EndpointOrderOptions } from './endpoint-order.js'
export { trustedSporeKeys, trustedOperatorKeys, trustedReleaseKeys, ed25519PublicKey, type TrustedKeys } from './trust.js'
export { verifyReleaseManifest, ReleaseVerificationError, isReleaseVerificationError } from './release.js'
export { parseSporeBundle, formatSporeBundleJson, MAX_SPORES_PER_BUNDLE, MAX_SPORE_BUNDLE_BYTES } from './bundle-format.js'
export {
  type SporeSource,
  type WatchableSporeSource,
  type SporeSourceKind,
  type SporeFetchOptions,
  type SourceGuardInit,
  DEFAULT_SOURCE_TIMEOUT_MS
} from './sources/source.js'
export { fileSource, type FileSourceInit } from './sources/file-source.js'
export { httpsSource, type HttpsSourceInit } from './sources/https-source.js'
export { sporeServiceSource, type SporeServiceSourceInit } from './sources/spore-service-source.js'
export { peerSource, type PeerSourceInit } from './sources/peer-source.js'
export {
  type SporeRejectionReason,
  SporeRejectedError,
  isSporeRejectedError,
  MalformedSporeError,
  InvalidSporeSignatureError,
  DuplicateSporeSignatureError,
  UnknownSporeKeyError,
  InsufficientSporeSignaturesError,
  WrongNetworkSporeError,
  ExpiredSporeError,
  NotYetValidSporeError,
  SporeRollbackError,
  SporeEquivocationError,
  RateLimitedError,
  isRateLimitedError
} from './errors.js'
