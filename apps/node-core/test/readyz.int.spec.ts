import { HealthState, Phase, silentLogger, StatusReport } from '@mycelium/core-interfaces'
import { HttpStatusServer } from '../src/index.js'

/** /readyz follows the aggregated node health, not only the phase (real HTTP on 127.0.0.1). */
describe('/readyz', () => {
  let status: StatusReport
  const server = new HttpStatusServer(
    { status: () => status, counters: () => ({ transitions: {}, steps: 0, reconnectAttempts: 0, heartbeatAcks: 0, capabilityUpdates: 0 }) },
    { listenAddress: '127.0.0.1:0', readyInFallback: true },
    silentLogger()
  )
  beforeAll(() => server.start())
  afterAll(() => server.stop())

  const readyz = async (): Promise<[number, string]> => {
    const res = await fetch(`http://${server.address}/readyz`)
    return [res.status, await res.text()]
  }

  it('MANAGED and HEALTHY or DEGRADED: ready; UNHEALTHY: not ready, saying why', async () => {
    status = StatusReport.fromPartial({ phase: Phase.MANAGED, reason: 'handoff confirmed', health: HealthState.HEALTHY })
    expect(await readyz()).toEqual([200, 'MANAGED: handoff confirmed\nhealth HEALTHY\n'])
    status = StatusReport.fromPartial({
      phase: Phase.MANAGED,
      reason: 'handoff confirmed',
      health: HealthState.DEGRADED,
      healthReason: 'identity: renewal due'
    })
    expect((await readyz())[0]).toBe(200)
    status = StatusReport.fromPartial({
      phase: Phase.MANAGED,
      reason: 'handoff confirmed',
      health: HealthState.UNHEALTHY,
      healthReason: 'k3s-runtime: restart budget spent'
    })
    expect(await readyz()).toEqual([503, 'MANAGED: handoff confirmed\nhealth UNHEALTHY: k3s-runtime: restart budget spent\n'])
    status = StatusReport.fromPartial({ phase: Phase.FALLBACK, reason: 'manager down', health: HealthState.DEGRADED })
    expect((await readyz())[0]).toBe(200)
    status = StatusReport.fromPartial({ phase: Phase.DISCOVERY, reason: 'resolving', health: HealthState.DEGRADED })
    expect((await readyz())[0]).toBe(503)
  })

  it('exports the node health as a metric', async () => {
    status = StatusReport.fromPartial({ phase: Phase.MANAGED, health: HealthState.DEGRADED })
    const metrics = await (await fetch(`http://${server.address}/metrics`)).text()
    expect(metrics).toContain('mycelium_node_health{state="DEGRADED"} 1')
    expect(metrics).toContain('mycelium_node_health{state="HEALTHY"} 0')
  })
})
