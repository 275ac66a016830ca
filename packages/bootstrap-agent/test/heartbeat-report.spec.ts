import { HealthState, NodeConfig, Phase, silentLogger, WorkloadStatus, type Capabilities } from '@mycelium/core-interfaces'
import { heartbeatReporter, type HeartbeatReportSource } from '../src/heartbeat-report.js'
import { NO_RUNTIME, type LastTrial } from '../src/index.js'

const caps = (labels: Record<string, string>): Capabilities => ({ labels, agentVersion: '1.0.0' }) as Capabilities

/** A source whose answers the test sets (pure: no stream, no files). */
type TestSource = HeartbeatReportSource & { now: { labels: Record<string, string> }; changes: number }
function source(over: Partial<HeartbeatReportSource> = {}): TestSource {
  const s: TestSource = {
    now: { labels: { zone: 'a' } },
    changes: 0,
    phase: () => Phase.MANAGED,
    health: () => ({ state: HealthState.HEALTHY, components: [] }),
    stateProblems: () => [],
    capabilities: () => caps(s.now.labels),
    config: () => ({
      current: () => NodeConfig.fromPartial({ version: 7 }),
      lastTrial: (): LastTrial | undefined => undefined
    }),
    components: {},
    onCapabilitiesChanged: () => {
      s.changes++
    },
    log: silentLogger(),
    ...over
  }
  return s
}

describe('heartbeatReporter (what a heartbeat tells the manager, pure)', () => {
  it('sends the capabilities on the first report of a stream, then only when they changed', () => {
    const s = source()
    const report = heartbeatReporter(s)
    expect(report().capabilities).toEqual(caps({ zone: 'a' }))
    expect(report().capabilities).toBeUndefined()
    s.now.labels = { zone: 'b' }
    expect(report().capabilities).toEqual(caps({ zone: 'b' }))
    expect(report().capabilities).toBeUndefined()
    expect(s.changes).toBe(1)
    // A new stream (a new reporter) starts by telling everything again.
    expect(heartbeatReporter(s)().capabilities).toEqual(caps({ zone: 'b' }))
  })

  it('reports the phase, config version and workloads, and the state directory’s problems as a DEGRADED `state` component', () => {
    const report = heartbeatReporter(
      source({
        phase: () => Phase.MANAGED,
        stateProblems: () => ['history.json: unreadable, kept aside'],
        components: { runtime: { ...NO_RUNTIME, workloads: () => [WorkloadStatus.fromPartial({ name: 'w1' })] } }
      })
    )()
    expect(report.phase).toBe(Phase.MANAGED)
    expect(report.configVersion).toBe(7)
    expect(report.workloads).toEqual([WorkloadStatus.fromPartial({ name: 'w1' })])
    expect(report.state).toBe(HealthState.DEGRADED)
    expect(report.components).toEqual([
      { name: 'state', state: HealthState.DEGRADED, reason: 'history.json: unreadable, kept aside', restarts: 0 }
    ])
  })

  it('carries the last config trial, so the manager sees a revert', () => {
    const trial: LastTrial = { version: 6, outcome: 'reverted', reason: 'unhealthy', atMs: 1_000 }
    const s = source()
    const report = heartbeatReporter({ ...s, config: () => ({ ...s.config(), lastTrial: () => trial }) })()
    expect(report.lastConfigTrial).toEqual({ version: 6, outcome: 'reverted', reason: 'unhealthy', at: new Date(1_000) })
  })
})
