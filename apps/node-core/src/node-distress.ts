import type { DistressRoundStatus, Logger, NodeConfig, StatusReport } from '@mycelium/core-interfaces'
import {
  clientCredentials,
  defaultChannelOptions,
  endpointCredentials,
  type IdentityStore,
  type PeerAssistServerComponents,
  type PeerEntry
} from '@mycelium/basic-net'
import type { BootstrapAgent } from '@mycelium/bootstrap-agent'
import {
  DistressBeacon,
  distressInitFor,
  distressRelay,
  type DistressBeaconComponents,
  type DistressBeaconInit,
  type DistressRound
} from './distress.js'
import { secureRandom } from './package-init.js'

/** What the node's emergency contact is wired to (node.ts hands them in; the agent is read lazily: it is built later). */
export interface NodeDistressSources {
  config: Readonly<NodeConfig>
  log: Logger
  identity: IdentityStore
  agent: () => BootstrapAgent
}

/** Relays a peer's signed call for help (PeerAssist `onSignedDistress`): to this node's manager, or on to its alive peers. */
export function peerDistressRelay(s: NodeDistressSources, alivePeers: () => PeerEntry[]): PeerAssistServerComponents['onSignedDistress'] {
  const { config, identity } = s
  const peerCredentials = clientCredentials(identity, { networkId: config.networkId, role: 'node' })
  return (relay) =>
    distressRelay({
      logger: s.log,
      agent: s.agent(),
      managerCredentials: endpointCredentials(identity, { networkId: config.networkId, role: 'manager' }),
      peerCredentials,
      channelOptions: defaultChannelOptions(config.networkId),
      alivePeers
    })(relay)
}

/** The node's distress beacon (distress.ts): timings from the config, overridden by `override` (tests). */
export function createNodeDistressBeacon(
  s: NodeDistressSources,
  peers: () => PeerEntry[],
  facts: DistressBeaconComponents['facts'],
  override: Partial<DistressBeaconInit> = {}
): DistressBeacon {
  const { config, identity } = s
  return new DistressBeacon(
    {
      logger: s.log,
      identity,
      agent: s.agent(),
      peers,
      peerCredentials: clientCredentials(identity, { networkId: config.networkId, role: 'node' }),
      channelOptions: defaultChannelOptions(config.networkId),
      facts
    },
    { ...distressInitFor(config as NodeConfig, secureRandom), ...override }
  )
}

const roundStatus = (r: DistressRound): DistressRoundStatus => ({
  distressId: r.distressId,
  problem: r.problem,
  sentAt: r.at,
  peersTried: [...r.peersTried],
  answered: r.delivered,
  via: r.via,
  reason: r.reason,
  applied: [...r.applied]
})

/** StatusReport's emergency-contact fields: the last call for help sent, the last answered, and the rounds sent. */
export function distressStatus(
  beacon: DistressBeacon | undefined
): Pick<StatusReport, 'lastDistressSent' | 'lastDistressAnswered' | 'distressRounds'> {
  return {
    lastDistressSent: beacon?.last != null ? roundStatus(beacon.last) : undefined,
    lastDistressAnswered: beacon?.lastAnswered != null ? roundStatus(beacon.lastAnswered) : undefined,
    distressRounds: beacon?.rounds ?? 0
  }
}
