import { EventEmitter } from 'node:events'
import { NodeConfig, type Logger, type Startable, type StatusReport } from '@mycelium/core-interfaces'
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
import type { AggregatedHealth } from './health.js'
import { createStatusSurfaces, nodeHealth, nodeStatusReport } from './node-status.js'
import { planReconfiguration, readCaFile, validateManagedValues } from './live-config.js'
import { runConfigStep } from './config-steps.js'
import { nodeSporeClientFactory } from './spore-sources.js'
import { bootOnStoredConfig } from './boot-config.js'
import { createNodeMulticast, createNodePeers, peerStatuses, type NodePeers } from './node-peers.js'
import type { HttpStatusServer } from './http-server.js'
import type { StatusServer } from './status-server.js'
import type { NodeCommandTargets } from './node-commands.js'
import { createNodeComponents } from './components.js'
import type { ComponentManager } from '@mycelium/component-manager'
import { identityStoreFor, stateDirOf } from './identity.js'
import { DEFAULT_K3S_STOP_TIMEOUT_MS, K3S_KILL_WAIT_MS, createK3sRuntime, type K3sRuntime } from '@mycelium/k3s-runtime'
import { sourceTimeoutMs } from './package-init.js'
import type { Watchdog, WatchdogInit } from './watchdog.js'
import { createNodeWatchdog } from './node-watchdog.js'
import type { EmergencyMeasures } from './emergency-state.js'
import { NodeEmergency } from './node-emergency.js'
import { nodeStartOrder, startInOrder, stopInReverse, type StartedComponent } from './node-sequence.js'
import { agentCommandRoutes, createNodeSelfUpdate, nodeAgentInit, nodeCommandTargets, validateManagedConfig } from './node-routing.js'
import type { DistressBeacon, DistressBeaconInit } from './distress.js'
import { createNodeDistressBeacon, distressStatus, peerDistressRelay } from './node-distress.js'

import { DEFAULT_HTTP_ADDRESS, DEFAULT_STATE_DIR } from './defaults.js'
import { NODE_CORE_VERSION } from './version.js'
import { removeRuntimeFile, writeRuntimeFile } from './runtime-file.js'
import type { NodeSelfUpdate, SlotPlace } from './self-update.js'

export { DEFAULT_HTTP_ADDRESS, DEFAULT_STATE_DIR }

