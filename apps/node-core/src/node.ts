import { EventEmitter } from 'node:events'
import {
  EmergencyAction,
  HealthState,
  InvalidConfigError,
  NodeConfig,
  type ComponentHealth,
  type Endpoint,
  type Logger,
  type Startable,
  type StatusReport
} from '@mycelium/core-interfaces'
import type { IdentityStore, MulticastDiscovery } from '@mycelium/basic-net'
import {
  agentStatePaths,
  openAgentState,
  type ConfigStore,
  createBootstrapAgent,
  effectiveConfig,
  type BootstrapAgent,
  type EffectiveConfig
} from '@mycelium/bootstrap-agent'
import { aggregateHealth, type AggregatedHealth } from './health.js'
import { planReconfiguration, readCaFile, validateAgainstLocal, validateManagedValues, withoutSecrets } from './live-config.js'
import { runConfigStep } from './config-steps.js'
import { nodeSporeClientFactory } from './spore-sources.js'
import { bootOnStoredConfig } from './boot-config.js'
import { createNodeMulticast, createNodePeers, peerStatuses, type NodePeers } from './node-peers.js'
import { HttpStatusServer } from './http-server.js'
import { StatusServer } from './status-server.js'
import { applyEmergency, restartComponent, type NodeCommandTargets } from './node-commands.js'
import { agentComponentHooks, createNodeComponents, updateComponent } from './components.js'
import type { ComponentManager } from '@mycelium/component-manager'
import { identityStoreFor, stateDirOf } from './identity.js'
import { DEFAULT_K3S_STOP_TIMEOUT_MS, K3S_KILL_WAIT_MS, createK3sRuntime, type K3sRuntime } from '@mycelium/k3s-runtime'
import { agentTimings, logLevel, secureRandom, statusSocketPath } from './package-init.js'
import { loadEmergencyMeasures, NO_MEASURES, type EmergencyMeasures } from './emergency-state.js'
import { DistressBeacon, distressInitFor, distressRelay, type DistressBeaconInit } from './distress.js'
import { clientCredentials, defaultChannelOptions, endpointCredentials } from '@mycelium/basic-net'

import { DEFAULT_HTTP_ADDRESS, DEFAULT_STATE_DIR } from './defaults.js'
import { NODE_CORE_VERSION } from './version.js'
import { removeRuntimeFile, writeRuntimeFile } from './runtime-file.js'
import { NodeSelfUpdate, selfUpdateInitFor, type SlotPlace } from './self-update.js'
import { peerArtifactSources } from './self-update-peers.js'

export { DEFAULT_HTTP_ADDRESS, DEFAULT_STATE_DIR }

export interface NodeOptions {
  /** Join token from a file or flag (kept out of the frozen config's logs). */
  joinToken?: string
  /** Changes the process log level (logging.level from a manager); without it a level change is refused. */
  setLogLevel?: (level: string) => void
  /** Emergency contact timings (tests); unset: derived from the config (distress.ts `distressInitFor`). */
  distress?: Partial<DistressBeaconInit>
  /** Self-update (self-update.ts): where the slot launcher started this process, how to restart into a trial. */
  selfUpdate?: { place?: SlotPlace; requestRestart: () => void; trialWindowMs?: number }
}

/**
 * One node: its components in start order — identity, the bootstrap agent
 * (which owns spores and the manager link), NodeStatus gRPC, HTTP status —
 * stopped in reverse. Workloads are never touched by a stop.
 *
 * Config: `config` is the local one (YAML + environment + flags). Before any
 * component starts, the stored config is read and the effective config —
 * the local node-owned keys + the stored manager-owned ones (see
 * bootstrap-agent CONFIG_OWNERSHIP) — is put into effect, so a restart never
 * undoes what a manager set (K3s is planned from it, not from the YAML).
 * Every later config (trial, revert) goes through the same planner and
 * runner (`applyEffective`).
 */
