import { join } from 'node:path'
import type { Logger, NodeConfig } from '@mycelium/core-interfaces'
import { clientCredentials, createIdentityStore, type IdentityStore } from '@mycelium/basic-net'
import { createSporeClient, fileSource, sporeServiceSource, type SporeClient } from '@mycelium/spore-client'
import type { DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import {
  createBootstrapAgent,
  type BootstrapAgent,
  type BootstrapAgentComponents,
  type BootstrapAgentInit,
  type NodeHealth
} from '../../src/index.js'

export interface AgentOptions {
  joinToken?: string
  openConfigStore?: BootstrapAgentComponents['openConfigStore']
  health?: () => NodeHealth
  applyConfig?: (c: NodeConfig) => Promise<void>
  restart?: BootstrapAgentComponents['restart']
  emergency?: BootstrapAgentComponents['emergency']
  runtime?: BootstrapAgentComponents['runtime']
  installedComponents?: BootstrapAgentComponents['installedComponents']
  onAssignments?: BootstrapAgentComponents['onAssignments']
  componentsReport?: BootstrapAgentComponents['componentsReport']
  init?: Partial<BootstrapAgentInit>
  logger?: Logger
  /** Sees the identity store the agent uses (to gate or observe it). */
  onIdentity?: (identity: IdentityStore) => void
  /** Sees every spore client the agent creates. */
  onSporeClient?: (client: SporeClient) => void
}

/** A real agent for `nodeId` with its state in `dir/<nodeId>`, pointed at a dev network. */
export function devAgent(net: DevNetwork, dir: string, nodeId: string, options: AgentOptions = {}): BootstrapAgent {
  const stateDir = join(dir, nodeId)
  const identity = createIdentityStore(
    {},
    {
      networkId: net.networkId,
      name: nodeId,
      keyFile: join(stateDir, 'identity', 'node.key'),
      certificateFile: join(stateDir, 'identity', 'node.crt'),
      caFile: join(stateDir, 'identity', 'ca.crt')
    }
  )
  const components: BootstrapAgentComponents = {
    identity,
    createSporeClient: (trustBundle) => {
      const client: SporeClient | undefined = createSporeClient(
        {
          sources: [fileSource({ path: net.bootstrapFile })],
          sporeManager: sporeServiceSource({
            credentials: clientCredentials(identity, { networkId: net.networkId, role: 'manager' }),
            endpoints: () => client!.resolveService('spore-manager')
          })
        },
        {
          networkId: net.networkId,
          trustBundle,
          cachePath: join(stateDir, 'spores', 'cache.bin'),
          reconnect: { initialMs: 200, maxMs: 2000 }
        }
      )
      options.onSporeClient?.(client)
      return client
    },
    ...(options.logger != null ? { logger: options.logger } : {}),
    ...(options.health != null ? { health: options.health } : {}),
    ...(options.applyConfig != null ? { applyConfig: options.applyConfig } : {}),
    ...(options.restart != null ? { restart: options.restart } : {}),
    ...(options.emergency != null ? { emergency: options.emergency } : {}),
    ...(options.runtime != null ? { runtime: options.runtime } : {}),
    ...(options.installedComponents != null ? { installedComponents: options.installedComponents } : {}),
    ...(options.openConfigStore != null ? { openConfigStore: options.openConfigStore } : {}),
    ...(options.onAssignments != null ? { onAssignments: options.onAssignments } : {}),
    ...(options.componentsReport != null ? { componentsReport: options.componentsReport } : {})
  }
  const agent = createBootstrapAgent(components, {
    networkId: net.networkId,
    nodeId,
    stateDir,
    joinToken: options.joinToken ?? net.joinToken,
    enrollmentEndpoints: [{ address: net.endpoints.enrollment, expectedIdentity: '', zone: '', priority: 0 }],
    dialTimeoutMs: 2000,
    reconnect: { initialMs: 200, maxMs: 2000 },
    ...options.init
  })
  options.onIdentity?.(identity)
  // The identity store is the agent's component; it is started and stopped with it here.
  const start = agent.start.bind(agent)
  const stop = agent.stop.bind(agent)
  agent.start = async () => {
    await identity.start()
    await start()
  }
  agent.stop = async () => {
    await stop()
    identity.stop()
  }
  return agent
}

/** testing's until (10 ms polls, 20 s by default), returning how long the wait took. */
export async function until(what: string, probe: () => boolean, timeoutMs = 20_000, detail?: () => unknown): Promise<number> {
  const start = Date.now()
  await untilTrue(what, probe, timeoutMs, 10, detail)
  return Date.now() - start
}
