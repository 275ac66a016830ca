/**
 * A token bucket: `burst` calls at once, refilled at `perSecond`. Keeps a
 * misbehaving loop from hammering a source, and a manager from a reconnect
 * storm.
 */
export interface RateLimit {
  /** @default 5 */
  burst?: number
  /** @default 1 */
  perSecond?: number
}

export const DEFAULT_RATE_LIMIT: Required<RateLimit> = { burst: 5, perSecond: 1 }

export class TokenBucket {
  private tokens: number
  private last: number
  private readonly burst: number
  private readonly perMs: number

  constructor(
    limit: RateLimit = {},
    private readonly now: () => number = Date.now
  ) {
    const { burst, perSecond } = { ...DEFAULT_RATE_LIMIT, ...limit }
    this.burst = burst
    this.perMs = perSecond / 1000
    this.tokens = burst
    this.last = now()
  }

  /** 0 when a token was taken; otherwise the wait in ms until one is available. */
  take(): number {
    const t = this.now()
    this.tokens = Math.min(this.burst, this.tokens + (t - this.last) * this.perMs)
    this.last = t
    if (this.tokens >= 1) {
      this.tokens -= 1
      return 0
    }
    return this.perMs > 0 ? Math.ceil((1 - this.tokens) / this.perMs) : Number.MAX_SAFE_INTEGER
  }
}
