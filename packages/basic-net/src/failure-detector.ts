/**
 * Phi-accrual failure detection (Hayashibara et al.; as in Akka and
 * Cassandra) with an explicit suspicion period (as in SWIM/memberlist):
 *
 * - phi grows with the silence since the last heartbeat, relative to the
 *   learned distribution of heartbeat intervals (mean + acceptable pause);
 * - `alive → suspect` when phi reaches `suspectPhi`;
 * - `suspect → down` only after `suspicionTimeoutMs` more without a
 *   heartbeat — so one missed ping never declares a peer dead;
 * - any heartbeat makes the peer `alive` again.
 *
 * Pure: time is passed in. Used for peers and for the manager link.
 */
export type DetectorState = 'unknown' | 'alive' | 'suspect' | 'down'

/** The heartbeat interval a detector expects unless told (peers ping at it by default). */
export const DEFAULT_EXPECTED_INTERVAL_MS = 1000
/** Suspicion threshold: ≈ 1 in 10^8 chance the peer is alive and just slow. */
export const DEFAULT_SUSPECT_PHI = 8
/** Intervals a detector remembers. */
export const DEFAULT_DETECTOR_WINDOW = 100

export interface PhiAccrualInit {
  /** The expected heartbeat interval; seeds the distribution. @default DEFAULT_EXPECTED_INTERVAL_MS */
  expectedIntervalMs?: number
  /** Intervals remembered. @default DEFAULT_DETECTOR_WINDOW */
  windowSize?: number
  /** Floor of the standard deviation (regular pings have almost none). @default expectedIntervalMs / 4 */
  minStdDevMs?: number
  /** Silence tolerated beyond the mean before phi rises. @default expectedIntervalMs */
  acceptablePauseMs?: number
  /** @default DEFAULT_SUSPECT_PHI */
  suspectPhi?: number
  /** Time spent suspect before down. @default 3 × expectedIntervalMs */
  suspicionTimeoutMs?: number
}

export interface DetectorTransition {
  from: DetectorState
  to: DetectorState
  phi: number
}

export class PhiAccrualDetector {
  private readonly intervals: number[] = []
  private readonly windowSize: number
  private readonly minStdDevMs: number
  private readonly acceptablePauseMs: number
  private suspectPhi: number
  private readonly suspicionTimeoutMs: number
  private lastHeartbeatMs?: number
  private suspectSinceMs?: number
  private current: DetectorState = 'unknown'

  constructor(init: PhiAccrualInit = {}) {
    const expected = init.expectedIntervalMs ?? DEFAULT_EXPECTED_INTERVAL_MS
    this.windowSize = init.windowSize ?? DEFAULT_DETECTOR_WINDOW
    this.minStdDevMs = init.minStdDevMs ?? expected / 4
    this.acceptablePauseMs = init.acceptablePauseMs ?? expected
    this.suspectPhi = init.suspectPhi ?? DEFAULT_SUSPECT_PHI
    this.suspicionTimeoutMs = init.suspicionTimeoutMs ?? 3 * expected
    // Seed with the expected interval so the first silences are judged sanely.
    this.intervals.push(expected, expected)
  }

  /** A new suspicion threshold (a reconfiguration); judged from the next evaluation on. */
  setSuspectPhi(phi: number): void {
    this.suspectPhi = phi
  }

  /** The suspicion threshold in force. */
  get suspectThreshold(): number {
    return this.suspectPhi
  }

  get state(): DetectorState {
    return this.current
  }

  get lastHeartbeat(): number | undefined {
    return this.lastHeartbeatMs
  }

  /** Records a heartbeat (a ping answered, an ack received). */
  heartbeat(nowMs: number): DetectorTransition | undefined {
    if (this.lastHeartbeatMs != null) {
      this.intervals.push(nowMs - this.lastHeartbeatMs)
      if (this.intervals.length > this.windowSize) this.intervals.shift()
    }
    this.lastHeartbeatMs = nowMs
    this.suspectSinceMs = undefined
    return this.moveTo('alive', 0)
  }

  /** Suspicion level now; 0 right after a heartbeat, Infinity never reached. */
  phi(nowMs: number): number {
    if (this.lastHeartbeatMs == null) return 0
    const n = this.intervals.length
    const mean = this.intervals.reduce((a, b) => a + b, 0) / n
    const variance = this.intervals.reduce((a, b) => a + (b - mean) ** 2, 0) / n
    const std = Math.max(Math.sqrt(variance), this.minStdDevMs)
    const y = (nowMs - this.lastHeartbeatMs - (mean + this.acceptablePauseMs)) / std
    // Logistic approximation of the normal CDF's tail (Akka), stable for large y.
    const e = Math.exp(-y * (1.5976 + 0.070566 * y * y))
    const pLater = y > 0 ? e / (1 + e) : 1 - 1 / (1 + e)
    return pLater <= 0 ? Number.POSITIVE_INFINITY : -Math.log10(pLater)
  }

  /** Re-evaluates the state at `nowMs`; returns the transition, if any. */
  evaluate(nowMs: number): DetectorTransition | undefined {
    if (this.lastHeartbeatMs == null) return undefined
    const phi = this.phi(nowMs)
    if (this.current === 'alive' && phi >= this.suspectPhi) {
      this.suspectSinceMs = nowMs
      return this.moveTo('suspect', phi)
    }
    if (this.current === 'suspect' && this.suspectSinceMs != null && nowMs - this.suspectSinceMs >= this.suspicionTimeoutMs) {
      return this.moveTo('down', phi)
    }
    return undefined
  }

  /**
   * The latest time after the last heartbeat by which `down` is declared if
   * no heartbeat arrives, for the current distribution — the configured bound.
   */
  downBoundMs(): number {
    if (this.lastHeartbeatMs == null) return Number.POSITIVE_INFINITY
    for (let t = 0; t < 3_600_000; t += 10) {
      if (this.phi(this.lastHeartbeatMs + t) >= this.suspectPhi) return t + this.suspicionTimeoutMs
    }
    return Number.POSITIVE_INFINITY
  }

  private moveTo(to: DetectorState, phi: number): DetectorTransition | undefined {
    if (to === this.current) return undefined
    const from = this.current
    this.current = to
    return { from, to, phi }
  }
}
