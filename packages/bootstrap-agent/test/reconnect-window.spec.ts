import { planRetry, retryDelay, INITIAL_STATE, DEFAULT_RECONNECT_WINDOW_CAP_MS } from '../src/index.js'
import { Phase } from '@mycelium/core-interfaces'

const backoff = { initialMs: 500, maxMs: 8000, multiplier: 2 }

describe('planRetry (fleet reconnect window, pure)', () => {
  it('without a window it is the house backoff (retryDelay) exactly', () => {
    for (const failures of [1, 2, 5, 9])
      for (const r of [0, 0.3, 0.999])
        for (const retryAfterMs of [0, 700]) {
          const s = { ...INITIAL_STATE, phase: Phase.FALLBACK, failures }
          const old = retryDelay(s, retryAfterMs, backoff, () => r)
          expect(planRetry({ failures, retryAfterMs, reconnectWindowMs: 0 }, backoff, () => r)).toEqual({ ...old, windowMs: 0 })
        }
  })

  it('spreads the first reconnection uniformly over the window (full jitter), not the backoff’s first step', () => {
    expect(planRetry({ failures: 1, retryAfterMs: 0, reconnectWindowMs: 30_000 }, backoff, () => 0.5)).toEqual({
      delayMs: 15_000,
      ceilingMs: 30_000,
      windowMs: 30_000
    })
    // A failed attempt inside the window (manager still down) is spread over the window again.
    expect(planRetry({ failures: 3, retryAfterMs: 0, reconnectWindowMs: 30_000 }, backoff, () => 0.1).delayMs).toBe(3000)
    // The backoff beyond the window wins: the window widens, never narrows.
    expect(planRetry({ failures: 9, retryAfterMs: 0, reconnectWindowMs: 2000 }, backoff, () => 0.5)).toEqual({
      delayMs: 4000,
      ceilingMs: 8000,
      windowMs: 0
    })
  })

  it('honours retry-after as a floor and does not push a reserved slot out by the window', () => {
    const plan = planRetry({ failures: 1, retryAfterMs: 4200, reconnectWindowMs: 30_000 }, backoff, () => 0.999)
    expect(plan).toEqual({ delayMs: 4200, ceilingMs: 500, windowMs: 0 })
  })

  it('caps a window the manager overstates', () => {
    expect(planRetry({ failures: 1, retryAfterMs: 0, reconnectWindowMs: 86_400_000 }, backoff, () => 0.5).ceilingMs).toBe(
      DEFAULT_RECONNECT_WINDOW_CAP_MS
    )
    expect(planRetry({ failures: 1, retryAfterMs: 0, reconnectWindowMs: 86_400_000 }, backoff, () => 0.5, 10_000).delayMs).toBe(5000)
  })

  it('a fleet of 1,000 drawing from the window fills no one-second bucket beyond ~5 % (seeded)', () => {
    let seed = 42
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    const buckets = new Map<number, number>()
    for (let i = 0; i < 1000; i++) {
      const s = Math.floor(planRetry({ failures: 1, retryAfterMs: 0, reconnectWindowMs: 32_000 }, backoff, random).delayMs / 1000)
      buckets.set(s, (buckets.get(s) ?? 0) + 1)
    }
    expect(buckets.size).toBe(32)
    expect(Math.max(...buckets.values())).toBeLessThanOrEqual(50)
  })
})
