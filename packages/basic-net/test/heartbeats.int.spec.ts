import { once } from 'node:events'
import {
  clientCredentials,
  createPeerAssistServer,
  createPeerMonitor,
  defaultChannelOptions,
  PhiAccrualDetector,
  type IdentityStore,
  type PeerAssistServer,
  type PeerEntry,
  type PeerMonitor
} from '../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { until as untilTrue } from '@mycelium/testing'
import { enrolledIdentity, tempDir } from './helpers/pki.js'

const NET = 'net1'
const PING_MS = 200

interface TestNode {
  id: string
  identity: IdentityStore
  server: PeerAssistServer
  monitor: PeerMonitor
  port: number
}

describe('heartbeats between three nodes on 127.0.0.1', () => {
  let tmp: ReturnType<typeof tempDir>
  let nodes: TestNode[]

  beforeAll(async () => {
    tmp = tempDir('basic-net-hb-')
    const ca = await CertificateAuthority.create(NET)
    nodes = []
    for (const id of ['node-a', 'node-b', 'node-c']) {
      const identity = await enrolledIdentity(ca, 'node', id, tmp.dir)
      const server = createPeerAssistServer({ identity }, { networkId: NET, nodeId: id })
      await server.start()
      const monitor = createPeerMonitor(
        { credentials: clientCredentials(identity, { networkId: NET, role: 'node' }) },
        {
          selfNodeId: id,
          pingIntervalMs: PING_MS,
          pingTimeoutMs: PING_MS,
          channelOptions: { ...defaultChannelOptions(NET), 'grpc.max_reconnect_backoff_ms': 200 }
        }
      )
      nodes.push({ id, identity, server, monitor, port: server.port })
    }
    for (const n of nodes) {
      for (const other of nodes)
        if (other !== n)
          n.monitor.addPeer({ endpoint: { address: other.server.address, expectedIdentity: '', zone: '', priority: 0 }, source: 'seed' })
      n.monitor.start()
    }
  })

  afterAll(async () => {
    for (const n of nodes ?? []) {
      await n.monitor.stop()
      await n.server.stop()
      n.identity.stop()
    }
    tmp?.cleanup()
  })

  const stateOf = (viewer: TestNode, target: TestNode): string | undefined =>
    viewer.monitor.peers().find((p) => p.nodeId === target.id)?.state

  const until = (what: string, probe: () => boolean, timeoutMs = 15_000): Promise<true> => untilTrue(what, probe, timeoutMs)

  it('sees every peer alive, then a stopped one suspect and down within the bound, then up again after restart', async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode]
    await until('all alive', () => nodes.every((n) => nodes.filter((o) => o !== n).every((o) => stateOf(n, o) === 'alive')))

    // The bound for these settings: silence until phi reaches the threshold, plus the suspicion period.
    const bound = (() => {
      const d = new PhiAccrualDetector({ expectedIntervalMs: PING_MS })
      for (let t = 0; t <= 20 * PING_MS; t += PING_MS) d.heartbeat(t)
      return d.downBoundMs()
    })()

    const events: Array<{ viewer: string; to: string; at: number }> = []
    for (const viewer of [a, b]) {
      for (const kind of ['peer:suspect', 'peer:down', 'peer:up'] as const) {
        viewer.monitor.on(kind, (p: PeerEntry) => {
          if (p.nodeId === c.id) events.push({ viewer: viewer.id, to: kind, at: Date.now() })
        })
      }
    }
    const stoppedAt = Date.now()
    await c.server.stop()
    await until('a and b see c down', () => stateOf(a, c) === 'down' && stateOf(b, c) === 'down')
    for (const viewer of [a.id, b.id]) {
      const seq = events.filter((e) => e.viewer === viewer).map((e) => e.to)
      expect(seq).toEqual(['peer:suspect', 'peer:down'])
      const down = events.find((e) => e.viewer === viewer && e.to === 'peer:down')!
      // Measured from the stop; one extra ping interval for the last answer before it.
      expect(down.at - stoppedAt).toBeLessThanOrEqual(bound + PING_MS + 500)
    }
    // the live peers stayed alive throughout
    expect(stateOf(a, b)).toBe('alive')
    expect(stateOf(b, a)).toBe('alive')

    // Restart c on the same port: up again.
    c.server = createPeerAssistServer({ identity: c.identity }, { networkId: NET, nodeId: c.id, listenAddress: `127.0.0.1:${c.port}` })
    const upAgain = once(a.monitor, 'peer:up')
    await c.server.start()
    await upAgain
    await until('a and b see c alive', () => stateOf(a, c) === 'alive' && stateOf(b, c) === 'alive')
  })
})
