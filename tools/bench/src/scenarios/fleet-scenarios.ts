import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CommandState, NodeConfig, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { MyceliumNode } from '@mycelium/node-core'
import { until } from '@mycelium/testing'
import type { Scenario } from '../harness.js'
import { runScaleFleet, type ScaleRunResult } from '../scale/fleet-run.js'

/** N composed nodes in this process (status surfaces off) against one dev network. */
async function fleet(net: DevNetwork, dir: string, n: number): Promise<MyceliumNode[]> {
  const nodes: MyceliumNode[] = []
  for (let i = 0; i < n; i++) {
    const nodeId = `n-${i}`
    const config = NodeConfig.fromPartial({
      networkId: net.networkId,
      nodeId,
      stateDir: join(dir, nodeId),
      identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment, expectedIdentity: '', zone: '', priority: 0 }] },
      discovery: { bootstrapFile: net.bootstrapFile },
      reconnect: { initial: { seconds: 0, nanos: 500_000_000 }, max: { seconds: 8, nanos: 0 } },
      status: { socketPath: 'off', httpListenAddress: 'off' }
    })
    nodes.push(new MyceliumNode(config, silentLogger(), { joinToken: await net.newJoinToken() }))
  }
  return nodes
}

/** The per-second reconnect series of the scale runs of this bench process (chart and report). */
export const scaleSeries: ScaleRunResult[] = []

/** Built child entries beside this bundle (tsup: dist/scale-manager-host.js, dist/scale-agent-host.js). */
export const SCALE_ENTRIES = {
  manager: fileURLToPath(new URL('./scale-manager-host.js', import.meta.url)),
  agent: fileURLToPath(new URL('./scale-agent-host.js', import.meta.url))
}

function scale(n: number): Scenario {
  const target = (v: number) => (n >= 1000 ? { target: v } : {})
  return {
    id: `scale-${n}`,
    description: `${n} agents over ${Math.max(2, Math.ceil(n / 250))} processes against one dev Network Manager in its own process: fresh start (enrolment included) → all MANAGED; steady heartbeats (cost per side); manager killed, 3 s outage, new manager process → all MANAGED again, reconnections per second`,
    runs: 1,
    metrics: [
      { name: 'start-to-all-managed', unit: 's', better: 'lower' },
      { name: 'restart-to-all-managed', unit: 's', better: 'lower' },
      { name: 'restart-to-99-percent-managed', unit: 's', better: 'lower', ...target(60) },
      { name: 'max-reconnects-in-one-second', unit: 'agents', better: 'lower' },
      { name: 'max-reconnect-share-in-one-second', unit: '%', better: 'lower', ...target(5) },
      { name: 'max-admissions-in-one-second', unit: 'registrations', better: 'lower' },
      { name: 'refused-registrations', unit: 'calls', better: 'lower' },
      { name: 'max-refusals-per-node', unit: 'calls', better: 'lower' },
      { name: 'cpu-per-heartbeat', unit: 'ms', better: 'lower' },
      { name: 'manager-cpu-per-heartbeat', unit: 'ms', better: 'lower' },
      { name: 'agent-cpu-per-heartbeat', unit: 'ms', better: 'lower' },
      { name: 'manager-cpu-per-reconnect', unit: 'ms', better: 'lower' },
      { name: 'heartbeat-bytes', unit: 'B', better: 'lower' },
      { name: 'ack-bytes', unit: 'B', better: 'lower' },
      { name: 'manager-rss', unit: 'MB', better: 'lower' },
      { name: 'manager-heap-per-node', unit: 'KB', better: 'lower' },
      { name: 'not-managed-again', unit: 'agents', better: 'lower' },
      { name: 'load-average-at-restart', unit: '', better: 'lower' }
    ],
    async run() {
      const r = await runScaleFleet({
        agents: n,
        heartbeatIntervalMs: Number(process.env.BENCH_SCALE_HEARTBEAT_MS ?? 1000),
        registrationRate: {
          burst: Number(process.env.BENCH_SCALE_BURST ?? 5),
          perSecond: Number(process.env.BENCH_SCALE_RATE ?? 40)
        },
        failoverGraceMs: Number(process.env.BENCH_SCALE_FAILOVER_GRACE_MS ?? 60_000),
        entries: SCALE_ENTRIES,
        log: (line) => process.stdout.write(`${line}\n`)
      })
      scaleSeries.push(r)
      process.stdout.write(
        `    load average ${JSON.stringify(r.loadAverage)}\n    reconnections per second: ${r.reconnectsPerSecond
          .map((c, s) => `${s}s:${c}`)
          .join(' ')}\n    admissions per second: ${r.admissionsPerSecond.map((c, s) => `${s}s:${c}`).join(' ')}\n`
      )
      return {
        'start-to-all-managed': r.startToAllManagedS,
        'restart-to-all-managed': r.restartToAllManagedS,
        'restart-to-99-percent-managed': r.restartTo99PercentManagedS,
        'max-reconnects-in-one-second': r.maxReconnectsInOneSecond,
        'max-reconnect-share-in-one-second': (100 * r.maxReconnectsInOneSecond) / n,
        'max-admissions-in-one-second': r.maxAdmissionsInOneSecond,
        'refused-registrations': r.refusals,
        'max-refusals-per-node': r.maxRefusalsPerNode,
        'cpu-per-heartbeat': r.managerCpuPerHeartbeatMs + r.agentCpuPerHeartbeatMs,
        'manager-cpu-per-heartbeat': r.managerCpuPerHeartbeatMs,
        'agent-cpu-per-heartbeat': r.agentCpuPerHeartbeatMs,
        'manager-cpu-per-reconnect': r.managerCpuPerReconnectMs,
        'heartbeat-bytes': r.heartbeatBytes,
        'ack-bytes': r.ackBytes,
        'manager-rss': r.managerRssMB,
        'manager-heap-per-node': r.managerHeapPerNodeKB,
        'not-managed-again': r.notManagedAgain,
        'load-average-at-restart': r.loadAverage.restart
      }
    }
  }
}

