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
 * How late after the slot a manager reserved (its retry-after) a node comes
 * back, at most: jitter, so nodes with adjacent slots do not meet, yet small
 * against the slot, which the manager holds for the node and which a node
 * arriving seconds late wastes (the fleet then comes back slower than the
 * manager admits). @default 1000
 */
export const DEFAULT_RESERVATION_JITTER_MS = 1000

/**
 * The wait before the next attempt (pure: the runner injects `random`).
 *
 * - A manager's retry-after names the node's slot: the node comes back at
 *   the slot plus a jitter under the smaller of the house backoff and
 *   `DEFAULT_RESERVATION_JITTER_MS` — never sooner, never seconds late.
 *   The jitter also keeps a manager that answers a tiny retry-after again
 *   and again from turning the node into a tight loop. A retry-after beyond
 *   `windowCapMs` counts as `windowCapMs`: no manager parks a node longer.
 * - Otherwise full jitter (`random() × ceiling`) under the larger of the
 *   capped exponential backoff and the fleet window (capped at `windowCapMs`):
 *   a fleet that lost its manager together spreads uniformly over the window,
 *   and an attempt that fails inside it (the manager still down) is spread
 *   over the window again rather than bunched at the backoff's short first
 *   steps. With no window this is the house backoff: capped exponential,
 *   full jitter.
 */
export function planRetry(
  input: RetryPlanInput,
  reconnect: BackoffOptions,
  random: () => number,
  windowCapMs: number = DEFAULT_RECONNECT_WINDOW_CAP_MS
): RetryPlan {
  const backoffMs = backoffCeilingMs(Math.max(0, input.failures - 1), reconnect)
  if (input.retryAfterMs > 0) {
    const slotMs = Math.min(input.retryAfterMs, windowCapMs)
    const spreadMs = Math.min(backoffMs, DEFAULT_RESERVATION_JITTER_MS)
    return { delayMs: slotMs + Math.floor(random() * spreadMs), ceilingMs: slotMs + spreadMs, windowMs: 0 }
  }
  const windowMs = Math.max(0, Math.min(input.reconnectWindowMs, windowCapMs))
  const ceilingMs = Math.max(backoffMs, windowMs)
  return { delayMs: Math.floor(random() * ceilingMs), ceilingMs, windowMs: windowMs > backoffMs ? windowMs : 0 }
}
