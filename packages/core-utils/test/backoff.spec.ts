import { Backoff, backoffCeilingMs } from '../src/index.js'

describe('Backoff (capped exponential, full jitter)', () => {
  it('grows the ceiling exponentially up to the cap', () => {
    const opts = { initialMs: 100, maxMs: 1000, multiplier: 2 }
    expect([0, 1, 2, 3, 4, 10, 5000].map((n) => backoffCeilingMs(n, opts))).toEqual([100, 200, 400, 800, 1000, 1000, 1000])
  })

  it('draws each delay uniformly below the ceiling', () => {
    const draws = [0, 0.5, 0.999999]
    const b = new Backoff({ initialMs: 100, maxMs: 1000 }, () => draws.shift()!)
    expect(b.next()).toBe(0)
    expect(b.next()).toBe(100)
    expect(b.next()).toBe(399)
    expect(b.attempts).toBe(3)
  })

  it('never waits less than a server retry-after', () => {
    const b = new Backoff({ initialMs: 100 }, () => 0.5)
    expect(b.next(5000)).toBe(5000)
  })

  it('a fleet window widens the ceiling (never narrows it); retry-after stays a floor', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 1000 }, () => 0.5)
    expect(b.next(0, 30_000)).toBe(15_000)
    expect(b.next(0, 50)).toBe(100) // attempt 1: ceiling 200 beats a 50 ms window
    expect(b.next(20_000, 30_000)).toBe(20_000)
  })

  it('starts over after reset', () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000 }, () => 0.999999)
    for (let i = 0; i < 5; i++) b.next()
    b.reset()
    expect(b.next()).toBe(99)
  })

  it('spreads a fleet: 1000 clients at attempt 5 do not retry at one instant', () => {
    const delays = Array.from({ length: 1000 }, () => {
      const b = new Backoff({ initialMs: 500, maxMs: 30_000 })
      for (let i = 0; i < 5; i++) b.next()
      return b.next()
    })
    const perSecond = new Map<number, number>()
    for (const d of delays) perSecond.set(Math.floor(d / 1000), (perSecond.get(Math.floor(d / 1000)) ?? 0) + 1)
    expect(Math.max(...delays)).toBeLessThanOrEqual(16_000)
    expect(Math.max(...perSecond.values())).toBeLessThan(200)
  })
})
