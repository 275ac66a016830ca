import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  backoffCeilingMs,
  durationToMs,
  HandoffOutcome,
  IdentityState,
  msToDuration,
  NodeConfig,
  Phase,
  silentLogger,
  supportedContractVersions,
  type Endpoint,
  type Logger,
  type PhaseTransition,
  type Startable,
  type StatusReport
} from '@mycelium/core-interfaces'
import { clientCredentials, defaultChannelOptions } from '@mycelium/basic-net'
import type { SporeClient } from '@mycelium/spore-client'
import { AgentStateStore } from './agent-state.js'
import { buildStatusReport, spreadOrder, withStateProblems } from './agent-status.js'
import { CommandExecutor } from './commands/executor.js'
import { CommandJournal } from './commands/journal.js'
import { CommandSession } from './commands/session.js'
import { trustedOperatorKeys } from '@mycelium/spore-client'
import { ConfigStore } from './config-store.js'
import { ManagedDuties } from './managed-duties.js'
import { enrol, EnrolmentError } from './enrolment.js'
import { describeGrpcError, ManagerLink } from './manager-link.js'
import { ALWAYS_HEALTHY, NO_RUNTIME, nodeCapabilities, resourceUsage } from './node-facts.js'
import { INITIAL_STATE, nextPhase, type AgentAction, type AgentEvent, type MachineState } from './phase-machine.js'
import type { AgentCounters, BootstrapAgentComponents, BootstrapAgentEvents, BootstrapAgentInit } from './agent-types.js'

export type { AgentCounters, BootstrapAgentComponents, BootstrapAgentEvents, BootstrapAgentInit } from './agent-types.js'

const HISTORY_DEFAULT = 50

/**
 * The runner of the handoff state machine. It feeds `nextPhase` events,
 * executes the returned actions, and discards the results of actions started
 * before the latest transition (epochs), so a late answer can never move the
 * node. It never stops workloads and never blocks a phase on the network
 * beyond a bounded timeout.
 */
class DefaultBootstrapAgent extends EventEmitter<BootstrapAgentEvents> implements Startable {
  private readonly log: Logger
  private state: MachineState = INITIAL_STATE
  private phaseSince = Date.now()
  private epoch = 0
  private history: PhaseTransition[] = []
  private controller?: AbortController
  private spores?: SporeClient
  private config?: ConfigStore
  private readonly stateStore: AgentStateStore
  private readonly link: ManagerLink
  private readonly duties: ManagedDuties
  private endpoints: Endpoint[] = []
  private registration?: { leaseId: string; leaseExpiresAtMs: number; heartbeatIntervalMs: number; handoffId: string; handoffDeadlineMs: number }
  private commandExecutor?: CommandExecutor
  private session?: CommandSession
  private readonly bootId = randomUUID()
  private readonly startedAt = new Date()
  readonly counters: AgentCounters = { transitions: {}, reconnectAttempts: 0, heartbeatAcks: 0 }

  constructor(
    private readonly components: BootstrapAgentComponents,
    private readonly init: BootstrapAgentInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('bootstrap-agent').child({ nodeId: init.nodeId })
    this.stateStore = new AgentStateStore(init.stateDir, this.log)
    this.link = new ManagerLink({
      credentials: clientCredentials(components.identity, { networkId: init.networkId, role: 'manager' }),
      // A private subchannel per link: a new dial never inherits the backoff
      // of a failed one, so the agent's jittered schedule alone decides retries.
      channelOptions: { ...defaultChannelOptions(init.networkId), 'grpc.use_local_subchannel_pool': 1 },
      dialTimeoutMs: init.dialTimeoutMs ?? 5000,
      logger: this.log
    })
    this.duties = new ManagedDuties(
      { ...components, link: this.link, config: () => this.config!, logger: this.log },
      { ...(init.configConfirmWindowMs != null ? { configConfirmWindowMs: init.configConfirmWindowMs } : {}), onTrial: (outcome) => this.emit('config:trial', outcome) }
    )
  }

  get phase(): Phase {
    return this.state.phase
  }

  isStarted(): boolean {
    return this.controller != null
  }

