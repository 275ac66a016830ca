import { copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { DistressProblem, NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { MyceliumNode } from '@mycelium/node-core'
import { until } from '@mycelium/testing'
import type { Scenario } from '../harness.js'

/**
 * Emergency contact, in one process on 127.0.0.1 (real mTLS, real gRPC):
 * node A with a private bootstrap file, its peer B MANAGED. The Network
 * Manager moves (new port, new spores) and the Spore Manager refuses every
 * call, so A learns the move only through B.
 * - distress-round-trip: one signed call A → B → Network Manager → B → A, answer applied;
 * - isolation-to-distress-answered: manager moved → A's first delivered round
 *   (includes A's threshold, here 2 s = 2 × reconnect.max);
 * - manager-moved-to-managed: manager moved → A MANAGED on the moved manager.
 */
export function distressScenarios(): Scenario[] {
  return [
    {
      id: 'distress-through-peer',
      description: 'emergency contact: a node whose manager moved gets help through a MANAGED peer',
      runs: 1,
      metrics: [
        { name: 'distress-round-trip', unit: 'ms', better: 'lower' },
        { name: 'isolation-to-distress-answered', unit: 's', better: 'lower' },
        { name: 'manager-moved-to-managed', unit: 's', better: 'lower' }
      ],
      async run() {
        const dir = mkdtempSync(join(tmpdir(), 'bench-distress-'))
        const netDir = join(dir, 'net')
        let net: DevNetwork = await startDevNetwork({ networkId: 'net1', dir: netDir, heartbeatIntervalMs: 500 })
        const nodes: MyceliumNode[] = []
        const build = async (nodeId: string, bootstrapFile: string, seeds: string[]): Promise<MyceliumNode> => {
          const node = new MyceliumNode(
            NodeConfig.fromPartial({
              networkId: 'net1',
              nodeId,
              stateDir: join(dir, nodeId),
              identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
              discovery: { bootstrapFile },
              reconnect: { initial: { seconds: 0, nanos: 200e6 }, max: { seconds: 1, nanos: 0 } },
              peers: {
                listenAddress: '127.0.0.1:0',
                seeds: seeds.map((address) => ({ address })),
                pingInterval: { seconds: 0, nanos: 300e6 }
              },
              status: { httpListenAddress: 'off', socketPath: '' }
            }),
            silentLogger(),
            { joinToken: await net.newJoinToken(), distress: { checkIntervalMs: 200 } }
          )
          nodes.push(node)
          await node.start()
          await until(`${nodeId} MANAGED`, async () => node.agent.phase === Phase.MANAGED, 60_000, 20)
          return node
        }
        try {
          const b = await build('node-b', net.bootstrapFile, [])
          const aBootstrap = join(dir, 'a-bootstrap.json')
          copyFileSync(net.bootstrapFile, aBootstrap)
          const a = await build('node-a', aBootstrap, [b.peers!.server.address])
          await until('A sees B', async () => a.peers!.monitor.alivePeers().length > 0, 30_000, 20)
          const t0 = performance.now()
          const round = await a.distress!.send(
            { problem: DistressProblem.MANAGERS_UNREACHABLE, evidence: ['bench'], renewal: false },
            new AbortController().signal
          )
          const roundTripMs = performance.now() - t0
          if (!round.delivered) throw new Error(`distress not delivered: ${round.reason}`)

          let answeredAt: number | undefined
          a.distress!.onRound((r) => {
            if (r.delivered && answeredAt == null) answeredAt = performance.now()
          })
          const old = net.endpoints
          const port = (address: string): number => Number(address.split(':')[1])
          const moved = performance.now()
          await net.stop()
          net = await startDevNetwork({
            networkId: 'net1',
            dir: netDir,
            heartbeatIntervalMs: 500,
            ports: { networkManager: 0, enrollment: port(old.enrollment), sporeManager: port(old.sporeManager) }
          })
          net.faults['spore-manager'].refuseWith = grpc.status.UNAVAILABLE
          await until('A MANAGED on the moved manager', async () => net.networkManager.nodes.get('node-a')?.managed === true, 120_000, 20)
          const managedAt = performance.now()
          await until('A answered', async () => answeredAt != null, 60_000, 20)
          return {
            'distress-round-trip': roundTripMs,
            'isolation-to-distress-answered': (answeredAt! - moved) / 1000,
            'manager-moved-to-managed': (managedAt - moved) / 1000
          }
        } finally {
          for (const n of nodes.reverse()) await n.stop()
          await net.stop()
          rmSync(dir, { recursive: true, force: true })
        }
      }
    }
  ]
}
