import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { durationToMs, EmergencyAction, HealthState, Phase, type ComponentHealth, type Endpoint, type Logger, type NodeConfig, type Startable, type StatusReport, type TrustBundle } from '@mycelium/core-interfaces'
import {
  clientCredentials,
  createMulticastDiscovery,
  createPeerAssistServer,
  createPeerMonitor,
  defaultChannelOptions,
  type IdentityStore,
  type MulticastDiscovery,
  type PeerAssistServer,
  type PeerMonitor
} from '@mycelium/basic-net'
import { createSporeClient, fileSource, peerSource, sporeServiceSource, type SporeClient, type SporeSource } from '@mycelium/spore-client'
import { createBootstrapAgent, type BootstrapAgent } from '@mycelium/bootstrap-agent'
import { HttpStatusServer } from './http-server.js'
import { StatusServer } from './status-server.js'
import { exportDiagnostics } from './recover.js'
import { identityStoreFor, stateDirOf } from './identity.js'
import { K3sRuntime } from '@mycelium/k3s-runtime'

import { DEFAULT_HTTP_ADDRESS, DEFAULT_STATE_DIR } from './defaults.js'
import { NODE_CORE_VERSION } from './version.js'

export { DEFAULT_HTTP_ADDRESS, DEFAULT_STATE_DIR }

export interface NodeOptions {
  /** Join token from a file or flag (kept out of the frozen config's logs). */
  joinToken?: string
}

/**
 * One node: its components in start order — identity, the bootstrap agent
 * (which owns spores and the manager link), NodeStatus gRPC, HTTP status —
 * stopped in reverse. Workloads are never touched by a stop.
 */
export class MyceliumNode implements Startable {
  readonly identity: IdentityStore
  readonly agent: BootstrapAgent
  readonly statusServer: StatusServer
  readonly http: HttpStatusServer
  readonly runtime: K3sRuntime
  /** Basic networking, present when `peers.listenAddress` is set. */
  readonly peers?: { server: PeerAssistServer; monitor: PeerMonitor; multicast?: MulticastDiscovery }
  private readonly changes = new EventEmitter()
  private started: Array<{ name: string; component: Startable }> = []

