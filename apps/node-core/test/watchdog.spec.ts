import { HealthState, silentLogger, type Startable } from '@mycelium/core-interfaces'
import { until } from '@mycelium/testing'
import { Watchdog } from '../src/watchdog.js'

/** The watchdog's decisions with an injected hang and an injected crash (a component is a probe and its Startable parts). */
class Part implements Startable {
  starts = 0
  stops = 0
  isStarted = (): boolean => this.starts > this.stops
  start(): void {
    this.starts++
  }
  stop(): void {
    this.stops++
  }
}

describe('Watchdog', () => {
  it('restarts a hung component with its parts, then gives up after the budget and escalates', async () => {
    const part = new Part()
    let mode: 'ok' | 'hang' = 'hang'
    const dog = new Watchdog(
      [{ name: 'status', parts: [part], probe: () => (mode === 'ok' ? true : new Promise<boolean>(() => undefined)) }],
      silentLogger(),
      { probeTimeoutMs: 20, maxRestarts: 2 }
    )
    await dog.check()
    expect([part.stops, part.starts]).toEqual([1, 1])
    expect(dog.health()[0]).toMatchObject({ name: 'watchdog:status', state: HealthState.DEGRADED })
    await dog.check()
    await dog.check() // the third hang: budget (2) spent
    expect(part.starts).toBe(2)
    expect(dog.failed()).toEqual({ name: 'status', reason: expect.stringMatching(/hung.*2 restarts within 600 s did not help/) })
    expect(dog.health()[0]?.state).toBe(HealthState.UNHEALTHY)
    mode = 'ok'
    await dog.check() // given up on: no more restarts
    expect(part.starts).toBe(2)
  })

  it('restarts a crashed component (its probe throws) and leaves a healthy one alone', async () => {
    const crashed = new Part()
    const fine = new Part()
    let crash = true
    const dog = new Watchdog(
      [
        {
          name: 'spores',
          parts: [crashed],
          probe: () => {
            if (crash) throw new Error('refresh loop died')
            return true
          }
        },
        { name: 'heartbeat', parts: [fine], probe: () => true }
      ],
      silentLogger(),
      { probeTimeoutMs: 50 }
    )
    await dog.check()
    crash = false
    await dog.check()
    expect(crashed.starts).toBe(1)
    expect(fine.starts).toBe(0)
    expect(dog.health()).toEqual([expect.objectContaining({ name: 'watchdog:spores', reason: expect.stringMatching(/refresh loop died/) })])
    expect(dog.failed()).toBeUndefined()
  })

  it('leaves a part behind whose stop hangs, starts it anew, and reports every change', async () => {
    const part = new Part()
    part.stop = () => new Promise<void>(() => undefined) as unknown as void // a hung component may never stop
    let answers = false
    let changes = 0
    const dog = new Watchdog([{ name: 'agent', parts: [part], probe: () => answers }], silentLogger(), { stopTimeoutMs: 20 })
    dog.onChange(() => changes++)
    await dog.check()
    expect(part.starts).toBe(1) // started although its stop never returned
    expect(changes).toBe(1) // the restart
    answers = true
    await dog.check()
    expect(changes).toBe(2) // answering again
    await dog.check()
    expect(changes).toBe(2) // nothing new
  })
})

describe('Watchdog: the event loop', () => {
  /** Blocks this process's event loop, as a synchronous hot loop in the daemon would. */
  const block = (ms: number): void => {
    const end = performance.now() + ms
    while (performance.now() < end);
  }

  it('reports the event loop DEGRADED after a block over the threshold, and responsive again after a calm window', async () => {
    const dog = new Watchdog([], silentLogger(), { intervalMs: 60_000 })
    const changes: string[] = []
    dog.onChange(() => changes.push(dog.health().some((h) => h.name === 'event-loop') ? 'stalled' : 'responsive'))
    dog.start()
    try {
      block(1500)
      await dog.check()
      expect(dog.health()).toEqual([
        expect.objectContaining({
          name: 'event-loop',
          state: HealthState.DEGRADED,
          reason: expect.stringMatching(/^p99 delay \d+ ms \(over 500 ms\)$/)
        })
      ])
      // The next window of ticks on time (the sampler ticks every 100 ms) clears it.
      await until('the event loop responsive again', async () => {
        await new Promise((r) => setTimeout(r, 300))
        await dog.check()
        return dog.health().length === 0
      })
      expect(changes).toEqual(['stalled', 'responsive'])
    } finally {
      await dog.stop()
    }
  })
})
