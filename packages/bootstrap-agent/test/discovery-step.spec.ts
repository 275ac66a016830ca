import type { Endpoint } from '@mycelium/core-interfaces'
import { ZONE_LABEL, type SporeClient } from '@mycelium/spore-client'
import { discoverStep, type DiscoveryStepDeps } from '../src/discovery-step.js'

const NM = 'spiffe://net1/manager/network-manager'
const ep = (address: string, over: Partial<Endpoint> = {}): Endpoint => ({ address, expectedIdentity: NM, zone: '', priority: 0, ...over })

/** An in-memory spore view: `cached` before a refresh, `fresh` after one (pure logic, no sources). */
function spores(cached: Endpoint[], fresh = cached, seeds: Endpoint[] = []): DiscoveryStepDeps['spores'] & { refreshes: number } {
  let known = cached
  const s = {
    refreshes: 0,
    resolveService: (service: string) => (service === 'network-manager' ? known : []),
    refresh: async () => {
      s.refreshes++
      known = fresh
      return { accepted: fresh.length, rejected: 0, failures: [] }
    },
    bootstrap: () => ({ trustBundle: {} as ReturnType<SporeClient['bootstrap']>['trustBundle'], seeds, httpsUrls: [] })
  }
  return s
}

const deps = (s: DiscoveryStepDeps['spores'], labels: Record<string, string> = {}): DiscoveryStepDeps => ({
  spores: s,
  labels: () => labels,
  random: () => 0.5
})

describe('discoverStep (the DISCOVERY action, pure)', () => {
  it('dials cached managers without waiting for the network, lowest priority first and the node’s own zone before others', async () => {
    const s = spores([ep('a:1', { zone: 'z2' }), ep('b:1', { zone: 'z1' }), ep('c:1', { priority: -1, zone: 'z2' })])
    const event = await discoverStep(deps(s, { [ZONE_LABEL]: 'z1' }), false)
    expect(s.refreshes).toBe(0)
    expect(event).toEqual({
      type: 'endpoints-found',
      endpoints: [ep('c:1', { priority: -1, zone: 'z2' }), ep('b:1', { zone: 'z1' }), ep('a:1', { zone: 'z2' })]
    })
  })

  it('re-resolves after a failed round even with a cache, and on first boot when nothing is cached', async () => {
    const afterFailure = spores([ep('old:1')], [ep('new:1')])
    expect(await discoverStep(deps(afterFailure), true)).toEqual({ type: 'endpoints-found', endpoints: [ep('new:1')] })
    expect(afterFailure.refreshes).toBe(1)

    const firstBoot = spores([], [ep('found:1')])
    expect(await discoverStep(deps(firstBoot), false)).toEqual({ type: 'endpoints-found', endpoints: [ep('found:1')] })
    expect(firstBoot.refreshes).toBe(1)
  })

  it('falls back to the bootstrap seeds that are Network Managers when no spore names one', async () => {
    const seeds = [
      ep('spore-manager:1', { expectedIdentity: 'spiffe://net1/manager/spore-manager' }),
      ep('garbage:1', { expectedIdentity: 'not a spiffe id' }),
      ep('seed:1')
    ]
    expect(await discoverStep(deps(spores([], [], seeds)), false)).toEqual({ type: 'endpoints-found', endpoints: [ep('seed:1')] })
  })

  it('says why when neither spores nor seeds name a Network Manager', async () => {
    const event = await discoverStep(deps(spores([], [])), true)
    expect(event).toEqual({ type: 'no-endpoints', reason: expect.stringContaining('no spore names a Network Manager') })
  })
})
