import { HealthState, IdentityState, Phase, type ComponentHealth } from '@mycelium/core-interfaces'

/** What node health is computed from: one fact per component, read by node-core when asked. */
export interface HealthInput {
  phase: Phase
  /** Why the agent is in its phase. */
  phaseReason: string
  identity: { state: IdentityState; reason: string }
  /** The spore client, once the trust bundle is known. */
  spores?: { mode: string; reason: string; sporeCount: number; liveCount: number }
  /** k3s-runtime's own line (its state, restarts and reason). */
  runtime: ComponentHealth
  /** Whether the config in force asks for K3s (unavailable is then a problem, not a choice). */
  k3sEnabled: boolean
  /** Local status surfaces: configured ones must be serving. */
  statusServers: Array<{ name: string; configured: boolean; serving: boolean }>
  /** Further lines (emergency measures, survived state corruptions). */
  extra?: ComponentHealth[]
}

export interface AggregatedHealth {
  state: HealthState
  /** "component: reason; …" for every component not HEALTHY (STOPPED ones excluded); empty when HEALTHY. */
  reason: string
  components: ComponentHealth[]
}

const line = (name: string, state: HealthState, reason = '', restarts = 0): ComponentHealth => ({ name, state, reason, restarts })

const RANK: Record<HealthState, number> = {
  [HealthState.UNSPECIFIED]: 0,
  [HealthState.STOPPED]: 0,
  [HealthState.HEALTHY]: 1,
  [HealthState.DEGRADED]: 2,
  [HealthState.UNHEALTHY]: 3,
  [HealthState.UNRECOGNIZED]: 0
}

/**
 * Node health from its components: the worst state wins (STOPPED — off by
 * choice — counts as nothing). Decisions:
 * - agent link: MANAGED healthy; on the way there or in FALLBACK degraded
 *   (the node runs, unmanaged); RECOVERY unhealthy (it needs an operator).
 * - identity: valid healthy; renewal due or not enrolled yet degraded;
 *   expired, not yet valid or invalid unhealthy (no mTLS channel works).
 * - spores: none live (never fetched, or all expired) degraded, some expired
 *   (not refreshed in time) degraded, the Spore Manager lost degraded.
 * - K3s: the runtime's own line (restart budget spent unhealthy, crashed or
 *   starting degraded); enabled in the config but unavailable degraded.
 * - status servers: configured but not serving degraded.
 * Pure: used for heartbeats, /readyz, status and config trials alike.
 */
export function aggregateHealth(i: HealthInput): AggregatedHealth {
  const components: ComponentHealth[] = []
  switch (i.phase) {
    case Phase.MANAGED:
      components.push(line('agent-link', HealthState.HEALTHY))
      break
    case Phase.RECOVERY:
      components.push(line('agent-link', HealthState.UNHEALTHY, `recovery: ${i.phaseReason}`))
      break
    case Phase.FALLBACK:
      components.push(line('agent-link', HealthState.DEGRADED, `manager unreachable: ${i.phaseReason}`))
      break
    default:
      components.push(line('agent-link', HealthState.DEGRADED, `not managed yet (${Phase[i.phase]}): ${i.phaseReason}`))
  }
  switch (i.identity.state) {
    case IdentityState.VALID:
      components.push(line('identity', HealthState.HEALTHY))
      break
    case IdentityState.RENEWAL_DUE:
      components.push(line('identity', HealthState.DEGRADED, `renewal due: ${i.identity.reason}`))
      break
    case IdentityState.MISSING:
    case IdentityState.UNSPECIFIED:
      components.push(line('identity', HealthState.DEGRADED, `not enrolled yet: ${i.identity.reason}`))
      break
    default:
      components.push(line('identity', HealthState.UNHEALTHY, i.identity.reason || IdentityState[i.identity.state]))
  }
  const s = i.spores
  if (s == null) components.push(line('spores', HealthState.STOPPED, 'no trust bundle yet'))
  else if (s.liveCount === 0)
    components.push(
      line(
        'spores',
        HealthState.DEGRADED,
        s.sporeCount > 0 ? `all ${s.sporeCount} spores expired (not refreshed)` : `no verified spores yet: ${s.reason}`
      )
    )
  else if (s.liveCount < s.sporeCount)
    components.push(line('spores', HealthState.DEGRADED, `${s.sporeCount - s.liveCount} of ${s.sporeCount} spores expired (not refreshed)`))
  else if (s.mode === 'fallback') components.push(line('spores', HealthState.DEGRADED, `Spore Manager lost: ${s.reason}`))
  else components.push(line('spores', HealthState.HEALTHY))
  const rt = i.runtime
  if (i.k3sEnabled && rt.state === HealthState.STOPPED)
    components.push({ ...rt, state: HealthState.DEGRADED, reason: `enabled but unavailable: ${rt.reason}` })
  else components.push(rt)
  for (const server of i.statusServers) {
    if (!server.configured) continue
    components.push(
      line(server.name, server.serving ? HealthState.HEALTHY : HealthState.DEGRADED, server.serving ? '' : 'configured but not serving')
    )
  }
  components.push(...(i.extra ?? []))
  let state = HealthState.HEALTHY
  for (const c of components) if (RANK[c.state] > RANK[state]) state = c.state
  const reason = components
    .filter((c) => c.state === HealthState.DEGRADED || c.state === HealthState.UNHEALTHY)
    .map((c) => `${c.name}: ${c.reason}`)
    .join('; ')
  return { state, reason, components }
}
