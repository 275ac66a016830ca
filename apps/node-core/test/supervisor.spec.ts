import { silentLogger, type Startable } from '@mycelium/core-interfaces'
import { Supervisor } from '../src/supervisor.js'

function target(): Startable & { starts: number; stops: number } {
  const t = {
    starts: 0,
    stops: 0,
    start: async () => void t.starts++,
    stop: async () => void t.stops++,
    isStarted: () => t.starts > t.stops
  }
  return t
}

describe('Supervisor', () => {
  it('restarts within the budget, then gives up (so the service manager restarts the agent)', async () => {
    const now = 0
    const t = target()
    const gaveUp: unknown[] = []
    const s = new Supervisor(
      t,
      { maxRestarts: 2, windowMs: 60_000 },
      silentLogger(),
      (e) => gaveUp.push(e),
      () => now
    )
    await s.crashed(new Error('one'))
    await s.crashed(new Error('two'))
    expect([t.stops, t.starts]).toEqual([2, 2])
    await s.crashed(new Error('three'))
    expect(gaveUp.map((e) => (e as Error).message)).toEqual(['three'])
    expect(t.starts).toBe(2)
  })

  it('forgets restarts older than the window', async () => {
    let now = 0
    const t = target()
    const gaveUp: unknown[] = []
    const s = new Supervisor(
      t,
      { maxRestarts: 1, windowMs: 1000 },
      silentLogger(),
      (e) => gaveUp.push(e),
      () => now
    )
    await s.crashed(new Error('a'))
    now = 5000
    await s.crashed(new Error('b'))
    expect(gaveUp).toEqual([])
    expect(t.starts).toBe(2)
  })

  it('one restart covers errors raised while it runs', async () => {
    const t = target()
    const s = new Supervisor(t, { maxRestarts: 5 }, silentLogger(), () => undefined)
    await Promise.all([s.crashed(new Error('x')), s.crashed(new Error('y'))])
    expect(t.starts).toBe(1)
  })
})
