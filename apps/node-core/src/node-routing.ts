import { EventEmitter } from 'node:events'
import {
  InvalidConfigError,
  type EmergencyAction,
  type Endpoint,
  type HealthState,
  type Logger,
  type NodeConfig,
  type Phase,
  type Startable
} from '@mycelium/core-interfaces'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import type { NodePeers } from './node-peers.js'
import { effectiveConfig, type BootstrapAgent, type BootstrapAgentComponents, type BootstrapAgentInit } from '@mycelium/bootstrap-agent'
import { agentTimings, logLevel, secureRandom } from './package-init.js'
import { validateAgainstLocal, validateManagedValues } from './live-config.js'
import { stateDirOf } from './identity.js'
import type { ComponentManager } from '@mycelium/component-manager'
import { clientCredentials, defaultChannelOptions, type IdentityStore } from '@mycelium/basic-net'
import { restartComponent, type NodeCommandTargets } from './node-commands.js'
import { agentComponentHooks, updateComponent } from './components.js'
import { NodeSelfUpdate, selfUpdateInitFor, type SlotPlace } from './self-update.js'
import { peerArtifactSources } from './self-update-peers.js'
import { NODE_CORE_VERSION } from './version.js'

/** What the agent's command hooks route to (node.ts hands them in; read lazily: they are built after the agent). */
export interface CommandRoutes {
  log: Logger
  components: () => ComponentManager
  selfUpdate: () => NodeSelfUpdate
  emergency: (action: EmergencyAction, reason: string) => Promise<void>
  /** What restart commands act on (node-commands.ts). */
  targets: () => NodeCommandTargets
}

/**
 * The agent's command hooks: restart (node-commands.ts), emergency
 * (node-emergency.ts), and updates — one naming a component goes to the
 * component manager (verified upgrade, rollback); an empty one updates the
 * agent (self-update.ts) — plus the dynamic components' hooks.
 */
export function agentCommandRoutes(
  r: CommandRoutes
): Pick<
  BootstrapAgentComponents,
  'restart' | 'emergency' | 'selfUpdate' | 'updateStatus' | 'onAssignments' | 'installedComponents' | 'componentsReport'
> {
  return {
    restart: (component) => restartComponent(component, r.targets()),
    emergency: (action, reason) => r.emergency(action, reason),
    ...agentComponentHooks(r.components, r.log),
    selfUpdate: {
      refuseUpdate: (u, id) => (u.component !== '' ? Promise.resolve(undefined) : r.selfUpdate().refuse(u, id)),
      update: (u, id) => (u.component !== '' ? updateComponent(r.components(), u).then(() => undefined) : r.selfUpdate().run(u, id))
    },
    updateStatus: () => r.selfUpdate().status()
  }
}

/** What the self-update handlers read from the node. */
export interface NodeSelfUpdateSources {
  log: Logger
  networkId: string
  identity: IdentityStore
  agent: BootstrapAgent
  health: () => HealthState
  phase: () => Phase
  /** The node's status change events ('change'). */
  changes: EventEmitter
  selfUpdate?: { place?: SlotPlace; requestRestart: () => void; trialWindowMs?: number }
  /** The node's config and state dir (update.* keys, self-update.state). */
  config: Readonly<NodeConfig>
  stateDir: string
  /** Peer liveness: alive peers are asked for an artifact when every URL fails (absent without peer networking). */
  monitor?: { alivePeers: () => Endpoint[] }
}

/** The update command's handlers (self-update.ts), wired to the node's phase, health, CA and the `release/node-core` spore. */
export function createNodeSelfUpdate(s: NodeSelfUpdateSources): NodeSelfUpdate {
  return new NodeSelfUpdate(
    {
      log: s.log,
      version: NODE_CORE_VERSION,
      caPem: () => s.identity.material()?.caPem,
      phase: s.phase,
      health: s.health,
      // A change event, or a second (health is computed: not every change of it is an event).
      nextChange: () => new Promise<void>((resolve) => s.changes.once('change', resolve) && setTimeout(resolve, 1000).unref()),
      requestRestart: () => s.selfUpdate?.requestRestart(),
      changed: () => s.changes.emit('change'),
      networkId: s.networkId,
      ...(s.monitor != null
        ? {
            peers: () =>
              peerArtifactSources({
                alivePeers: () => s.monitor!.alivePeers(),
                credentials: clientCredentials(s.identity, { networkId: s.networkId, role: 'node' }),
                channelOptions: defaultChannelOptions(s.networkId)
              })
          }
        : {}),
      release: async (refresh = true) => {
        const spores = s.agent.sporeClient
        if (spores == null) return undefined
        if (refresh) await spores.refresh().catch(() => undefined) // a release published a moment ago; the cached set otherwise
        return { bundle: spores.bootstrap().trustBundle, spores: spores.list() }
      }
    },
    s.selfUpdate?.place,
    {
      ...selfUpdateInitFor(s.config, s.stateDir),
      ...(s.selfUpdate?.trialWindowMs != null ? { trialWindowMs: s.selfUpdate.trialWindowMs } : {})
    }
  )
}

/** The node's parts a restart or emergency command acts on. */
export interface CommandTargetParts {
  config: Readonly<NodeConfig>
  log: Logger
  runtime: K3sRuntime
  peers?: NodePeers | undefined
  statusServer: Startable
  http: Startable
  identity: Startable
  components: ComponentManager
  restartNode: () => Promise<void>
}

/** What restart and emergency commands act on (node-commands.ts), by the names `restart <component>` takes. */
export function nodeCommandTargets(n: CommandTargetParts): NodeCommandTargets {
  const p = n.peers
  return {
    config: n.config,
    log: n.log,
    runtime: n.runtime,
    peers: p,
    components: {
      status: [n.statusServer],
      http: [n.http],
      identity: [n.identity],
      ...(p != null ? { peers: [p.server, p.monitor, ...(p.multicast != null ? [p.multicast] : [])] } : {})
    },
    dynamic: n.components,
    restartNode: n.restartNode
  }
}

/** The agent's init from the local config: identity, enrolment, timings (package-init.ts), the join token given. */
export function nodeAgentInit(config: Readonly<NodeConfig>, joinToken: string | undefined): BootstrapAgentInit {
  const id = config.identity
  const token = joinToken || id?.joinToken || undefined
  return {
    networkId: config.networkId,
    nodeId: config.nodeId,
    stateDir: stateDirOf(config),
    agentVersion: NODE_CORE_VERSION,
    ...(token != null ? { joinToken: token } : {}),
    enrollmentEndpoints: (id?.enrollmentEndpoints ?? []) as Endpoint[],
    initialConfig: config as NodeConfig,
    ...agentTimings(config as NodeConfig),
    random: secureRandom
  }
}

/**
 * Refuses, before a trial, manager-owned values this node cannot take (names
 * the key): node-owned keys that differ from the local config, invalid
 * values, and a log level change when the node has no process logger to change.
 */
export function validateManagedConfig(next: NodeConfig, local: Readonly<NodeConfig>, inForce: NodeConfig, canSetLogLevel: boolean): void {
  validateAgainstLocal(next, local as NodeConfig, 'remote NodeConfig')
  validateManagedValues(effectiveConfig(local as NodeConfig, next).config, 'remote NodeConfig')
  const level = next.logging?.level
  if (level != null && level !== '' && level !== logLevel(inForce) && !canSetLogLevel) {
    throw new InvalidConfigError(
      'this node cannot change its log level while running (no process logger)',
      'remote NodeConfig.logging.level'
    )
  }
}
