import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandState, NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { MyceliumNode } from '@mycelium/node-core'
import { until } from '@mycelium/testing'
import type { Scenario } from '../harness.js'

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

function scale(n: number): Scenario {
  return {
    id: `scale-${n}`,
    description: `${n} agents in one process against one dev Network Manager: fresh start (enrolment included) → all MANAGED; 3 s manager outage → all MANAGED again; CPU per heartbeat (agents + manager)`,
    runs: 1,
    metrics: [
      { name: 'start-to-all-managed', unit: 's', better: 'lower' },
      { name: 'restart-to-all-managed', unit: 's', better: 'lower' },
      { name: 'max-reconnects-in-one-second', unit: 'agents', better: 'lower' },
      { name: 'cpu-per-heartbeat', unit: 'ms', better: 'lower' }
    ],
    async run() {
      const dir = mkdtempSync(join(tmpdir(), `bench-scale-${n}-`))
      const net = await startDevNetwork({ networkId: 'bench', heartbeatIntervalMs: 1000 })
      const nodes = await fleet(net, dir, n)
      try {
        const t0 = performance.now()
        await Promise.all(nodes.map((x) => x.start()))
        await until('all MANAGED', () => nodes.every((x) => x.agent.phase === Phase.MANAGED), 600_000)
        const started = (performance.now() - t0) / 1000
        // Steady state: CPU per acknowledged heartbeat over 10 s.
        const acks0 = nodes.reduce((a, x) => a + x.agent.counters.heartbeatAcks, 0)
        const cpu0 = process.cpuUsage()
        await new Promise((r) => setTimeout(r, 10_000))
        const cpu = process.cpuUsage(cpu0)
        const acks = nodes.reduce((a, x) => a + x.agent.counters.heartbeatAcks, 0) - acks0
        const back = new Map<MyceliumNode, number>()
        for (const x of nodes)
          x.agent.on('transition', (t) => void (t.to === Phase.MANAGED && !back.has(x) && back.set(x, performance.now())))
        await net.stopManager('network-manager')
        await new Promise((r) => setTimeout(r, 3000))
        const restarted = performance.now()
        await net.startManager('network-manager')
        await until('all MANAGED again', () => back.size === n, 600_000)
        const perSecond = new Map<number, number>()
        for (const at of back.values()) {
          const s = Math.floor((at - restarted) / 1000)
          perSecond.set(s, (perSecond.get(s) ?? 0) + 1)
        }
        const last = Math.max(...back.values())
        process.stdout.write(
          `    reconnections per second: ${[...perSecond.entries()]
            .sort((a, b) => a[0] - b[0])
            .map(([s, c]) => `${s}s:${c}`)
            .join(' ')}\n`
        )
        return {
          'start-to-all-managed': started,
          'restart-to-all-managed': (last - restarted) / 1000,
          'max-reconnects-in-one-second': Math.max(...perSecond.values()),
          'cpu-per-heartbeat': (cpu.user + cpu.system) / 1000 / Math.max(1, acks)
        }
      } finally {
        for (const x of nodes) await x.stop()
        await net.stop()
        rmSync(dir, { recursive: true, force: true })
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
  const sizes = (process.env.BENCH_SCALE_N ?? '100,500,1000')
    .split(',')
    .map(Number)
    .filter((x) => x > 0)
  return [...sizes.map(scale), micro]
}
