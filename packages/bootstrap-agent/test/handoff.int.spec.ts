import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HealthState, NodeConfig, Phase } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import type { BootstrapAgent, TrialOutcome } from '../src/index.js'
import { devAgent, until } from './helpers/agent.js'

let net: DevNetwork
let dir: string
const agents: BootstrapAgent[] = []

beforeAll(async () => {
  net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 1000 })
})
afterAll(async () => {
  await net?.stop()
})
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agent-'))
})
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop()
  net.networkManager.handoffFaults.refuseHandoff = false
  net.networkManager.handoffFaults.ignoreHandoff = false
  await net.startManager('network-manager')
  await net.startManager('spore-manager')
  rmSync(dir, { recursive: true, force: true })
})

async function agentFor(nodeId: string, options: Parameters<typeof devAgent>[3] = {}): Promise<BootstrapAgent> {
  const agent = devAgent(net, dir, nodeId, { joinToken: await net.newJoinToken(), ...options })
  agents.push(agent)
  return agent
}

const path = (agent: BootstrapAgent): string[] => agent.status().history.map((h) => `${Phase[h.to]}: ${h.reason}`)

describe('the handoff against a dev network (real mTLS)', () => {
  it('fresh state dir + join token: enrol → discover → register → handoff → MANAGED, each transition with its reason', async () => {
    const agent = await agentFor('node-a')
    const steps: string[] = []
    agent.on('step', (s) => steps.push(`${Phase[s.phase]}: ${s.step}`))
    await agent.start()
    await until(
      'MANAGED',
      () => agent.phase === Phase.MANAGED,
      20_000,
      () => path(agent)
    )
    const history = agent.status().history.map((h) => [Phase[h.to], h.reason])
    // Enrolment is a step inside BOOTSTRAP (logged, shown in status), not a BOOTSTRAP → BOOTSTRAP transition.
    expect(history.map(([p]) => p)).toEqual(['BOOTSTRAP', 'DISCOVERY', 'REGISTRATION', 'HANDOFF', 'MANAGED'])
    expect(steps).toEqual([
      expect.stringMatching(/^BOOTSTRAP: no certificate at .*node.crt: enrolment needed; enrolling with the join token$/),
      'BOOTSTRAP: enrolled; checking the new identity'
    ])
    expect(agent.counters.transitions).toEqual({ BOOTSTRAP: 1, DISCOVERY: 1, REGISTRATION: 1, HANDOFF: 1, MANAGED: 1 })
    expect(history[2]![1]).toMatch(/found \d Network Manager endpoint/)
    expect(history[4]![1]).toBe('handoff confirmed by the Network Manager')
    expect(net.networkManager.nodes.get('node-a')?.managed).toBe(true)
    const status = agent.status()
    expect(status.managers[0]?.endpoint?.address).toBe(net.endpoints.networkManager)
    expect(status.identityStatus?.state).toBe(2) // VALID
  })

  it('Network Manager stopped while MANAGED: FALLBACK with a reason; restarted: MANAGED again, same agent', async () => {
    const agent = await agentFor('node-b')
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    const stoppedAt = Date.now()
    await net.stopManager('network-manager')
    const detectedMs = (await until('FALLBACK', () => agent.phase === Phase.FALLBACK, 10_000)) + 0
    process.stdout.write(`manager stop → FALLBACK detected in ${Date.now() - stoppedAt} ms (heartbeat 1 s)\n`)
    expect(detectedMs).toBeLessThan(10_000)
    expect(agent.status().reason).toMatch(/manager link lost: /)
    await new Promise((r) => setTimeout(r, 1500))
    await net.startManager('network-manager')
    await until(
      'MANAGED again',
      () => agent.phase === Phase.MANAGED,
      20_000,
      () => path(agent).slice(-4)
    )
    expect(agent.counters.reconnectAttempts).toBeGreaterThan(0)
  })

  it('handoff refused: back to local control and the last-known-good config, with the reason', async () => {
    net.networkManager.handoffFaults.refuseHandoff = true
    const applied: number[] = []
    const agent = await agentFor('node-c', { applyConfig: async (c) => void applied.push(c.version) })
    await agent.start()
    await until('refused handoff', () =>
      agent.status().history.some((h) => h.to === Phase.FALLBACK && h.reason.includes('handoff refused'))
    )
    expect(agent.configStore?.current().version).toBe(agent.configStore?.lastKnownGood().version)
    net.networkManager.handoffFaults.refuseHandoff = false
    await until('MANAGED once allowed', () => agent.phase === Phase.MANAGED)
  })

  it('handoff never confirmed: rolls back within the deadline and says why', async () => {
    net.networkManager.handoffFaults.ignoreHandoff = true
    const agent = await agentFor('node-d', { init: { handoffDeadlineMs: 800 } })
    await agent.start()
    await until('HANDOFF', () => agent.phase === Phase.HANDOFF)
    const entered = Date.now()
    await until('rollback', () => agent.phase === Phase.FALLBACK, 5000)
    expect(Date.now() - entered).toBeLessThan(800 + 1000)
    expect(agent.status().reason).toMatch(/handoff not confirmed: no confirmation within \d+ ms; rolled back to local control/)
  })

  it('a config update failing its health window is reverted; a good one becomes last-known-good', async () => {
    let healthy = true
    const outcomes: TrialOutcome[] = []
    const agent = await agentFor('node-e', {
      health: () => ({ state: healthy ? HealthState.HEALTHY : HealthState.UNHEALTHY, components: [] }),
      init: { configConfirmWindowMs: 600 }
    })
    agent.on('config:trial', (o) => outcomes.push(o))
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    // First the node adopts (and proves) the manager's current config.
    await until('initial config adopted', () => outcomes.some((o) => o.version === net.networkManager.desiredConfig.version), 10_000)
    outcomes.length = 0
    const base = net.networkManager.desiredConfig.version
    await net.networkManager.setConfig(NodeConfig.fromPartial({ version: base + 1, networkId: 'net1', labels: { good: 'yes' } }))
    await until('promoted', () => outcomes.length === 1, 10_000)
    expect(outcomes[0]).toEqual({ outcome: 'promoted', version: base + 1 })
    expect(agent.configStore?.lastKnownGood().version).toBe(base + 1)

    healthy = false
    await net.networkManager.setConfig(NodeConfig.fromPartial({ version: base + 2, networkId: 'net1', labels: { good: 'no' } }))
    await until('reverted', () => outcomes.length === 2, 10_000)
    expect(outcomes[1]).toMatchObject({ outcome: 'reverted', version: base + 2 })
    expect(agent.configStore?.current().version).toBe(base + 1)
    expect(agent.configStore?.current().labels).toEqual({ good: 'yes' })
    // The manager is told, with the reason; the reverted version is not tried again (it needs a newer one).
    await until(
      'the revert in a heartbeat',
      () => net.networkManager.nodes.get('node-e')?.lastHealth?.lastConfigTrial?.outcome === 'reverted',
      10_000
    )
    expect(net.networkManager.nodes.get('node-e')?.lastHealth?.lastConfigTrial).toMatchObject({
      version: base + 2,
      reason: expect.stringContaining('node UNHEALTHY')
    })
    healthy = true
    const acks = agent.counters.heartbeatAcks
    await until('five more heartbeats acked', () => agent.counters.heartbeatAcks >= acks + 5, 10_000)
    expect(outcomes).toHaveLength(2)
    expect(agent.configStore?.current().version).toBe(base + 1)
  })

  it('restarted with the network down: FALLBACK from cached state, status readable, joins when the network returns', async () => {
    const first = await agentFor('node-f')
    await first.start()
    await until('MANAGED', () => first.phase === Phase.MANAGED)
    await first.stop()
    await net.stopManager('network-manager')
    await net.stopManager('spore-manager')

    const second = devAgent(net, dir, 'node-f')
    agents.push(second)
    await second.start()
    await until(
      'FALLBACK from cache',
      () => second.phase === Phase.FALLBACK,
      10_000,
      () => path(second)
    )
    const status = second.status()
    expect(status.spores?.activeSource).toBe('cache')
    expect(status.identityStatus?.state).toBe(2)
    expect(path(second).some((p) => p.startsWith('MANAGED'))).toBe(true) // the previous run's history is kept

    await net.startManager('spore-manager')
    await net.startManager('network-manager')
    await until('MANAGED after the network returns', () => second.phase === Phase.MANAGED, 20_000)
  })

  it('a state file truncated or flipped on disk: starts on the previous good copy and reports it', async () => {
    const first = await agentFor('node-g', { init: { configConfirmWindowMs: 300 } })
    await first.start()
    await until('MANAGED', () => first.phase === Phase.MANAGED)
    await until(
      'config adopted (so config files have previous copies)',
      () => first.configStore?.lastKnownGood().version === net.networkManager.desiredConfig.version,
      10_000
    )
    await first.stop()
    const agentFile = join(dir, 'node-g', 'agent.bin')
    const bytes = readFileSync(agentFile)
    bytes[bytes.length - 3] ^= 0x40
    writeFileSync(agentFile, bytes)
    const config = join(dir, 'node-g', 'config', 'current.bin')
    writeFileSync(config, readFileSync(config).subarray(0, 30))

    const second = devAgent(net, dir, 'node-g')
    agents.push(second)
    await second.start()
    await until(
      'MANAGED on the previous copies',
      () => second.phase === Phase.MANAGED,
      20_000,
      () => second.status().components
    )
    const state = second.status().components.find((c) => c.name === 'state')!
    expect(state.state).toBe(HealthState.DEGRADED)
    expect(state.reason).toMatch(/agent.bin: checksum mismatch; started on its previous good copy/)
    expect(state.reason).toMatch(/current.bin: truncated: 30 of 44 header bytes; started on its previous good copy/)
  })

  it('a lost trust bundle is restored by enrolling again, not a boot loop', async () => {
    const first = await agentFor('node-h')
    await first.start()
    await until('MANAGED', () => first.phase === Phase.MANAGED)
    await first.stop()
    const trust = join(dir, 'node-h', 'trust-bundle.bin')
    writeFileSync(trust, readFileSync(trust).subarray(0, 30))
    const second = devAgent(net, dir, 'node-h', { joinToken: (first as unknown as { init: { joinToken: string } }).init.joinToken })
    agents.push(second)
    const steps: string[] = []
    second.on('step', (s) => steps.push(s.step))
    await second.start()
    await until(
      'MANAGED after re-enrolling',
      () => second.phase === Phase.MANAGED,
      20_000,
      () => path(second).slice(-5)
    )
    expect(steps).toContain('trust bundle missing or unreadable; enrolling with the join token')
    expect(second.status().components.find((c) => c.name === 'state')?.reason).toMatch(/trust-bundle.bin: truncated/)
  })
})

describe('certificate renewal while MANAGED', () => {
  it('renews a certificate that is due, without a restart', async () => {
    const shortNet = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 300, certificateTtlMs: 6000 })
    const d = mkdtempSync(join(tmpdir(), 'agent-renew-'))
    const agent = devAgent(shortNet, d, 'node-r', { joinToken: await shortNet.newJoinToken() })
    try {
      await agent.start()
      await until('MANAGED', () => agent.phase === Phase.MANAGED)
      // Issued with 60 s of clock tolerance before now and 6 s after: due at once.
      expect(agent.status().identityStatus?.state).toBe(3) // RENEWAL_DUE
      const first = agent.status().identity!.certificateSha256
      await until('a new certificate in force', () => agent.status().identity!.certificateSha256 !== first, 20_000)
      expect(agent.phase).toBe(Phase.MANAGED)
      expect(agent.counters.transitions.BOOTSTRAP).toBe(1) // no restart: still the first run's one BOOTSTRAP
    } finally {
      await agent.stop()
      await shortNet.stop()
      rmSync(d, { recursive: true, force: true })
    }
  }, 40_000)
})