export interface NodeOptions {
  /** Join token from a file or flag (kept out of the frozen config's logs). */
  joinToken?: string
  /** Changes the process log level (logging.level from a manager); without it a level change is refused. */
  setLogLevel?: (level: string) => void
  /** Emergency contact timings (tests); unset: derived from the config (distress.ts `distressInitFor`). */
  distress?: Partial<DistressBeaconInit>
  /** Watchdog timings (watchdog.ts; tests shorten them); unset: DEFAULT_WATCHDOG. */
  watchdog?: WatchdogInit
  /** Self-update (self-update.ts): where the slot launcher started this process, how to restart into a trial. */
  selfUpdate?: { place?: SlotPlace; requestRestart: () => void; trialWindowMs?: number }
  /** Runs `node-core csr-child` (the bin: this process's own executable); unset: CSRs are made in this process. */
  csrCommand?: readonly string[]
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
  /** Liveness of the long-lived components (node-watchdog.ts): restarts within a budget, then escalates. */
  readonly watchdog: Watchdog
  /** When a spore source poll last ended (the spore refresh loop's progress). */
  private lastSporePollMs = 0
  /** The emergency measures in force and the emergency command (node-emergency.ts). */
  private readonly emergency: NodeEmergency
  /** Config trials reverted in a row (a loop raises a call for help). */
  private configRevertsInRow = 0
  private readonly changes = new EventEmitter()
  private started: StartedComponent[] = []
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
    this.identity = identityStoreFor(config, log, options.csrCommand)
    const identity = this.identity
    const discovery = config.discovery
    const distressSources = { config, log, identity, agent: () => this.agent }
    const basic = createNodePeers({
      config,
      identity,
      logger: log,
      agent: () => this.agent,
      artifacts: (digest) => this.selfUpdate.heldArtifact(digest),
      onSignedDistress: peerDistressRelay(distressSources, () => this.peers?.monitor.peers().filter((p) => p.state === 'alive') ?? [])
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
      ...(monitor != null ? { alivePeers: () => monitor.alivePeers() } : {}),
      onPoll: () => {
        this.lastSporePollMs = Date.now()
      }
    })
    this.runtime = createK3sRuntime({ logger: log }, { k3s: config.k3s, nodeId: config.nodeId, stateDir, path: process.env.PATH ?? '' })
    this.runtime.on('change', () => this.changes.emit('change'))
    this.components = createNodeComponents(stateDir, log, () => this.agent)
    this.components.on('changed', () => this.changes.emit('change'))
    this.agent = createBootstrapAgent(
      {
        logger: log,
        identity,
        createSporeClient: createSpores,
        runtime: this.runtime,
        // A config from the manager (or a revert) becomes the effective config: every manager-owned
        // key reaches its consumer (K3s through its planner: restarted only when its config changed).
        applyConfig: (next) => this.applyEffective(next),
        validateConfig: (next) => validateManagedConfig(next, config, this.effective.config, options.setLogLevel != null),
        openConfigStore: () => this.openConfigStore(),
        ...agentCommandRoutes({
          log,
          components: () => this.components,
          selfUpdate: () => this.selfUpdate,
          emergency: (action, reason) => this.emergency.apply(action, reason),
          targets: () => this.commandTargets()
        }),
        health: () => {
          const h = this.health()
          return { state: h.state, components: h.components }
        }
      },
      nodeAgentInit(config, options.joinToken)
    )
    this.selfUpdate = createNodeSelfUpdate({
      log,
      config,
      stateDir,
      ...(monitor != null ? { monitor } : {}),
      networkId: config.networkId,
      identity,
      agent: this.agent,
      health: () => this.health().state,
      phase: () => this.agent.phase,
      changes: this.changes,
      ...(options.selfUpdate != null ? { selfUpdate: options.selfUpdate } : {})
    })
    this.emergency = new NodeEmergency({
      config,
      log,
      runtime: this.runtime,
      peers: () => this.peers,
      selfUpdate: () => this.selfUpdate,
      targets: () => this.commandTargets(),
      isStarted: () => this.isStarted(),
      changed: () => this.changes.emit('change')
    })
    this.agent.on('transition', (t) => {
      this.phaseReason = t.reason
      this.changes.emit('change')
    })
    this.agent.on('step', () => this.changes.emit('change'))
    if (basic != null) {
      this.peers = { ...basic }
      this.peers.multicast = this.createMulticast()
      for (const kind of ['peer:up', 'peer:suspect', 'peer:down'] as const) basic.monitor.on(kind, () => this.changes.emit('change'))
      this.distress = createNodeDistressBeacon(
        distressSources,
        () => basic.monitor.peers(),
        () => ({ k3s: this.runtime.health(), configRevertsInRow: this.configRevertsInRow, failedComponent: this.watchdog.failed() }),
        options.distress
      )
      this.distress.onRound(() => this.changes.emit('change'))
    }
    this.agent.on('config:trial', (t) => {
      this.configRevertsInRow = t.outcome === 'reverted' ? this.configRevertsInRow + 1 : 0
    })
    const surfaces = createStatusSurfaces(config, log, {
      status: (): StatusReport => this.status(),
      onChange: (listener: () => void) => {
        this.changes.on('change', listener)
        return () => this.changes.off('change', listener)
      },
      counters: () => this.agent.counters
    })
    this.statusServer = surfaces.statusServer
    this.http = surfaces.http
    const { statusServer, http, agent, runtime, components } = this
    this.watchdog = createNodeWatchdog(
      {
        ...{ statusServer, http, agent, runtime, components, nodeStarted: () => this.isStarted() },
        lastSporePollMs: () => this.lastSporePollMs,
        sporeSourceTimeoutMs: () => sourceTimeoutMs(this.effective.config)
      },
      log,
      options.watchdog ?? {},
      () => this.changes.emit('change')
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
  get emergencyMeasures(): EmergencyMeasures {
    return this.emergency.measures
  }
  /** Set by the STOP_ACCEPTING_WORKLOADS emergency action (the K3s node is cordoned). */
  get acceptingWorkloads(): boolean {
    return this.emergency.acceptingWorkloads
  }
  /** Set by the ISOLATE emergency action (peer networking stopped). */
  get isolated(): boolean {
    return this.emergency.isolated
  }

  /** Node health, aggregated from every component (heartbeats, /readyz, status and config trials). */
  health(): AggregatedHealth {
    const measures = this.emergency.healthLines()
    return nodeHealth({
      config: this.config,
      effective: this.effective.config,
      agent: this.agent,
      phaseReason: this.phaseReason,
      identity: this.identity,
      runtime: this.runtime,
      started: this.isStarted(),
      statusServing: this.statusServer.isStarted(),
      httpServing: this.http.isStarted(),
      extra: [
        ...(measures.workloads != null ? [measures.workloads] : []),
        ...this.components.health(),
        ...(measures.peers != null ? [measures.peers] : []),
        ...this.watchdog.health()
      ]
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
    const { config, log, runtime, peers, statusServer, http, identity, components } = this
    return nodeCommandTargets({
      ...{ config, log, runtime, peers, statusServer, http, identity, components },
      restartNode: () => this.stop().then(() => this.start())
    })
  }

  /** The agent's status with the peer table. */
  status(): StatusReport {
    const peers = peerStatuses(this.config.networkId, this.peers?.monitor.peers() ?? [])
    return {
      ...nodeStatusReport(this.agent.status(), this.effective, this.health(), this.selfUpdate.status(), peers),
      ...distressStatus(this.distress)
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

  private async startInOrder(): Promise<void> {
    await removeRuntimeFile(stateDirOf(this.config)).catch(() => undefined) // a crash's leftovers are stale
    await this.bootConfig()
    await this.emergency.load()
    await this.selfUpdate.refresh()
    const { identity, statusServer, http, runtime, components, agent, distress, watchdog } = this
    // An ISOLATEd node starts no peer networking (RESUME starts it).
    const peers = this.emergency.isolated ? undefined : this.peers
    const order = nodeStartOrder({
      identity,
      statusServer,
      http,
      runtime,
      peers,
      components,
      agent,
      selfUpdate: this.selfUpdate,
      distress,
      watchdog
    })
    try {
      await startInOrder(order, this.started, this.log)
    } catch (err) {
      await this.stopStarted() // not stop(): that waits for this very start
      throw err
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
    if (!this.emergency.acceptingWorkloads) this.emergency.recordon()
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
    await stopInReverse(
      this.started,
      (name) => (name === 'bootstrap-agent' ? DEFAULT_K3S_STOP_TIMEOUT_MS + K3S_KILL_WAIT_MS + this.stopDeadlineMs : this.stopDeadlineMs),
      this.log
    )
    this.started = []
    this.configStore?.close() // a pending retry of its last-trial record ends with this run
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
