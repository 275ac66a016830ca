import type { ComponentHealth, Logger, NodeConfig, PeerStatus, StatusReport, UpdateStatus } from '@mycelium/core-interfaces'
import type { IdentityStore } from '@mycelium/basic-net'
import type { BootstrapAgent, EffectiveConfig } from '@mycelium/bootstrap-agent'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import { aggregateHealth, type AggregatedHealth } from './health.js'
import { stateDirOf } from './identity.js'
import { statusSocketPath } from './package-init.js'
import { StatusServer, type StatusSource } from './status-server.js'
import { HttpStatusServer, type HttpMetricsSource } from './http-server.js'
import { withoutSecrets } from './live-config.js'
import { DEFAULT_HTTP_ADDRESS } from './defaults.js'

/** What node health is read from, at the moment it is asked for (node.ts hands them in). */
export interface NodeHealthSources {
  /** The local config (which status surfaces are configured). */
  config: Readonly<NodeConfig>
  /** The config in force (whether K3s is asked for). */
  effective: Readonly<NodeConfig>
  agent: BootstrapAgent
  /** Why the agent is in its phase (its last transition). */
  phaseReason: string
  identity: IdentityStore
  runtime: K3sRuntime
  /** Whether the node runs (a status surface not started before is no problem). */
  started: boolean
  statusServing: boolean
  httpServing: boolean
  /** Further lines, in order (emergency measures, dynamic components, watchdog). */
  extra: ComponentHealth[]
}

/** Node health (health.ts `aggregateHealth`) from each component's current facts. */
export function nodeHealth(n: NodeHealthSources): AggregatedHealth {
  const spores = n.agent.sporeClient
  const sporeStatus = spores?.status()
  const identity = n.identity.report()
  const status = n.config.status
  return aggregateHealth({
    phase: n.agent.phase,
    phaseReason: n.phaseReason,
    identity: { state: identity.state, reason: identity.reason },
    ...(spores != null && sporeStatus != null
      ? {
          spores: {
            mode: sporeStatus.mode,
            reason: sporeStatus.reason,
            sporeCount: sporeStatus.sporeCount,
            liveCount: spores.list().length
          }
        }
      : {}),
    runtime: n.runtime.health(),
    k3sEnabled: n.effective.k3s?.enabled === true,
    statusServers: [
      {
        name: 'status-grpc',
        configured: n.started && (statusSocketPath(n.config, stateDirOf(n.config)) !== '' || (status?.grpcListenAddress ?? '') !== ''),
        serving: n.statusServing
      },
      { name: 'status-http', configured: n.started && (status?.httpListenAddress ?? '') !== 'off', serving: n.httpServing }
    ],
    extra: n.extra
  })
}

/** The node's local status surfaces: NodeStatus gRPC (unix socket and/or TCP) and HTTP (/healthz, /readyz, /metrics). */
export function createStatusSurfaces(
  config: Readonly<NodeConfig>,
  log: Logger,
  source: StatusSource & HttpMetricsSource
): { statusServer: StatusServer; http: HttpStatusServer } {
  const status = config.status
  return {
    statusServer: new StatusServer(
      source,
      { socketPath: statusSocketPath(config, stateDirOf(config)), listenAddress: status?.grpcListenAddress ?? '' },
      log.forComponent('node-core:status')
    ),
    http: new HttpStatusServer(
      source,
      { listenAddress: status?.httpListenAddress || DEFAULT_HTTP_ADDRESS, readyInFallback: status?.readyInFallback ?? true },
      log.forComponent('node-core:http')
    )
  }
}

/** The agent's status with what node-core adds: effective config, node health, self-update and the peer table. */
export function nodeStatusReport(
  agentStatus: StatusReport,
  effective: EffectiveConfig,
  health: AggregatedHealth,
  update: UpdateStatus | undefined,
  peers: PeerStatus[]
): StatusReport {
  return {
    ...agentStatus,
    config: { ...agentStatus.config!, sectionVersions: { ...effective.versions } },
    effectiveConfig: withoutSecrets(effective.config),
    health: health.state,
    healthReason: health.reason,
    update,
    peers
  }
}
