import { sign } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandState, EmergencyAction, EmergencyOperation, HealthState, NodeConfig, Phase, type Command } from '@mycelium/core-interfaces'
import { signingKeyFromPem, newSigningKey } from '@mycelium/spore-tools'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import type { BootstrapAgent, TrialOutcome } from '../src/index.js'
import { devAgent, until } from './helpers/agent.js'

let net: DevNetwork
let dir: string
const agents: BootstrapAgent[] = []
let restarts: string[]
let emergencies: string[]
let healthy: boolean

beforeAll(async () => {
  net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
  dir = mkdtempSync(join(tmpdir(), 'agent-cmd-'))
})
afterAll(async () => {
  for (const a of agents) await a.stop()
  await net.stop()
  rmSync(dir, { recursive: true, force: true })
})

async function managedAgent(nodeId: string, joinToken?: string): Promise<BootstrapAgent> {
  restarts = []
  emergencies = []
  healthy = true
  const agent = devAgent(net, dir, nodeId, {
    joinToken: joinToken ?? (await net.newJoinToken()),
    health: () => ({ state: healthy ? HealthState.HEALTHY : HealthState.UNHEALTHY, components: [] }),
    restart: async (c: string) => void restarts.push(c || 'agent'),
    emergency: async (a: EmergencyAction, reason: string) => void emergencies.push(`${EmergencyAction[a]}: ${reason}`),
    init: { configConfirmWindowMs: 400 }
  })
  agents.push(agent)
  await agent.start()
  await until('MANAGED', () => agent.phase === Phase.MANAGED)
  await until('command session', () => net.commands.isConnected(nodeId))
  return agent
}

let seq = 0
const command = (kind: Command['kind'], overrides: Partial<Command> = {}): Command => ({
  commandId: `cmd-${++seq}`,
  issuedAt: new Date(),
  deadline: new Date(Date.now() + 30_000),
  issuer: 'test',
  kind,
  ...overrides
})

function emergency(nodeId: string, commandId: string, action: EmergencyAction, keyPems: string[]): Command['kind'] {
  const operation = Buffer.from(
    EmergencyOperation.encode({
      commandId,
      networkId: 'net1',
      nodeId,
      action,
      reason: 'drill',
      expiresAt: new Date(Date.now() + 60_000)
    }).finish()
  )
  const keys = keyPems.map((pem) => signingKeyFromPem(pem))
  return {
    $case: 'emergency',
    value: { operation, signatures: keys.map((k) => ({ keyId: k.keyId, signature: sign(null, operation, k.privateKey) })) }
  }
}

const states = (updates: Array<{ state: CommandState }>): string[] => updates.map((u) => CommandState[u.state])

async function outcome(nodeId: string, cmd: Command): Promise<{ states: string[]; reason: string }> {
  net.commands.send(nodeId, cmd)
  const updates = await net.commands.waitForOutcome(cmd.commandId)
  return { states: states(updates), reason: updates.at(-1)!.reason }
}

