import { LoopDelaySampler } from '../src/loop-delay.js'

/** The sampler's arithmetic on a hand-driven clock (the timer is not started). */
describe('LoopDelaySampler', () => {
  const clocked = (): { sampler: LoopDelaySampler; at: (ms: number) => void } => {
    let t = 0
    const sampler = new LoopDelaySampler(100, 8, () => t)
    sampler.start()
    sampler.stop() // only `due` is set: ticks come from the test
    return { sampler, at: (ms) => (t = ms) }
  }

  it('answers the 99th percentile of how late each tick ran, then starts a new window', () => {
    const { sampler, at } = clocked()
    // Due every 100 ms from 0: on time, 30 ms late, on time, after a 600 ms block, on time.
    for (const t of [100, 230, 330, 1030, 1130]) {
      at(t)
      sampler.tick()
    }
    expect(sampler.takeP99()).toBe(600)
    at(1230)
    sampler.tick()
    expect(sampler.takeP99()).toBe(0)
  })

  it('counts a block still in progress: no tick ran since the window began', () => {
    const { sampler, at } = clocked()
    at(100)
    sampler.tick()
    sampler.takeP99()
    at(900) // the next tick was due at 200
    expect(sampler.takeP99()).toBe(700)
    // The late tick runs 20 ms later: only those 20 ms are its own, the 700 were counted.
    at(920)
    sampler.tick()
    expect(sampler.takeP99()).toBe(20)
  })

  it('keeps the latest samples of a window longer than its capacity', () => {
    const { sampler, at } = clocked()
    let t = 0
    // 8 ticks of a 300 ms stall each, then 8 on time: only the 8 on time are kept.
    const tickAt = (ms: number): void => {
      at(ms)
      sampler.tick()
    }
    for (let i = 0; i < 8; i++) tickAt((t += 400))
    for (let i = 0; i < 8; i++) tickAt((t += 100))
    expect(sampler.takeP99()).toBe(0)
  })

  it('an empty window on time answers 0', () => {
    const { sampler, at } = clocked()
    at(50)
    expect(sampler.takeP99()).toBe(0)
  })
})
