import { RESOURCE_SAMPLE_MS, resourceUsage } from '../src/index.js'

describe('resourceUsage', () => {
  it('serves one sample of the host for RESOURCE_SAMPLE_MS, then reads the host again', () => {
    const t0 = 1_000_000
    const first = resourceUsage(t0)
    expect(first.agentRssBytes).toBeGreaterThan(0)
    // Make the next read of the host differ from the first (RSS grows with this allocation).
    const ballast = Buffer.alloc(32 * 2 ** 20, 1)
    expect(resourceUsage(t0 + RESOURCE_SAMPLE_MS - 1)).toEqual(first)
    const later = resourceUsage(t0 + RESOURCE_SAMPLE_MS)
    expect(later.agentRssBytes).not.toBe(first.agentRssBytes)
    // A clock that went back is a new sample too, never a stale one kept forever.
    expect(resourceUsage(t0 - 10_000).agentRssBytes).toBeGreaterThan(0)
    expect(ballast.length).toBe(32 * 2 ** 20)
  })
})