  constructor(
    readonly config: Readonly<NodeConfig>,
    private readonly log: Logger,
    options: NodeOptions = {}
  ) {
    const stateDir = stateDirOf(config)
    const id = config.identity
    this.identity = identityStoreFor(config, log)
    const identity = this.identity
    const discovery = config.discovery
    const nodeCredentials = clientCredentials(identity, { networkId: config.networkId, role: 'node' })
    const peersConfig = config.peers
    let monitor: PeerMonitor | undefined
    if (peersConfig?.listenAddress) {
      monitor = createPeerMonitor(
        { logger: log, credentials: nodeCredentials, phase: () => this.agent.phase },
        { selfNodeId: config.nodeId, pingIntervalMs: durationToMs(peersConfig.pingInterval, 1000), channelOptions: defaultChannelOptions(config.networkId) }
      )
      for (const seed of peersConfig.seeds) monitor.addPeer({ endpoint: seed, source: 'seed' })
    }
    const createSpores = (trustBundle: TrustBundle): SporeClient => {
      const sources: SporeSource[] = []
      if (discovery?.bootstrapFile) sources.push(fileSource({ path: discovery.bootstrapFile, timeoutMs: durationToMs(discovery.sourceTimeout, 10_000) }))
      // In FALLBACK, peers that still hold verified spores are asked too.
      if (monitor != null) sources.push(peerSource({ credentials: nodeCredentials, channelOptions: defaultChannelOptions(config.networkId), peers: () => monitor.alivePeers() }))
      let client: SporeClient | undefined
      client = createSporeClient(
        {
          logger: log,
          sources,
          sporeManager: sporeServiceSource({
            credentials: clientCredentials(identity, { networkId: config.networkId, role: 'manager' }),
            channelOptions: defaultChannelOptions(config.networkId),
            endpoints: () => client!.resolveService('spore-manager')
          })
        },
        {
          networkId: config.networkId,
          trustBundle,
          cachePath: join(stateDir, 'spores', 'cache.bin'),
          clockSlackMs: durationToMs(discovery?.clockSlack, 30_000),
          refreshIntervalMs: durationToMs(discovery?.refreshInterval, 60_000)
        }
      )
      return client
    }
    const handoff = config.handoff
    this.runtime = new K3sRuntime({ logger: log }, { k3s: config.k3s, nodeId: config.nodeId, stateDir, path: process.env.PATH ?? '' })
    this.runtime.on('change', () => this.changes.emit('change'))
    const joinToken = options.joinToken || id?.joinToken || undefined
    this.agent = createBootstrapAgent(
      {
        logger: log,
        identity,
        createSporeClient: createSpores,
        runtime: this.runtime,
        // A config from the manager (or a revert) reaches K3s through its planner: restarted only when it
        // changed. A config without a k3s section leaves the node's own (its YAML) in force: only an
        // explicit `k3s.enabled: false` disables K3s (and even then it is left running, unsupervised).
        applyConfig: async (next) => {
          await this.runtime.reconfigure(next.k3s ?? config.k3s)
        },
        restart: (component) => this.restartComponent(component),
        emergency: (action, reason) => this.emergency(action, reason),
        health: () => this.health()
      },
      {
        networkId: config.networkId,
        nodeId: config.nodeId,
        stateDir,
        agentVersion: NODE_CORE_VERSION,
        ...(joinToken != null ? { joinToken } : {}),
        enrollmentEndpoints: (id?.enrollmentEndpoints ?? []) as Endpoint[],
        initialConfig: config as NodeConfig,
        handoffDeadlineMs: durationToMs(handoff?.commitDeadline, 10_000),
        defaultHeartbeatIntervalMs: durationToMs(handoff?.defaultHeartbeatInterval, 1000),
        configConfirmWindowMs: durationToMs(handoff?.configConfirmWindow, 30_000),
        reconnect: {
          initialMs: durationToMs(config.reconnect?.initial, 500),
          maxMs: durationToMs(config.reconnect?.max, 30_000),
          multiplier: config.reconnect?.multiplier || 2
        }
      }
    )
    this.agent.on('transition', () => this.changes.emit('change'))
    this.agent.on('step', () => this.changes.emit('change'))
    if (monitor != null && peersConfig != null) {
      const server = createPeerAssistServer(
        {
          logger: log,
          identity,
          spores: () => (this.agent.sporeClient?.list() ?? []).map((v) => ({ name: v.name, sequence: v.sequence, signed: v.signed })),
          state: () => ({ phase: this.agent.phase, managersReachable: this.agent.phase === Phase.MANAGED })
        },
        { networkId: config.networkId, nodeId: config.nodeId, listenAddress: peersConfig.listenAddress }
      )
      const multicast = peersConfig.multicastEnabled
        ? createMulticastDiscovery(
            { logger: log, identity },
            {
              networkId: config.networkId,
              nodeId: config.nodeId,
              endpoints: () => [{ address: server.address, expectedIdentity: '', zone: '', priority: 0 }],
              ...(peersConfig.multicastGroup ? { group: peersConfig.multicastGroup.split(':')[0]!, port: Number(peersConfig.multicastGroup.split(':')[1] ?? 7946) } : {}),
              ...(peersConfig.multicastInterface ? { interfaceAddress: peersConfig.multicastInterface } : {})
            }
          )
        : undefined
      multicast?.on('peer', (p) => monitor.addPeer({ endpoint: p.endpoints[0]!, nodeId: p.nodeId, source: 'multicast' }))
      for (const kind of ['peer:up', 'peer:suspect', 'peer:down'] as const) monitor.on(kind, () => this.changes.emit('change'))
      this.peers = { server, monitor, ...(multicast != null ? { multicast } : {}) }
    }
    const status = config.status
    const source = {
      status: (): StatusReport => this.status(),
      onChange: (listener: () => void) => {
        this.changes.on('change', listener)
        return () => this.changes.off('change', listener)
      },
      counters: () => this.agent.counters
    }
    this.statusServer = new StatusServer(source, { socketPath: status?.socketPath ?? join(stateDir, 'status.sock'), listenAddress: status?.grpcListenAddress ?? '' }, log.forComponent('node-core:status'))
    this.http = new HttpStatusServer(source, { listenAddress: status?.httpListenAddress || DEFAULT_HTTP_ADDRESS, readyInFallback: status?.readyInFallback ?? true }, log.forComponent('node-core:http'))
  }

  isStarted(): boolean {
    return this.started.length > 0
  }

  /** Set by the STOP_ACCEPTING_WORKLOADS emergency action. */
  acceptingWorkloads = true
  /** Set by the ISOLATE emergency action (peer networking stopped). */
  isolated = false

  private health(): { state: HealthState; components: ComponentHealth[] } {
    const components: ComponentHealth[] = [this.runtime.health()]
    if (!this.acceptingWorkloads) components.push({ name: 'workloads', state: HealthState.DEGRADED, reason: 'not accepting new workloads (emergency)', restarts: 0 })
    if (this.isolated) components.push({ name: 'peers', state: HealthState.STOPPED, reason: 'isolated from peers (emergency)', restarts: 0 })
    return { state: HealthState.HEALTHY, components }
  }

