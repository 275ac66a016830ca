import { Phase, type Logger } from '@mycelium/core-interfaces'
import type { BootstrapAgentInit } from './agent-types.js'
import { DEFAULT_RECONNECT } from './defaults.js'
import { attemptOf, type MachineState } from './phase-machine.js'
import { planRetry, type RetryPlan } from './reconnect-window.js'
import type { RetryWait } from './retry-wait.js'

/**
 * The schedule-retry action of the retrying phases (FALLBACK reconnection,
 * RECOVERY identity attempts): the machine's state and the agent's tunables
 * turned into `planRetry`'s input, logged, then waited on the run's one
 * RetryWait. Beside the other actions so which window applies when is
 * tested without a timer.
 */
export interface RetryStepDeps {
  state: MachineState
  /** The fleet reconnect window the manager last advertised (0: none). */
  reconnectWindowMs: number
  init: Pick<BootstrapAgentInit, 'reconnect' | 'reconnectWindowCapMs'>
  random: () => number
}

/**
 * Capped exponential with full jitter, in FALLBACK and RECOVERY alike; a
 * manager's retry-after is a floor. Only FALLBACK spreads over the fleet
 * reconnect window: identity retries are this node's own business.
 */
export function planStateRetry(d: RetryStepDeps, retryAfterMs: number): RetryPlan {
  const fallback = d.state.phase === Phase.FALLBACK
  return planRetry(
    { failures: d.state.failures, retryAfterMs, reconnectWindowMs: fallback ? d.reconnectWindowMs : 0 },
    { ...DEFAULT_RECONNECT, ...d.init.reconnect },
    d.random,
    d.init.reconnectWindowCapMs
  )
}

/**
 * Plans, logs and waits: true when the retry is due, false when superseded
 * (the machine moved on); rejects when `signal` (the run) aborts.
 */
export async function retryStep(
  d: RetryStepDeps,
  retryAfterMs: number,
  wait: RetryWait,
  log: Logger,
  signal: AbortSignal
): Promise<boolean> {
  const plan = planStateRetry(d, retryAfterMs)
  log.info('retry scheduled', {
    phase: Phase[d.state.phase],
    attempt: attemptOf(d.state),
    delayMs: plan.delayMs,
    ceilingMs: plan.ceilingMs,
    retryAfterMs,
    ...(plan.windowMs > 0 ? { reconnectWindowMs: plan.windowMs } : {})
  })
  return wait.wait(plan.delayMs, signal)
}