export class MyceliumNode implements Startable {
  readonly identity: IdentityStore
  readonly agent: BootstrapAgent
  readonly statusServer: StatusServer
  readonly http: HttpStatusServer
  readonly runtime: K3sRuntime
  /** Dynamic components from spores and assignments (components.ts). */
  readonly components: ComponentManager
  /** The update command's handlers (self-update.ts). */
  readonly selfUpdate: NodeSelfUpdate
  /** Basic networking, present when `peers.listenAddress` is set. */
  readonly peers?: NodePeers
  /** Emergency contact to peers (present with peer networking). */
  readonly distress?: DistressBeacon
  /** Config trials reverted in a row (a loop raises a call for help). */
  private configRevertsInRow = 0
  private readonly changes = new EventEmitter()
  private started: Array<{ name: string; component: Startable }> = []
  /** The config in force and where its manager-owned sections came from. */
  private effective: EffectiveConfig
  private configStore?: ConfigStore
  /** Why the agent is in its phase (its last transition). */
  private phaseReason = 'not started'
  /** discovery.httpsCaFile's PEM, read when the config naming it is applied. */
  private httpsCaPem?: string

  constructor(
    readonly config: Readonly<NodeConfig>,
    private readonly log: Logger,
    private readonly options: NodeOptions = {}
  ) {
    const stateDir = stateDirOf(config)
    this.effective = effectiveConfig(config as NodeConfig, undefined)
    const id = config.identity
    this.identity = identityStoreFor(config, log)
    const identity = this.identity
    const discovery = config.discovery
    const peerCredentials = clientCredentials(identity, { networkId: config.networkId, role: 'node' })
    const basic = createNodePeers({
      config,
      identity,
      logger: log,
      agent: () => this.agent,
      artifacts: (digest) => this.selfUpdate.heldArtifact(digest),
      onSignedDistress: (relay) =>
        distressRelay({
          logger: log,
          agent: this.agent,
          managerCredentials: endpointCredentials(identity, { networkId: config.networkId, role: 'manager' }),
          peerCredentials,
          channelOptions: defaultChannelOptions(config.networkId),
          alivePeers: () => this.peers?.monitor.peers().filter((p) => p.state === 'alive') ?? []
        })(relay)
    })
    const monitor = basic?.monitor
    const createSpores = nodeSporeClientFactory({
      logger: log,
      identity,
      networkId: config.networkId,
      ...(discovery?.bootstrapFile ? { bootstrapFile: discovery.bootstrapFile } : {}),
      cachePath: agentStatePaths(stateDir).sporeCache,
      effective: () => this.effective.config,
      httpsCaPem: () => this.httpsCaPem,
      ...(monitor != null ? { alivePeers: () => monitor.alivePeers() } : {})
    })
    this.runtime = createK3sRuntime({ logger: log }, { k3s: config.k3s, nodeId: config.nodeId, stateDir, path: process.env.PATH ?? '' })
    this.runtime.on('change', () => this.changes.emit('change'))
    this.components = createNodeComponents(stateDir, log, () => this.agent)
    this.components.on('changed', () => this.changes.emit('change'))
    const joinToken = options.joinToken || id?.joinToken || undefined
    this.agent = createBootstrapAgent(
      {
        logger: log,
        identity,
        createSporeClient: createSpores,
        runtime: this.runtime,
        // A config from the manager (or a revert) becomes the effective config: every manager-owned
        // key reaches its consumer (K3s through its planner: restarted only when its config changed).
        applyConfig: (next) => this.applyEffective(next),
        validateConfig: (next) => this.validateManaged(next),
        openConfigStore: () => this.openConfigStore(),
        restart: (component) => restartComponent(component, this.commandTargets()),
        emergency: (action, reason) => this.emergency(action, reason),
        ...agentComponentHooks(() => this.components, log),
        // An update naming a component goes to the component manager (verified upgrade, rollback); an empty one updates the agent.
        selfUpdate: {
          refuseUpdate: (u, id) => (u.component !== '' ? Promise.resolve(undefined) : this.selfUpdate.refuse(u, id)),
          update: (u, id) => (u.component !== '' ? updateComponent(this.components, u).then(() => undefined) : this.selfUpdate.run(u, id))
        },
        updateStatus: () => this.selfUpdate.status(),
        health: () => {
          const h = this.health()
          return { state: h.state, components: h.components }
        }
      },
      {
        networkId: config.networkId,
        nodeId: config.nodeId,
        stateDir,
        agentVersion: NODE_CORE_VERSION,
        ...(joinToken != null ? { joinToken } : {}),
        enrollmentEndpoints: (id?.enrollmentEndpoints ?? []) as Endpoint[],
        initialConfig: config as NodeConfig,
        ...agentTimings(config as NodeConfig),
        random: secureRandom
      }
    )
    this.selfUpdate = new NodeSelfUpdate(
      {
        log,
        version: NODE_CORE_VERSION,
        caPem: () => this.identity.material()?.caPem,
        phase: () => this.agent.phase,
        health: () => this.health().state,
        // A change event, or a second (health is computed: not every change of it is an event).
        nextChange: () => new Promise<void>((resolve) => this.changes.once('change', resolve) && setTimeout(resolve, 1000).unref()),
        requestRestart: () => options.selfUpdate?.requestRestart(),
        changed: () => this.changes.emit('change'),
        networkId: config.networkId,
        ...(monitor != null
          ? {
              peers: () =>
                peerArtifactSources({
                  alivePeers: () => monitor.alivePeers(),
                  credentials: peerCredentials,
                  channelOptions: defaultChannelOptions(config.networkId)
                })
            }
          : {}),
        release: async (refresh = true) => {
          const spores = this.agent.sporeClient
          if (spores == null) return undefined
          if (refresh) await spores.refresh().catch(() => undefined) // a release published a moment ago; the cached set otherwise
          return { bundle: spores.bootstrap().trustBundle, spores: spores.list() }
        }
      },
      options.selfUpdate?.place,
      {
        ...selfUpdateInitFor(config, stateDir),
        ...(options.selfUpdate?.trialWindowMs != null ? { trialWindowMs: options.selfUpdate.trialWindowMs } : {})
      }
    )
    this.agent.on('transition', (t) => {
      this.phaseReason = t.reason
      this.changes.emit('change')
    })
    this.agent.on('step', () => this.changes.emit('change'))
    if (basic != null) {
      this.peers = { ...basic }
      this.peers.multicast = this.createMulticast()
      for (const kind of ['peer:up', 'peer:suspect', 'peer:down'] as const) basic.monitor.on(kind, () => this.changes.emit('change'))
      this.distress = new DistressBeacon(
        {
          logger: log,
          identity,
          agent: this.agent,
          peers: () => basic.monitor.peers(),
          peerCredentials,
          channelOptions: defaultChannelOptions(config.networkId),
          facts: () => ({ k3s: this.runtime.health(), configRevertsInRow: this.configRevertsInRow })
        },
        { ...distressInitFor(config as NodeConfig, secureRandom), ...options.distress }
      )
      this.distress.onRound(() => this.changes.emit('change'))
    }
    this.agent.on('config:trial', (t) => {
      this.configRevertsInRow = t.outcome === 'reverted' ? this.configRevertsInRow + 1 : 0
    })
    const status = config.status
    const source = {
      status: (): StatusReport => this.status(),
      onChange: (listener: () => void) => {
        this.changes.on('change', listener)
        return () => this.changes.off('change', listener)
      },
      counters: () => this.agent.counters
    }
    this.statusServer = new StatusServer(
      source,
      { socketPath: statusSocketPath(config, stateDir), listenAddress: status?.grpcListenAddress ?? '' },
      log.forComponent('node-core:status')
    )
    this.http = new HttpStatusServer(
      source,
      { listenAddress: status?.httpListenAddress || DEFAULT_HTTP_ADDRESS, readyInFallback: status?.readyInFallback ?? true },
      log.forComponent('node-core:http')
    )
  }

