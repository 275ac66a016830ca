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

export interface AgentScenarioOptions {
  /** `--soak-minutes`: the footprint scenario churns this long (growth at every 10 min), with post-GC heap samples and snapshots. */
  soakMinutes?: number
}

/** How often the footprint scenario asks a starting agent for its phase. */
const IDLE_POLL_MS = 200

export function agentScenarios(options: AgentScenarioOptions = {}): Scenario[] {
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

  // --soak-minutes N (bench main): N minutes of churn with post-GC heap samples (--expose-gc) at its
  // start and every 10 min, and a heap snapshot at its end; otherwise BENCH_CHURN_MINUTES / BENCH_HEAP_SNAPSHOTS.
  const soak = options.soakMinutes != null
  const churnMinutes = options.soakMinutes ?? envNumber('BENCH_CHURN_MINUTES', 10)
  const heapSnapshots = process.env.BENCH_HEAP_SNAPSHOTS ?? (soak ? join(tmpdir(), `bench-soak-heap-${process.pid}`) : '')
  const first = Math.min(10, churnMinutes)
  const footprint: Scenario = {
    id: 'footprint',
    description: `the release artifact's single-file bundle (npm run package; esbuild, minified); agent RSS after ${envNumber('BENCH_IDLE_SECONDS', 60)} s idle in MANAGED (a restart of an enrolled node; beside it, a first start that enrolled) beside an idle \`node -e\`, each agent with the shipped unit's Environment=${process.env.BENCH_UNIT_ENV === '0' ? ' (none: BENCH_UNIT_ENV=0)' : ''}; RSS growth over ${churnMinutes} min of manager restarts every 30 s${churnMinutes > 10 ? ' (also at 10 min)' : ''}${heapSnapshots !== '' ? `; --expose-gc: post-GC heap ${soak ? 'every 10 min, ' : ''}${soak ? 'a heap snapshot after forced GC at churn end' : 'heap snapshots after forced GC at churn start/end'} in ${heapSnapshots}` : ''}`,
    runs: 1,
    metrics: [
      { name: 'bundle', unit: 'MB', better: 'lower', target: 3 },
      { name: 'bundle-with-kubernetes-client', unit: 'MB', better: 'lower' },
      { name: 'idle-rss', unit: 'MB', better: 'lower', target: 55 },
      { name: 'first-start-idle-rss', unit: 'MB', better: 'lower', target: 55 },
      { name: 'node-idle-rss', unit: 'MB', better: 'lower' },
      { name: 'idle-vs-node', unit: 'ratio', better: 'lower' },
      { name: 'idle-cpu', unit: 'ms/min', better: 'lower' },
      { name: 'churn-cpu', unit: 'ms/min', better: 'lower' },
      { name: `churn-rss-growth-${first}min`, unit: 'MB', better: 'lower', target: 2 },
      ...(churnMinutes > 10 ? [{ name: `churn-rss-growth-${churnMinutes}min`, unit: 'MB', better: 'lower' as const, target: 3 }] : []),
      ...(heapSnapshots !== '' ? [{ name: 'churn-heap-growth', unit: 'MB', better: 'lower' as const }] : []),
      ...(soak && churnMinutes > 10 ? [{ name: `churn-heap-growth-${first}min`, unit: 'MB', better: 'lower' as const }] : []),
      { name: 'load-1min', unit: 'loadavg', better: 'lower' }
    ],
    async run() {
      // The release artifact's single file; @kubernetes/client-node, loaded only on K3s servers on
      // first use, ships beside it as its own chunk (measured with it too).
      const { bundleBytes, kubernetesChunkBytes } = releaseArtifact()
      const bundleMb = bundleBytes / 1e6
      const withKubernetesClientMb = (bundleBytes + kubernetesChunkBytes) / 1e6
      const { net, dir, token } = await ensure()
      const loads = [loadAverage()]
      // With heap snapshots the agent runs with --expose-gc and a preload that, on SIGUSR2, forces
      // GC and writes a heap snapshot, on SIGWINCH only the post-GC heap (see heap-probe.ts); the
      // daemon is otherwise unchanged.
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
      // Polled every 200 ms, not every 5 (cold-start's timing resolution): a few hundred status
      // calls during the start are not what an idle node serves, and their garbage is not its footprint.
      await untilStatus(agent.socket, agent.startedAt, (p) => p === Phase.MANAGED, 60_000, IDLE_POLL_MS)
      // Beside it, idle in the same window: a node on its first start, which enrolled (made a CSR,
      // installed a certificate) on the way to MANAGED — what every node does once, and again at each renewal.
      // Each join token enrols one node: a new one, and a new node id, per run.
      const firstStart = startAgentProcess(net, dir, `bench-first-${Date.now()}`, await net.newJoinToken())
      await untilStatus(firstStart.socket, firstStart.startedAt, (p) => p === Phase.MANAGED, 60_000, IDLE_POLL_MS)
      /** Post-GC heapUsed (MB); with `name`, also a heap snapshot `<name>.heapsnapshot`. */
      const heapSample = async (name?: string): Promise<number> => {
        rmSync(join(heapSnapshots, 'memory.json'), { force: true })
        agent.child.kill(name != null ? 'SIGUSR2' : 'SIGWINCH')
        const deadline = Date.now() + 120_000
        while (!existsSync(join(heapSnapshots, 'memory.json'))) {
          if (Date.now() > deadline) throw new Error('the agent wrote no heap sample within 120 s')
          await new Promise((r) => setTimeout(r, 200))
        }
        if (name != null) renameSync(join(heapSnapshots, 'current.heapsnapshot'), join(heapSnapshots, `${name}.heapsnapshot`))
        return (JSON.parse(readFileSync(join(heapSnapshots, 'memory.json'), 'utf8')) as { heapUsed: number }).heapUsed / 2 ** 20
      }
      // The soak writes no start snapshot: glibc kept the tens of MB writing one allocates, which
      // inflated the RSS baseline (145 MB) and hid native growth; its start is a post-GC heap sample.
      const idleMs = envNumber('BENCH_IDLE_SECONDS', 60) * 1000
      const baseline = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'])
      const idleCpuFrom = cpuMs(agent.child.pid!)
      await new Promise((r) => setTimeout(r, idleMs))
      const idleCpu = ((cpuMs(agent.child.pid!) - idleCpuFrom) / idleMs) * 60_000
      const idle = rssBytes(agent.child.pid!) / 2 ** 20
      const firstStartIdle = rssBytes(firstStart.child.pid!) / 2 ** 20
      const nodeIdle = rssBytes(baseline.pid!) / 2 ** 20
      baseline.kill()
      await stopAgent(firstStart)
      // RSS first: writing a snapshot inflates it for a while (growth with snapshots on is not the RSS figure to report).
      const before = rssBytes(agent.child.pid!)
      const heapAtStart = probe == null ? 0 : soak ? await heapSample() : await heapSample('churn-start')
      const started = Date.now()
      const churnCpuFrom = cpuMs(agent.child.pid!)
      const growth: Record<string, number> = {}
      const end = started + churnMinutes * 60_000
      let nextMark = 10
      while (Date.now() < end) {
        await net.stopManager('network-manager')
        await new Promise((r) => setTimeout(r, 2000))
        await net.startManager('network-manager')
        await new Promise((r) => setTimeout(r, Math.min(28_000, Math.max(0, end - Date.now()))))
        const minutes = (Date.now() - started) / 60_000
        if (minutes >= nextMark - 1 / 60 && Date.now() < end - 60_000) {
          // A 10-minute mark: RSS in MANAGED, then (soak) the post-GC heap; the first mark is a metric.
          await untilStatus(agent.socket, performance.now(), (p) => p === Phase.MANAGED)
          const rss = (rssBytes(agent.child.pid!) - before) / 2 ** 20
          const heap = soak ? (await heapSample()) - heapAtStart : Number.NaN
          loads.push(loadAverage())
          if (nextMark === 10) {
            growth[`churn-rss-growth-${first}min`] = rss
            if (soak) growth[`churn-heap-growth-${first}min`] = heap
          }
          console.log(
            `  ${nextMark} min: rss ${rss >= 0 ? '+' : ''}${rss.toFixed(2)} MB, post-GC heap ${soak ? heap.toFixed(2) : '—'} MB, load ${loads.at(-1)}`
          )
          nextMark += 10
        }
      }
      await untilStatus(agent.socket, performance.now(), (p) => p === Phase.MANAGED)
      growth[`churn-rss-growth-${churnMinutes}min`] = (rssBytes(agent.child.pid!) - before) / 2 ** 20
      const churnCpu = ((cpuMs(agent.child.pid!) - churnCpuFrom) / (Date.now() - started)) * 60_000
      loads.push(loadAverage())
      if (probe != null) {
        growth['churn-heap-growth'] = (await heapSample('churn-end')) - heapAtStart
        if (!soak)
          console.log(
            `  heap diff churn-start → churn-end (self size by type:constructor):\n    ${heapDiff(join(heapSnapshots, 'churn-start.heapsnapshot'), join(heapSnapshots, 'churn-end.heapsnapshot')).join('\n    ')}`
          )
      }
      await stopAgent(agent)
      return {
        bundle: bundleMb,
        'bundle-with-kubernetes-client': withKubernetesClientMb,
        'idle-rss': idle,
        'first-start-idle-rss': firstStartIdle,
        'node-idle-rss': nodeIdle,
        'idle-vs-node': idle / nodeIdle,
        'idle-cpu': idleCpu,
        'churn-cpu': churnCpu,
        ...growth,
        // The highest 1-minute load average seen (start, each 10-minute mark, end).
        'load-1min': Math.max(...loads)
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
