/**
 * Capped exponential backoff with full jitter (AWS "Exponential Backoff and
 * Jitter"): attempt n waits a uniform random time in
 * [0, min(maxMs, initialMs * multiplier^n)]. Full jitter spreads a fleet's
 * reconnects after a manager restart instead of synchronising them.
 */
export interface BackoffOptions {
  /** @default 500 */
  initialMs?: number
  /** @default 30000 */
  maxMs?: number
  /** @default 2 */
  multiplier?: number
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 500, maxMs: 30_000, multiplier: 2 }

/** The upper bound of attempt `attempt`'s delay (0-based). */
export function backoffCeilingMs(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs, maxMs, multiplier } = { ...DEFAULT_BACKOFF, ...options }
  // Exponent capped so the power never overflows to Infinity for huge attempt counts.
  const grown = initialMs * Math.pow(multiplier, Math.min(attempt, 64))
  return Math.min(maxMs, Number.isFinite(grown) ? grown : maxMs)
}

/** A stateful backoff: `next()` for each failure, `reset()` after a success. */
export class Backoff {
  private attempt = 0
  private readonly options: BackoffOptions
  private readonly random: () => number

  constructor(options: BackoffOptions = {}, random: () => number = Math.random) {
    this.options = options
    this.random = random
  }

  /**
   * The delay before the next attempt. A server's retry-after is a floor:
   * the node never comes back sooner than it was asked to. `windowMs` (a
   * fleet reconnect window) widens the jitter's ceiling, never narrows it:
   * a fleet that lost a server together spreads over the window.
   */
  next(retryAfterMs = 0, windowMs = 0): number {
    const ceilingMs = Math.max(backoffCeilingMs(this.attempt, this.options), windowMs)
    const jittered = Math.floor(this.random() * ceilingMs)
    this.attempt++
    return Math.max(jittered, retryAfterMs)
  }

  reset(): void {
    this.attempt = 0
  }

  get attempts(): number {
    return this.attempt
  }
}
