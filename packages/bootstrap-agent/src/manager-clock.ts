import { monotonicMs } from '@mycelium/core-utils'

/**
 * Deadlines the manager sets, kept on the node's monotonic clock.
 *
 * Node and manager wall clocks disagree (seconds of skew, or a jump of hours
 * when NTP or an operator steps the clock). Comparing the manager's absolute
 * lease expiry or handoff deadline with the node's own wall clock turns skew
 * into lost leases (node ahead) or deadlines already passed on arrival. So a
 * deadline is "receipt + duration" on a monotonic clock (`monotonicMs`), which no wall
 * clock step moves:
 * - the duration the manager sends with the time (lease_remaining,
 *   handoff_timeout) is used as is;
 * - from a manager that sends only absolute times, the duration is that time
 *   minus the manager's "now", estimated from the registration's lease
 *   (`observeGrant`: expires_at − ttl, the lease length, is when the lease was
 *   granted) and followed on the monotonic clock;
 * - with neither (no estimate yet), the node's wall clock is all there is.
 *
 * Transit time is not subtracted: the node's deadlines end up at most one
 * one-way delay late, far below a heartbeat interval.
 */
export class ManagerClock {
  private anchor?: { managerMs: number; monoMs: number }

  constructor(
    /** Monotonic milliseconds. @default monotonicMs (core-utils) */
    readonly now: () => number = monotonicMs,
    /** The node's wall clock (display and the no-estimate fallback only). @default Date.now */
    private readonly wallNow: () => number = Date.now
  ) {}

  /** The manager said its clock read `managerMs` in a message received just now. */
  observe(managerMs: number): void {
    this.anchor = { managerMs, monoMs: this.now() }
  }

  /**
   * A lease granted for `lengthMs` (Lease.ttl: the length of each grant) that
   * expires at `expiresAtMs` (manager clock), received just now: it was
   * granted at expires_at − length, the manager's clock at most one transit
   * ago. Used only when no duration came with the message.
   */
  observeGrant(expiresAtMs: number, lengthMs: number): void {
    this.observe(expiresAtMs - lengthMs)
  }

  /**
   * The manager's clock now: the estimate, else the node's wall clock. What a
   * check of a manager-set time (a command deadline) should compare against.
   */
  managerNowOrWall(): number {
    return this.managerNow() ?? this.wallNow()
  }

  /** The manager's clock now, estimated; undefined before any observation. */
  managerNow(): number | undefined {
    return this.anchor == null ? undefined : this.anchor.managerMs + (this.now() - this.anchor.monoMs)
  }

  /** Manager clock minus node wall clock (positive: the node is behind), when estimated. */
  skewMs(): number | undefined {
    const m = this.managerNow()
    return m == null ? undefined : Math.round(m - this.wallNow())
  }

  /**
   * A monotonic deadline for a time the manager set, from a message received
   * just now: `relativeMs` from now when sent, else `absoluteMs` against the
   * estimated manager clock, else against the node's wall clock.
   * Undefined when the message carries neither.
   */
  deadline(t: { absoluteMs?: number | undefined; relativeMs?: number | undefined }): number | undefined {
    const now = this.now()
    if (t.relativeMs != null) {
      // Both sent: they tell the manager's "now" exactly; keep the estimate fresh.
      if (t.absoluteMs != null) this.observe(t.absoluteMs - t.relativeMs)
      return now + t.relativeMs
    }
    if (t.absoluteMs == null) return undefined
    const managerNow = this.managerNow() ?? this.wallNow()
    return now + (t.absoluteMs - managerNow)
  }

  /** Milliseconds until a monotonic deadline (negative once passed). */
  remainingMs(deadlineMono: number): number {
    return deadlineMono - this.now()
  }

  /** A monotonic deadline as a date on the node's wall clock (for status). */
  toWall(deadlineMono: number): Date {
    return new Date(this.wallNow() + (deadlineMono - this.now()))
  }
}