  isStarted(): boolean {
    return this.started.length > 0
  }

  /** LAN discovery as the config in force asks (peers.multicast*), announcing the PeerAssist server. */
  private createMulticast(): MulticastDiscovery | undefined {
    return this.peers != null
      ? createNodeMulticast(this.peers, this.effective.config, { config: this.config, identity: this.identity, logger: this.log })
      : undefined
  }

  /** A new multicast setting: the old discovery stops, the new one starts (when the node runs and is not isolated). */
  private async replaceMulticast(): Promise<void> {
    const peers = this.peers
    if (peers == null) return
    const old = peers.multicast
    const next = this.createMulticast()
    const entry = this.started.find((e) => e.name === 'multicast')
    if (old != null) await old.stop()
    peers.multicast = next
    if (entry != null) this.started = this.started.filter((e) => e !== entry)
    if (this.isStarted() && !this.isolated && next != null) {
      await next.start()
      // Stopped with the others, before the agent (reverse order of start).
      const agentAt = this.started.findIndex((e) => e.name === 'bootstrap-agent')
      this.started.splice(agentAt < 0 ? this.started.length : agentAt, 0, { name: 'multicast', component: next })
    }
  }

  /** The emergency measures in force (emergency-state.ts): persisted, re-applied at start, undone by RESUME. */
  emergencyMeasures: EmergencyMeasures = { ...NO_MEASURES }
  /** Set by the STOP_ACCEPTING_WORKLOADS emergency action (the K3s node is cordoned). */
  get acceptingWorkloads(): boolean {
    return this.emergencyMeasures.acceptingWorkloads
  }
  /** Set by the ISOLATE emergency action (peer networking stopped). */
  get isolated(): boolean {
    return this.emergencyMeasures.isolated
  }

