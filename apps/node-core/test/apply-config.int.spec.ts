import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { K3sRole, NodeConfig, SporeBundle, type SignedSpore } from '@mycelium/core-interfaces'
import {
  createTestPki,
  until as untilTrue,
  serviceSpore,
  signSporeForTest,
  testSigningKey,
  testTrustBundle,
  type TestPki
} from '@mycelium/testing'
import type { SporeClient } from '@mycelium/spore-client'
import { ConfigStore, tryConfig } from '@mycelium/bootstrap-agent'
import { createLogger, fetchStatus, MyceliumNode } from '../src/index.js'

/**
 * A value per manager-owned consumer reaches it on a node built from its
 * local config (constructed, not started: no manager needed), through the
 * same path a manager's config takes (applyEffective). The HTTPS spore
 * sources are fetched for real from HTTPS servers pinned to a test CA.
 */
describe('a manager config reaches every consumer', () => {
  let dir: string
  let pki: TestPki
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-apply-'))
    pki = createTestPki('net1')
  })
  afterAll(() => {
    pki.cleanup()
    rmSync(dir, { recursive: true, force: true })
  })

  let lines: string[]
  const build = (extra: Partial<NodeConfig> = {}): { node: MyceliumNode; levels: string[] } => {
    lines = []
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString())
        done()
      }
    })
    const log = createLogger({ level: 'info', format: 'json', stream })
    const levels: string[] = []
    const config = NodeConfig.fromPartial({
      networkId: 'net1',
      nodeId: 'n1',
      stateDir: join(dir, `state-${Math.random().toString(36).slice(2)}`),
      peers: { listenAddress: '127.0.0.1:0', seeds: [{ address: '10.77.1.1:7000' }] },
      status: { httpListenAddress: 'off', socketPath: 'off' },
      ...extra
    })
    const node = new MyceliumNode(config, log, {
      setLogLevel: (level) => {
        levels.push(level)
        log.setLevel(level)
      }
    })
    return { node, levels }
  }
  const agentInit = (node: MyceliumNode): Record<string, unknown> => (node.agent as unknown as { init: Record<string, unknown> }).init

  it('logging.level: the running logger logs at the new level', async () => {
    const { node, levels } = build()
    const log = (node as unknown as { log: { debug(m: string): void } }).log
    log.debug('before: hidden')
    await node.applyEffective(NodeConfig.fromPartial({ version: 2, logging: { level: 'debug' } }))
    log.debug('after: shown')
    expect(levels).toEqual(['debug'])
    expect(lines.join('')).not.toContain('before: hidden')
    expect(lines.join('')).toContain('after: shown')
  })

  it('handoff.* and reconnect.*: the agent uses them from their next use', async () => {
    const { node } = build()
    await node.applyEffective(
      NodeConfig.fromPartial({
        version: 2,
        handoff: {
          commitDeadline: { seconds: 4 },
          configConfirmWindow: { seconds: 9 },
          defaultHeartbeatInterval: { seconds: 2 },
          missedAcksBeforeFallback: 5
        },
        reconnect: { initial: { seconds: 1 }, max: { seconds: 8 }, multiplier: 3 }
      })
    )
    expect(agentInit(node)).toMatchObject({
      handoffDeadlineMs: 4000,
      configConfirmWindowMs: 9000,
      defaultHeartbeatIntervalMs: 2000,
      missedAcksBeforeFallback: 5,
      reconnect: { initialMs: 1000, maxMs: 8000, multiplier: 3 }
    })
  })

  it('peers.seeds, phiThreshold, pingInterval, multicast*: the peer monitor and LAN discovery change in place', async () => {
    const { node } = build()
    const monitor = node.peers!.monitor
    expect(monitor.peers().map((p) => p.address)).toEqual(['10.77.1.1:7000'])
    expect(node.peers!.multicast).toBeUndefined()
    await node.applyEffective(
      NodeConfig.fromPartial({
        version: 2,
        peers: {
          seeds: [{ address: '10.77.2.2:7000' }],
          phiThreshold: 12,
          pingInterval: { seconds: 3 },
          multicastEnabled: true,
          multicastGroup: '239.77.9.9:7999'
        }
      })
    )
    expect(monitor.peers().map((p) => p.address)).toEqual(['10.77.2.2:7000'])
    expect(monitor.settings()).toEqual({ pingIntervalMs: 3000, suspectPhi: 12 })
    expect(node.peers!.multicast).toBeDefined()
    // The listen address is the node's: a manager config cannot move it (kept from the local config).
    expect(node.effectiveConfig().config.peers?.listenAddress).toBe('127.0.0.1:0')
    await node.applyEffective(NodeConfig.fromPartial({ version: 3, peers: { multicastEnabled: false } }))
    expect(node.peers!.multicast).toBeUndefined()
    expect(monitor.peers()).toEqual([]) // seeds now empty: the manager's section replaces the list
  })

  it('k3s: the runtime takes the new config (planned from it at start, not from the YAML)', async () => {
    const { node } = build({ k3s: { enabled: false, role: K3sRole.AGENT } } as Partial<NodeConfig>)
    await node.applyEffective(NodeConfig.fromPartial({ version: 2, k3s: { enabled: true, role: K3sRole.SERVER, nodeName: 'by-manager' } }))
    expect((node.runtime as unknown as { k3s: unknown }).k3s).toMatchObject({ enabled: true, role: K3sRole.SERVER, nodeName: 'by-manager' })
    expect(node.effectiveConfig().versions.k3s).toBe(2)
  })

  it('labels: the effective labels (what registration reports) are the manager’s', async () => {
    const { node } = build({ labels: { zone: 'a' } } as Partial<NodeConfig>)
    await node.applyEffective(NodeConfig.fromPartial({ version: 2, labels: { zone: 'b', tier: 'edge' } }))
    expect(node.effectiveConfig().config.labels).toEqual({ zone: 'b', tier: 'edge' })
  })

  it('a config that fails partway is undone in full by the revert (every step it ran is re-run back)', async () => {
    const { node, levels } = build()
    const store = await ConfigStore.open(join(dir, `store-${Math.random().toString(36).slice(2)}`), node.config as NodeConfig)
    await node.applyEffective(store.current()) // as at boot
    const monitor = node.peers!.monitor
    // K3s refuses the pushed config (after the log level and the peers were already changed).
    const real = node.runtime.reconfigure.bind(node.runtime)
    node.runtime.reconfigure = async (k3s) => {
      if (k3s?.nodeName === 'refused') throw new Error('k3s refused the config')
      return real(k3s)
    }
    const pushed = NodeConfig.fromPartial({
      networkId: 'net1',
      nodeId: 'n1',
      version: 2,
      logging: { level: 'debug' },
      peers: { phiThreshold: 12 },
      k3s: { enabled: true, nodeName: 'refused' }
    })
    const r = await tryConfig(store, pushed, { windowMs: 10, apply: (c) => node.applyEffective(c), isHealthy: () => true })
    expect(r).toMatchObject({ outcome: 'reverted', version: 2 })
    expect(r.outcome === 'reverted' && r.reason).toContain('k3s refused the config')
    expect(levels).toEqual(['debug', 'info'])
    expect(monitor.settings()).toEqual({ pingIntervalMs: 1000, suspectPhi: 8 })
    expect(monitor.peers().map((p) => p.address)).toEqual(['10.77.1.1:7000'])
    expect(node.effectiveConfig().config.version).toBe(store.lastKnownGood().version)
    expect(node.effectiveConfig().config.logging?.level ?? '').toBe('')
  })

  it('status never shows the join token (NodeStatus over its socket, as `node-core status --json` reads it)', async () => {
    const socketPath = join(dir, `status-${Math.random().toString(36).slice(2)}.sock`)
    const { node } = build({
      identity: { joinToken: 'jt-secret-1234' },
      status: { httpListenAddress: 'off', socketPath }
    } as Partial<NodeConfig>)
    await node.statusServer.start()
    try {
      const report = await fetchStatus(socketPath)
      expect(report.effectiveConfig?.identity?.joinToken).toBe('')
      expect(report.effectiveConfig?.networkId).toBe('net1') // the rest is shown
      expect(JSON.stringify(report)).not.toContain('jt-secret-1234')
    } finally {
      await node.statusServer.stop()
    }
    expect(node.effectiveConfig().config.identity?.joinToken).toBe('jt-secret-1234') // still used to enrol
  })

  it('a stored config that cannot be applied at boot: the node boots on the local config and the store says so (version, last trial)', async () => {
    const { node } = build()
    const stateDir = node.config.stateDir
    const store = await ConfigStore.open(join(stateDir, 'config'), node.config as NodeConfig)
    const caFile = join(dir, `boot-ca-${Math.random().toString(36).slice(2)}.pem`)
    writeFileSync(caFile, pki.caPem)
    const pushed = NodeConfig.fromPartial({ networkId: 'net1', nodeId: 'n1', version: 2, discovery: { httpsCaFile: caFile } })
    expect(await tryConfig(store, pushed, { windowMs: 10, apply: (c) => node.applyEffective(c), isHealthy: () => true })).toEqual({
      outcome: 'promoted',
      version: 2
    })
    unlinkSync(caFile) // gone before the next boot

    const rebooted = build({ stateDir }).node
    await (rebooted as unknown as { bootConfig(): Promise<void> }).bootConfig()
    expect(rebooted.effectiveConfig().config.version).toBe(0) // the local config alone
    const reopened = await ConfigStore.open(join(stateDir, 'config'), rebooted.config as NodeConfig)
    for (const s of [
      rebooted.agent.configStore ?? (await (rebooted as unknown as { openConfigStore(): Promise<ConfigStore> }).openConfigStore()),
      reopened
    ]) {
      expect(s.current().version).toBe(0) // heartbeats say what is in force: the manager sees v2 is not
      expect(s.lastTrial()).toMatchObject({ version: 2, outcome: 'reverted' })
      expect(s.lastTrial()?.reason).toContain('discovery.httpsCaFile')
    }
  })

  it('a stored config that fails partway at boot: the fallback undoes the steps it ran', async () => {
    const { node } = build()
    const stateDir = node.config.stateDir
    const store = await ConfigStore.open(join(stateDir, 'config'), node.config as NodeConfig)
    const pushed = NodeConfig.fromPartial({
      networkId: 'net1',
      nodeId: 'n1',
      version: 2,
      logging: { level: 'debug' },
      peers: { phiThreshold: 12 },
      k3s: { enabled: true, nodeName: 'refused' }
    })
    expect(await tryConfig(store, pushed, { windowMs: 10, apply: (c) => node.applyEffective(c), isHealthy: () => true })).toEqual({
      outcome: 'promoted',
      version: 2
    })

    const { node: rebooted, levels } = build({ stateDir })
    const real = rebooted.runtime.reconfigure.bind(rebooted.runtime)
    rebooted.runtime.reconfigure = async (k3s) => {
      if (k3s?.nodeName === 'refused') throw new Error('k3s refused the config') // e.g. its binary gone since
      return real(k3s)
    }
    await (rebooted as unknown as { bootConfig(): Promise<void> }).bootConfig()
    expect(levels).toEqual(['debug', 'info'])
    expect(rebooted.peers!.monitor.settings()).toEqual({ pingIntervalMs: 1000, suspectPhi: 8 })
    expect(rebooted.peers!.monitor.peers().map((p) => p.address)).toEqual(['10.77.1.1:7000'])
    expect(rebooted.effectiveConfig().config.version).toBe(0)
  })

  it('stop during a trial waits for its revert, also one slower than the per-component stop deadline (a K3s restart)', async () => {
    const { node } = build()
    node.stopDeadlineMs = 100 // shorter than the revert below takes
    const reverted: number[] = []
    const real = node.runtime.reconfigure.bind(node.runtime)
    node.runtime.reconfigure = async (k3s) => {
      if (k3s?.nodeName !== 'tried') {
        await new Promise((resolve) => setTimeout(resolve, 1000)) // K3s stopped and started again for the last-known-good
        reverted.push(Date.now())
      }
      return real(k3s)
    }
    await node.start()
    const store = node.agent.configStore!
    const duties = (
      node.agent as unknown as { duties: { trialConfig(c: NodeConfig, w: number, s: AbortSignal | undefined): Promise<unknown> } }
    ).duties
    const trial = duties.trialConfig(
      NodeConfig.fromPartial({ networkId: 'net1', nodeId: 'n1', version: 2, k3s: { enabled: true, nodeName: 'tried' } }),
      60_000,
      (node.agent as unknown as { controller: AbortController }).controller.signal
    )
    await untilTrue('config on trial', () => store.trial()?.version === 2, 10_000, 20)
    await node.stop()
    expect(reverted).toHaveLength(1) // the revert ran to its end before stop returned
    expect(store.trial()).toBeUndefined()
    expect(node.effectiveConfig().config.version).toBe(0)
    expect(await trial).toMatchObject({ outcome: 'reverted', version: 2 })
  }, 30_000)

  describe('discovery', () => {
    const key = testSigningKey()
    const bundle = (): ReturnType<typeof testTrustBundle> => testTrustBundle('net1', [key], 1, [pki.caPem.toString()])
    const servers: Server[] = []
    afterAll(async () => {
      for (const s of servers) {
        s.closeAllConnections()
        await new Promise<void>((resolve) => s.close(() => resolve()))
      }
    })
    const serve = async (spores: () => SignedSpore[]): Promise<string> => {
      const id = pki.issue(`https-${servers.length}`, 'spiffe://net1/manager/spore-manager')
      const server = createServer({ key: id.keyPem, cert: id.certPem }, (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(Buffer.from(SporeBundle.encode({ spores: spores() }).finish()))
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      servers.push(server)
      return `https://127.0.0.1:${(server.address() as AddressInfo).port}/spores`
    }
    const sporeClientOf = (node: MyceliumNode): SporeClient => {
      const components = (node.agent as unknown as { components: { createSporeClient: (b: ReturnType<typeof bundle>) => SporeClient } })
        .components
      const client = components.createSporeClient(bundle())
      ;(node.agent as unknown as { spores: SporeClient }).spores = client // as the agent holds it once running
      return client
    }

    it('clockSlack and refreshInterval: a running spore client is retuned', async () => {
      const { node } = build()
      const client = sporeClientOf(node)
      expect(client.timing()).toMatchObject({ clockSlackMs: 30_000, refreshIntervalMs: 60_000 })
      await node.applyEffective(
        NodeConfig.fromPartial({ version: 2, discovery: { clockSlack: { seconds: 5 }, refreshInterval: { seconds: 20 } } })
      )
      expect(client.timing()).toMatchObject({ clockSlackMs: 5000, refreshIntervalMs: 20_000 })
    })

    it('a running peer monitor and spore client refuse a value they cannot take (typed error, nothing changed)', async () => {
      const { node } = build()
      const client = sporeClientOf(node)
      const monitor = node.peers!.monitor
      expect(() => monitor.retune({ suspectPhi: -1 })).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
      expect(() => monitor.retune({ pingIntervalMs: 0 })).toThrow('must be above 0')
      expect(monitor.settings()).toEqual({ pingIntervalMs: 1000, suspectPhi: 8 })
      expect(() => client.retune({ clockSlackMs: -1 })).toThrow(expect.objectContaining({ name: 'InvalidConfigError' }))
      expect(() => client.retune({ refreshIntervalMs: 0 })).toThrow('must be above 0')
      expect(client.timing()).toMatchObject({ clockSlackMs: 30_000, refreshIntervalMs: 60_000 })
      await client.stop()
    })

    it('httpsUrls + httpsCaFile (and the bootstrap spore’s https_urls): spores are fetched over HTTPS pinned to the CA', async () => {
      const { node } = build()
      const client = sporeClientOf(node)
      const nm = signSporeForTest(serviceSpore('net1', 'network-manager', 1, ['127.0.0.1:7443']), [key])
      const second = await serve(() => [nm])
      const bootstrap = signSporeForTest(
        {
          networkId: 'net1',
          name: 'bootstrap',
          sequence: 1,
          issuedAt: new Date(Date.now() - 1000),
          expiresAt: new Date(Date.now() + 86_400_000),
          body: { $case: 'bootstrap', value: { trustBundle: bundle(), seeds: [], httpsUrls: [second] } }
        },
        [key]
      )
      const first = await serve(() => [bootstrap])
      await client.refresh()
      expect(client.resolveService('network-manager')).toEqual([]) // no HTTPS source configured yet
      const caFile = join(dir, 'spores-ca.pem')
      writeFileSync(caFile, pki.caPem)
      await node.applyEffective(NodeConfig.fromPartial({ version: 2, discovery: { httpsUrls: [first], httpsCaFile: caFile } }))
      await client.refresh() // the configured URL: the bootstrap spore, naming the second URL
      expect(client.bootstrap().httpsUrls).toEqual([second])
      await client.refresh() // now the bootstrap spore's URL too
      expect(client.resolveService('network-manager').map((e) => e.address)).toEqual(['127.0.0.1:7443'])
      expect(client.status().activeSource).toBe('https')
      await client.stop()
    })

    it('sourceTimeout and a CA that does not match: the fetch fails, naming the URL', async () => {
      const { node } = build()
      const client = sporeClientOf(node)
      const url = await serve(() => [])
      const other = createTestPki('net1')
      const caFile = join(dir, 'other-ca.pem')
      writeFileSync(caFile, other.caPem)
      other.cleanup()
      await node.applyEffective(
        NodeConfig.fromPartial({ version: 2, discovery: { httpsUrls: [url], httpsCaFile: caFile, sourceTimeout: { seconds: 2 } } })
      )
      const r = await client.refresh()
      expect(r.failures.map((f) => f.source)).toContain('https')
      expect(r.failures.find((f) => f.source === 'https')?.error.message).toContain(url)
      await client.stop()
    })
  })
})
