import type { Endpoint } from '@mycelium/core-interfaces'
import { orderEndpoints, zoneOf, ZONE_LABEL } from '../src/index.js'

const ep = (address: string, priority: number, zone = ''): Endpoint => ({ address, expectedIdentity: '', zone, priority })
const addresses = (es: Endpoint[]): string[] => es.map((e) => e.address)

/** A deterministic random source: the given values in turn. */
const sequence = (...values: number[]): (() => number) => {
  let i = 0
  return () => values[i++ % values.length]!
}

describe('orderEndpoints', () => {
  it('puts the lowest priority value first and keeps the given order among equals without a random source', () => {
    expect(addresses(orderEndpoints([ep('c', 2), ep('a', 0), ep('b1', 1), ep('b2', 1)]))).toEqual(['a', 'b1', 'b2', 'c'])
  })

  it("puts the node's own zone first among equal priority, never above a better priority", () => {
    const es = [ep('far-0', 0, 'eu-1'), ep('near-1', 1, 'us-2'), ep('far-1', 1, 'eu-1'), ep('near-0', 0, 'us-2')]
    expect(addresses(orderEndpoints(es, { zone: 'us-2' }))).toEqual(['near-0', 'far-0', 'near-1', 'far-1'])
  })

  it('ignores zones when the node names none (an endpoint without a zone is not "ours")', () => {
    const es = [ep('a', 0, 'eu-1'), ep('b', 0, ''), ep('c', 0, 'us-2')]
    expect(addresses(orderEndpoints(es))).toEqual(['a', 'b', 'c'])
    expect(addresses(orderEndpoints(es, { zone: '' }))).toEqual(['a', 'b', 'c'])
  })

  it('shuffles within a priority and zone rank by the injected random source only', () => {
    const es = [ep('a', 0, 'z'), ep('b', 0, 'z'), ep('c', 0), ep('d', 1)]
    expect(addresses(orderEndpoints(es, { zone: 'z', random: sequence(0.9, 0.1, 0.5, 0.0) }))).toEqual(['b', 'a', 'c', 'd'])
    expect(addresses(orderEndpoints(es, { zone: 'z', random: sequence(0.1, 0.9, 0.5, 0.0) }))).toEqual(['a', 'b', 'c', 'd'])
  })

  it('does not change its input', () => {
    const es = [ep('b', 1), ep('a', 0)]
    orderEndpoints(es, { random: Math.random })
    expect(addresses(es)).toEqual(['b', 'a'])
  })

  it("reads the node's zone from the topology label", () => {
    expect(zoneOf({ [ZONE_LABEL]: 'us-2', rack: 'r1' })).toBe('us-2')
    expect(zoneOf({ zone: 'us-2' })).toBe('')
    expect(zoneOf(undefined)).toBe('')
  })
})
