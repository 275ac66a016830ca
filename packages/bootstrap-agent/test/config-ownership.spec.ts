import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HealthState, K3sRole, NodeConfig, type ComponentHealth } from '@mycelium/core-interfaces'
import { ConfigStore, effectiveConfig, MANAGER_SECTIONS, nodeOwnedKeysTouched, ownerOf, tryConfig } from '../src/index.js'
import { trialVerdict } from '../src/managed-duties.js'

const local = NodeConfig.fromPartial({
  networkId: 'net1',
  nodeId: 'n1',
  stateDir: '/var/lib/mycelium',
  labels: { zone: 'a' },
  identity: { keyFile: '/etc/node.key' },
  discovery: { bootstrapFile: '/etc/bootstrap.json', httpsUrls: ['https://local.example/spores'] },
  peers: { listenAddress: '127.0.0.1:7000', phiThreshold: 8 },
  k3s: { enabled: true, role: K3sRole.AGENT, nodeName: 'from-yaml' },
  status: { socketPath: '/run/status.sock' },
  logging: { level: 'info', format: 'json' }
})

describe('config ownership', () => {
  it('knows every key by field or by section', () => {
    expect(ownerOf('identity.joinToken')).toBe('node')
    expect(ownerOf('k3s.extraArgs')).toBe('manager')
    expect(ownerOf('peers.listenAddress')).toBe('node')
    expect(ownerOf('peers.seeds')).toBe('manager')
    expect(ownerOf('discovery.bootstrapFile')).toBe('node')
    expect(ownerOf('discovery.httpsUrls')).toBe('manager')
    expect(ownerOf('logging.format')).toBe('node')
    expect(ownerOf('logging.level')).toBe('manager')
    expect(ownerOf('version')).toBe('meta')
    expect(ownerOf('nonsense')).toBeUndefined()
    expect([...MANAGER_SECTIONS].sort()).toEqual(['discovery', 'handoff', 'k3s', 'labels', 'logging', 'peers', 'reconnect'])
  })

  it('names each node-owned key a manager config sets to a value other than the node’s', () => {
    const remote = NodeConfig.fromPartial({
      version: 3,
      networkId: 'net1', // the node's own: allowed
      nodeId: 'n1',
      stateDir: '/tmp/elsewhere',
      identity: { keyFile: '/etc/node.key', caFile: '/tmp/evil-ca.pem' },
      discovery: { bootstrapFile: '/tmp/other.json', httpsUrls: ['https://x'] },
      peers: { listenAddress: '0.0.0.0:7000', phiThreshold: 12 },
      status: { httpListenAddress: '0.0.0.0:9464' },
      logging: { level: 'debug', format: 'pretty' }
    })
    expect(nodeOwnedKeysTouched(remote, local).sort()).toEqual(
      ['discovery.bootstrapFile', 'identity.caFile', 'logging.format', 'peers.listenAddress', 'stateDir', 'status.httpListenAddress'].sort()
    )
    const managerOnly = NodeConfig.fromPartial({
      version: 3,
      networkId: 'net1',
      labels: { tier: 'edge' },
      peers: { phiThreshold: 12 },
      k3s: { enabled: false },
      logging: { level: 'debug' }
    })
    expect(nodeOwnedKeysTouched(managerOnly, local)).toEqual([])
  })

  it('the effective config is the local node-owned part plus the stored manager-owned sections, with their versions', () => {
    const stored = NodeConfig.fromPartial({
      version: 7,
      networkId: 'net1',
      peers: { phiThreshold: 12, seeds: [{ address: '10.0.0.2:7000' }] },
      k3s: { enabled: true, role: K3sRole.SERVER, nodeName: 'from-manager' },
      logging: { level: 'debug' }
    })
    const { config, versions } = effectiveConfig(local, stored)
    expect(config.version).toBe(7)
    expect(config.nodeId).toBe('n1')
    expect(config.stateDir).toBe('/var/lib/mycelium')
    expect(config.identity?.keyFile).toBe('/etc/node.key')
    expect(config.status?.socketPath).toBe('/run/status.sock')
    expect(config.peers?.listenAddress).toBe('127.0.0.1:7000') // node-owned key of a manager-owned section
    expect(config.peers?.phiThreshold).toBe(12)
    expect(config.peers?.seeds.map((s) => s.address)).toEqual(['10.0.0.2:7000'])
    expect(config.k3s).toMatchObject({ role: K3sRole.SERVER, nodeName: 'from-manager' })
    expect(config.logging).toMatchObject({ level: 'debug', format: 'json' })
    // Sections the manager did not set stay local.
    expect(config.discovery?.httpsUrls).toEqual(['https://local.example/spores'])
    expect(config.labels).toEqual({ zone: 'a' })
    expect(versions).toEqual({ labels: 0, discovery: 0, peers: 7, handoff: 0, reconnect: 0, k3s: 7, logging: 7 })
  })

  it('a stored seed (version 0) leaves the local config in force entirely', () => {
    const { config, versions } = effectiveConfig(local, NodeConfig.fromPartial({ ...local, k3s: { enabled: false } }))
    expect(config).toEqual(local)
    expect(Object.values(versions).every((v) => v === 0)).toBe(true)
  })
})

