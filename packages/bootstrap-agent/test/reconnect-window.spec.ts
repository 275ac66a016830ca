import { planRetry, DEFAULT_RECONNECT_WINDOW_CAP_MS, DEFAULT_RESERVATION_JITTER_MS } from '../src/index.js'

const backoff = { initialMs: 500, maxMs: 8000, multiplier: 2 }

describe('planRetry (fleet reconnect window, pure)', () => {
  it('without a window or retry-after it is the house backoff: capped exponential, full jitter, from the injected random source', () => {
    const small = { initialMs: 100, maxMs: 1000, multiplier: 2 }
    expect(planRetry({ failures: 1, retryAfterMs: 0, reconnectWindowMs: 0 }, small, () => 0.5)).toEqual({
      delayMs: 50,
      ceilingMs: 100,
      windowMs: 0
    })
    expect(planRetry({ failures: 3, retryAfterMs: 0, reconnectWindowMs: 0 }, small, () => 0.5)).toEqual({
      delayMs: 200,
      ceilingMs: 400,
      windowMs: 0
    })
    expect(planRetry({ failures: 9, retryAfterMs: 0, reconnectWindowMs: 0 }, small, () => 0.999)).toEqual({
      delayMs: 999,
      ceilingMs: 1000,
      windowMs: 0
    })
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

  it('comes back at the slot a retry-after names, jittered by at most a second — never sooner, never seconds late', () => {
    // Early in the backoff the jitter is the backoff's own first step; the fleet window never pushes a slot out.
    expect(planRetry({ failures: 1, retryAfterMs: 4200, reconnectWindowMs: 30_000 }, backoff, () => 0.999)).toEqual({
      delayMs: 4699,
      ceilingMs: 4700,
      windowMs: 0
    })
    expect(planRetry({ failures: 1, retryAfterMs: 4200, reconnectWindowMs: 30_000 }, backoff, () => 0).delayMs).toBe(4200)
    // After many failures the backoff would be 8 s; a node with a reserved slot still comes within a second of it.
    const late = planRetry({ failures: 9, retryAfterMs: 25, reconnectWindowMs: 0 }, backoff, () => 0.999)
    expect(late.delayMs).toBe(25 + Math.floor(0.999 * DEFAULT_RESERVATION_JITTER_MS))
    // A manager answering 1 ms again and again still gets a node at most ~2 times a second on average, not a loop.
    expect(planRetry({ failures: 9, retryAfterMs: 1, reconnectWindowMs: 0 }, backoff, () => 0.5).delayMs).toBe(501)
  })

  it('a retry-after beyond the cap parks the node no longer than the cap', () => {
    expect(planRetry({ failures: 1, retryAfterMs: 10 * 86_400_000, reconnectWindowMs: 0 }, backoff, () => 0).delayMs).toBe(
      DEFAULT_RECONNECT_WINDOW_CAP_MS
    )
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
