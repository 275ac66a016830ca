import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { runCli as devNetworkCli, startControlServer, startDevNetwork, type DevNetwork, type NodeRow } from '@mycelium/dev-network'
import { MyceliumNode, runCli as nodeCoreCli } from '../src/index.js'

/**
 * An operator drives a node by hand through the dev network's CLI (and so
 * its control API): lists the nodes, sends commands and watches their status
 * updates, pushes a config fragment that the node tries. A real agent
 * (a MyceliumNode) on the other end.
 */
function capture() {
  const lines = { out: '', err: '' }
  return {
    lines,
    io: { out: (t: string) => void (lines.out += t), err: (t: string) => void (lines.err += t), untilStopped: () => Promise.resolve() }
  }
}

describe('an operator against a real agent: dev-network nodes, command, config push; PEM files; peers ping', () => {
  let dir: string
  let net: DevNetwork
  let node: MyceliumNode
  let control: Server
  let netDir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nc-devnet-cli-'))
    net = await startDevNetwork({ networkId: 'dev', dir: join(dir, 'net'), heartbeatIntervalMs: 1000 })
    netDir = net.dir
    control = await startControlServer(net)
    node = new MyceliumNode(
      NodeConfig.fromPartial({
        networkId: 'dev',
        nodeId: 'dev-node-1',
        stateDir: join(dir, 'node'),
        identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
        discovery: { bootstrapFile: net.bootstrapFile },
        // Config trials (the network's first config, then the pushed one) confirm quickly.
        handoff: { configConfirmWindow: { seconds: 0, nanos: 300_000_000 } },
        status: { socketPath: join(dir, 'status.sock'), httpListenAddress: 'off' },
        peers: { listenAddress: '127.0.0.1:0' }
      }),
      silentLogger(),
      { joinToken: await net.newJoinToken() }
    )
    const managed = new Promise<void>((resolve) => node.agent.on('transition', (t) => t.to === Phase.MANAGED && resolve()))
    const session = new Promise<void>((resolve) => net.commands.on('session', (id, s) => id === 'dev-node-1' && s === 'open' && resolve()))
    await node.start()
    await Promise.all([managed, session])
    // The network's first config has been tried and promoted, and the manager has heard of it.
    while (net.networkManager.nodes.get('dev-node-1')?.lastHealth?.lastConfigTrial == null)
      await new Promise((resolve) => setTimeout(resolve, 50))
  }, 60_000)

  afterAll(async () => {
    control?.close()
    await node?.stop()
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('nodes --json: enrolled, registered and managed, lease, phase, last heartbeat, agent version, config version, components', async () => {
    const c = capture()
    expect(await devNetworkCli(['nodes', '--dir', netDir, '--json'], c.io)).toBe(0)
    const rows = JSON.parse(c.lines.out) as NodeRow[]
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({
      nodeId: 'dev-node-1',
      registered: true,
      managed: true,
      phase: 'MANAGED',
      agentVersion: expect.stringMatching(/^\d+\.\d+\.\d+/),
      configVersion: expect.any(Number),
      commandSession: true
    })
    expect(rows[0]!.enrolledAt).not.toBe('')
    expect(rows[0]!.leaseRemainingMs).toBeGreaterThan(0)
    expect(Date.parse(rows[0]!.lastHeartbeatAt)).not.toBeNaN()
    expect(rows[0]!.components.length).toBeGreaterThan(0)
    const t = capture()
    expect(await devNetworkCli(['nodes', '--dir', netDir], t.io)).toBe(0)
    expect(t.lines.out).toMatch(/^NODE\s+ENROLLED\s+REGISTERED\s+LEASE\s+PHASE/)
    expect(t.lines.out).toMatch(/^dev-node-1\s+yes\s+managed\s+\d+s left\s+MANAGED/m)
  })

  it('command restart prints the status updates to a final SUCCEEDED (exit 0); an unknown component ends FAILED (exit 1)', async () => {
    const c = capture()
    expect(await devNetworkCli(['command', '--dir', netDir, '--node', 'dev-node-1', 'restart', 'status'], c.io)).toBe(0)
    expect(c.lines.out).toMatch(/^op-\S+: restart sent to dev-node-1\n/)
    expect(c.lines.out).toMatch(/SUCCEEDED/)
    expect(c.lines.out.trimEnd().split('\n').at(-1)).toBe('final: SUCCEEDED')
    const bad = capture()
    expect(await devNetworkCli(['command', '--dir', netDir, '--node', 'dev-node-1', 'restart', 'the-moon'], bad.io)).toBe(1)
    expect(bad.lines.out).toContain('unknown component "the-moon"')
  })

  it('config push sends a fragment the node tries and promotes', async () => {
    const file = join(dir, 'labels.yaml')
    writeFileSync(file, 'labels:\n  zone: b\n')
    const c = capture()
    const args = ['config', 'push', '--dir', netDir, '--node', 'dev-node-1', file, '--confirm-window', '300ms', '--timeout', '20s']
    const code = await devNetworkCli(args, c.io)
    expect(code).toBe(0)
    expect(c.lines.out).toMatch(/RUNNING/)
    expect(c.lines.out.trimEnd().split('\n').at(-1)).toBe('final: SUCCEEDED')
    expect(node.effectiveConfig().config.labels).toEqual({ zone: 'b' })
  })

  it('command emergency is signed with the operator key and applied', async () => {
    const c = capture()
    const args = ['command', '--dir', netDir, '--node', 'dev-node-1', 'emergency', 'stop-accepting-workloads', '--reason', 'drill']
    expect(await devNetworkCli(args, c.io)).toBe(0)
    expect(c.lines.out.trimEnd().split('\n').at(-1)).toBe('final: SUCCEEDED')
    expect(node.acceptingWorkloads).toBe(false)
  })

  it('refusals are one line: an unknown node, a bad emergency action', async () => {
    const c = capture()
    expect(await devNetworkCli(['command', '--dir', netDir, '--node', 'nobody', 'restart'], c.io)).toBe(1)
    expect(c.lines.err.trimEnd().split('\n')).toEqual(['error: command --node: no node "nobody" in this network (see: dev-network nodes)'])
    const e = capture()
    expect(await devNetworkCli(['command', '--dir', netDir, '--node', 'dev-node-1', 'emergency', 'nuke'], e.io)).toBe(1)
    expect(e.lines.err.trimEnd().split('\n')).toEqual([expect.stringMatching(/^error: command emergency: action must be one of isolate, /)])
  })

  describe('a second node (enrolled with `node-core identity init`)', () => {
    let config: string
    beforeAll(async () => {
      config = join(dir, 'edge-2.yaml')
      writeFileSync(join(dir, 'edge-2.token'), await net.newJoinToken())
      writeFileSync(
        config,
        [
          'networkId: dev',
          'nodeId: edge-2',
          `stateDir: ${join(dir, 'edge-2')}`,
          'identity:',
          `  joinTokenFile: ${join(dir, 'edge-2.token')}`,
          '  enrollmentEndpoints:',
          `    - address: ${net.endpoints.enrollment}`,
          ''
        ].join('\n')
      )
      const c = capture()
      expect(await nodeCoreCli(['identity', 'init', '--config', config], { ...c.io, env: {} })).toBe(0)
    })

    it('PEM files end with a newline: `cat node.crt ca.crt` is a bundle; openssl verifies the certificate and shows its SPIFFE URI', () => {
      const id = join(dir, 'edge-2', 'identity')
      const managers = join(netDir, 'managers')
      const pems = [
        join(id, 'node.crt'),
        join(id, 'ca.crt'),
        join(id, 'node.key'),
        join(netDir, 'ca.crt'),
        ...readdirSync(managers).map((f) => join(managers, f))
      ]
      for (const file of pems) expect([file, readFileSync(file, 'utf8').endsWith('-----\n')]).toEqual([file, true])
      const bundle = join(dir, 'bundle.pem')
      writeFileSync(bundle, readFileSync(join(id, 'node.crt'), 'utf8') + readFileSync(join(id, 'ca.crt'), 'utf8'))
      expect(execFileSync('openssl', ['storeutl', '-noout', '-certs', bundle], { encoding: 'utf8' })).toContain('Total found: 2')
      expect(execFileSync('openssl', ['verify', '-CAfile', join(id, 'ca.crt'), join(id, 'node.crt')], { encoding: 'utf8' }).trim()).toBe(
        `${join(id, 'node.crt')}: OK`
      )
      expect(
        execFileSync('openssl', ['x509', '-in', join(id, 'node.crt'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' })
      ).toContain('URI:spiffe://dev/node/edge-2')
    })

    it("`node-core peers ping` calls the first node's PeerAssist with edge-2's identity", async () => {
      const c = capture()
      expect(await nodeCoreCli(['peers', 'ping', node.peers!.server.address, '--config', config], { ...c.io, env: {} })).toBe(0)
      expect(c.lines.out).toContain('identity   spiffe://dev/node/dev-node-1')
      // What the peer answers (its phase may move under load: the link to its manager is not what is tested here).
      expect(c.lines.out).toMatch(/^phase\s+(MANAGED|FALLBACK|DISCOVERY|REGISTRATION|HANDOFF)$/m)
      expect(c.lines.out).toMatch(/^managers\s+(not )?reachable$/m)
      expect(c.lines.out).toMatch(/^rtt\s+\d+\.\d ms/m)
      const down = capture()
      expect(await nodeCoreCli(['peers', 'ping', '127.0.0.1:1', '--config', config], { ...down.io, env: {} })).toBe(3)
      expect(down.lines.err.trimEnd().split('\n')).toEqual([expect.stringMatching(/^error: peer 127\.0\.0\.1:1 did not answer/)])
    })
  })
})
