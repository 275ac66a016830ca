import { Phase } from '@mycelium/core-interfaces'
import { INITIAL_STATE, type MachineState } from '../src/index.js'
import { planStateRetry, type RetryStepDeps } from '../src/retry-step.js'

const state = (phase: Phase, failures: number): MachineState => ({ ...INITIAL_STATE, phase, failures })
const deps = (phase: Phase, over: Partial<RetryStepDeps> = {}): RetryStepDeps => ({
  state: state(phase, 1),
  reconnectWindowMs: 30_000,
  init: {},
  random: () => 0.5,
  ...over
})

describe('planStateRetry (the schedule-retry action’s plan, pure)', () => {
  it('spreads a FALLBACK reconnection over the fleet window the manager advertised', () => {
    expect(planStateRetry(deps(Phase.FALLBACK), 0)).toEqual({ delayMs: 15_000, ceilingMs: 30_000, windowMs: 30_000 })
  })

  it('keeps RECOVERY’s identity attempts on the house backoff: the fleet window is not theirs', () => {
    // DEFAULT_RECONNECT's first step is 0.5 s: full jitter at 0.5 gives 250 ms.
    expect(planStateRetry(deps(Phase.RECOVERY), 0)).toEqual({ delayMs: 250, ceilingMs: 500, windowMs: 0 })
  })

  it('takes the node’s reconnect overrides over the defaults and caps the window at reconnectWindowCapMs', () => {
    const init = { reconnect: { initialMs: 100 }, reconnectWindowCapMs: 10_000 }
    expect(planStateRetry(deps(Phase.RECOVERY, { init }), 0)).toEqual({ delayMs: 50, ceilingMs: 100, windowMs: 0 })
    expect(planStateRetry(deps(Phase.FALLBACK, { init }), 0)).toEqual({ delayMs: 5000, ceilingMs: 10_000, windowMs: 10_000 })
  })

  it('comes back at a manager’s retry-after, never sooner, in either phase', () => {
    for (const phase of [Phase.FALLBACK, Phase.RECOVERY]) {
      const plan = planStateRetry(deps(phase, { random: () => 0 }), 7000)
      expect(plan.delayMs).toBe(7000)
    }
  })
})
