import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { CriClient, cri } from '@mycelium/k3s-runtime'
import { containerdMissing, FAKE_K3S, runSleepPod, startContainerd, until as untilTrue, type TestContainerd } from '@mycelium/testing'
import { BIN, runBin } from './helpers/daemon.js'

/**
 * Workloads outlive every failure above them. A real containerd + runc runs a
 * pod sandbox and a container started through the CRI; the shipped daemon
 * (the release artifact, a child process) supervises a stand-in K3s (role agent, so
 * its readiness is the real CRI's RuntimeReady) and lists the container. The
 * daemon is stopped and started again, and its manager fails and returns: the
 * container keeps running with the same id, never restarted. So does K3s
 * when the daemon is killed outright.
 */
const missing = containerdMissing()
const describeIf = missing == null ? describe : describe.skip
if (missing != null) console.warn(`skipping workload survival test: ${missing}`)

const until = (what: string, probe: () => Promise<boolean> | boolean): Promise<true> => untilTrue(what, probe, 30_000, 100)

const runBinOut = async (args: string[]): Promise<string> => (await runBin(args)).out

describeIf('workloads survive agent restarts and manager failures (real containerd)', () => {
  let ctrd: TestContainerd
  let net: DevNetwork
  let dir: string
  let criClient: CriClient
  let agent: ChildProcess | undefined
  let logs = ''

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    dir = mkdtempSync(join(tmpdir(), 'node-core-workloads-'))
    ctrd = await startContainerd()
    criClient = new CriClient({ socket: ctrd.socket, callTimeoutMs: 10_000 })
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
  }, 60_000)

  afterAll(async () => {
    agent?.kill('SIGKILL')
    // The stand-in K3s outlives the agent by design: end it here.
    const startsLog = join(dir, 'k3s-data', 'starts.log')
    if (existsSync(startsLog)) {
      for (const line of readFileSync(startsLog, 'utf8').trim().split('\n').filter(Boolean)) {
        try {
          process.kill((JSON.parse(line) as { pid: number }).pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
    }
    criClient?.close()
    await net?.stop()
    await ctrd?.stop()
    rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  const startAgent = (config: string): void => {
    agent = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
    agent.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
    agent.stderr!.on('data', (d: Buffer) => (logs += d.toString()))
  }
  const stopAgent = async (): Promise<void> => {
    const exited = new Promise<number | null>((resolve) => agent!.on('exit', (code) => resolve(code)))
    agent!.kill('SIGTERM')
    expect(await exited).toBe(0)
    agent = undefined
  }

  it('keeps the container running, same id, never restarted, through agent stop/start and a manager outage', async () => {
    try {
      await scenario()
    } catch (err) {
      // What the daemon said is the first thing to read when this fails.
      console.log(
        `${logs.slice(-8000)}\n--- node-core status ---\n${await runBinOut(['status', '--socket', join(dir, 'run', 'status.sock')])}`
      )
      throw err
    }
  }, 180_000)

  async function scenario(): Promise<void> {
    const { podId, containerId } = await runSleepPod(criClient.raw, ctrd.busyboxImage, 'web', dir)
    const before = await criClient.containerStatus(containerId)
    expect(before.state).toBe(cri.ContainerState.CONTAINER_RUNNING)

    const tokenFile = join(dir, 'join-token')
    writeFileSync(tokenFile, net.joinToken)
    writeFileSync(join(dir, 'k3s-token'), 'K10::server:secret\n')
    const socket = join(dir, 'run', 'status.sock')
    const config = join(dir, 'node.yaml')
    writeFileSync(
      config,
      net.nodeConfigYaml({
        nodeId: 'worker-1',
        stateDir: join(dir, 'state'),
        joinTokenFile: tokenFile,
        socketPath: socket,
        httpListenAddress: '127.0.0.1:0'
      })
    )
    appendFileSync(
      config,
      [
        'k3s:',
        '  enabled: true',
        '  role: agent',
        `  binaryPath: ${FAKE_K3S}`,
        '  serverUrl: https://127.0.0.1:6443',
        `  tokenFile: ${join(dir, 'k3s-token')}`,
        `  dataDir: ${join(dir, 'k3s-data')}`,
        `  criSocket: ${ctrd.socket}`,
        '  extraArgs: ["--https-listen-port", "0"]',
        ''
      ].join('\n')
    )

    const status = (): Promise<string> => runBinOut(['status', '--socket', socket])
    const heartbeatWorkloads = (): string[] =>
      (net.networkManager.nodes.get('worker-1')?.lastHealth?.workloads ?? []).map((w) => `${w.kind}:${w.id}:${w.state}`)
    const k3sStarts = (): number =>
      readFileSync(join(dir, 'k3s-data', 'starts.log'), 'utf8')
        .trim()
        .split('\n').length

    startAgent(config)
    await until(
      'MANAGED with the runtime available',
      async () => /phase\s+MANAGED/.test(await status()) && /runtime\s+k3s v1\.30\.4\+k3s1: available/.test(await status())
    )
    await until('the container in node status', async () => (await status()).includes(`running, id ${containerId.slice(0, 13)}`))
    await until(
      'workloads in heartbeats to the Network Manager',
      () => heartbeatWorkloads().includes(`container:${containerId}:running`) && heartbeatWorkloads().includes(`pod:${podId}:ready`)
    )
    expect(k3sStarts()).toBe(1)
    const httpAddress = (JSON.parse(logs.split('\n').find((l) => l.includes('HTTP status serving'))!) as { address: string }).address
    const metrics = await (await fetch(`http://${httpAddress}/metrics`)).text()
    expect(metrics).toContain('mycelium_runtime_available{runtime="k3s"} 1')
    expect(metrics).toContain('mycelium_workloads{kind="container",state="running"} 1')
    expect(metrics).toContain('mycelium_workloads{kind="pod",state="ready"} 1')

    // Agent stopped: K3s and the container keep running.
    await stopAgent()
    await new Promise((r) => setTimeout(r, 500))
    expect((await criClient.containerStatus(containerId)).state).toBe(cri.ContainerState.CONTAINER_RUNNING)

    // Agent started again: adopts K3s (no second start), sees the same container.
    startAgent(config)
    await until('MANAGED again', async () => /phase\s+MANAGED/.test(await status()))
    await until('the same container listed', async () => (await status()).includes(`running, id ${containerId.slice(0, 13)}`))
    expect(k3sStarts()).toBe(1)
    expect(logs).toContain('adopted k3s already running')

    // Agent crash (SIGKILL, no shutdown at all): K3s lives on, the next agent adopts it.
    const k3sPid = (JSON.parse(readFileSync(join(dir, 'k3s-data', 'starts.log'), 'utf8').split('\n')[0]!) as { pid: number }).pid
    const killed = new Promise((resolve) => agent!.on('exit', resolve))
    agent!.kill('SIGKILL')
    await killed
    agent = undefined
    expect(existsSync(`/proc/${k3sPid}`)).toBe(true)
    expect((await criClient.containerStatus(containerId)).state).toBe(cri.ContainerState.CONTAINER_RUNNING)
    startAgent(config)
    await until('MANAGED after the crash', async () => /phase\s+MANAGED/.test(await status()))
    await until('k3s adopted and ready', async () => /runtime\s+k3s v1\.30\.4\+k3s1: available/.test(await status()))
    expect(k3sStarts()).toBe(1)

    // Manager failure: FALLBACK, the node still lists its workloads from the CRI.
    await net.stopManager('network-manager')
    await until('FALLBACK', async () => /phase\s+FALLBACK/.test(await status()))
    expect(await status()).toContain(`running, id ${containerId.slice(0, 13)}`)
    await net.startManager('network-manager')
    await until('MANAGED after the outage', async () => /phase\s+MANAGED/.test(await status()))

    const after = await criClient.containerStatus(containerId)
    expect(after.state).toBe(cri.ContainerState.CONTAINER_RUNNING)
    expect(after.id).toBe(containerId)
    expect(after.startedAt).toBe(before.startedAt) // never restarted
    expect(after.metadata?.attempt).toBe(0)
    expect((await criClient.listContainers()).filter((c) => c.podSandboxId === podId)).toHaveLength(1)
    expect(k3sStarts()).toBe(1)
    await stopAgent()
    expect(readdirSync(join(dir, 'state', 'k3s')).sort()).toEqual(expect.arrayContaining(['config.yaml', 'k3s.log', 'supervisor.state']))
  }
})