  /** Node health, aggregated from every component (heartbeats, /readyz, status and config trials). */
  health(): AggregatedHealth {
    const extra: ComponentHealth[] = []
    const m = this.emergencyMeasures
    const why = m.reason !== '' ? `: ${m.reason} (since ${m.since}; undo: RESUME)` : ''
    if (!this.acceptingWorkloads)
      extra.push({ name: 'workloads', state: HealthState.DEGRADED, reason: `not accepting new workloads (emergency)${why}`, restarts: 0 })
    extra.push(...this.components.health())
    if (this.isolated)
      extra.push({ name: 'peers', state: HealthState.STOPPED, reason: `isolated from peers (emergency)${why}`, restarts: 0 })
    const spores = this.agent.sporeClient
    const sporeStatus = spores?.status()
    const identity = this.identity.report()
    const status = this.config.status
    return aggregateHealth({
      phase: this.agent.phase,
      phaseReason: this.phaseReason,
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
      runtime: this.runtime.health(),
      k3sEnabled: this.effective.config.k3s?.enabled === true,
      statusServers: [
        {
          name: 'status-grpc',
          configured:
            this.isStarted() && (statusSocketPath(this.config, stateDirOf(this.config)) !== '' || (status?.grpcListenAddress ?? '') !== ''),
          serving: this.statusServer.isStarted()
        },
        { name: 'status-http', configured: this.isStarted() && (status?.httpListenAddress ?? '') !== 'off', serving: this.http.isStarted() }
      ],
      extra
    })
  }

  /** The config in force (local node-owned keys + stored manager-owned ones) and each section's version. */
  effectiveConfig(): EffectiveConfig {
    return this.effective
  }

  private async openConfigStore(): Promise<ConfigStore> {
    this.configStore ??= await openAgentState(stateDirOf(this.config), {
      logger: this.log.forComponent('bootstrap-agent').child({ nodeId: this.config.nodeId })
    }).openConfig(this.config as NodeConfig)
    return this.configStore
  }

  /** Refuses, before a trial, manager-owned values this node cannot take (names the key). */
  private validateManaged(next: NodeConfig): void {
    validateAgainstLocal(next, this.config as NodeConfig, 'remote NodeConfig')
    validateManagedValues(effectiveConfig(this.config as NodeConfig, next).config, 'remote NodeConfig')
    const level = next.logging?.level
    if (level != null && level !== '' && level !== logLevel(this.effective.config) && this.options.setLogLevel == null) {
      throw new InvalidConfigError(
        'this node cannot change its log level while running (no process logger)',
        'remote NodeConfig.logging.level'
      )
    }
  }

