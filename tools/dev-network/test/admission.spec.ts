import { AdmissionLimiter } from '../src/index.js'

describe('AdmissionLimiter (registration storms, no sockets)', () => {
  it('admits the burst at once, then hands each refused node its own slot, 1/perSecond apart', () => {
    const a = new AdmissionLimiter({ burst: 3, perSecond: 10 }, 0)
    expect(['a', 'b', 'c'].map((k) => a.admit(k, 0))).toEqual([{ admitted: true }, { admitted: true }, { admitted: true }])
    expect(a.admit('d', 0)).toEqual({ admitted: false, retryAfterMs: 100, reserved: true })
    expect(a.admit('e', 0)).toEqual({ admitted: false, retryAfterMs: 200, reserved: true })
    expect(a.admit('f', 50)).toEqual({ admitted: false, retryAfterMs: 250, reserved: true })
    expect(a.queued).toBe(3)
  })

  it('a node back before its slot is told the rest of its wait and keeps its place', () => {
    const a = new AdmissionLimiter({ burst: 1, perSecond: 10 }, 0)
    a.admit('a', 0)
    expect(a.admit('b', 0)).toMatchObject({ retryAfterMs: 100 })
    expect(a.admit('c', 0)).toMatchObject({ retryAfterMs: 200 })
    expect(a.admit('b', 40)).toEqual({ admitted: false, retryAfterMs: 60, reserved: true })
    expect(a.admit('b', 100)).toEqual({ admitted: true })
    expect(a.admit('c', 200)).toEqual({ admitted: true })
    expect(a.queued).toBe(0)
  })

  it('newcomers queue behind reserved nodes while a queue exists, so a returning node finds its token', () => {
    const a = new AdmissionLimiter({ burst: 1, perSecond: 10 }, 0)
    a.admit('a', 0)
    expect(a.admit('b', 0)).toMatchObject({ retryAfterMs: 100 })
    // At 100 ms a token exists, but b holds the slot: the newcomer gets the next one.
    expect(a.admit('new', 100)).toEqual({ admitted: false, retryAfterMs: 100, reserved: true })
    expect(a.admit('b', 100)).toEqual({ admitted: true })
    expect(a.admit('new', 200)).toEqual({ admitted: true })
  })

  it('never admits more than perSecond + burst in any one-second window of a 1,000-node storm', () => {
    const perSecond = 40
    const burst = 5
    const a = new AdmissionLimiter({ burst, perSecond }, 0)
    // Every node arrives in the first 2 s, then honours its retry-after (plus a little lateness).
    const due: { key: string; at: number }[] = Array.from({ length: 1000 }, (_, i) => ({ key: `n${i}`, at: (i * 2000) / 1000 }))
    const admittedAt: number[] = []
    let refusals = 0
    while (due.length > 0) {
      due.sort((x, y) => x.at - y.at)
      const next = due.shift()!
      const d = a.admit(next.key, next.at)
      if (d.admitted) admittedAt.push(next.at)
      else {
        refusals++
        due.push({ key: next.key, at: next.at + d.retryAfterMs + (refusals % 7) })
      }
    }
    expect(admittedAt).toHaveLength(1000)
    const perWindow = new Map<number, number>()
    for (const t of admittedAt) perWindow.set(Math.floor(t / 1000), (perWindow.get(Math.floor(t / 1000)) ?? 0) + 1)
    expect(Math.max(...perWindow.values())).toBeLessThanOrEqual(perSecond + burst)
    // Each node was refused about once: its slot holds when it comes back.
    expect(refusals).toBeLessThan(1000 * 1.2)
  })

  it('bounds its memory: no slot beyond maxRetryAfterMs, unclaimed slots forgotten after the grace', () => {
    const a = new AdmissionLimiter({ burst: 1, perSecond: 1, maxRetryAfterMs: 3000, reservationGraceMs: 1000 }, 0)
    a.admit('a', 0)
    expect(a.admit('b', 0)).toMatchObject({ retryAfterMs: 1000, reserved: true })
    expect(a.admit('c', 0)).toMatchObject({ retryAfterMs: 2000, reserved: true })
    expect(a.admit('d', 0)).toMatchObject({ retryAfterMs: 3000, reserved: true })
    expect(a.admit('e', 0)).toEqual({ admitted: false, retryAfterMs: 3000, reserved: false })
    expect(a.queued).toBe(3)
    // Nobody came back: 1 s after the last slot passed every reservation is gone and a newcomer gets in.
    expect(a.admit('f', 5000)).toEqual({ admitted: true })
    expect(a.queued).toBe(0)
  })

  it('sizes the reconnect window to the fleet: none within the burst, fleet / (perSecond × utilisation) in whole seconds, capped', () => {
    const a = new AdmissionLimiter({ burst: 100, perSecond: 50, windowUtilisation: 0.8, maxWindowMs: 60_000 })
    expect(a.reconnectWindowMs(100)).toBe(0)
    expect(a.reconnectWindowMs(1000)).toBe(25_000)
    expect(a.reconnectWindowMs(1001)).toBe(26_000)
    expect(a.reconnectWindowMs(1_000_000)).toBe(60_000)
  })

  it('refuses a configuration that could never admit anyone', () => {
    expect(() => new AdmissionLimiter({ perSecond: 0 })).toThrow(RangeError)
    expect(() => new AdmissionLimiter({ burst: 0 })).toThrow(RangeError)
  })
})
