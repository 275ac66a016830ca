/**
 * Why a spore was refused. Every rejection is its own class (branch on `name`
 * or `reason`, never on message text) and names the spore, the source and
 * the reason. Nothing already trusted is changed by a rejection.
 */
export type SporeRejectionReason =
  | 'malformed'
  | 'bad-signature'
  | 'duplicate-key'
  | 'unknown-key'
  | 'insufficient-signatures'
  | 'wrong-network'
  | 'expired'
  | 'not-yet-valid'
  | 'rollback'
  | 'equivocation'

export abstract class SporeRejectedError extends Error {
  abstract readonly reason: SporeRejectionReason
  /** Marker for `isSporeRejectedError` that survives duplicate package copies. */
  readonly sporeRejected = true
  constructor(
    /** The spore's name, or "(undecodable)" when it could not be read. */
    readonly sporeName: string,
    /** The source it came from, e.g. "file:/etc/mycelium/bootstrap.json". */
    readonly source: string,
    readonly detail: string
  ) {
    super(`spore "${sporeName}" from ${source} rejected: ${detail}`)
  }
}

export function isSporeRejectedError(err: unknown): err is SporeRejectedError {
  return err instanceof Error && (err as Partial<SporeRejectedError>).sporeRejected === true
}

/** Not a SignedSpore/Spore, truncated, or fields that break the spore rules. */
export class MalformedSporeError extends SporeRejectedError {
  override readonly name = 'MalformedSporeError'
  readonly reason = 'malformed'
}
/** A signature by a trusted key does not verify: the bytes were altered. */
export class InvalidSporeSignatureError extends SporeRejectedError {
  override readonly name = 'InvalidSporeSignatureError'
  readonly reason = 'bad-signature'
}
/** The same key signed more than once; it counts once toward the threshold. */
export class DuplicateSporeSignatureError extends SporeRejectedError {
  override readonly name = 'DuplicateSporeSignatureError'
  readonly reason = 'duplicate-key'
}
/** Signatures by keys not in the trust bundle, and too few by known keys. */
export class UnknownSporeKeyError extends SporeRejectedError {
  override readonly name = 'UnknownSporeKeyError'
  readonly reason = 'unknown-key'
}
/** Valid signatures by fewer distinct trusted keys than the threshold. */
export class InsufficientSporeSignaturesError extends SporeRejectedError {
  override readonly name = 'InsufficientSporeSignaturesError'
  readonly reason = 'insufficient-signatures'
}
/** Signed for another network. */
export class WrongNetworkSporeError extends SporeRejectedError {
  override readonly name = 'WrongNetworkSporeError'
  readonly reason = 'wrong-network'
}
/** Past expires_at (plus clock slack). */
export class ExpiredSporeError extends SporeRejectedError {
  override readonly name = 'ExpiredSporeError'
  readonly reason = 'expired'
}
/** Before issued_at (minus clock slack). */
export class NotYetValidSporeError extends SporeRejectedError {
  override readonly name = 'NotYetValidSporeError'
  readonly reason = 'not-yet-valid'
}
/** A lower sequence than the one already trusted for the name. */
export class SporeRollbackError extends SporeRejectedError {
  override readonly name = 'SporeRollbackError'
  readonly reason = 'rollback'
}
/** The trusted sequence again, with different content. */
export class SporeEquivocationError extends SporeRejectedError {
  override readonly name = 'SporeEquivocationError'
  readonly reason = 'equivocation'
}

/** A source call was refused locally because the source's rate limit is spent. */
export class RateLimitedError extends Error {
  static readonly NAME = 'RateLimitedError'
  override readonly name = RateLimitedError.NAME
  constructor(
    readonly source: string,
    readonly retryAfterMs: number
  ) {
    super(`${source}: rate limit reached, next call allowed in ${retryAfterMs} ms`)
  }
}
export const isRateLimitedError = (err: unknown): err is RateLimitedError => err instanceof Error && err.name === RateLimitedError.NAME