  /**
   * Puts a stored config (manager's, or the local seed) into effect: merged
   * with the local config, planned against the config in force, each step
   * run on its consumer. Before start, components only take the values.
   * A step that throws leaves `next` in force, partly applied: the caller
   * reverts (applies the last-known-good), which re-runs every step back.
   */
  async applyEffective(stored: NodeConfig): Promise<void> {
    const next = effectiveConfig(this.config as NodeConfig, stored)
    validateManagedValues(next.config, 'effective NodeConfig')
    const caFile = next.config.discovery?.httpsCaFile
    const caPem = caFile ? readCaFile(caFile, 'NodeConfig.discovery.httpsCaFile') : undefined
    const steps = planReconfiguration(this.effective.config, next.config)
    // `next` counts as in force from here, also when a step throws: the steps before it did run,
    // so the revert that follows (a trial's, or boot's fallback) must plan from `next` and re-run
    // every step back; restoring the previous config here would plan "nothing to change".
    this.httpsCaPem = caPem
    this.effective = next
    const targets = {
      setLogLevel: this.options.setLogLevel,
      agent: this.agent,
      peers: this.peers,
      runtime: this.runtime,
      replaceMulticast: () => this.replaceMulticast()
    }
    for (const step of steps) await runConfigStep(step, targets)
    if (steps.length > 0)
      this.log.info('config in effect', { version: next.config.version, steps: steps.map((s) => s.type), sections: next.versions })
    this.changes.emit('change')
  }

  /** What restart and emergency commands act on (node-commands.ts). */
  private commandTargets(): NodeCommandTargets {
    const p = this.peers
    return {
      config: this.config,
      log: this.log,
      runtime: this.runtime,
      peers: p,
      components: {
        status: [this.statusServer],
        http: [this.http],
        identity: [this.identity],
        ...(p != null ? { peers: [p.server, p.monitor, ...(p.multicast != null ? [p.multicast] : [])] } : {})
      },
      dynamic: this.components,
      restartNode: () => this.stop().then(() => this.start())
    }
  }

  private async emergency(action: EmergencyAction, reason: string): Promise<void> {
    if (action === EmergencyAction.ALLOW_DOWNGRADE) {
      await this.selfUpdate.allowDowngrade(reason)
      this.log.warn('emergency action applied: the next self-update may install a lower version', { reason })
      return
    }
    this.emergencyMeasures = await applyEmergency(action, reason, this.emergencyMeasures, {
      ...this.commandTargets(),
      startPeers: () => this.startPeers()
    })
    this.log.warn('emergency action applied', { action: EmergencyAction[action], reason })
    this.changes.emit('change')
  }

  /** The agent's status with the peer table. */
  status(): StatusReport {
    const status = this.agent.status()
    const peers = this.peers?.monitor.peers() ?? []
    const health = this.health()
    return {
      ...status,
      config: { ...status.config!, sectionVersions: { ...this.effective.versions } },
      effectiveConfig: withoutSecrets(this.effective.config),
      health: health.state,
      healthReason: health.reason,
      update: this.selfUpdate.status(),
      peers: peerStatuses(this.config.networkId, peers)
    }
  }

  private starting?: Promise<void>

