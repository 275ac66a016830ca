import { isManagerIdentity, SERVICE_NAMES } from '@mycelium/core-interfaces'
import { orderEndpoints, zoneOf, type SporeClient } from '@mycelium/spore-client'
import type { AgentEvent } from './phase-machine.js'

/**
 * The DISCOVERY action (also the first half of a FALLBACK reconnection
 * round): which Network Manager endpoints to dial, and in which order. It
 * sits beside the other actions (identity-steps.ts, registration.ts) rather
 * than in the runner so the choice — spores first, bootstrap seeds as a last
 * resort; priority, the node's zone, a shuffle — is tested without sockets.
 */
export interface DiscoveryStepDeps {
  spores: Pick<SporeClient, 'resolveService' | 'refresh' | 'bootstrap'>
  /** The node's effective labels, read after any refresh (its zone orders the endpoints). */
  labels: () => Record<string, string>
  /** The jitter source: shuffles endpoints of equal priority and zone so a fleet spreads over managers. */
  random: () => number
}

/**
 * Re-resolves after a failed round (`refresh`: includes peers when a peer
 * source is configured), and on first boot when nothing is cached yet.
 */
export async function discoverStep(d: DiscoveryStepDeps, refresh: boolean): Promise<AgentEvent> {
  const spores = d.spores
  if (refresh || spores.resolveService(SERVICE_NAMES.networkManager).length === 0) await spores.refresh()
  let endpoints = spores.resolveService(SERVICE_NAMES.networkManager)
  if (endpoints.length === 0) {
    endpoints = spores.bootstrap().seeds.filter((e) => isManagerIdentity(e.expectedIdentity, SERVICE_NAMES.networkManager))
  }
  if (endpoints.length === 0)
    return { type: 'no-endpoints', reason: 'no spore names a Network Manager (cache empty and sources unreachable?)' }
  // The dial order: priority, the node's own zone first, shuffled so a fleet spreads over managers.
  const zone = zoneOf(d.labels())
  return { type: 'endpoints-found', endpoints: orderEndpoints(endpoints, { zone, random: d.random }) }
}