  async start(): Promise<void> {
    if (this.controller != null) return
    this.controller = new AbortController()
    this.history = await this.stateStore.loadHistory()
    this.config = await ConfigStore.open(
      join(this.init.stateDir, 'config'),
      this.init.initialConfig ?? NodeConfig.fromPartial({ networkId: this.init.networkId, nodeId: this.init.nodeId }),
      this.log
    )
    this.commandExecutor = new CommandExecutor(this.duties.commandHandlers(() => this.controller?.signal), await CommandJournal.open(join(this.init.stateDir, 'commands.bin'), { logger: this.log }), {
      networkId: this.init.networkId,
      nodeId: this.init.nodeId,
      operatorKeys: () => {
        const bundle = this.spores?.bootstrap().trustBundle
        try {
          return bundle != null ? trustedOperatorKeys(bundle, this.init.networkId) : undefined
        } catch {
          return undefined
        }
      },
      logger: this.log
    })
    // Commands a crash left unfinished: resumed or failed now, reported on the next session.
    void this.commandExecutor.resumeInterrupted()
    this.components.identity.on('state', this.onIdentityState)
    this.state = INITIAL_STATE
    this.phaseSince = Date.now()
    this.record(Phase.UNSPECIFIED, Phase.BOOTSTRAP, 'agent started')
    this.execute([{ type: 'check-identity' }])
  }

  async stop(): Promise<void> {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    this.epoch++
    this.components.identity.off('state', this.onIdentityState)
    this.session?.stop()
    this.link.close()
    await this.spores?.stop()
    await this.stateStore.flush()
    await this.commandExecutor?.journal.flush().catch(() => undefined)
    this.commandExecutor?.journal.close()
  }

  /** The spore client, once the trust bundle is known. */
  get sporeClient(): SporeClient | undefined {
    return this.spores
  }

  get configStore(): ConfigStore | undefined {
    return this.config
  }

  /** Feeds an event to the state machine (also used by tests and node-core). */
  dispatch(event: AgentEvent, epoch = this.epoch): void {
    if (this.controller == null || epoch !== this.epoch) return
    const t = nextPhase(this.state, event)
    if (t == null) {
      this.log.debug('event ignored in this phase', { phase: Phase[this.state.phase], event: event.type })
      return
    }
    const from = this.state.phase
    this.state = t.state
    this.epoch++
    if (from !== t.state.phase) this.phaseSince = Date.now()
    this.record(from, t.state.phase, t.state.reason)
    this.execute(t.actions)
  }

  private record(from: Phase, to: Phase, reason: string): void {
    const transition: PhaseTransition = { from, to, reason, at: new Date() }
    this.history = [...this.history, transition].slice(-(this.init.historySize ?? HISTORY_DEFAULT))
    const key = Phase[to]
    this.counters.transitions[key] = (this.counters.transitions[key] ?? 0) + 1
    const level = to === Phase.FALLBACK || to === Phase.RECOVERY ? 'warn' : 'info'
    this.log[level]('phase transition', { from: Phase[from], to: Phase[to], phase: Phase[to], reason })
    void this.stateStore.saveHistory(this.history)
    this.emit('transition', transition)
  }

  private execute(actions: AgentAction[]): void {
    const epoch = this.epoch
    const signal = this.controller!.signal
    void (async () => {
      for (const action of actions) {
        try {
          const event = await this.run(action, signal)
          if (event != null) this.dispatch(event, epoch)
        } catch (err) {
          if (signal.aborted) return
          this.log.error('action failed', { action: action.type, err })
          this.dispatch({ type: 'link-lost', reason: `${action.type} failed: ${(err as Error).message}` }, epoch)
        }
      }
    })()
  }

  private async run(action: AgentAction, signal: AbortSignal): Promise<AgentEvent | undefined> {
    switch (action.type) {
      case 'check-identity':
        return this.checkIdentity()
      case 'enrol':
        return this.enrol()
      case 'discover':
        return this.discover(action.refresh)
      case 'register':
        return this.register(signal)
      case 'commit-handoff':
        return this.commitHandoff()
      case 'start-monitoring':
        this.startMonitoring()
        return undefined
      case 'stop-monitoring':
        this.session?.stop()
        this.session = undefined
        this.link.close()
        return undefined
      case 'rollback-config':
        await this.duties.rollbackConfig(action.reason)
        return undefined
      case 'schedule-retry': {
        const ceiling = backoffCeilingMs(Math.max(0, this.state.failures - 1), { initialMs: 500, maxMs: 30_000, ...this.init.reconnect })
        const delay = Math.max(action.retryAfterMs, Math.floor(Math.random() * ceiling))
        this.log.info('retry scheduled', { delayMs: delay, failures: this.state.failures, retryAfterMs: action.retryAfterMs })
        await sleep(delay, undefined, { signal })
        this.counters.reconnectAttempts++
        return { type: 'retry-timer' }
      }
    }
  }