describe('management commands from the dev Network Manager (real mTLS)', () => {
  it('runs each kind and reports its statuses in order', async () => {
    await managedAgent('cmd-a')
    expect(await outcome('cmd-a', command({ $case: 'restart', value: { component: 'k3s-runtime' } }))).toEqual({
      states: ['ACCEPTED', 'RUNNING', 'SUCCEEDED'],
      reason: ''
    })
    expect(restarts).toEqual(['k3s-runtime'])

    const version = 100
    const reconf = await outcome(
      'cmd-a',
      command({
        $case: 'reconfigure',
        value: { config: NodeConfig.fromPartial({ version, networkId: 'net1', labels: { via: 'command' } }) }
      })
    )
    expect(reconf.states).toEqual(['ACCEPTED', 'RUNNING', 'SUCCEEDED'])

    const update = await outcome(
      'cmd-a',
      command({ $case: 'update', value: { component: '', version: '9.9.9', artifactDigest: 'sha256:00', artifactUrls: [] } })
    )
    expect(update).toEqual({ states: ['REJECTED'], reason: 'update is not supported by this agent version (no self-update path yet)' })

    const id = `cmd-${++seq}`
    const em = await outcome('cmd-a', command(emergency('cmd-a', id, EmergencyAction.ISOLATE, net.state.operatorKeys), { commandId: id }))
    expect(em.states).toEqual(['ACCEPTED', 'RUNNING', 'SUCCEEDED'])
    expect(emergencies).toEqual(['ISOLATE: drill'])
  })

  it('rejects, with a precise reason and nothing executed: past deadline, unknown kind, malformed, unsigned or foreign-signed emergency', async () => {
    await managedAgent('cmd-b')
    const cases: Array<[Command, string]> = []
    cases.push([command({ $case: 'restart', value: { component: 'x' } }, { deadline: new Date(Date.now() - 1000) }), 'deadline exceeded'])
    cases.push([command(undefined), 'unknown or missing command kind'])
    cases.push([command({ $case: 'reconfigure', value: {} }), 'malformed: reconfigure carries no config'])
    const id1 = `cmd-${++seq}`
    cases.push([command(emergency('cmd-b', id1, EmergencyAction.ISOLATE, []), { commandId: id1 }), 'lacks a valid operator signature'])
    const id2 = `cmd-${++seq}`
    cases.push([
      command(emergency('cmd-b', id2, EmergencyAction.ISOLATE, [newSigningKey().pem]), { commandId: id2 }),
      'signed by unknown key'
    ])
    const id3 = `cmd-${++seq}`
    cases.push([command(emergency('cmd-other', id3, EmergencyAction.ISOLATE, net.state.operatorKeys), { commandId: id3 }), 'not this node'])
    const id4 = `cmd-${++seq}`
    const garbage: Command['kind'] = { $case: 'emergency', value: { operation: Buffer.from([0x0a, 0xff, 0xff]), signatures: [] } }
    cases.push([command(garbage, { commandId: id4 }), 'malformed emergency operation'])
    for (const [cmd, reason] of cases) {
      const o = await outcome('cmd-b', cmd)
      expect([cmd.commandId, o.states]).toEqual([cmd.commandId, ['REJECTED']])
      expect(o.reason).toContain(reason)
    }
    expect(restarts).toEqual([])
    expect(emergencies).toEqual([])
  })

  it('a reconfigure whose health window fails is reverted and reported failed', async () => {
    const agent = await managedAgent('cmd-c')
    await until(
      'initial config adopted',
      () => agent.configStore!.lastKnownGood().version === net.networkManager.desiredConfig.version && agent.configStore!.trial() == null
    )
    const before = agent.configStore!.current().version
    healthy = false
    const o = await outcome(
      'cmd-c',
      command({ $case: 'reconfigure', value: { config: NodeConfig.fromPartial({ version: 500, networkId: 'net1' }) } })
    )
    expect(o.states).toEqual(['ACCEPTED', 'RUNNING', 'FAILED'])
    expect(o.reason).toContain('reverted')
    expect(agent.configStore!.current().version).toBe(before)
  })

  it('a reconfigure setting a node-owned key is refused naming the key, nothing applied', async () => {
    const agent = await managedAgent('cmd-e')
    await until(
      'initial config adopted',
      () => agent.configStore!.trial() == null && agent.configStore!.current().version === net.networkManager.desiredConfig.version
    )
    const before = agent.configStore!.current().version
    const o = await outcome(
      'cmd-e',
      command({
        $case: 'reconfigure',
        value: {
          config: NodeConfig.fromPartial({
            version: 600,
            networkId: 'net1',
            stateDir: '/tmp/elsewhere',
            peers: { listenAddress: '0.0.0.0:1' }
          })
        }
      })
    )
    expect(o.states).toEqual(['ACCEPTED', 'RUNNING', 'FAILED'])
    expect(o.reason).toBe(
      "config v600 rejected: remote NodeConfig: node-owned keys stateDir, peers.listenAddress cannot be set by a manager (the node's local config owns them)"
    )
    expect(agent.configStore!.current().version).toBe(before)
    expect(agent.configStore!.lastTrial()).toMatchObject({ version: 600, outcome: 'rejected' })
  })

  it('an emergency reset during a heartbeat-driven trial aborts it: reported reverted, the last-known-good in force, nothing promoted', async () => {
    const applied: number[] = []
    const agent = devAgent(net, dir, 'cmd-g', {
      joinToken: await net.newJoinToken(),
      applyConfig: async (c) => void applied.push(c.version),
      init: { configConfirmWindowMs: 400 }
    })
    agents.push(agent)
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    await until('command session', () => net.commands.isConnected('cmd-g'))
    await until(
      'initial config adopted',
      () => agent.configStore!.trial() == null && agent.configStore!.lastKnownGood().version === net.networkManager.desiredConfig.version
    )
    const good = agent.configStore!.current().version
    agent.retune({ configConfirmWindowMs: 60_000 }) // the next trial stays in its window until the reset
    const pushed = good + 1
    const trial = new Promise<TrialOutcome>((resolve) => agent.on('config:trial', (o) => o.version === pushed && resolve(o)))
    await net.networkManager.setConfig(NodeConfig.fromPartial({ version: pushed, networkId: 'net1', labels: { pushed: 'yes' } }))
    await until('pushed config on trial', () => agent.configStore!.trial()?.version === pushed)
    const id = `cmd-${++seq}`
    const em = await outcome(
      'cmd-g',
      command(emergency('cmd-g', id, EmergencyAction.RESET_TO_LAST_KNOWN_GOOD, net.state.operatorKeys), { commandId: id })
    )
    expect(em.states).toEqual(['ACCEPTED', 'RUNNING', 'SUCCEEDED'])
    expect(await trial).toEqual({ outcome: 'reverted', version: pushed, reason: 'trial interrupted: emergency: drill' })
    expect(agent.configStore!.current().version).toBe(good)
    expect(agent.configStore!.lastKnownGood().version).toBe(good)
    expect(agent.configStore!.trial()).toBeUndefined()
    expect(applied.slice(-2)).toEqual([pushed, good]) // applied, then the last-known-good once (the reset had nothing left to apply)
  }, 90_000)

  it('replaying a command id after an agent restart returns the stored outcome without running it again', async () => {
    const first = await managedAgent('cmd-d')
    const cmd = command({ $case: 'restart', value: { component: 'basic-net' } })
    expect((await outcome('cmd-d', cmd)).states).toEqual(['ACCEPTED', 'RUNNING', 'SUCCEEDED'])
    expect(restarts).toEqual(['basic-net'])
    await first.stop()
    agents.splice(agents.indexOf(first), 1)

    const second = await managedAgent('cmd-d', net.joinToken)
    net.commands.records.get(cmd.commandId)!.updates.length = 0
    net.commands.send('cmd-d', cmd)
    const replay = await net.commands.waitForOutcome(cmd.commandId)
    expect(replay.map((u) => [CommandState[u.state], u.replayed])).toEqual([['SUCCEEDED', true]])
    expect(restarts).toEqual([]) // the new agent ran nothing
    expect(second.executor?.journal.completedIds()).toContain(cmd.commandId)
  })
})

