/**
 * @packageDocumentation
 * The small mechanisms every Mycelium package shares, one of each: capped
 * jittered backoff, atomic checksummed state files, a token bucket, run
 * coalescing, a retrying writer for durable writes, per-endpoint
 * credentials and an abortable gRPC unary call.
 * Contracts (messages, errors, interfaces) live in `@mycelium/core-interfaces`;
 * this package depends on it, never the other way round.
 */

export { type BackoffOptions, DEFAULT_BACKOFF, Backoff, backoffCeilingMs } from './backoff.js'
export {
  type StateFileContent,
  CorruptStateError,
  isCorruptStateError,
  StateWriteError,
  isStateWriteError,
  removeStaleTempFiles,
  readStateFile,
  writeStateFile,
  writeFileAtomic
} from './state-file.js'
export { coalescing } from './coalesce.js'
export { monotonicMs } from './clock.js'
export { type RetryingWriterComponents, type RetryingWriterInit, DEFAULT_RETRYING_WRITER, RetryingWriter } from './retrying-writer.js'
export { type UnaryMethod, callUnary, unavailable } from './grpc-call.js'
export { TokenBucket, type RateLimit, DEFAULT_RATE_LIMIT } from './token-bucket.js'
export { type EndpointCredentials, credentialsFor } from './endpoint-credentials.js'
export { type AnySignal, anySignal } from './any-signal.js'
export { fsyncDir, fsyncTree } from './durable.js'
export { type ProcessIdentity, processStartTime, isAlive } from './process-identity.js'
export { type LogFollowerInit, LogFollower } from './log-follower.js'