  private async checkIdentity(): Promise<AgentEvent> {
    const report = await this.components.identity.reload()
    if (report.state === IdentityState.MISSING) {
      return { type: 'identity-missing', reason: report.reason, canEnrol: this.init.joinToken != null && (this.init.enrollmentEndpoints?.length ?? 0) > 0 }
    }
    if (!report.usable) return { type: 'identity-invalid', reason: report.reason }
    if (this.spores == null) {
      const bundle = (await this.stateStore.loadTrustBundle()) ?? this.init.trustBundle
      if (bundle == null) {
        // The certificate is fine but the trust bundle is lost: enrolling again restores it.
        const canEnrol = this.init.joinToken != null && (this.init.enrollmentEndpoints?.length ?? 0) > 0
        return canEnrol
          ? { type: 'identity-missing', reason: 'trust bundle missing or unreadable', canEnrol }
          : { type: 'identity-invalid', reason: 'no trust bundle: enrol again or provision one' }
      }
      this.spores = this.components.createSporeClient(bundle)
      await this.spores.start() // reads the cache only; never waits for the network
    }
    return { type: 'identity-valid' }
  }

  private async enrol(): Promise<AgentEvent> {
    try {
      const bundle = await enrol({
        identity: this.components.identity,
        networkId: this.init.networkId,
        nodeId: this.init.nodeId,
        joinToken: this.init.joinToken!,
        endpoints: this.init.enrollmentEndpoints ?? [],
        timeoutMs: this.init.dialTimeoutMs ?? 5000
      })
      await this.stateStore.saveTrustBundle(bundle)
      return { type: 'enrolled' }
    } catch (err) {
      const retry = err instanceof EnrolmentError && !err.retryable ? ' (retrying will not help: check the token and network)' : ''
      return { type: 'enrolment-failed', reason: `${(err as Error).message}${retry}` }
    }
  }

  private async discover(refresh: boolean): Promise<AgentEvent> {
    const spores = this.spores!
    // Re-resolve after a failed round (includes peers when a peer source is
    // configured), and on first boot when nothing is cached yet.
    if (refresh || spores.resolveService('network-manager').length === 0) await spores.refresh()
    let endpoints = spores.resolveService('network-manager')
    if (endpoints.length === 0) {
      endpoints = spores.bootstrap().seeds.filter((e) => e.expectedIdentity.endsWith('/manager/network-manager'))
    }
    if (endpoints.length === 0) return { type: 'no-endpoints', reason: 'no spore names a Network Manager (cache empty and sources unreachable?)' }
    this.endpoints = spreadOrder(endpoints)
    return { type: 'endpoints-found', count: endpoints.length }
  }

  private async register(signal: AbortSignal): Promise<AgentEvent> {
    this.link.close()
    try {
      await this.link.connect(this.endpoints, signal)
    } catch (err) {
      return { type: 'registration-failed', reason: (err as Error).message }
    }
    const identity = this.components.identity
    try {
      const res = await this.link.register({
        identity: { networkId: this.init.networkId, nodeId: this.init.nodeId, spiffeId: identity.spiffeId, certificateSha256: identity.report().certificateSha256 ?? '' },
        capabilities: nodeCapabilities(this.components.runtime ?? NO_RUNTIME, this.config!.current().labels, this.init.agentVersion ?? '0.1.0'),
        contractVersions: supportedContractVersions(),
        configVersion: this.config!.current().version,
        bootId: this.bootId,
        fromPhase: this.state.failures > 0 ? Phase.FALLBACK : Phase.DISCOVERY,
        completedCommandIds: this.commandExecutor?.journal.completedIds() ?? [],
        ...(this.commandExecutor != null ? { commandRetention: msToDuration(this.commandExecutor.journal.retention) } : {})
      })
      const now = Date.now()
      this.registration = {
        leaseId: res.lease?.leaseId ?? '',
        leaseExpiresAtMs: res.lease?.expiresAt?.getTime() ?? now,
        heartbeatIntervalMs: durationToMs(res.heartbeatInterval, this.init.defaultHeartbeatIntervalMs ?? 1000),
        handoffId: res.handoffId,
        handoffDeadlineMs: res.handoffDeadline?.getTime() ?? now + (this.init.handoffDeadlineMs ?? 10_000)
      }
      return { type: 'registered', leaseId: this.registration.leaseId }
    } catch (err) {
      const f = describeGrpcError(err)
      return { type: 'registration-failed', reason: f.reason, ...(f.retryAfterMs != null ? { retryAfterMs: f.retryAfterMs } : {}) }
    }
  }

