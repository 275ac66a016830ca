import { Phase, type Logger, type NodeConfig, type PeerStatus } from '@mycelium/core-interfaces'
import {
  clientCredentials,
  createMulticastDiscovery,
  createPeerAssistServer,
  createPeerMonitor,
  defaultChannelOptions,
  type IdentityStore,
  type MulticastDiscovery,
  type PeerAssistServer,
  type PeerAssistServerComponents,
  type PeerMonitor,
  type PeerEntry
} from '@mycelium/basic-net'
import type { BootstrapAgent } from '@mycelium/bootstrap-agent'
import { multicastGroup, peerTimings, secureRandom } from './package-init.js'

/** The node's basic networking: present when its local config sets peers.listenAddress. */
export interface NodePeers {
  server: PeerAssistServer
  monitor: PeerMonitor
  multicast?: MulticastDiscovery | undefined
}

export interface NodePeersDeps {
  /** The local config (peers.listenAddress and the first seeds and timings). */
  config: Readonly<NodeConfig>
  identity: IdentityStore
  logger: Logger
  /** The agent, once built (its phase is sent in pings; its spores are shared). */
  agent: () => BootstrapAgent
  /** Emergency contact: forwards a peer's signed call for help (distress.ts `distressRelay`). */
  onSignedDistress?: PeerAssistServerComponents['onSignedDistress']
  /** Release artifacts this node holds, served to peers by digest (self-update). */
  artifacts?: PeerAssistServerComponents['artifacts']
}

/** The peer monitor (pinging the seeds) and the PeerAssist server, or undefined when peer networking is off. */
export function createNodePeers(d: NodePeersDeps): Omit<NodePeers, 'multicast'> | undefined {
  const { config } = d
  const listenAddress = config.peers?.listenAddress
  if (!listenAddress) return undefined
  const timings = peerTimings(config as NodeConfig)
  const monitor = createPeerMonitor(
    {
      logger: d.logger,
      credentials: clientCredentials(d.identity, { networkId: config.networkId, role: 'node' }),
      phase: () => d.agent().phase
    },
    {
      selfNodeId: config.nodeId,
      pingIntervalMs: timings.pingIntervalMs,
      detector: { suspectPhi: timings.suspectPhi },
      channelOptions: defaultChannelOptions(config.networkId),
      random: secureRandom
    }
  )
  for (const seed of config.peers?.seeds ?? []) monitor.addPeer({ endpoint: seed, source: 'seed' })
  const server = createPeerAssistServer(
    {
      logger: d.logger,
      identity: d.identity,
      spores: () => (d.agent().sporeClient?.list() ?? []).map((v) => ({ name: v.name, sequence: v.sequence, signed: v.signed })),
      state: () => ({ phase: d.agent().phase, managersReachable: d.agent().phase === Phase.MANAGED }),
      ...(d.onSignedDistress != null ? { onSignedDistress: d.onSignedDistress } : {}),
      ...(d.artifacts != null ? { artifacts: d.artifacts } : {})
    },
    { networkId: config.networkId, nodeId: config.nodeId, listenAddress }
  )
  return { server, monitor }
}

/** LAN discovery as the config in force asks (peers.multicast*), announcing the PeerAssist server; peers found join the monitor. */
export function createNodeMulticast(
  peers: NodePeers,
  effective: NodeConfig,
  d: Pick<NodePeersDeps, 'config' | 'identity' | 'logger'>
): MulticastDiscovery | undefined {
  const c = effective.peers
  if (c?.multicastEnabled !== true) return undefined
  const multicast = createMulticastDiscovery(
    { logger: d.logger, identity: d.identity },
    {
      networkId: d.config.networkId,
      nodeId: d.config.nodeId,
      endpoints: () => [{ address: peers.server.address, expectedIdentity: '', zone: '', priority: 0 }],
      ...multicastGroup(effective),
      ...(c.multicastInterface ? { interfaceAddress: c.multicastInterface } : {})
    }
  )
  multicast.on('peer', (p) => peers.monitor.addPeer({ endpoint: p.endpoints[0]!, nodeId: p.nodeId, source: 'multicast' }))
  return multicast
}

/** The peer table as NodeStatus reports it (a peer's SPIFFE id follows from its node id). */
export function peerStatuses(networkId: string, peers: readonly PeerEntry[]): PeerStatus[] {
  return peers.map((p) => ({
    identity: {
      networkId,
      nodeId: p.nodeId ?? '',
      spiffeId: p.nodeId != null ? `spiffe://${networkId}/node/${p.nodeId}` : '',
      certificateSha256: ''
    },
    endpoint: { address: p.address, expectedIdentity: '', zone: '', priority: 0 },
    state: p.state,
    ...(p.lastSeenMs != null ? { lastSeen: new Date(p.lastSeenMs) } : {}),
    phi: Number.isFinite(p.phi) ? p.phi : 0,
    source: p.source
  }))
}
