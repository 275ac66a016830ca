/** A check saw the implementation under test break the contract; the message says what and where. */
export class CheckFailedError extends Error {
  static readonly NAME = 'CheckFailedError'
  override readonly name = CheckFailedError.NAME
}
export const isCheckFailedError = (err: unknown): err is CheckFailedError => err instanceof Error && err.name === CheckFailedError.NAME

/**
 * A check could not be run against this implementation (a target, a trigger or
 * a trust bundle is missing, or the behaviour could not be provoked): reported
 * as skipped with the reason, never as passed.
 */
export class CheckSkippedError extends Error {
  static readonly NAME = 'CheckSkippedError'
  override readonly name = CheckSkippedError.NAME
}
export const isCheckSkippedError = (err: unknown): err is CheckSkippedError => err instanceof Error && err.name === CheckSkippedError.NAME

/** Throws CheckFailedError(message) unless `condition` holds. */
export function expectThat(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckFailedError(message)
}