  /** The restart command: a core component by name, or the whole agent for "" / "agent". */
  private async restartComponent(component: string): Promise<void> {
    const targets: Record<string, Startable[]> = {
      status: [this.statusServer],
      http: [this.http],
      identity: [this.identity],
      ...(this.peers != null ? { peers: [this.peers.server, this.peers.monitor, ...(this.peers.multicast != null ? [this.peers.multicast] : [])] } : {})
    }
    if (component === 'k3s-runtime' || component === 'k3s') {
      await this.runtime.restart(`restart command for ${component}`)
      return
    }
    if (component === '' || component === 'agent') {
      // After the command is journaled as succeeded: a restart from inside would cut its own report.
      setImmediate(() => void this.stop().then(() => this.start()).catch((err: unknown) => this.log.error('agent restart failed', { err })))
      return
    }
    const list = targets[component]
    if (list == null) throw new Error(`unknown component "${component}" (known: agent, k3s-runtime, ${Object.keys(targets).join(', ')})`)
    for (const c of [...list].reverse()) await c.stop()
    for (const c of list) await c.start()
  }

  private async emergency(action: EmergencyAction, reason: string): Promise<void> {
    switch (action) {
      case EmergencyAction.ISOLATE:
        if (this.peers != null) {
          for (const c of [this.peers.multicast, this.peers.monitor, this.peers.server]) await c?.stop()
        }
        this.isolated = true
        break
      case EmergencyAction.STOP_ACCEPTING_WORKLOADS:
        this.acceptingWorkloads = false
        break
      case EmergencyAction.DUMP_DIAGNOSTICS: {
        const out = join(stateDirOf(this.config), `diagnostics-${new Date().toISOString().replace(/[:.]/g, '-')}.tar.gz`)
        await this.runtime.writeSnapshot()
        await exportDiagnostics(this.config, out)
        this.log.info('diagnostics written', { path: out })
        break
      }
      default:
        throw new Error(`emergency action ${EmergencyAction[action]} is not handled by node-core`)
    }
    this.log.warn('emergency action applied', { action: EmergencyAction[action], reason })
    this.changes.emit('change')
  }

  /** The agent's status with the peer table. */
  status(): StatusReport {
    const status = this.agent.status()
    const peers = this.peers?.monitor.peers() ?? []
    return {
      ...status,
      peers: peers.map((p) => ({
        identity: { networkId: this.config.networkId, nodeId: p.nodeId ?? '', spiffeId: p.nodeId != null ? `spiffe://${this.config.networkId}/node/${p.nodeId}` : '', certificateSha256: '' },
        endpoint: { address: p.address, expectedIdentity: '', zone: '', priority: 0 },
        state: p.state,
        ...(p.lastSeenMs != null ? { lastSeen: new Date(p.lastSeenMs) } : {}),
        phi: Number.isFinite(p.phi) ? p.phi : 0,
        source: p.source
      }))
    }
  }

  private starting?: Promise<void>

  /** Starts components in order; a failure stops what started, then rethrows. Idempotent; concurrent calls share one start. */
  async start(): Promise<void> {
    if (this.starting != null) return this.starting
    if (this.started.length > 0) return
    this.starting = this.startInOrder().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private async startInOrder(): Promise<void> {
    const order: Array<[string, Startable]> = [
      ['identity', this.identity],
      ['status', this.statusServer],
      ['http', this.http],
      ['k3s-runtime', this.runtime],
      ...(this.peers != null
        ? ([
            ['peer-assist', this.peers.server],
            ['peers', this.peers.monitor],
            ...(this.peers.multicast != null ? [['multicast', this.peers.multicast] as [string, Startable]] : [])
          ] as Array<[string, Startable]>)
        : []),
      ['bootstrap-agent', this.agent]
    ]
    for (const [name, component] of order) {
      this.log.info('starting component', { component: name })
      try {
        await component.start()
      } catch (err) {
        this.log.error('component failed to start', { component: name, err })
        await this.stopStarted() // not stop(): that waits for this very start
        throw err
      }
      this.started.push({ name, component })
    }
  }

  /** Stops in reverse order; each component gets `stopDeadlineMs` before it is left behind. */
  stopDeadlineMs = 5000

  async stop(): Promise<void> {
    // A stop during start waits for it: else the components after the current one start after stop() returned.
    await this.starting?.catch(() => undefined)
    await this.stopStarted()
  }

  private async stopStarted(): Promise<void> {
    const deadlineMs = this.stopDeadlineMs
    for (const { name, component } of this.started.reverse()) {
      this.log.info('stopping component', { component: name })
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        Promise.resolve(component.stop()).catch((err: unknown) => this.log.error('component failed to stop', { component: name, err })),
        new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            this.log.warn('component did not stop in time', { component: name, deadlineMs })
            resolve()
          }, deadlineMs)
        })
      ])
      clearTimeout(timer)
    }
    this.started = []
  }
}
