import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawn } from 'node:child_process'
import { Phase } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import type { Scenario } from '../harness.js'
import { writeHeapProbe, heapDiff } from './heap-probe.js'
import { cpuMs, loadAverage, releaseArtifact, rssBytes, startAgentProcess, stopAgent, timedRun, untilStatus } from './agent-process.js'

const envNumber = (name: string, fallback: number): number => {
  const v = Number(process.env[name])
  return Number.isFinite(v) && v > 0 ? v : fallback
}

/** A dev network and one enrolled node directory shared by a scenario's runs. */
async function enrolledNode(heartbeatMs = 1000): Promise<{ net: DevNetwork; dir: string; token: string; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-'))
  const net = await startDevNetwork({ networkId: 'bench', heartbeatIntervalMs: heartbeatMs })
  const token = await net.newJoinToken()
  // Enrol once, so runs measure a node restarting with its identity and cached spores.
  const first = startAgentProcess(net, dir, 'bench-node', token)
  await untilStatus(first.socket, first.startedAt, (p) => p === Phase.MANAGED)
  await stopAgent(first)
  return { net, dir, token, cleanup: async () => (await net.stop(), rmSync(dir, { recursive: true, force: true })) }
}

export function agentScenarios(): Scenario[] {
  let shared: Awaited<ReturnType<typeof enrolledNode>> | undefined
  const ensure = async (): Promise<NonNullable<typeof shared>> => (shared ??= await enrolledNode())

  const coldStart: Scenario = {
    id: 'cold-start',
    description:
      'the release artifact (npm run package, extracted, no node_modules): `node-core run` (enrolled node, cached spores) → NodeStatus serving, → MANAGED on a running dev network; `node-core --help` to its exit; beside them in the same run `node -e 0` (the floor), wall time and peak RSS, and the ratios',
    runs: 7,
    metrics: [
      { name: 'to-status-serving', unit: 'ms', better: 'lower', target: 150 },
      { name: 'to-managed', unit: 'ms', better: 'lower', target: 250 },
      { name: 'help', unit: 'ms', better: 'lower' },
      { name: 'node-floor', unit: 'ms', better: 'lower' },
      { name: 'help-vs-floor', unit: 'ratio', better: 'lower', target: 1.5 },
      { name: 'serving-vs-floor', unit: 'ratio', better: 'lower' },
      { name: 'managed-vs-floor', unit: 'ratio', better: 'lower' },
      { name: 'help-cpu', unit: 'ms', better: 'lower' },
      { name: 'node-floor-cpu', unit: 'ms', better: 'lower' },
      { name: 'managed-cpu', unit: 'ms', better: 'lower' },
      { name: 'help-cpu-vs-floor', unit: 'ratio', better: 'lower' },
      { name: 'managed-cpu-vs-floor', unit: 'ratio', better: 'lower' },
      { name: 'help-peak-rss', unit: 'MB', better: 'lower' },
      { name: 'node-floor-peak-rss', unit: 'MB', better: 'lower' },
      { name: 'load-1min', unit: 'loadavg', better: 'lower' }
    ],
    async run() {
      const { net, dir, token } = await ensure()
      const { bin } = releaseArtifact()
      const load = loadAverage()
      const floor = timedRun(['-e', '0'])
      const help = timedRun([bin, '--help'])
      const agent = startAgentProcess(net, dir, 'bench-node', token)
      const serving = await untilStatus(agent.socket, agent.startedAt, () => true, 30_000, 2)
      const managed = await untilStatus(agent.socket, agent.startedAt, (p) => p === Phase.MANAGED, 30_000, 2)
      // CPU the agent used to get there: what a shared machine's load disturbs least (10 ms ticks).
      const managedCpu = cpuMs(agent.child.pid!)
      await stopAgent(agent)
      return {
        'to-status-serving': serving,
        'to-managed': managed,
        help: help.ms,
        'node-floor': floor.ms,
        'help-vs-floor': help.ms / floor.ms,
        'serving-vs-floor': serving / floor.ms,
        'managed-vs-floor': managed / floor.ms,
        'help-cpu': help.cpuMs,
        'node-floor-cpu': floor.cpuMs,
        'managed-cpu': managedCpu,
        'help-cpu-vs-floor': help.cpuMs / floor.cpuMs,
        'managed-cpu-vs-floor': managedCpu / floor.cpuMs,
        'help-peak-rss': help.peakRssMb,
        'node-floor-peak-rss': floor.peakRssMb,
        'load-1min': load
      }
    }
  }

  const failureDetection: Scenario = {
    id: 'failure-detection',
    description: 'Network Manager stopped → agent in FALLBACK (from the stop), and back → MANAGED (from the restart); heartbeat 1 s',
    runs: 5,
    metrics: [
      { name: 'kill-to-fallback', unit: 'ms', better: 'lower', target: 3000 },
      { name: 'restart-to-managed', unit: 'ms', better: 'lower' }
    ],
    async run() {
      const { net, dir, token } = await ensure()
      const agent = startAgentProcess(net, dir, 'bench-node', token)
      await untilStatus(agent.socket, agent.startedAt, (p) => p === Phase.MANAGED)
      await new Promise((r) => setTimeout(r, 1500)) // a few heartbeats in
      const killedAt = performance.now()
      await net.stopManager('network-manager')
      const toFallback = await untilStatus(agent.socket, killedAt, (p) => p === Phase.FALLBACK, 30_000, 2)
      await new Promise((r) => setTimeout(r, 1000))
      const restartedAt = performance.now()
      await net.startManager('network-manager')
      const toManaged = await untilStatus(agent.socket, restartedAt, (p) => p === Phase.MANAGED, 60_000, 5)
      await stopAgent(agent)
      return { 'kill-to-fallback': toFallback, 'restart-to-managed': toManaged }
    }
  }

  const churnMinutes = envNumber('BENCH_CHURN_MINUTES', 10)
  const heapSnapshots = process.env.BENCH_HEAP_SNAPSHOTS ?? ''
  const footprint: Scenario = {
    id: 'footprint',
    description: `the release artifact's single-file bundle (npm run package; esbuild, minified); agent RSS after ${envNumber('BENCH_IDLE_SECONDS', 60)} s idle in MANAGED beside an idle \`node -e\`; RSS growth over ${churnMinutes} min of manager restarts every 30 s${churnMinutes > 10 ? ' (also at 10 min)' : ''}${heapSnapshots !== '' ? `; --expose-gc heap snapshots after forced GC at churn start/end in ${heapSnapshots}` : ''}`,
    runs: 1,
    metrics: [
      { name: 'bundle', unit: 'MB', better: 'lower', target: 3 },
      { name: 'bundle-with-kubernetes-client', unit: 'MB', better: 'lower' },
      { name: 'idle-rss', unit: 'MB', better: 'lower', target: 55 },
      { name: 'node-idle-rss', unit: 'MB', better: 'lower' },
      { name: 'idle-vs-node', unit: 'ratio', better: 'lower' },
      { name: 'idle-cpu', unit: 'ms/min', better: 'lower' },
      { name: 'churn-cpu', unit: 'ms/min', better: 'lower' },
      { name: `churn-rss-growth-${Math.min(10, churnMinutes)}min`, unit: 'MB', better: 'lower', target: 2 },
      ...(churnMinutes > 10 ? [{ name: `churn-rss-growth-${churnMinutes}min`, unit: 'MB', better: 'lower' as const, target: 3 }] : []),
      ...(heapSnapshots !== '' ? [{ name: 'churn-heap-growth', unit: 'MB', better: 'lower' as const }] : [])
    ],
    async run() {
      // The release artifact's single file; @kubernetes/client-node, loaded only on K3s servers on
      // first use, ships beside it as its own chunk (measured with it too).
      const { bundleBytes, kubernetesChunkBytes } = releaseArtifact()
      const bundleMb = bundleBytes / 1e6
      const withKubernetesClientMb = (bundleBytes + kubernetesChunkBytes) / 1e6
      const { net, dir, token } = await ensure()
      // BENCH_HEAP_SNAPSHOTS: the agent runs with --expose-gc and a preload that, on SIGUSR2,
      // forces GC and writes a heap snapshot (see heap-probe.ts); the daemon is otherwise unchanged.
      let probe: { nodeArgs: string[]; env: Record<string, string> } | undefined
      if (heapSnapshots !== '') {
        mkdirSync(heapSnapshots, { recursive: true })
        probe = {
          nodeArgs: ['--expose-gc', '-r', writeHeapProbe(heapSnapshots)],
          env: { PROBE_OUT: join(heapSnapshots, 'memory.json'), PROBE_SNAP: join(heapSnapshots, 'current.heapsnapshot') }
        }
      }
      // BENCH_NODE_ARGS: node flags for the agent, e.g. `--opt --sparkplug --no-optimize-for-size` to
      // measure without the daemon's V8 flags (v8-flags.ts leaves a flag given on node's command line).
      const nodeArgs = [...(probe?.nodeArgs ?? []), ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')]
      const agent = startAgentProcess(net, dir, 'bench-node', token, [], { nodeArgs, env: probe?.env ?? {} })
      await untilStatus(agent.socket, agent.startedAt, (p) => p === Phase.MANAGED)
      const idleMs = envNumber('BENCH_IDLE_SECONDS', 60) * 1000
      const baseline = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
      const idleCpuFrom = cpuMs(agent.child.pid!)
      await new Promise((r) => setTimeout(r, idleMs))
      const idleCpu = ((cpuMs(agent.child.pid!) - idleCpuFrom) / idleMs) * 60_000
      const idle = rssBytes(agent.child.pid!) / 2 ** 20
      const nodeIdle = rssBytes(baseline.pid!) / 2 ** 20
      baseline.kill()
      const snapshot = async (name: string): Promise<number> => {
        rmSync(join(heapSnapshots, 'memory.json'), { force: true })
        agent.child.kill('SIGUSR2')
        const deadline = Date.now() + 120_000
        while (!existsSync(join(heapSnapshots, 'memory.json'))) {
          if (Date.now() > deadline) throw new Error('the agent wrote no heap snapshot within 120 s')
          await new Promise((r) => setTimeout(r, 200))
        }
        renameSync(join(heapSnapshots, 'current.heapsnapshot'), join(heapSnapshots, `${name}.heapsnapshot`))
        return (JSON.parse(readFileSync(join(heapSnapshots, 'memory.json'), 'utf8')) as { heapUsed: number }).heapUsed / 2 ** 20
      }
      // RSS first: writing a snapshot inflates it for a while (growth with snapshots on is not the RSS figure to report).
      const before = rssBytes(agent.child.pid!)
      const heapBefore = probe != null ? await snapshot('churn-start') : 0
      const started = Date.now()
      const churnCpuFrom = cpuMs(agent.child.pid!)
      const growth: Record<string, number> = {}
      const at10 = started + Math.min(10, churnMinutes) * 60_000
      const end = started + churnMinutes * 60_000
      while (Date.now() < end) {
        await net.stopManager('network-manager')
        await new Promise((r) => setTimeout(r, 2000))
        await net.startManager('network-manager')
        await new Promise((r) => setTimeout(r, Math.min(28_000, Math.max(0, end - Date.now()))))
        if (growth[`churn-rss-growth-${Math.min(10, churnMinutes)}min`] == null && Date.now() >= at10 - 1000) {
          await untilStatus(agent.socket, performance.now(), (p) => p === Phase.MANAGED)
          growth[`churn-rss-growth-${Math.min(10, churnMinutes)}min`] = (rssBytes(agent.child.pid!) - before) / 2 ** 20
        }
      }
      await untilStatus(agent.socket, performance.now(), (p) => p === Phase.MANAGED)
      growth[`churn-rss-growth-${churnMinutes}min`] = (rssBytes(agent.child.pid!) - before) / 2 ** 20
      const churnCpu = ((cpuMs(agent.child.pid!) - churnCpuFrom) / (Date.now() - started)) * 60_000
      if (probe != null) {
        growth['churn-heap-growth'] = (await snapshot('churn-end')) - heapBefore
        console.log(
          `  heap diff churn-start → churn-end (self size by type:constructor):\n    ${heapDiff(join(heapSnapshots, 'churn-start.heapsnapshot'), join(heapSnapshots, 'churn-end.heapsnapshot')).join('\n    ')}`
        )
      }
      await stopAgent(agent)
      return {
        bundle: bundleMb,
        'bundle-with-kubernetes-client': withKubernetesClientMb,
        'idle-rss': idle,
        'node-idle-rss': nodeIdle,
        'idle-vs-node': idle / nodeIdle,
        'idle-cpu': idleCpu,
        'churn-cpu': churnCpu,
        ...growth
      }
    }
  }

  return [coldStart, failureDetection, footprint].map((s) => ({
    ...s,
    teardown: async () => {
      await shared?.cleanup()
      shared = undefined
    }
  }))
}
