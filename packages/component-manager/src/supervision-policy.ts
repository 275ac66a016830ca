import { DynamicComponentState } from '@mycelium/core-interfaces'
import { isArtifactFetchError, isComponentInstallError } from './errors.js'

/**
 * How the runner judges what happened to a component: an exit or failed
 * start (restart after a backoff, or FAILED once the budget is spent), a
 * failed install (blocked for good, or tried again later), a Health answer,
 * an on-demand component's idle time. Pure — the runner applies the verdicts
 * to its entries, so each rule is tested without processes.
 */

export interface RestartBudget {
  maxRestarts: number
  windowMs: number
}

/** What an unplanned exit or a failed start leads to. */
export type CrashVerdict =
  | { budgetSpent: true; crashes: number[]; reason: string }
  | { budgetSpent: false; crashes: number[]; reason: string; retryAtMs: number; delayMs: number }

/**
 * One more failure at `nowMs`: failures older than the budget's window are
 * forgotten; more than `maxRestarts` left means the budget is spent (no
 * backoff drawn then), otherwise the next restart waits `nextDelayMs()`.
 */
export function crashVerdict(
  crashes: number[],
  nowMs: number,
  budget: RestartBudget,
  what: string,
  nextDelayMs: () => number
): CrashVerdict {
  const recent = [...crashes.filter((t) => nowMs - t < budget.windowMs), nowMs]
  if (recent.length > budget.maxRestarts) {
    const reason = `${what}; ${recent.length} failures within ${Math.round(budget.windowMs / 1000)} s: restart budget spent`
    return { budgetSpent: true, crashes: recent, reason }
  }
  const delayMs = nextDelayMs()
  return { budgetSpent: false, crashes: recent, reason: `${what}; restarting in ${delayMs} ms`, retryAtMs: nowMs + delayMs, delayMs }
}

/**
 * A failed install: wrong bytes stay wrong, so that digest is blocked until
 * the spore names others (no `untilMs`); a network failure or a full disk is
 * tried again after `retryMs`.
 */
export function installFailure(err: unknown, nowMs: number, retryMs: number): { reason: string; untilMs?: number } {
  const permanent = !isArtifactFetchError(err) && !(isComponentInstallError(err) && err.kind === 'disk-full')
  const reason = `install failed: ${(err as Error).message}`
  return permanent ? { reason } : { reason, untilMs: nowMs + retryMs }
}

/**
 * A Health answer as a state. A healthy component keeps saying why a newer
 * version is not the one running (`blockedReason`).
 */
export function healthVerdict(
  health: { healthy: boolean; reason: string },
  blockedReason: string | undefined
): { state: DynamicComponentState; reason: string } {
  if (health.healthy) return { state: DynamicComponentState.RUNNING, reason: blockedReason ?? '' }
  return { state: DynamicComponentState.UNHEALTHY, reason: `unhealthy: ${health.reason || 'no reason given'}` }
}

/**
 * Whether an on-demand component has been unused long enough to stop: its
 * spore's idle timeout, else the manager's, else the default (0 means unset).
 */
export function idleExpired(
  spec: { onDemand: boolean; idleTimeoutMs: number } | undefined,
  lastUseMs: number | undefined,
  nowMs: number,
  idleTimeoutMs: number | undefined,
  defaultIdleTimeoutMs: number
): boolean {
  if (spec?.onDemand !== true || lastUseMs == null) return false
  const idleMs = spec.idleTimeoutMs || idleTimeoutMs || defaultIdleTimeoutMs
  return nowMs - lastUseMs >= idleMs
}
