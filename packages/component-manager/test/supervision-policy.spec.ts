import { DynamicComponentState } from '@mycelium/core-interfaces'
import { ArtifactFetchError, ArtifactVerificationError, ComponentInstallError } from '../src/errors.js'
import { crashVerdict, healthVerdict, idleExpired, installFailure } from '../src/supervision-policy.js'

const budget = { maxRestarts: 2, windowMs: 60_000 }

describe('crashVerdict', () => {
  it('restarts after the drawn backoff while the budget lasts', () => {
    const v = crashVerdict([], 1_000, budget, 'process exited with code 1', () => 250)
    expect(v).toEqual({
      budgetSpent: false,
      crashes: [1_000],
      reason: 'process exited with code 1; restarting in 250 ms',
      retryAtMs: 1_250,
      delayMs: 250
    })
  })

  it('spends the budget on one failure more than maxRestarts within the window, without drawing a backoff', () => {
    const next = jest.fn(() => 100)
    const v = crashVerdict([10_000, 20_000], 30_000, budget, 'start failed: no Hello', next)
    expect(v).toEqual({
      budgetSpent: true,
      crashes: [10_000, 20_000, 30_000],
      reason: 'start failed: no Hello; 3 failures within 60 s: restart budget spent'
    })
    expect(next).not.toHaveBeenCalled()
  })

  it('forgets failures older than the window', () => {
    const v = crashVerdict([0, 5_000], 64_000, budget, 'process killed', () => 1)
    expect(v.budgetSpent).toBe(false)
    expect(v.crashes).toEqual([5_000, 64_000])
  })

  it('forgets a failure exactly one window old', () => {
    expect(crashVerdict([0, 0], 60_000, budget, 'process killed', () => 1).crashes).toEqual([60_000])
  })
})

describe('installFailure', () => {
  it('blocks wrong bytes for good (no retry time)', () => {
    expect(installFailure(new ArtifactVerificationError('m', 'digest mismatch'), 0, 30_000)).toEqual({
      reason: 'install failed: m: digest mismatch'
    })
    expect(installFailure(new ComponentInstallError('m', 'no entry', 'entry-missing'), 0, 30_000)).toEqual({
      reason: 'install failed: m: no entry'
    })
  })

  it('tries a network failure or a full disk again after retryMs', () => {
    expect(installFailure(new ArtifactFetchError('m', 'ECONNREFUSED'), 1_000, 30_000)).toEqual({
      reason: 'install failed: m: ECONNREFUSED',
      untilMs: 31_000
    })
    expect(installFailure(new ComponentInstallError('m', 'ENOSPC', 'disk-full'), 1_000, 5).untilMs).toBe(1_005)
  })
})

describe('healthVerdict', () => {
  it('is RUNNING when healthy, keeping why a newer version is not running', () => {
    expect(healthVerdict({ healthy: true, reason: '' }, undefined)).toEqual({ state: DynamicComponentState.RUNNING, reason: '' })
    expect(healthVerdict({ healthy: true, reason: '' }, 'install failed: x')).toEqual({
      state: DynamicComponentState.RUNNING,
      reason: 'install failed: x'
    })
  })

  it('is UNHEALTHY with the component’s reason, or says it gave none', () => {
    expect(healthVerdict({ healthy: false, reason: 'db down' }, undefined)).toEqual({
      state: DynamicComponentState.UNHEALTHY,
      reason: 'unhealthy: db down'
    })
    expect(healthVerdict({ healthy: false, reason: '' }, 'blocked').reason).toBe('unhealthy: no reason given')
  })
})

describe('idleExpired', () => {
  const onDemand = (idleTimeoutMs = 0): { onDemand: boolean; idleTimeoutMs: number } => ({ onDemand: true, idleTimeoutMs })

  it('never idles out a component that is not on-demand, or was never used', () => {
    expect(idleExpired({ onDemand: false, idleTimeoutMs: 1 }, 0, 10_000, 1, 1)).toBe(false)
    expect(idleExpired(undefined, 0, 10_000, 1, 1)).toBe(false)
    expect(idleExpired(onDemand(1), undefined, 10_000, 1, 1)).toBe(false)
  })

  it('uses the spore’s idle timeout first, then the manager’s, then the default', () => {
    expect(idleExpired(onDemand(100), 0, 99, 1, 1)).toBe(false)
    expect(idleExpired(onDemand(100), 0, 100, 1, 1)).toBe(true)
    expect(idleExpired(onDemand(), 0, 499, 500, 1)).toBe(false)
    expect(idleExpired(onDemand(), 0, 500, 500, 1)).toBe(true)
    expect(idleExpired(onDemand(), 0, 59_999, undefined, 60_000)).toBe(false)
    expect(idleExpired(onDemand(), 0, 60_000, 0, 60_000)).toBe(true)
  })
})
