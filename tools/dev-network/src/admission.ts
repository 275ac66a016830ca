/**
 * Registration admission for a Network Manager under a reconnect storm (pure:
 * the caller passes the time, nothing here opens a socket or a timer).
 *
 * Invariants:
 * - Every admission takes a token from one bucket (`burst`, refilled at
 *   `perSecond`), so no one-second window ever admits more than
 *   `perSecond + burst` registrations, whatever the fleet does.
 * - A refused node is given a slot of its own (slots `1000 / perSecond` ms
 *   apart, after every slot already handed out) and told to come back then
 *   (retry-after): the manager spreads the queue itself instead of letting
 *   refused nodes return together. A node that returns at or after its slot
 *   is admitted before newcomers, which queue while any slot is held.
 * - Memory is bounded: no slot further than `maxRetryAfterMs` ahead is
 *   reserved, and an unclaimed slot is forgotten `reservationGraceMs` after
 *   it passed.
 */
export interface AdmissionInit {
  /** Registrations admitted per second, steadily: what the manager can serve beside its heartbeats. @default 50 */
  perSecond?: number
  /** Registrations admitted at once while nothing is queued. @default 100 */
  burst?: number
  /** The longest retry-after handed out; a slot further ahead is not reserved. @default 300000 */
  maxRetryAfterMs?: number
  /** An unclaimed slot is forgotten this long after it passed. @default 30000 */
  reservationGraceMs?: number
  /**
   * Share of `perSecond` a fleet's spread reconnections are sized to fill
   * (the rest absorbs the randomness of full jitter). @default 0.8
   */
  windowUtilisation?: number
  /** The longest reconnect window advertised. @default 600000 */
  maxWindowMs?: number
}

export const DEFAULT_ADMISSION: Required<AdmissionInit> = {
  perSecond: 50,
  burst: 100,
  maxRetryAfterMs: 300_000,
  reservationGraceMs: 30_000,
  windowUtilisation: 0.8,
  maxWindowMs: 600_000
}

export type AdmissionDecision =
  | { admitted: true }
  /** `reserved`: a slot is held for this node at now + retryAfterMs. */
  | { admitted: false; retryAfterMs: number; reserved: boolean }

export class AdmissionLimiter {
  private readonly opts: Required<AdmissionInit>
  private readonly slotMs: number
  private tokens: number
  private lastMs: number
  /** The last slot handed out: the next one follows it. */
  private horizonMs = -Infinity
  private readonly reservations = new Map<string, number>()
  private lastSweepMs = -Infinity

  constructor(init: AdmissionInit = {}, nowMs = 0) {
    this.opts = { ...DEFAULT_ADMISSION, ...init }
    if (!(this.opts.perSecond > 0) || !(this.opts.burst >= 1))
      throw new RangeError(`admission needs perSecond > 0 and burst ≥ 1 (got ${this.opts.perSecond}, ${this.opts.burst})`)
    this.slotMs = 1000 / this.opts.perSecond
    this.tokens = this.opts.burst
    this.lastMs = nowMs
  }

  /** Registrations held a slot for (not yet claimed). */
  get queued(): number {
    return this.reservations.size
  }

  /** Decides one registration of node `key` at `nowMs`. */
  admit(key: string, nowMs: number): AdmissionDecision {
    this.refill(nowMs)
    this.sweep(nowMs)
    const slot = this.reservations.get(key)
    if (slot != null) {
      if (nowMs < slot) return { admitted: false, retryAfterMs: Math.ceil(slot - nowMs), reserved: true }
      if (this.take()) {
        this.reservations.delete(key)
        return { admitted: true }
      }
      // Its slot came, but others claimed theirs in the same instant: it keeps its place, for the next token.
      const waitMs = Math.ceil((1 - this.tokens) * this.slotMs)
      this.reservations.set(key, nowMs + waitMs)
      return { admitted: false, retryAfterMs: waitMs, reserved: true }
    }
    // While any slot is held, a newcomer queues: the tokens that refill belong to the slots handed out.
    if (this.reservations.size === 0 && this.take()) return { admitted: true }
    const next = Math.max(nowMs, this.horizonMs) + this.slotMs
    if (next - nowMs > this.opts.maxRetryAfterMs) return { admitted: false, retryAfterMs: this.opts.maxRetryAfterMs, reserved: false }
    this.horizonMs = next
    this.reservations.set(key, next)
    return { admitted: false, retryAfterMs: Math.ceil(next - nowMs), reserved: true }
  }

  /**
   * The window over which a fleet of `fleetSize` nodes should spread its
   * reconnections (first attempts uniform over it) so that they arrive at
   * about `windowUtilisation × perSecond`: 0 while the burst admits the
   * whole fleet at once; whole seconds, so it changes rarely.
   */
  reconnectWindowMs(fleetSize: number): number {
    if (fleetSize <= this.opts.burst) return 0
    const seconds = Math.ceil(fleetSize / (this.opts.perSecond * this.opts.windowUtilisation))
    return Math.min(this.opts.maxWindowMs, seconds * 1000)
  }

  private take(): boolean {
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }

  private refill(nowMs: number): void {
    if (nowMs > this.lastMs) {
      this.tokens = Math.min(this.opts.burst, this.tokens + (nowMs - this.lastMs) / this.slotMs)
      this.lastMs = nowMs
    }
  }

  private sweep(nowMs: number): void {
    if (nowMs - this.lastSweepMs < 1000) return
    this.lastSweepMs = nowMs
    for (const [key, slot] of this.reservations) if (slot + this.opts.reservationGraceMs < nowMs) this.reservations.delete(key)
  }
}
