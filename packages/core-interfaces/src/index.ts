/**
 * @packageDocumentation
 * The contracts of the Mycelium minimal core: the v1 protobuf messages and
 * gRPC service definitions generated from `protos/` (never edited by hand),
 * plus the few hand-written interfaces every package shares.
 */

// Generated v1 contracts (package mycelium.core.v1) and the well-known types they use.
export * from './generated/google/protobuf/duration.js'
export * from './generated/google/protobuf/timestamp.js'
export * from './generated/mycelium/core/v1/common.js'
export * from './generated/mycelium/core/v1/node_config.js'
export * from './generated/mycelium/core/v1/spore.js'
export * from './generated/mycelium/core/v1/network_manager.js'
export * from './generated/mycelium/core/v1/command.js'
export * from './generated/mycelium/core/v1/node_status.js'
export * from './generated/mycelium/core/v1/peer_assist.js'
export * from './generated/mycelium/core/v1/component.js'
export * from './generated/mycelium/core/v1/distress.js'

// Hand-written contracts.
export type { AbortOptions } from './abort.js'
export { type Startable, isStartable } from './startable.js'
export { type Logger, type LogFields, silentLogger } from './logger.js'
export {
  AbortError,
  isAbortError,
  TimeoutError,
  isTimeoutError,
  InvalidConfigError,
  isInvalidConfigError,
  InvalidInputError,
  isInvalidInputError,
  NotStartedError,
  isNotStartedError,
  NotFoundError,
  isNotFoundError,
  UnavailableError,
  isUnavailableError
} from './errors.js'
export {
  CONTRACT_VERSION_MIN,
  CONTRACT_VERSION_MAX,
  supportedContractVersions,
  negotiateContractVersion,
  RETRY_AFTER_METADATA_KEY,
  retryAfterFromStatus,
  signingKeyId
} from './contract.js'
export { durationToMs, msToDuration, MAX_TIMER_MS, timerDurationProblem, findTimerDurationProblem } from './duration.js'
export {
  type SpiffeId,
  type SpiffeRole,
  formatSpiffeId,
  parseSpiffeId,
  isValidIdLabel,
  SERVICE_NAMES,
  type ServiceName,
  isManagerIdentity,
  NETWORK_KEY_ALGORITHM,
  NETWORK_SIGNATURE_ALGORITHM
} from './spiffe.js'
export { type JoinToken, formatJoinToken, parseJoinToken, caCertificateSha256 } from './join-token.js'
export {
  StrictBinaryReader,
  type MessageDecoder,
  type StrictDecodeOptions,
  type WireField,
  decodeStrict,
  readWireFields,
  TooManyFieldsError,
  isTooManyFieldsError,
  strictService,
  strictClient,
  dateProblem,
  timestampProblem,
  TIMESTAMP_MIN_SECONDS,
  TIMESTAMP_MAX_SECONDS
} from './wire.js'
