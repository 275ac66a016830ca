import { coalescing } from '../src/index.js'

describe('coalescing', () => {
  it('never overlaps runs, queues one follow-up, and lets later callers join it', async () => {
    let running = 0
    let maxRunning = 0
    let runs = 0
    let state = 0
    const seen: number[] = []
    const job = coalescing(async () => {
      running++
      maxRunning = Math.max(maxRunning, running)
      runs++
      const observed = state
      await new Promise((r) => setTimeout(r, 20))
      seen.push(observed)
      running--
      return observed
    })
    const first = job()
    await new Promise((r) => setTimeout(r, 5)) // first run has read state = 0
    state = 1
    const second = job()
    const third = job()
    expect(await first).toBe(0)
    expect(await second).toBe(1) // the change made before the call is seen
    expect(third).toBe(second)
    expect(runs).toBe(2)
    expect(maxRunning).toBe(1)
  })

  it('keeps working after a failed run', async () => {
    let fail = true
    const job = coalescing(async () => {
      if (fail) throw new Error('boom')
      return 'ok'
    })
    await expect(job()).rejects.toThrow('boom')
    fail = false
    await expect(job()).resolves.toBe('ok')
  })
})