  /**
   * Puts the stored config into effect, then starts components in order; a
   * failure stops what started, then rethrows. Idempotent; concurrent calls
   * share one start.
   */
  async start(): Promise<void> {
    if (this.starting != null) return this.starting
    if (this.started.length > 0) return
    this.starting = this.startInOrder().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  /** Peer networking again after RESUME: the components ISOLATE stopped, in start order. */
  private async startPeers(): Promise<void> {
    const p = this.peers
    if (p == null) return
    for (const c of [p.server, p.monitor, ...(p.multicast != null ? [p.multicast] : [])]) await c.start()
  }

  private async startInOrder(): Promise<void> {
    await removeRuntimeFile(stateDirOf(this.config)).catch(() => undefined) // a crash's leftovers are stale
    await this.bootConfig()
    this.emergencyMeasures = await loadEmergencyMeasures(stateDirOf(this.config), this.log)
    if (this.emergencyMeasures.isolated || !this.emergencyMeasures.acceptingWorkloads)
      this.log.warn('emergency measures in force (RESUME undoes them)', { ...this.emergencyMeasures })
    await this.selfUpdate.refresh()
    const order: Array<[string, Startable]> = [
      ['identity', this.identity],
      ['status', this.statusServer],
      ['http', this.http],
      ['k3s-runtime', this.runtime],
      ...(this.peers != null && !this.emergencyMeasures.isolated
        ? ([
            ['peer-assist', this.peers.server],
            ['peers', this.peers.monitor],
            ...(this.peers.multicast != null ? [['multicast', this.peers.multicast] as [string, Startable]] : [])
          ] as Array<[string, Startable]>)
        : []),
      // Before the agent: components a previous run left are adopted before assignments arrive.
      ['components', this.components],
      ['bootstrap-agent', this.agent],
      ['self-update', this.selfUpdate], // the release watch (update.watch) and the rest of an update it started
      ...(this.distress != null ? [['distress', this.distress] as [string, Startable]] : [])
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
    // Where it listens (ports may be chosen now), for `node-core status --config`: never a reason to fail a start.
    await writeRuntimeFile(stateDirOf(this.config), {
      pid: process.pid,
      version: NODE_CORE_VERSION,
      startedAt: new Date().toISOString(),
      statusAddresses: [...this.statusServer.addresses],
      httpAddress: this.http.address,
      peerAddress: this.peers?.server.address ?? ''
    }).catch((err: unknown) => this.log.warn('runtime.json not written', { err }))
    if (!this.emergencyMeasures.acceptingWorkloads) this.recordon()
  }

  /** A cordon in force is put on the K3s node again after a start (K3s may have been reset meanwhile); retried while K3s comes up. */
  private recordon(): void {
    void (async () => {
      for (let attempt = 0; attempt < 10 && this.isStarted() && !this.acceptingWorkloads; attempt++) {
        try {
          await this.runtime.setSchedulable(false)
          return
        } catch (err) {
          this.log.warn('cordon not applied yet; retrying', { attempt, err })
          await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** attempt) * (0.5 + secureRandom() / 2)).unref())
        }
      }
    })()
  }

  /**
   * Stops in reverse order; each component gets `stopDeadlineMs` before it
   * is left behind — the bootstrap agent more: its stop waits for a config
   * trial to revert, and the revert may restart K3s (its stop grace, the
   * SIGKILL wait, then the start), so it is never left writing the state
   * dir after stop returns.
   */
  stopDeadlineMs = 5000

  async stop(): Promise<void> {
    // A stop during start waits for it: else the components after the current one start after stop() returned.
    await this.starting?.catch(() => undefined)
    const wasStarted = this.started.length > 0
    await this.stopStarted()
    if (wasStarted) await removeRuntimeFile(stateDirOf(this.config)).catch(() => undefined)
  }

  private async stopStarted(): Promise<void> {
    for (const { name, component } of this.started.reverse()) {
      const deadlineMs =
        name === 'bootstrap-agent' ? DEFAULT_K3S_STOP_TIMEOUT_MS + K3S_KILL_WAIT_MS + this.stopDeadlineMs : this.stopDeadlineMs
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
    this.configStore = undefined // read again by the next start
  }

  /** Puts the stored config into effect before any component starts (boot-config.ts says which). */
  private async bootConfig(): Promise<void> {
    await bootOnStoredConfig(
      await this.openConfigStore(),
      this.config as NodeConfig,
      (stored) => this.applyEffective(stored),
      this.log,
      () => this.effective.versions
    )
  }
}