describe('trial verdicts', () => {
  const c = (name: string, state: HealthState, restarts = 0, reason = ''): ComponentHealth => ({ name, state, reason, restarts })
  const healthy = [c('k3s-runtime', HealthState.HEALTHY), c('identity', HealthState.HEALTHY)]

  it('passes a node that stays healthy, and one settling (degraded) before the last check', () => {
    expect(trialVerdict(healthy, { state: HealthState.HEALTHY, components: healthy }, true)).toBe(true)
    const settling = [c('k3s-runtime', HealthState.DEGRADED, 0, 'starting'), healthy[1]!]
    expect(trialVerdict(healthy, { state: HealthState.DEGRADED, components: settling }, false)).toBe(true)
  })

  it('fails an UNHEALTHY node, a component that restarted, or one not healthy again at the end', () => {
    expect(
      trialVerdict(
        healthy,
        { state: HealthState.UNHEALTHY, components: [c('k3s-runtime', HealthState.UNHEALTHY, 5, 'restart budget spent')] },
        false
      )
    ).toBe('node UNHEALTHY (k3s-runtime: restart budget spent)')
    expect(
      trialVerdict(
        healthy,
        { state: HealthState.DEGRADED, components: [c('k3s-runtime', HealthState.DEGRADED, 1, 'backoff: k3s exited 7')] },
        false
      )
    ).toBe('k3s-runtime restarted 1 time(s) during the trial (backoff: k3s exited 7)')
    expect(
      trialVerdict(healthy, { state: HealthState.DEGRADED, components: [c('k3s-runtime', HealthState.DEGRADED, 0, 'not-ready')] }, true)
    ).toBe('k3s-runtime was healthy before the trial and is DEGRADED at its end (not-ready)')
  })
})

describe('trials and ownership', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'config-ownership-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('a manager config setting a node-owned key is rejected naming it, and never applied', async () => {
    const store = await ConfigStore.open(dir, local)
    const applied: number[] = []
    const bad = NodeConfig.fromPartial({
      version: 2,
      networkId: 'net1',
      status: { httpListenAddress: '0.0.0.0:1' },
      k3s: { enabled: false }
    })
    const r = await tryConfig(store, bad, { windowMs: 10, apply: async (c) => void applied.push(c.version), isHealthy: () => true })
    expect(r.outcome).toBe('rejected')
    expect(r.outcome === 'rejected' && r.reason).toContain('status.httpListenAddress')
    expect(applied).toEqual([])
    expect(store.current().version).toBe(0)
    expect(store.lastTrial()).toMatchObject({ version: 2, outcome: 'rejected' })
  })

  it('a config-specific validation refuses before applying', async () => {
    const store = await ConfigStore.open(dir, local)
    const r = await tryConfig(store, NodeConfig.fromPartial({ version: 2, logging: { level: 'loud' } }), {
      windowMs: 10,
      apply: async () => undefined,
      isHealthy: () => true,
      validate: () => {
        throw new Error('logging.level: "loud" is not one of error, warn, info, debug')
      }
    })
    expect(r).toMatchObject({ outcome: 'rejected', reason: expect.stringContaining('logging.level') })
  })

  it('the last trial outcome survives a restart, including a revert made at boot', async () => {
    const store = await ConfigStore.open(dir, local)
    await store.beginTrial(NodeConfig.fromPartial({ version: 4 }), 60_000) // the process dies here
    const reopened = await ConfigStore.open(dir, local)
    expect(reopened.lastTrial()).toMatchObject({
      version: 4,
      outcome: 'reverted',
      reason: 'trial of config version 4 was interrupted by a restart'
    })
    const again = await ConfigStore.open(dir, local)
    expect(again.lastTrial()).toMatchObject({ version: 4, outcome: 'reverted' })
  })
})
