import { spawn, type ChildProcess } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { K3sRole, NodeConfig, StatusReport } from '@mycelium/core-interfaces'
import { applyFault, startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { FAKE_K3S, until as untilTrue } from '@mycelium/testing'
import { BIN, runBin } from './helpers/daemon.js'

/**
 * Managed state that sticks, tried as an operator would: the shipped daemon
 * (the release artifact, a child process) on a dev network over mTLS, supervising
 * the stand-in K3s (role server: its readiness is its own /readyz).
 * - a config the manager pushes is in force after a daemon restart (status
 *   shows its version, K3s keeps the manager's config and is not restarted);
 * - a pushed k3s config that makes K3s crash-loop is reverted to the
 *   last-known-good within the trial window, and the manager is told why;
 * - a trial interrupted by SIGKILL is reverted when the daemon comes back,
 *   and the manager is told why.
 */
const until = (what: string, probe: () => Promise<boolean> | boolean): Promise<true> => untilTrue(what, probe, 45_000, 100)

const runBinOut = async (args: string[]): Promise<string> => (await runBin(args)).out

describe('managed config survives restarts and bad configs (shipped daemon, dev network)', () => {
  let net: DevNetwork
  let dir: string
  let agent: ChildProcess | undefined
  let logs = ''

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    dir = mkdtempSync(join(tmpdir(), 'node-core-managed-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 300 })
  }, 60_000)

  afterAll(async () => {
    agent?.kill('SIGKILL')
    // The stand-in K3s outlives the agent by design: end every one it started.
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
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  const startAgent = (config: string): void => {
    agent = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
    agent.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
    agent.stderr!.on('data', (d: Buffer) => (logs += d.toString()))
  }
  const stopAgent = async (signal: NodeJS.Signals): Promise<void> => {
    const exited = new Promise((resolve) => agent!.on('exit', resolve))
    agent!.kill(signal)
    await exited
    agent = undefined
  }

  it('keeps what the manager set across a restart; reverts a crash-looping K3s config and an interrupted trial, telling the manager why', async () => {
    try {
      await scenario()
    } catch (err) {
      console.log(
        `${logs.slice(-10_000)}\n--- node-core status ---\n${await runBinOut(['status', '--socket', join(dir, 'run', 'status.sock')])}`
      )
      throw err
    }
  }, 240_000)

  async function scenario(): Promise<void> {
    const tokenFile = join(dir, 'join-token')
    writeFileSync(tokenFile, net.joinToken)
    const socket = join(dir, 'run', 'status.sock')
    const config = join(dir, 'node.yaml')
    const dataDir = join(dir, 'k3s-data')
    writeFileSync(
      config,
      net.nodeConfigYaml({ nodeId: 'edge-1', stateDir: join(dir, 'state'), joinTokenFile: tokenFile, socketPath: socket })
    )
    appendFileSync(
      config,
      [
        'handoff:',
        '  configConfirmWindow: 6s',
        'k3s:',
        '  enabled: true',
        '  role: server',
        `  binaryPath: ${FAKE_K3S}`,
        `  dataDir: ${dataDir}`,
        '  nodeLabels: { owner: yaml }',
        '  extraArgs: ["--https-listen-port", "0"]',
        ''
      ].join('\n')
    )
    const status = async (): Promise<StatusReport> =>
      StatusReport.fromJSON(JSON.parse(await runBinOut(['status', '--socket', socket, '--json'])))
    const statusJson = async (): Promise<Record<string, unknown>> =>
      JSON.parse(await runBinOut(['status', '--socket', socket, '--json'])) as Record<string, unknown>
    const starts = (): Array<{ pid: number; config: Record<string, unknown>; args: string[] }> =>
      readFileSync(join(dataDir, 'starts.log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { pid: number; config: Record<string, unknown>; args: string[] })
    const k3sReady = async (): Promise<boolean> => (await status()).runtime?.reason === '' && (await status()).runtime?.availability === 1
    const trialReport = () => net.networkManager.nodes.get('edge-1')?.lastHealth?.lastConfigTrial
    const k3s = (extra: Partial<NodeConfig['k3s']> = {}) => ({
      enabled: true,
      role: K3sRole.SERVER,
      binaryPath: FAKE_K3S,
      dataDir,
      nodeLabels: { owner: 'manager' },
      extraArgs: ['--https-listen-port', '0'],
      ...extra
    })

    startAgent(config)
    await until('MANAGED with K3s ready', async () => (await status()).phase === 5 && (await k3sReady()))
    const base = net.networkManager.desiredConfig.version
    await until('the manager’s initial config adopted', async () => (await status()).config?.currentVersion === base)

    // 1. The manager pushes vN (k3s labels + logging): tried, promoted, in force — and still after a restart.
    const vN = base + 1
    await net.networkManager.setConfig(NodeConfig.fromPartial({ version: vN, networkId: 'net1', k3s: k3s(), logging: { level: 'debug' } }))
    await until(`v${vN} promoted`, async () => (await status()).config?.lastKnownGoodVersion === vN)
    expect(starts().at(-1)!.config['node-label']).toEqual(['owner=manager'])
    const startsBefore = starts().length
    const before = await statusJson()
    expect(before.effectiveConfig).toMatchObject({
      version: vN,
      nodeId: 'edge-1',
      k3s: { nodeLabels: { owner: 'manager' } },
      logging: { level: 'debug', format: 'json' }
    })
    expect((before.config as { sectionVersions: Record<string, number> }).sectionVersions).toMatchObject({ k3s: vN, logging: vN, peers: 0 })

    await stopAgent('SIGTERM')
    startAgent(config)
    await until('MANAGED after the restart', async () => (await status()).phase === 5 && (await k3sReady()))
    const after = await statusJson()
    expect(after.config).toMatchObject({ currentVersion: vN, lastKnownGoodVersion: vN })
    expect(after.effectiveConfig).toMatchObject({ version: vN, k3s: { nodeLabels: { owner: 'manager' } }, logging: { level: 'debug' } })
    expect(starts()).toHaveLength(startsBefore) // adopted, not re-planned back to the YAML's labels
    expect(await runBinOut(['status', '--socket', socket])).toMatch(
      new RegExp(`config sections\\s+discovery local, handoff local, k3s v${vN}, labels local, logging v${vN}`)
    )

    // 2. A k3s config that makes K3s crash-loop: reverted within the window, the manager told why.
    const bad = vN + 1
    await net.networkManager.setConfig(
      NodeConfig.fromPartial({
        version: bad,
        networkId: 'net1',
        k3s: k3s({ extraArgs: ['--https-listen-port', '0', '--fake-crash-after-ms', '200'] })
      })
    )
    await until(`v${bad} reverted and reported`, () => trialReport()?.version === bad && trialReport()?.outcome === 'reverted')
    expect(trialReport()!.reason).toMatch(
      /^unhealthy during the 6000 ms confirmation window: k3s-runtime restarted \d+ time\(s\) during the trial/
    )
    expect(await applyFault(net, { action: 'nodes' })).toMatch(
      new RegExp(`edge-1: config v${vN}, [A-Z]+, last trial v${bad} reverted: unhealthy during`)
    )
    expect(starts().some((s) => s.args.includes('--fake-crash-after-ms'))).toBe(true) // it was tried
    await until(
      'back on the last-known-good K3s config, ready',
      async () => (await k3sReady()) && !starts().at(-1)!.args.includes('--fake-crash-after-ms')
    )
    expect((await status()).config).toMatchObject({
      currentVersion: vN,
      lastKnownGoodVersion: vN,
      trialVersion: 0,
      lastTrial: { version: bad, outcome: 'reverted' }
    })

    // 3. A trial interrupted by SIGKILL: reverted when the daemon comes back, the manager told why.
    const killed = bad + 1
    await net.networkManager.setConfig(
      NodeConfig.fromPartial({
        version: killed,
        networkId: 'net1',
        k3s: k3s({ extraArgs: ['--https-listen-port', '0', '--fake-crash-after-ms', '120000'] })
      })
    )
    await until(`v${killed} on trial`, async () => (await status()).config?.trialVersion === killed)
    await stopAgent('SIGKILL')
    startAgent(config)
    await until('MANAGED after the crash', async () => (await status()).phase === 5)
    await until(
      `v${killed} reverted at boot and reported`,
      () => trialReport()?.version === killed && trialReport()?.outcome === 'reverted'
    )
    expect(trialReport()!.reason).toBe(`trial of config version ${killed} was interrupted by a restart`)
    await until(
      'K3s on the last-known-good config again',
      async () => (await k3sReady()) && !starts().at(-1)!.args.includes('--fake-crash-after-ms')
    )
    const final = await statusJson()
    expect(final.config).toMatchObject({ currentVersion: vN, lastKnownGoodVersion: vN })
    expect(final.effectiveConfig).toMatchObject({ version: vN, k3s: { nodeLabels: { owner: 'manager' } } })
    expect(final.health).toBe('HEALTH_STATE_HEALTHY')
    await stopAgent('SIGTERM')
  }
})
