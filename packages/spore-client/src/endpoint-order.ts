import type { Endpoint } from '@mycelium/core-interfaces'

/**
 * The node label that names its zone (failure domain), the Kubernetes
 * well-known label. NodeConfig has no zone field: a node is in the zone its
 * `labels` name here, or in none.
 */
export const ZONE_LABEL = 'topology.kubernetes.io/zone'

/** The node's zone from its labels ('' when it names none). */
export const zoneOf = (labels: Readonly<Record<string, string>> | undefined): string => labels?.[ZONE_LABEL] ?? ''

export interface EndpointOrderOptions {
  /** The node's own zone: among equal priority, endpoints in it come first. '' or unset: no preference. */
  zone?: string
  /**
   * Shuffles endpoints of equal priority (and zone rank), so a fleet spreads
   * over its managers; a number in [0, 1). Unset: they keep their order.
   */
  random?: () => number
}

/**
 * The one ordering of manager endpoints, used to resolve and to dial:
 * lowest `priority` value first; among equal priority, endpoints in the
 * node's own zone (`zone` equal to the node's, non-empty) before the others;
 * within that, shuffled by `random` when given, else in their given order.
 * Pure and stable.
 */
export function orderEndpoints(endpoints: readonly Endpoint[], options: EndpointOrderOptions = {}): Endpoint[] {
  const zone = options.zone ?? ''
  const random = options.random
  return endpoints
    .map((e, i) => ({ e, key: random != null ? random() : i, away: zone !== '' && e.zone === zone ? 0 : 1 }))
    .sort((a, b) => a.e.priority - b.e.priority || a.away - b.away || a.key - b.key)
    .map((x) => x.e)
}