const micro: Scenario = {
  id: 'micro-commands',
  description:
    'command round trip on one CommandChannel stream (an update command: validated, journaled with fsync, REJECTED, reported) and commands per second, 500 in flight',
  runs: 5,
  metrics: [
    { name: 'round-trip', unit: 'ms', better: 'lower' },
    { name: 'commands', unit: '/s', better: 'higher' }
  ],
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'bench-cmd-'))
    const net = await startDevNetwork({ networkId: 'bench' })
    const [node] = await fleet(net, dir, 1)
    try {
      await node!.start()
      await until('command session', () => net.commands.isConnected('n-0'), 30_000)
      let seq = 0
      const cmd = () => ({
        commandId: `c-${Date.now()}-${++seq}`,
        issuedAt: new Date(),
        deadline: new Date(Date.now() + 60_000),
        issuer: 'bench',
        kind: { $case: 'update' as const, value: { component: 'x', version: '1', artifactDigest: 'sha256:0', artifactUrls: [] } }
      })
      const trips: number[] = []
      for (let i = 0; i < 50; i++) {
        const c = cmd()
        const t = performance.now()
        net.commands.send('n-0', c)
        const updates = await net.commands.waitForOutcome(c.commandId)
        if (updates.at(-1)!.state !== CommandState.REJECTED) throw new Error('unexpected outcome')
        trips.push(performance.now() - t)
      }
      trips.sort((a, b) => a - b)
      const batch = Array.from({ length: 500 }, cmd)
      const t = performance.now()
      for (const c of batch) net.commands.send('n-0', c)
      for (const c of batch) await net.commands.waitForOutcome(c.commandId, 60_000)
      return { 'round-trip': trips[Math.floor(trips.length / 2)]!, commands: 500 / ((performance.now() - t) / 1000) }
    } finally {
      await node!.stop()
      await net.stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}

export function fleetScenarios(): Scenario[] {
  const sizes = (process.env.BENCH_SCALE_N ?? '100,1000')
    .split(',')
    .map(Number)
    .filter((x) => x > 0)
  return [...sizes.map(scale), micro]
}