  private async commitHandoff(): Promise<AgentEvent> {
    const r = this.registration!
    // Our own deadline, never later than the manager's.
    const deadlineMs = Math.max(0, Math.min(this.init.handoffDeadlineMs ?? 10_000, r.handoffDeadlineMs - Date.now()))
    try {
      const res = await this.link.commit(r.handoffId, r.leaseId, this.config!.current().version, deadlineMs)
      if (res === 'timeout') return { type: 'handoff-timeout', reason: `no confirmation within ${deadlineMs} ms` }
      if (res.outcome === HandoffOutcome.CONFIRMED) return { type: 'handoff-confirmed' }
      return { type: 'handoff-refused', reason: res.reason || 'refused', ...(res.retryAfter != null ? { retryAfterMs: durationToMs(res.retryAfter, 0) } : {}) }
    } catch (err) {
      const f = describeGrpcError(err)
      return { type: 'link-lost', reason: f.reason, ...(f.retryAfterMs != null ? { retryAfterMs: f.retryAfterMs } : {}) }
    }
  }

  private startMonitoring(): void {
    const r = this.registration!
    const epoch = this.epoch
    const health = this.components.health ?? ALWAYS_HEALTHY
    this.link.startHeartbeats(r.leaseId, r.heartbeatIntervalMs, r.leaseExpiresAtMs, {
      report: () => {
        const h = withStateProblems(health(), this.stateProblems())
        return {
          phase: this.state.phase,
          state: h.state,
          components: h.components,
          usage: resourceUsage(),
          workloads: this.components.runtime?.workloads?.() ?? [],
          configVersion: this.config!.current().version
        }
      },
      onAck: (ack) => {
        this.counters.heartbeatAcks++
        this.duties.onAck(ack, this.state.phase === Phase.MANAGED, this.controller?.signal)
      },
      onLost: (failure) => this.dispatch({ type: 'link-lost', ...failure }, epoch)
    })
    // Management commands are accepted only now, after the handoff committed.
    if (this.commandExecutor != null && this.link.endpoint != null) {
      const identity = this.components.identity
      this.session = new CommandSession(this.commandExecutor, {
        endpoint: this.link.endpoint,
        credentials: clientCredentials(identity, { networkId: this.init.networkId, role: 'manager' }),
        channelOptions: defaultChannelOptions(this.init.networkId),
        identity: { networkId: this.init.networkId, nodeId: this.init.nodeId, spiffeId: identity.spiffeId, certificateSha256: identity.report().certificateSha256 ?? '' },
        leaseId: r.leaseId,
        logger: this.log
      })
      this.session.start()
    }
  }

  private readonly onIdentityState = (): void => this.duties.maybeRenew(this.state.phase === Phase.MANAGED)

  /** Runs management commands; node-core submits local (manual recovery) operations here too. */
  get executor(): CommandExecutor | undefined {
    return this.commandExecutor
  }

  /** Corrupt files survived and writes failing now, each naming its file. */
  private stateProblems(): string[] {
    return [...this.stateStore.problems, ...(this.config?.problems ?? []), ...(this.commandExecutor?.journal.problems ?? [])]
  }

  /** The NodeStatus view of the agent. */
  status(): StatusReport {
    return buildStatusReport({
      networkId: this.init.networkId,
      nodeId: this.init.nodeId,
      identity: this.components.identity,
      state: this.state,
      phaseSince: this.phaseSince,
      history: this.history,
      link: this.link,
      leaseId: this.registration?.leaseId ?? '',
      spores: this.spores?.status(),
      config: this.config,
      problems: this.stateProblems(),
      extraComponents: this.components.health?.().components ?? [],
      runtime: this.components.runtime ?? NO_RUNTIME,
      agentVersion: this.init.agentVersion ?? '0.1.0',
      startedAt: this.startedAt,
      bootId: this.bootId
    })
  }
}

export type BootstrapAgent = DefaultBootstrapAgent

export function createBootstrapAgent(components: BootstrapAgentComponents, init: BootstrapAgentInit): BootstrapAgent {
  return new DefaultBootstrapAgent(components, init)
}
