import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodeConfig, Phase, type Logger } from '@mycelium/core-interfaces'
import { MyceliumNode } from './node.js'
import { devStatusSocket } from './dev-socket.js'

export { devStatusSocket }

export interface DevOptions {
  agents: number
  heartbeatMs: number
  /** HTTP status address of the first agent. @default 127.0.0.1:0 */
  httpAddress?: string
  /** Status socket of the first agent. @default devStatusSocket() */
  socketPath?: string
}

export interface DevSession {
  nodes: MyceliumNode[]
  /** The embedded dev network (its fault controls and command channel). */
  network: import('@mycelium/dev-network').DevNetwork
  endpoints: Record<string, string>
  stop(): Promise<void>
}

/** `@mycelium/dev-network` is not in this build (the release artifact ships without it). */
export class DevNetworkMissingError extends Error {
  static readonly NAME = 'DevNetworkMissingError'
  override readonly name = DevNetworkMissingError.NAME
}

export const isDevNetworkMissingError = (err: unknown): err is DevNetworkMissingError =>
  (err as Error | undefined)?.name === DevNetworkMissingError.NAME

/**
 * The dev network is a development tool (it issues certificates): a
 * devDependency, never in the release artifact. Absent, `dev` says in one
 * line how to get it.
 */
async function loadDevNetwork(): Promise<typeof import('@mycelium/dev-network')> {
  try {
    return await import('@mycelium/dev-network')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw err
    throw new DevNetworkMissingError(
      '`node-core dev` needs @mycelium/dev-network, which the release artifact does not ship: run `npm start` in a checkout of the Mycelium repository instead'
    )
  }
}

/**
 * The embedded default (`npm start`): a dev network in this process on
 * 127.0.0.1, a throwaway state dir, and `agents` nodes that enrol, discover,
 * register and hand off while their transitions are logged live.
 * dev-network is loaded only here, so `run` never pays for it.
 */
export async function startDev(options: DevOptions, log: Logger): Promise<DevSession> {
  const { startDevNetwork, startControlServer } = await loadDevNetwork()
  const dir = await mkdtemp(join(tmpdir(), 'mycelium-dev-'))
  const net = await startDevNetwork({
    networkId: 'dev',
    dir: join(dir, 'network'),
    heartbeatIntervalMs: options.heartbeatMs,
    logger: log.forComponent('dev-network')
  })
  // `dev-network nodes|command|config push|fault --dir <network dir>` drive this session from another terminal.
  const control = await startControlServer(net)
  log.info('dev network up', { ...net.endpoints, stateDir: dir, networkDir: net.dir })
  const nodes: MyceliumNode[] = []
  try {
    for (let i = 1; i <= options.agents; i++) {
      const nodeId = `dev-node-${i}`
      const first = i === 1
      const config = NodeConfig.fromPartial({
        networkId: 'dev',
        nodeId,
        stateDir: join(dir, nodeId),
        identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment, expectedIdentity: '', zone: '', priority: 0 }] },
        discovery: { bootstrapFile: net.bootstrapFile },
        peers: { listenAddress: '127.0.0.1:0' },
        status: {
          // The other nodes keep the default: the socket in their own state directory.
          ...(first ? { socketPath: options.socketPath ?? devStatusSocket() } : {}),
          httpListenAddress: first ? (options.httpAddress ?? '127.0.0.1:0') : 'off',
          readyInFallback: true
        }
      })
      const node = new MyceliumNode(config, log.child({ nodeId }), { joinToken: await net.newJoinToken() })
      node.agent.on('transition', (t) => {
        if (t.to === Phase.MANAGED) log.info(`${nodeId} is MANAGED — handed off to the Network Manager`, { nodeId })
      })
      await node.start()
      nodes.push(node)
    }
    // Loopback has no multicast: the dev agents learn each other as seeds.
    for (const a of nodes) {
      for (const b of nodes) {
        if (a !== b && b.peers != null)
          a.peers?.monitor.addPeer({
            endpoint: { address: b.peers.server.address, expectedIdentity: '', zone: '', priority: 0 },
            source: 'seed'
          })
      }
    }
  } catch (err) {
    for (const n of nodes.reverse()) await n.stop()
    control.close()
    await net.stop()
    throw err
  }
  return {
    nodes,
    network: net,
    endpoints: { ...net.endpoints, status: `unix://${options.socketPath ?? devStatusSocket()}`, http: nodes[0]?.http.address ?? '' },
    async stop() {
      for (const n of [...nodes].reverse()) await n.stop()
      control.close()
      await net.stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
