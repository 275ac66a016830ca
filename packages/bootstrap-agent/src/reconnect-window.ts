import { backoffCeilingMs, type BackoffOptions } from '@mycelium/core-utils'

/**
 * The longest fleet reconnect window the agent accepts from a manager: a
 * manager that advertises more (a bug, a hostile or confused peer) cannot
 * park its nodes for longer than this. @default 300000 (5 min)
 */
export const DEFAULT_RECONNECT_WINDOW_CAP_MS = 300_000

export interface RetryPlanInput {
  /** Failed rounds since the node last was MANAGED (FALLBACK) or entered RECOVERY. */
  failures: number
  /** The wait the manager asked for with this failure (retry-after); 0: none. A floor. */
  retryAfterMs: number
  /**
   * The fleet reconnect window the manager last advertised
   * (RegisterNodeResponse / ReportHealthResponse `reconnect_window`); 0: none.
   * Only reconnection (FALLBACK) uses it: identity retries (RECOVERY) pass 0.
   */
  reconnectWindowMs: number
}

export interface RetryPlan {
  delayMs: number
  /** The upper bound the jitter was drawn under. */
  ceilingMs: number
  /** The window that widened the ceiling (0: none applied). */
  windowMs: number
}

/**
 * The wait before the next attempt (pure: the runner injects `random`).
 *
 * - A manager's retry-after is a floor: the manager reserved a slot for the
 *   node then, so only the house backoff's own jitter may push it later, never
 *   the fleet window (that would waste the slot).
 * - Otherwise full jitter (`random() × ceiling`) under the larger of the
 *   capped exponential backoff and the fleet window (capped at `windowCapMs`):
 *   a fleet that lost its manager together spreads uniformly over the window,
 *   and an attempt that fails inside it (the manager still down) is spread
 *   over the window again rather than bunched at the backoff's short first
 *   steps.
 * With no window this is exactly the house backoff (`retryDelay`).
 */
export function planRetry(
  input: RetryPlanInput,
  reconnect: BackoffOptions,
  random: () => number,
  windowCapMs: number = DEFAULT_RECONNECT_WINDOW_CAP_MS
): RetryPlan {
  const backoffMs = backoffCeilingMs(Math.max(0, input.failures - 1), reconnect)
  if (input.retryAfterMs > 0)
    return { delayMs: Math.max(input.retryAfterMs, Math.floor(random() * backoffMs)), ceilingMs: backoffMs, windowMs: 0 }
  const windowMs = Math.max(0, Math.min(input.reconnectWindowMs, windowCapMs))
  const ceilingMs = Math.max(backoffMs, windowMs)
  return { delayMs: Math.floor(random() * ceilingMs), ceilingMs, windowMs: windowMs > backoffMs ? windowMs : 0 }
}