describe('a command sender with a node certificate', () => {
  it('is refused at the TLS layer: the session never opens and nothing runs', async () => {
    const { createIdentityStore, serverCredentials } = await import('@mycelium/basic-net')
    const { CertificateAuthority } = await import('@mycelium/dev-pki')
    const grpc = await import('@grpc/grpc-js')
    const { CommandChannelService } = await import('@mycelium/core-interfaces')
    const { CommandExecutor } = await import('../src/commands/executor.js')
    const { CommandJournal } = await import('../src/commands/journal.js')
    const { CommandSession } = await import('../src/commands/session.js')
    const ca = await CertificateAuthority.create('net1')
    const store = (name: string) =>
      createIdentityStore(
        {},
        {
          networkId: 'net1',
          name,
          keyFile: join(dir, `${name}.key`),
          certificateFile: join(dir, `${name}.crt`),
          caFile: join(dir, `${name}-ca.crt`)
        }
      )
    const impostor = store('impostor')
    const victim = store('victim')
    for (const s of [impostor, victim]) {
      await s.start()
      await s.install((await ca.issueFromCsr(await s.createCsr())).certificatePem, ca.certificatePem)
    }
    let sessions = 0
    const server = new grpc.Server()
    server.addService(CommandChannelService, {
      open: (call: import('@grpc/grpc-js').ServerDuplexStream<unknown, unknown>) => {
        sessions++
        call.write({ message: { $case: 'command', value: command({ $case: 'restart', value: { component: '' } }) } })
      }
    } as never)
    // A node-role server (it would need a node peer, so it accepts any node client).
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', serverCredentials(impostor, { networkId: 'net1', role: 'node' }), (e, p) =>
        e != null ? reject(e) : resolve(p)
      )
    )
    const ran: string[] = []
    const executor = new CommandExecutor(
      {
        restart: async (c) => void ran.push(c),
        reconfigure: async () => ({ outcome: 'rejected', version: 0, reason: '' }),
        emergency: async () => undefined
      },
      await CommandJournal.open(join(dir, 'victim-commands.bin')),
      { networkId: 'net1', nodeId: 'victim', operatorKeys: () => undefined }
    )
    const { clientCredentials } = await import('@mycelium/basic-net')
    const session = new CommandSession(executor, {
      endpoint: { address: `127.0.0.1:${port}`, expectedIdentity: '', zone: '', priority: 0 },
      credentials: clientCredentials(victim, { networkId: 'net1', role: 'manager' }),
      identity: { networkId: 'net1', nodeId: 'victim', spiffeId: '', certificateSha256: '' },
      leaseId: 'l',
      reconnect: { initialMs: 100, maxMs: 200 }
    })
    session.start()
    await new Promise((r) => setTimeout(r, 1000))
    session.stop()
    server.forceShutdown()
    impostor.stop()
    victim.stop()
    expect(sessions).toBe(0)
    expect(ran).toEqual([])
    expect(executor.journal.completedIds()).toEqual([])
  })
})
