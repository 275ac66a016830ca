import { HealthState, IdentityState, Phase, type ComponentHealth } from '@mycelium/core-interfaces'
import { aggregateHealth, type HealthInput } from '../src/index.js'

const k3s = (state: HealthState, reason = '', restarts = 0): ComponentHealth => ({ name: 'k3s-runtime', state, reason, restarts })

const good: HealthInput = {
  phase: Phase.MANAGED,
  phaseReason: 'handoff confirmed',
  identity: { state: IdentityState.VALID, reason: '' },
  spores: { mode: 'spore-manager', reason: '', sporeCount: 3, liveCount: 3 },
  runtime: k3s(HealthState.HEALTHY),
  k3sEnabled: true,
  statusServers: [
    { name: 'status-grpc', configured: true, serving: true },
    { name: 'status-http', configured: true, serving: true }
  ]
}

const agg = (patch: Partial<HealthInput>) => aggregateHealth({ ...good, ...patch })

describe('node health aggregation', () => {
  it('HEALTHY when every component is', () => {
    const h = agg({})
    expect(h.state).toBe(HealthState.HEALTHY)
    expect(h.reason).toBe('')
    expect(h.components.map((c) => c.name)).toEqual(['agent-link', 'identity', 'spores', 'k3s-runtime', 'status-grpc', 'status-http'])
  })

  it('K3s with its restart budget spent makes the node UNHEALTHY, a crash or start in progress DEGRADED', () => {
    expect(agg({ runtime: k3s(HealthState.UNHEALTHY, 'k3s exited 6 times within 600 s; restart budget spent', 5) })).toMatchObject({
      state: HealthState.UNHEALTHY,
      reason: 'k3s-runtime: k3s exited 6 times within 600 s; restart budget spent'
    })
    expect(agg({ runtime: k3s(HealthState.DEGRADED, 'backoff: k3s exited with code 7; restarting in 1000 ms', 1) }).state).toBe(
      HealthState.DEGRADED
    )
  })

  it('K3s off by choice counts as nothing; enabled but unavailable is DEGRADED', () => {
    expect(agg({ runtime: k3s(HealthState.STOPPED, 'disabled in NodeConfig (k3s.enabled is false)'), k3sEnabled: false }).state).toBe(
      HealthState.HEALTHY
    )
    expect(agg({ runtime: k3s(HealthState.STOPPED, 'k3s not found on PATH'), k3sEnabled: true })).toMatchObject({
      state: HealthState.DEGRADED,
      reason: 'k3s-runtime: enabled but unavailable: k3s not found on PATH'
    })
  })

  it('the agent link: FALLBACK and the way to MANAGED are DEGRADED, RECOVERY UNHEALTHY', () => {
    expect(agg({ phase: Phase.FALLBACK, phaseReason: 'heartbeats unanswered' })).toMatchObject({
      state: HealthState.DEGRADED,
      reason: 'agent-link: manager unreachable: heartbeats unanswered'
    })
    expect(agg({ phase: Phase.REGISTRATION, phaseReason: 'x' }).state).toBe(HealthState.DEGRADED)
    expect(agg({ phase: Phase.RECOVERY, phaseReason: 'certificate of another network' }).state).toBe(HealthState.UNHEALTHY)
  })

  it('identity: renewal due DEGRADED, expired or invalid UNHEALTHY', () => {
    expect(agg({ identity: { state: IdentityState.RENEWAL_DUE, reason: 'expires in 2h' } }).state).toBe(HealthState.DEGRADED)
    expect(agg({ identity: { state: IdentityState.EXPIRED, reason: 'certificate expired' } })).toMatchObject({
      state: HealthState.UNHEALTHY,
      reason: 'identity: certificate expired'
    })
  })

  it('spores: expired (not refreshed) or none, or the Spore Manager lost, are DEGRADED', () => {
    expect(agg({ spores: { mode: 'sources', reason: '', sporeCount: 3, liveCount: 1 } }).reason).toBe(
      'spores: 2 of 3 spores expired (not refreshed)'
    )
    expect(agg({ spores: { mode: 'sources', reason: 'no spores yet', sporeCount: 0, liveCount: 0 } }).state).toBe(HealthState.DEGRADED)
    expect(agg({ spores: { mode: 'fallback', reason: 'UNAVAILABLE', sporeCount: 3, liveCount: 3 } }).reason).toBe(
      'spores: Spore Manager lost: UNAVAILABLE'
    )
  })

  it('a configured status server not serving is DEGRADED; several reasons are all named, worst state wins', () => {
    const h = agg({
      statusServers: [{ name: 'status-http', configured: true, serving: false }],
      identity: { state: IdentityState.INVALID, reason: 'wrong CA' }
    })
    expect(h.state).toBe(HealthState.UNHEALTHY)
    expect(h.reason).toBe('identity: wrong CA; status-http: configured but not serving')
  })
})
