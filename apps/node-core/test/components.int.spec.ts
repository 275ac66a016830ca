import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DynamicComponentState, Phase, type DynamicComponentStatus } from '@mycelium/core-interfaces'
import { buildComponentArtifact } from '@mycelium/components'
import { assignComponent, DevArtifactServer, publishComponent, startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until } from '@mycelium/testing'
import { BIN, runBin } from './helpers/daemon.js'

/**
 * Acceptance of dynamic components: the release artifact run as a child
 * process against a dev network over mTLS, the two example components
 * (node-metrics, log-shipper) built, served over HTTPS by the network's
 * artifact server and published as signed component spores. Assign →
 * fetched, verified, running, reported; manager down → keeps running;
 * agent SIGKILL → adopted, never duplicated; unassign → stopped, removed.
 */
const NODE = 'comp-node'

/** PIDs of live processes whose command line names a socket in `runDir`. */
function componentProcesses(runDir: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
      if (/\) [ZX] /.test(stat)) continue
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`\0--socket\0${runDir}/`)) out.push(Number(p))
    } catch {
      // gone
    }
  }
  return out.sort((a, b) => a - b)
}

describe('dynamic components end to end (bundled daemon, dev network over mTLS, real child processes)', () => {
  let net: DevNetwork
  let artifacts: DevArtifactServer
  let dir: string
  let agent: ChildProcess | undefined
  let runDir: string

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    dir = mkdtempSync(join(tmpdir(), 'nc-comp-'))
    runDir = join(dir, 'state', 'components', 'run')
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 300 })
    artifacts = await DevArtifactServer.start(net)
    for (const name of ['node-metrics', 'log-shipper'] as const) {
      const a = await buildComponentArtifact(name, dir)
      await publishComponent(net, artifacts, { name, version: '1.0.0', bytes: await readFile(a.path), entry: a.entry })
    }
  }, 120_000)

  afterAll(async () => {
    agent?.kill('SIGKILL')
    for (const pid of runDir != null ? componentProcesses(runDir) : []) process.kill(pid, 'SIGKILL')
    await artifacts?.stop()
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  function startAgent(config: string, logFile: string): ChildProcess {
    // The agent's log goes to a file (as a service manager would keep it): the log shipper tails it.
    const fd = openSync(logFile, 'a')
    const child = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', fd, fd] })
    closeSync(fd)
    return child
  }

  const reported = (): DynamicComponentStatus[] => net.networkManager.nodes.get(NODE)?.lastHealth?.dynamicComponents ?? []
  const reportedState = (name: string) => reported().find((c) => c.name === name)

  it('assign → running and reported; manager down → keeps running; SIGKILL → adopted, never duplicated; unassign → removed', async () => {
    const tokenFile = join(dir, 'join-token')
    writeFileSync(tokenFile, net.joinToken)
    const socket = join(dir, 'status.sock')
    const config = join(dir, 'node.yaml')
    const logFile = join(dir, 'agent.log')
    const sink = join(dir, 'shipped.log')
    writeFileSync(
      config,
      net.nodeConfigYaml({
        nodeId: NODE,
        stateDir: join(dir, 'state'),
        joinTokenFile: tokenFile,
        socketPath: socket,
        httpListenAddress: '127.0.0.1:0'
      })
    )
    agent = startAgent(config, logFile)
    await until('MANAGED', () => net.networkManager.nodes.get(NODE)?.lastHealth?.phase === Phase.MANAGED, 60_000, 100)

    const port = 20000 + (process.pid % 20000)
    assignComponent(net, NODE, 'node-metrics', 'running', { listen: `127.0.0.1:${port}` })
    assignComponent(net, NODE, 'log-shipper', 'running', { source: logFile, sink, intervalMs: '200' })
    await until(
      'both components running, as the manager hears it',
      () =>
        reportedState('node-metrics')?.state === DynamicComponentState.RUNNING &&
        reportedState('log-shipper')?.state === DynamicComponentState.RUNNING,
      60_000,
      100,
      reported
    )
    const pids = componentProcesses(runDir)
    expect(pids).toEqual([reportedState('log-shipper')!.pid, reportedState('node-metrics')!.pid].sort((a, b) => a - b))
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    expect(metrics).toMatch(/^node_memory_MemAvailable_bytes \d+$/m)
    // Capabilities (re-sent when they change) name them.
    await until('capabilities list the components', () =>
      ['node-metrics', 'log-shipper'].every((n) => net.networkManager.nodes.get(NODE)?.capabilities?.components.some((c) => c.name === n))
    )
    // /metrics: state and memory of each component.
    const httpLine = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes('"message":"HTTP status serving"'))!
    const own = await (await fetch(`http://${(JSON.parse(httpLine) as { address: string }).address}/metrics`)).text()
    expect(own).toMatch(/^mycelium_dynamic_component_state\{component="node-metrics",state="RUNNING"\} 1$/m)
    expect(own).toMatch(/^mycelium_dynamic_component_rss_bytes\{component="log-shipper",version="1\.0\.0"\} [1-9]\d+$/m)
    const status = await runBin(['status', '--socket', socket])
    expect(status.out).toMatch(/component\/node-metrics\s+1\.0\.0 RUNNING pid \d+/)

    // Managers down: the node falls back, the components keep running untouched.
    await net.stopManager('network-manager')
    await until('FALLBACK', async () => /phase\s+FALLBACK/.test((await runBin(['status', '--socket', socket])).out), 30_000, 200)
    expect(componentProcesses(runDir)).toEqual(pids)
    expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200)
    // The log shipper ships the agent's own log lines (this phase change among them) into its sink.
    await until(
      'the FALLBACK transition in the sink',
      () =>
        existsSync(sink) &&
        readFileSync(sink, 'utf8')
          .split('\n')
          .some((l) => l.includes('"message":"phase transition"') && l.includes('"to":"FALLBACK"')),
      30_000,
      100
    )
    await net.startManager('network-manager')

    // The agent is killed outright: the components outlive it; the next agent adopts them.
    const record = () => net.networkManager.nodes.get(NODE)!
    await until(
      'registered again after the outage',
      () => record().registrations >= 2 && record().lastHealth?.phase === Phase.MANAGED,
      60_000,
      100
    )
    agent.kill('SIGKILL')
    await new Promise((r) => agent!.once('exit', r))
    expect(componentProcesses(runDir)).toEqual(pids)
    agent = startAgent(config, logFile)
    await until(
      'MANAGED again, from the new agent',
      () => record().registrations >= 3 && record().lastHealth?.phase === Phase.MANAGED && reported().length === 2,
      60_000,
      100
    )
    await until(
      'both running after the restart',
      () => reported().every((c) => c.state === DynamicComponentState.RUNNING),
      30_000,
      100,
      reported
    )
    expect(componentProcesses(runDir)).toEqual(pids)
    const agentLog = readFileSync(logFile, 'utf8')
    expect(agentLog).toContain('"message":"component adopted"')

    // Unassigned: stopped and removed; the other one untouched.
    assignComponent(net, NODE, 'node-metrics', 'none')
    await until('node-metrics gone from the report', () => reported().length === 1, 30_000, 100, reported)
    expect(componentProcesses(runDir)).toEqual([reportedState('log-shipper')!.pid])
    const installs = readdirSync(join(dir, 'state', 'components', 'store', 'installs'))
    expect(installs).toHaveLength(1)
  }, 240_000)
})
