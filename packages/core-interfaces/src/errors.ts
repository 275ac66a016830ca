/**
 * Shared error classes. Branch on `err.name` (through the `isX` guards), never
 * on message text: classes can come from two copies of this package, so the
 * guards compare names rather than use `instanceof`. Translate to gRPC status
 * codes only in server handlers.
 */

function hasName(err: unknown, name: string): err is Error {
  return err instanceof Error && err.name === name
}

/** The caller aborted the operation through its `AbortSignal`. */
export class AbortError extends Error {
  static readonly NAME = 'AbortError'
  override readonly name = AbortError.NAME
  constructor(message = 'the operation was aborted', options?: ErrorOptions) {
    super(message, options)
  }
}
export const isAbortError = (err: unknown): err is AbortError => hasName(err, AbortError.NAME)

/** An operation did not finish within its time limit. */
export class TimeoutError extends Error {
  static readonly NAME = 'TimeoutError'
  override readonly name = TimeoutError.NAME
  constructor(
    message: string,
    readonly timeoutMs?: number,
    options?: ErrorOptions
  ) {
    super(message, options)
  }
}
export const isTimeoutError = (err: unknown): err is TimeoutError => hasName(err, TimeoutError.NAME)

/**
 * Configuration is invalid. `where` names the source and key
 * (e.g. "/etc/mycelium/node.yaml:12 handoff.commitDeadline").
 */
export class InvalidConfigError extends Error {
  static readonly NAME = 'InvalidConfigError'
  override readonly name = InvalidConfigError.NAME
  constructor(
    message: string,
    readonly where: string,
    options?: ErrorOptions
  ) {
    super(`${where}: ${message}`, options)
  }
}
export const isInvalidConfigError = (err: unknown): err is InvalidConfigError => hasName(err, InvalidConfigError.NAME)

/**
 * A message, file or argument failed to parse or validate. `where` names what
 * was being read (a file path, an rpc and field, a CLI flag).
 */
export class InvalidInputError extends Error {
  static readonly NAME = 'InvalidInputError'
  override readonly name = InvalidInputError.NAME
  constructor(
    message: string,
    readonly where: string,
    options?: ErrorOptions
  ) {
    super(`${where}: ${message}`, options)
  }
}
export const isInvalidInputError = (err: unknown): err is InvalidInputError => hasName(err, InvalidInputError.NAME)

/** A component was used before `start()` or after `stop()`. */
export class NotStartedError extends Error {
  static readonly NAME = 'NotStartedError'
  override readonly name = NotStartedError.NAME
  constructor(component: string) {
    super(`${component} is not started`)
  }
}
export const isNotStartedError = (err: unknown): err is NotStartedError => hasName(err, NotStartedError.NAME)

/** A thing that was asked for does not exist. */
export class NotFoundError extends Error {
  static readonly NAME = 'NotFoundError'
  override readonly name = NotFoundError.NAME
}
export const isNotFoundError = (err: unknown): err is NotFoundError => hasName(err, NotFoundError.NAME)

/**
 * A remote party is unreachable or refused for now. `retryAfterMs` carries the
 * server's requested wait (see RETRY_AFTER_METADATA_KEY), when it gave one.
 */
export class UnavailableError extends Error {
  static readonly NAME = 'UnavailableError'
  override readonly name = UnavailableError.NAME
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: ErrorOptions
  ) {
    super(message, options)
  }
}
export const isUnavailableError = (err: unknown): err is UnavailableError => hasName(err, UnavailableError.NAME)
