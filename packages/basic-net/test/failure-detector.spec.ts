import { PhiAccrualDetector } from '../src/index.js'

function beats(d: PhiAccrualDetector, start: number, count: number, every: number): number {
  let t = start
  for (let i = 0; i < count; i++) {
    d.heartbeat(t)
    t += every
  }
  return t - every
}

describe('PhiAccrualDetector', () => {
  it('starts unknown and becomes alive on the first heartbeat', () => {
    const d = new PhiAccrualDetector()
    expect(d.state).toBe('unknown')
    expect(d.evaluate(10_000)).toBeUndefined()
    expect(d.heartbeat(0)).toEqual({ from: 'unknown', to: 'alive', phi: 0 })
  })

  it('never declares a peer dead for one missed ping', () => {
    const d = new PhiAccrualDetector({ expectedIntervalMs: 1000 })
    const last = beats(d, 0, 20, 1000)
    // The next ping (at +1000) is lost; the one after (at +2000) arrives.
    for (let t = last; t < last + 2000; t += 50) expect(d.evaluate(t)?.to).not.toBe('down')
    expect(d.state).not.toBe('down')
    d.heartbeat(last + 2000)
    expect(d.state).toBe('alive')
  })

  it('suspects before it declares down, and down comes within the bound', () => {
    const d = new PhiAccrualDetector({ expectedIntervalMs: 1000, suspicionTimeoutMs: 3000 })
    const last = beats(d, 0, 30, 1000)
    const bound = d.downBoundMs()
    const seen: Array<[string, number]> = []
    for (let t = last; t <= last + bound + 100; t += 10) {
      const tr = d.evaluate(t)
      if (tr != null) seen.push([tr.to, t - last])
    }
    expect(seen.map((s) => s[0])).toEqual(['suspect', 'down'])
    const [, suspectAt] = seen[0]!
    const [, downAt] = seen[1]!
    expect(suspectAt).toBeGreaterThan(2000) // beyond one missed interval
    expect(downAt - suspectAt).toBeGreaterThanOrEqual(3000)
    expect(downAt).toBeLessThanOrEqual(bound + 10)
  })

  it('a heartbeat during suspicion brings the peer back', () => {
    const d = new PhiAccrualDetector({ expectedIntervalMs: 100 })
    const last = beats(d, 0, 10, 100)
    let t = last
    while (d.evaluate(t)?.to !== 'suspect') t += 5
    expect(d.heartbeat(t + 5)).toEqual({ from: 'suspect', to: 'alive', phi: 0 })
  })

  it('adapts to jittery heartbeats: tolerates longer silences', () => {
    const steady = new PhiAccrualDetector({ expectedIntervalMs: 1000 })
    const jittery = new PhiAccrualDetector({ expectedIntervalMs: 1000 })
    beats(steady, 0, 50, 1000)
    let t = 0
    for (let i = 0; i < 50; i++) {
      jittery.heartbeat(t)
      t += i % 2 === 0 ? 400 : 1600
    }
    expect(jittery.downBoundMs()).toBeGreaterThan(steady.downBoundMs())
  })

  it('phi rises monotonically with silence', () => {
    const d = new PhiAccrualDetector()
    const last = beats(d, 0, 10, 1000)
    const phis = [0, 1000, 2000, 2500, 3000, 4000].map((dt) => d.phi(last + dt))
    for (let i = 1; i < phis.length; i++) expect(phis[i]!).toBeGreaterThanOrEqual(phis[i - 1]!)
  })
})
