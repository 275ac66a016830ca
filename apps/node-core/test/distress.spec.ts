import { DistressProblem, HealthState, IdentityState, Phase } from '@mycelium/core-interfaces'
import { distressNeeded, type DistressFacts } from '../src/distress-need.js'

/** When a node calls its peers for help, and what it says (pure). */
const base: DistressFacts = {
  nowMs: 100_000,
  phase: Phase.FALLBACK,
  lastManagedMs: 90_000,
  identity: { state: IdentityState.VALID, reason: '' },
  spores: { held: 3, live: 3 },
  k3s: { state: HealthState.STOPPED, reason: 'disabled' },
  configRevertsInRow: 0
}
const t = { unreachableMs: 30_000, configRevertLoop: 3 }

describe('distressNeeded', () => {
  it('a short manager outage raises nothing; beyond the threshold the node calls for help', () => {
    expect(distressNeeded(base, t)).toBeUndefined()
    const need = distressNeeded({ ...base, lastManagedMs: 60_000 }, t)
    expect(need).toEqual({
      problem: DistressProblem.MANAGERS_UNREACHABLE,
      evidence: ['no Network Manager for 40 s (phase FALLBACK)'],
      renewal: false
    })
  })

  it('a MANAGED node never calls peers: its manager hears it directly', () => {
    expect(
      distressNeeded({ ...base, phase: Phase.MANAGED, lastManagedMs: 0, k3s: { state: HealthState.UNHEALTHY, reason: 'budget' } }, t)
    ).toBeUndefined()
  })

  it('an identity at risk while offline asks for a renewal, and names it first', () => {
    const need = distressNeeded({ ...base, identity: { state: IdentityState.RENEWAL_DUE, reason: 'expires soon' } }, t)
    expect(need?.problem).toBe(DistressProblem.IDENTITY_EXPIRING)
    expect(need?.renewal).toBe(true)
  })

  it.each([
    ['every spore expired', { spores: { held: 2, live: 0 } }, DistressProblem.SPORES_EXPIRED],
    [
      'K3s budget spent',
      { k3s: { state: HealthState.UNHEALTHY, reason: 'restart budget spent' } },
      DistressProblem.K3S_RESTART_BUDGET_SPENT
    ],
    ['a config revert loop', { configRevertsInRow: 3 }, DistressProblem.CONFIG_REVERT_LOOP],
    ['a failed core component', { failedComponent: { name: 'status', reason: 'hung' } }, DistressProblem.COMPONENT_FAILED]
  ] as const)('a persisting core failure (%s) raises a call at once, without waiting for the threshold', (_what, facts, problem) => {
    expect(distressNeeded({ ...base, ...facts }, t)?.problem).toBe(problem)
  })

  it('bounds the evidence (16 lines of 256 characters)', () => {
    const need = distressNeeded({ ...base, lastManagedMs: 0, failedComponent: { name: 'x', reason: 'r'.repeat(1000) } }, t)!
    expect(need.evidence.every((l) => l.length <= 256)).toBe(true)
    expect(need.evidence.length).toBeLessThanOrEqual(16)
  })
})
