import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {
  CommandState,
  DistressProblem,
  EmergencyAction,
  NodeConfig,
  PeerAssistClient,
  Phase,
  silentLogger
} from '@mycelium/core-interfaces'
import { clientCredentials, createIdentityStore, defaultChannelOptions, signDistress, type IdentityStore } from '@mycelium/basic-net'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import { createLogger, MyceliumNode } from '../src/index.js'
import { HttpStatusServer } from '../src/http-server.js'
import { formatStatus } from '../src/status-command.js'

/**
 * Emergency contact over real mTLS on 127.0.0.1: node A calls for help
 * through its peer B (MANAGED), B forwards to the dev network's Network
 * Manager, the answer comes back through B: fresh spores, a certificate for
 * A's CSR (A's key never leaves A), an operator-signed emergency command.
 * A forged call (naming another node) and a call from a non-member are refused.
 */
const until = (what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<true> =>
  untilTrue(what, async () => probe(), timeoutMs, 50)

describe('emergency contact through a peer', () => {
  let net: DevNetwork
  let dir: string
  const nodes: MyceliumNode[] = []
  let a: MyceliumNode
  let b: MyceliumNode

  const build = async (nodeId: string, seeds: string[]): Promise<MyceliumNode> => {
    const tokenFile = join(dir, `${nodeId}.token`)
    writeFileSync(tokenFile, await net.newJoinToken())
    const config = NodeConfig.fromPartial({
      networkId: 'net1',
      nodeId,
      stateDir: join(dir, nodeId),
      identity: { joinTokenFile: tokenFile, enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
      discovery: { bootstrapFile: net.bootstrapFile },
      peers: { listenAddress: '127.0.0.1:0', seeds: seeds.map((address) => ({ address })), pingInterval: { seconds: 0, nanos: 200e6 } },
      status: { httpListenAddress: 'off', socketPath: '' }
    })
    const node = new MyceliumNode(
      config,
      process.env.DEBUG_DISTRESS ? createLogger({ level: 'info', format: 'json', stream: process.stderr }) : silentLogger(),
      { joinToken: (await import('node:fs')).readFileSync(tokenFile, 'utf8').trim() }
    )
    nodes.push(node)
    await node.start()
    await until(`${nodeId} MANAGED`, () => node.agent.phase === Phase.MANAGED)
    return node
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-distress-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
    b = await build('node-b', [])
    a = await build('node-a', [b.peers!.server.address])
    await until('A sees B alive', () => a.peers!.monitor.peers().some((p) => p.state === 'alive'))
  })
  afterAll(async () => {
    for (const n of nodes.reverse()) await n.stop()
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('A gets fresh spores, a renewed certificate for its own key and an operator-signed command through B', async () => {
    const command = net.distress.prepareEmergency('node-a', EmergencyAction.DUMP_DIAGNOSTICS, 'drill')
    const before = a.identity.report()
    // Newer spores than A holds: the Spore Manager is cut off, then the network re-publishes (sequences bump).
    net.faults['spore-manager'].refuseWith = grpc.status.UNAVAILABLE
    net.spores.killStreams()
    await net.publishAll()
    const known = a.agent.sporeClient!.knownSequences()['service/network-manager']
    const round = await a.distress!.send(
      { problem: DistressProblem.MANAGERS_UNREACHABLE, evidence: ['drill'], renewal: true },
      new AbortController().signal
    )
    expect(round).toMatchObject({ delivered: true, via: 'node-b' })
    expect(round.applied).toEqual(expect.arrayContaining(['service/network-manager', 'certificate', command.commandId]))
    const after = a.identity.report()
    expect(after.certificateSha256).not.toBe(before.certificateSha256)
    // Same key: the CSR travelled, the key did not (the renewed certificate serves A's TLS as before).
    expect(a.identity.material()!.keyPem).toBeDefined()
    expect(a.agent.sporeClient!.knownSequences()['service/network-manager']).toBeGreaterThan(known!)
    net.faults['spore-manager'].refuseWith = undefined
    expect(net.distress.records.at(-1)).toMatchObject({ nodeId: 'node-a', relayedBy: 'node-b' })
    await until(
      'the relayed emergency command ran',
      () => a.agent.executor!.journal.get(command.commandId)?.updates.at(-1)?.state === CommandState.SUCCEEDED
    )
    // What was sent and what came back, in status, in `node-core status` and on /metrics.
    const status = a.status()
    expect(status.lastDistressSent).toMatchObject({
      distressId: round.distressId,
      problem: DistressProblem.MANAGERS_UNREACHABLE,
      peersTried: ['node-b'],
      answered: true,
      via: 'node-b'
    })
    expect(status.lastDistressAnswered?.applied).toEqual(expect.arrayContaining(['certificate', command.commandId]))
    expect(status.distressRounds).toBeGreaterThanOrEqual(1)
    const text = formatStatus(status)
    expect(text).toMatch(/distress sent +MANAGERS_UNREACHABLE \d+s ago to node-b: answered via node-b/)
    expect(text).toMatch(/help received +\d+s ago via node-b: .*certificate/)
    const http = new HttpStatusServer(
      { status: () => a.status(), counters: () => a.agent.counters },
      { listenAddress: '127.0.0.1:0', readyInFallback: true },
      silentLogger()
    )
    await http.start()
    try {
      const metrics = await (await fetch(`http://${http.address}/metrics`)).text()
      expect(metrics).toMatch(/^mycelium_distress_rounds_total [1-9]/m)
      expect(metrics).toMatch(/^mycelium_distress_last_sent_timestamp_seconds\{problem="MANAGERS_UNREACHABLE",answered="true"\} \d+/m)
      expect(metrics).toMatch(/^mycelium_distress_last_answered_timestamp_seconds [1-9]/m)
    } finally {
      await http.stop()
    }
  })

  const relayFrom = (identity: IdentityStore, envelope: ReturnType<typeof signDistress>): Promise<grpc.ServiceError | undefined> => {
    const client = new PeerAssistClient(
      b.peers!.server.address,
      clientCredentials(identity, { networkId: 'net1', role: 'node' }),
      defaultChannelOptions('net1')
    )
    return new Promise((resolve) =>
      client.relayDistress({ envelope }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err) => {
        client.close()
        resolve(err ?? undefined)
      })
    )
  }
  const distressOf = (nodeId: string, id: string) => ({
    distressId: id,
    node: { networkId: 'net1', nodeId, spiffeId: `spiffe://net1/node/${nodeId}`, certificateSha256: '' },
    phase: Phase.FALLBACK,
    problem: DistressProblem.MANAGERS_UNREACHABLE,
    evidence: [],
    help: { freshSpores: true, knownSequences: {}, renewalCsrDer: Buffer.alloc(0), emergencyCommand: true },
    raisedAt: new Date()
  })

  it('refuses a call naming another node than its signer (forged node id)', async () => {
    const err = await relayFrom(a.identity, signDistress(distressOf('node-b', 'forged-1'), a.identity.material()!, 2))
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED)
    expect(err?.details).toMatch(/names net1\/node-b, its certificate is net1\/node-a/)
  })

  it('refuses a call from a certificate of the network CA whose node never enrolled (non-member)', async () => {
    const ghost = createIdentityStore(
      {},
      {
        networkId: 'net1',
        name: 'ghost',
        role: 'node',
        keyFile: join(dir, 'ghost.key'),
        certificateFile: join(dir, 'ghost.crt'),
        caFile: join(net.dir, 'ca.crt')
      }
    )
    await ghost.start()
    const { certificatePem } = await net.ca.issueFromCsr(await ghost.createCsr(), { notAfter: new Date(Date.now() + 3_600_000) })
    await ghost.install(certificatePem, net.caPem)
    try {
      const client = new PeerAssistClient(
        b.peers!.server.address,
        clientCredentials(ghost, { networkId: 'net1', role: 'node' }),
        defaultChannelOptions('net1')
      )
      const res = await new Promise<{ delivered: boolean; reason: string }>((resolve, reject) =>
        client.relayDistress(
          { envelope: signDistress(distressOf('ghost', 'ghost-1'), ghost.material()!, 2) },
          new grpc.Metadata(),
          { deadline: Date.now() + 10_000 },
          (err, r) => {
            client.close()
            if (err != null) reject(err)
            else resolve(r)
          }
        )
      )
      expect(res.delivered).toBe(false)
      expect(res.reason).toMatch(/PERMISSION_DENIED: node "ghost" is not a member of net1/)
      expect(net.distress.records.some((r) => r.nodeId === 'ghost')).toBe(false)
    } finally {
      ghost.stop()
    }
  })
})
