import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandState, EmergencyAction, HealthState, K3sRole, NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { FAKE_K3S, until as untilTrue } from '@mycelium/testing'
import { MyceliumNode } from '../src/index.js'

/**
 * Emergency actions that hold (real dev network, operator-signed commands
 * over the command channel, the stand-in K3s serving the Kubernetes API):
 * STOP_ACCEPTING_WORKLOADS cordons the K3s node, ISOLATE stops peer
 * networking, DUMP_DIAGNOSTICS writes a bundle; the measures show in health
 * and status, survive a restart of the node, and RESUME undoes them.
 */
const until = (what: string, probe: () => boolean, timeoutMs = 30_000): Promise<true> => untilTrue(what, async () => probe(), timeoutMs, 50)

describe('emergency actions that hold', () => {
  let net: DevNetwork
  let dir: string
  let node: MyceliumNode
  const dataDir = (): string => join(dir, 'k3s-data')

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-emergency-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
    node = new MyceliumNode(
      NodeConfig.fromPartial({
        networkId: 'net1',
        nodeId: 'edge-1',
        stateDir: join(dir, 'state'),
        identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
        discovery: { bootstrapFile: net.bootstrapFile },
        peers: { listenAddress: '127.0.0.1:0' },
        status: { httpListenAddress: 'off', socketPath: '' },
        k3s: { enabled: true, role: K3sRole.SERVER, binaryPath: FAKE_K3S, dataDir: dataDir(), extraArgs: ['--https-listen-port', '0'] }
      }),
      silentLogger(),
      { joinToken: net.joinToken }
    )
    await node.start()
    await until(
      'MANAGED with K3s ready',
      () => node.agent.phase === Phase.MANAGED && node.runtime.health().state === HealthState.HEALTHY,
      60_000
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${Phase[node.agent.phase]} ${JSON.stringify(node.runtime.health())}`)
    })
  }, 60_000)

  afterAll(async () => {
    await node?.stop()
    // K3s outlives the agent by design: end the stand-in started for this test.
    const starts = existsSync(join(dataDir(), 'starts.log')) ? readFileSync(join(dataDir(), 'starts.log'), 'utf8').trim().split('\n') : []
    for (const line of starts) {
      try {
        process.kill((JSON.parse(line) as { pid: number }).pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const run = async (action: EmergencyAction): Promise<CommandState> => {
    const command = net.distress.prepareEmergency('edge-1', action, `drill ${EmergencyAction[action]}`)
    net.commands.send('edge-1', command)
    const updates = await net.commands.waitForOutcome(command.commandId, 20_000)
    return updates.at(-1)!.state
  }
  const cordoned = (): string => readFileSync(join(dataDir(), 'unschedulable'), 'utf8')
  const reasons = (): string => node.status().healthReason

  it('STOP_ACCEPTING_WORKLOADS cordons the K3s node; ISOLATE stops peer networking; DUMP_DIAGNOSTICS writes a bundle', async () => {
    expect(await run(EmergencyAction.STOP_ACCEPTING_WORKLOADS)).toBe(CommandState.SUCCEEDED)
    expect(cordoned()).toBe('true')
    expect(reasons()).toMatch(/workloads: not accepting new workloads \(emergency\): drill STOP_ACCEPTING_WORKLOADS .*undo: RESUME/)
    expect(await run(EmergencyAction.ISOLATE)).toBe(CommandState.SUCCEEDED)
    expect(node.peers!.server.isStarted()).toBe(false)
    expect(node.health().components.find((c) => c.name === 'peers')?.state).toBe(HealthState.STOPPED)
    expect(await run(EmergencyAction.DUMP_DIAGNOSTICS)).toBe(CommandState.SUCCEEDED)
    expect(existsSync(node.emergencyMeasures.lastDiagnostics)).toBe(true)
  })

  it('the measures hold across a restart of the node', async () => {
    await node.stop()
    await node.start()
    expect(node.isolated).toBe(true)
    expect(node.acceptingWorkloads).toBe(false)
    expect(node.peers!.server.isStarted()).toBe(false)
    expect(reasons()).toMatch(/not accepting new workloads/)
    await until('MANAGED again', () => node.agent.phase === Phase.MANAGED)
  })

  it('RESUME undoes both: peers serve again, the node is uncordoned, health no longer names them', async () => {
    expect(await run(EmergencyAction.RESUME)).toBe(CommandState.SUCCEEDED)
    expect(node.peers!.server.isStarted()).toBe(true)
    expect(cordoned()).toBe('false')
    expect(reasons()).not.toMatch(/emergency/)
    await node.stop()
    await node.start()
    expect(node.isolated).toBe(false)
    expect(node.acceptingWorkloads).toBe(true)
  })
})
