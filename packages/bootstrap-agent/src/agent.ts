import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  durationToMs,
  HandoffOutcome,
  IdentityState,
  msToDuration,
  NodeConfig,
  Phase,
  silentLogger,
  supportedContractVersions,
  type Capabilities,
  type Endpoint,
  type Logger,
  type PhaseTransition,
  type Startable,
  type StatusReport,
  isManagerIdentity,
  SERVICE_NAMES
} from '@mycelium/core-interfaces'
import { backoffCeilingMs } from '@mycelium/core-utils'
import { defaultChannelOptions, endpointCredentials } from '@mycelium/basic-net'
import type { SporeClient } from '@mycelium/spore-client'
import { AgentStateStore } from './agent-state.js'
import { buildStatusReport, spreadOrder, withStateProblems } from './agent-status.js'
import { CommandExecutor } from './commands/executor.js'
import { CommandJournal } from './commands/journal.js'
import { CommandSession } from './commands/session.js'
import { trustedOperatorKeys } from '@mycelium/spore-client'
import { ConfigStore } from './config-store.js'
import { effectiveConfig } from './config-ownership.js'
import { ManagedDuties } from './managed-duties.js'
import { enrol, isEnrolmentError } from './enrolment.js'
import { describeGrpcError, ManagerLink } from './manager-link.js'
import type { ManagerClock } from './manager-clock.js'
import { ALWAYS_HEALTHY, hostFacts, NO_RUNTIME, nodeCapabilities, resourceUsage, type HostFacts } from './node-facts.js'
import { attemptOf, INITIAL_STATE, nextPhase, type AgentAction, type AgentEvent, type MachineState } from './phase-machine.js'
import type { AgentCounters, BootstrapAgentComponents, BootstrapAgentEvents, BootstrapAgentInit } from './agent-types.js'

export type { AgentCounters, BootstrapAgentComponents, BootstrapAgentEvents, BootstrapAgentInit, PhaseStep } from './agent-types.js'

const HISTORY_DEFAULT = 50

/**
 * The runner of the handoff state machine. It feeds `nextPhase` events,
 * executes the returned actions, and discards the results of actions started
 * before the latest transition (epochs), so a late answer can never move the
 * node. It never stops workloads and never blocks a phase on the network
 * beyond a bounded timeout.
 *
 * A transition that changes the phase is history (persisted), a metric and a
 * `transition` event; one that keeps it (a retry attempt inside FALLBACK or
 * RECOVERY, enrolment inside BOOTSTRAP) is a logged `step` event and shows in
 * status as `progress`. An action that throws becomes the failure event of
 * that action, so no phase waits forever on a result that never comes.
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
  /** The last registration; deadlines on the link's monotonic ManagerClock. */
  private registration?: { leaseId: string; leaseDeadline: number; heartbeatIntervalMs: number; handoffId: string; handoffDeadline: number }
  /** When the scheduled retry fires (wall clock, for status), while one is scheduled. */
  private nextAttemptAtMs?: number
  /** The retry wait in progress, if any: aborted with 'now' to retry at once, with 'superseded' when the machine moved on. */
  private retryWait?: AbortController
  private starting?: Promise<void>
  private host?: HostFacts
  private commandExecutor?: CommandExecutor
  private session?: CommandSession
  private readonly bootId = randomUUID()
  private readonly startedAt = new Date()
  readonly counters: AgentCounters = { transitions: {}, steps: 0, reconnectAttempts: 0, heartbeatAcks: 0, capabilityUpdates: 0 }

  /** Our own copy of the caller's init: retune changes it (the caller's object may be frozen or shared). */
  private readonly init: BootstrapAgentInit

  constructor(
    private readonly components: BootstrapAgentComponents,
    init: BootstrapAgentInit
  ) {
    super()
    this.init = { ...init }
    this.log = (components.logger ?? silentLogger()).forComponent('bootstrap-agent').child({ nodeId: init.nodeId })
    this.stateStore = new AgentStateStore(init.stateDir, this.log)
    this.link = new ManagerLink({
      credentials: endpointCredentials(components.identity, { networkId: init.networkId, role: 'manager' }),
      // A private subchannel per link: a new dial never inherits the backoff
      // of a failed one, so the agent's jittered schedule alone decides retries.
      channelOptions: { ...defaultChannelOptions(init.networkId), 'grpc.use_local_subchannel_pool': 1 },
      dialTimeoutMs: init.dialTimeoutMs ?? 5000,
      logger: this.log
    })
    this.duties = new ManagedDuties(
      { ...components, link: this.link, config: () => this.config!, logger: this.log },
      { configConfirmWindowMs: () => this.init.configConfirmWindowMs, onTrial: (outcome) => this.emit('config:trial', outcome) }
    )
  }

  get phase(): Phase {
    return this.state.phase
  }

  isStarted(): boolean {
    return this.controller != null
  }

  /**
   * All or nothing: a start that fails undoes what it did (the agent is then
   * not started, and the next start() starts from scratch) and rethrows.
   * Concurrent calls share one start.
   */
  async start(): Promise<void> {
    if (this.controller != null) return this.starting
    const controller = new AbortController()
    this.controller = controller
    this.starting = this.startUp(controller.signal).catch(async (err: unknown) => {
      this.log.error('agent start failed; undoing it', { err })
      // Only this run: if it was stopped meanwhile and a newer one started, that one stays.
      if (this.controller === controller) await this.stop()
      throw err
    })
    try {
      await this.starting
    } finally {
      if (this.controller === controller) this.starting = undefined
    }
  }

  private async startUp(signal: AbortSignal): Promise<void> {
    // Built in locals and assigned only after the abort check: a run stopped
    // while starting must not overwrite what a newer run already installed.
    const history = await this.stateStore.loadHistory()
    const config =
      (await this.components.openConfigStore?.()) ??
      (await ConfigStore.open(
        join(this.init.stateDir, 'config'),
        this.init.initialConfig ?? NodeConfig.fromPartial({ networkId: this.init.networkId, nodeId: this.init.nodeId }),
        this.log
      ))
    if (signal.aborted) return
    const journal = await CommandJournal.open(join(this.init.stateDir, 'commands.bin'), { logger: this.log })
    const commandExecutor = new CommandExecutor(this.duties.commandHandlers(() => this.controller?.signal), journal, {
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
      // Command deadlines are the manager's times: judged on its clock as followed on the monotonic one.
      now: () => this.link.clock.managerNowOrWall(),
      logger: this.log
    })
    // Stopped while starting: stop() already undid the run; nothing to begin.
    if (signal.aborted) {
      journal.close()
      return
    }
    this.history = history
    this.config = config
    this.commandExecutor = commandExecutor
    // Commands a crash left unfinished: resumed or failed now, reported on the next session.
    void commandExecutor.resumeInterrupted()
    this.components.identity.on('state', this.onIdentityState)
    this.state = INITIAL_STATE
    this.phaseSince = Date.now()
    this.nextAttemptAtMs = undefined
    this.record(Phase.UNSPECIFIED, Phase.BOOTSTRAP, 'agent started')
    this.execute([{ type: 'check-identity' }])
  }

  /** Stops the run (safe to call twice, and after a failed start). Workloads are never touched. */
  async stop(): Promise<void> {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    this.epoch++
    this.cancelRetryWait()
    this.components.identity.off('state', this.onIdentityState)
    this.session?.stop()
    this.session = undefined
    this.link.close()
    await this.duties.idle() // an aborted trial reverts (and writes) before stop returns
    // A spore client is built per run (from the trust bundle of that run).
    const spores = this.spores
    this.spores = undefined
    await spores?.stop()
    await this.stateStore.flush()
    await this.commandExecutor?.journal.flush().catch(() => undefined)
    this.commandExecutor?.journal.close()
  }

  /**
   * The manager's clock as this node follows it (monotonic, estimated from
   * the registration): for checking times a manager set, e.g. command deadlines.
   */
  get managerClock(): ManagerClock {
    return this.link.clock
  }

  /** The spore client, once the trust bundle is known. */
  get sporeClient(): SporeClient | undefined {
    return this.spores
  }

  get configStore(): ConfigStore | undefined {
    return this.config
  }

  /** Manager-owned timings of a new config in force (node-core): each is read again at its next use. */
  retune(t: AgentTunables): void {
    Object.assign(this.init, t)
  }

  /** Feeds an event to the state machine (also used by tests and node-core). */
  dispatch(event: AgentEvent, epoch = this.epoch): void {
    if (this.controller == null || epoch !== this.epoch) return
    const t = nextPhase(this.state, event)
    if (t == null) {
      this.log.debug('event ignored in this phase', { phase: Phase[this.state.phase], event: event.type })
      return
    }
    const before = this.state
    this.state = t.state
    this.epoch++
    // A retry still waiting belongs to the previous state: its timer result would be discarded anyway.
    this.cancelRetryWait()
    if (before.phase !== t.state.phase) {
      this.phaseSince = Date.now()
      this.record(before.phase, t.state.phase, t.state.reason)
    } else {
      this.recordStep(before, t.state)
    }
    this.execute(t.actions)
  }

  /** A step inside the phase: logged and visible in status, not history and not a transition. */
  private recordStep(before: MachineState, after: MachineState): void {
    this.counters.steps++
    const failed = after.failures > before.failures && after.lastError !== ''
    const fields = { phase: Phase[after.phase], step: after.step, attempt: attemptOf(after), ...(failed ? { error: after.lastError } : {}) }
    if (failed) this.log.warn('phase attempt failed', fields)
    else this.log.info('phase step', fields)
    this.emit('step', { phase: after.phase, step: after.step, lastError: after.lastError })
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
          this.log.error('action failed', { action: action.type, phase: Phase[this.state.phase], err })
          const event = failureEvent(action, `${action.type} failed: ${(err as Error).message}`)
          if (event != null) this.dispatch(event, epoch)
        }
      }
    })()
  }

  private async run(action: AgentAction, signal: AbortSignal): Promise<AgentEvent | undefined> {
    switch (action.type) {
      case 'check-identity':
        return this.checkIdentity(signal)
      case 'enrol':
        return this.enrol()
      case 'discover':
        return this.discover(action.refresh)
      case 'register':
        return this.register(signal)
      case 'commit-handoff':
        return this.commitHandoff(signal)
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
        // Capped exponential with full jitter, in FALLBACK and RECOVERY alike; a manager's retry-after is a floor.
        const ceiling = backoffCeilingMs(Math.max(0, this.state.failures - 1), { initialMs: 500, maxMs: 30_000, ...this.init.reconnect })
        const delay = Math.max(action.retryAfterMs, Math.floor((this.init.random ?? Math.random)() * ceiling))
        this.log.info('retry scheduled', { phase: Phase[this.state.phase], attempt: attemptOf(this.state), delayMs: delay, ceilingMs: ceiling, retryAfterMs: action.retryAfterMs })
        // Its own controller: the wait can be cut short (retry now) or superseded without stopping the run.
        const wait = new AbortController()
        this.cancelRetryWait()
        this.retryWait = wait
        const at = Date.now() + delay
        this.nextAttemptAtMs = at
        try {
          await sleep(delay, undefined, { signal: AbortSignal.any([signal, wait.signal]) })
        } catch (err) {
          if (signal.aborted || !wait.signal.aborted) throw err
          // Superseded: the machine already moved on, nothing to report.
          if (wait.signal.reason !== 'now') return undefined
        } finally {
          if (this.retryWait === wait) this.retryWait = undefined
          // Only our own value: a newer retry's next attempt stays visible.
          if (this.nextAttemptAtMs === at) this.nextAttemptAtMs = undefined
        }
        if (this.state.phase === Phase.FALLBACK) this.counters.reconnectAttempts++
        return { type: 'retry-timer' }
      }
    }
  }

  private cancelRetryWait(): void {
    this.retryWait?.abort('superseded')
    this.retryWait = undefined
  }

  /** `undefined` when the run was stopped meanwhile: no spore client may outlive its run. */
  private async checkIdentity(signal: AbortSignal): Promise<AgentEvent | undefined> {
    const report = await this.components.identity.reload()
    if (signal.aborted) return this.abandoned()
    if (report.state === IdentityState.MISSING) {
      return { type: 'identity-missing', reason: report.reason, canEnrol: this.init.joinToken != null && (this.init.enrollmentEndpoints?.length ?? 0) > 0 }
    }
    if (!report.usable) return { type: 'identity-invalid', reason: report.reason }
    if (this.spores == null) {
      const bundle = (await this.stateStore.loadTrustBundle()) ?? this.init.trustBundle
      if (signal.aborted) return this.abandoned()
      if (bundle == null) {
        // The certificate is fine but the trust bundle is lost: enrolling again restores it.
        const canEnrol = this.init.joinToken != null && (this.init.enrollmentEndpoints?.length ?? 0) > 0
        return canEnrol
          ? { type: 'identity-missing', reason: 'trust bundle missing or unreadable', canEnrol }
          : { type: 'identity-invalid', reason: 'no trust bundle: enrol again or provision one' }
      }
      const spores = this.components.createSporeClient(bundle)
      await spores.start() // reads the cache only; never waits for the network
      if (signal.aborted) {
        await spores.stop()
        return this.abandoned()
      }
      this.spores = spores
    }
    return { type: 'identity-valid' }
  }

  private abandoned(): undefined {
    this.log.debug('identity check abandoned: the agent was stopped')
    return undefined
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
      const retry = isEnrolmentError(err) && !err.retryable ? ' (retrying will not help: check the token and network)' : ''
      return { type: 'enrolment-failed', reason: `${(err as Error).message}${retry}` }
    }
  }

  private async discover(refresh: boolean): Promise<AgentEvent> {
    const spores = this.spores!
    // Re-resolve after a failed round (includes peers when a peer source is
    // configured), and on first boot when nothing is cached yet.
    if (refresh || spores.resolveService(SERVICE_NAMES.networkManager).length === 0) await spores.refresh()
    let endpoints = spores.resolveService(SERVICE_NAMES.networkManager)
    if (endpoints.length === 0) {
      endpoints = spores.bootstrap().seeds.filter((e) => isManagerIdentity(e.expectedIdentity, SERVICE_NAMES.networkManager))
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
        capabilities: this.capabilities(),
        contractVersions: supportedContractVersions(),
        configVersion: this.config!.current().version,
        bootId: this.bootId,
        fromPhase: this.state.phase === Phase.FALLBACK ? Phase.FALLBACK : Phase.DISCOVERY,
        completedCommandIds: this.commandExecutor?.journal.completedIds() ?? [],
        ...(this.commandExecutor != null ? { commandRetention: msToDuration(this.commandExecutor.journal.retention) } : {})
      }, signal)
      // Deadlines from receipt on the monotonic clock, never the manager's absolute times against our wall clock.
      const clock = this.link.clock
      const expiresAtMs = res.lease?.expiresAt?.getTime()
      const remainingMs = res.leaseRemaining != null ? durationToMs(res.leaseRemaining, 0) : undefined
      // An older manager sends no time left: its lease (granted for ttl, expiring at expires_at) dates the grant on its clock.
      if (remainingMs == null && expiresAtMs != null && res.lease?.ttl != null) clock.observeGrant(expiresAtMs, durationToMs(res.lease.ttl, 0))
      const leaseDeadline = clock.deadline({ absoluteMs: expiresAtMs, relativeMs: remainingMs }) ?? clock.now()
      const handoffDeadline =
        clock.deadline({ absoluteMs: res.handoffDeadline?.getTime(), relativeMs: res.handoffTimeout != null ? durationToMs(res.handoffTimeout, 0) : undefined }) ??
        clock.now() + (this.init.handoffDeadlineMs ?? 10_000)
      const skewMs = clock.skewMs()
      if (skewMs != null && Math.abs(skewMs) > 1000) this.log.warn('clock skew with the Network Manager', { skewMs, note: 'deadlines are kept on the monotonic clock' })
      this.registration = {
        leaseId: res.lease?.leaseId ?? '',
        leaseDeadline,
        heartbeatIntervalMs: durationToMs(res.heartbeatInterval, this.init.defaultHeartbeatIntervalMs ?? 1000),
        handoffId: res.handoffId,
        handoffDeadline
      }
      return { type: 'registered', leaseId: this.registration.leaseId }
    } catch (err) {
      const f = describeGrpcError(err)
      return { type: 'registration-failed', reason: f.message, ...(f.retryAfterMs != null ? { retryAfterMs: f.retryAfterMs } : {}) }
    }
  }

  private async commitHandoff(signal: AbortSignal): Promise<AgentEvent> {
    const r = this.registration!
    // Our own deadline, never later than the manager's (both measured from receipt, monotonic).
    const deadlineMs = Math.max(0, Math.floor(Math.min(this.init.handoffDeadlineMs ?? 10_000, this.link.clock.remainingMs(r.handoffDeadline))))
    try {
      const res = await this.link.commit(r.handoffId, r.leaseId, this.config!.current().version, deadlineMs, signal)
      if (res === 'timeout') return { type: 'handoff-timeout', reason: `no confirmation within ${deadlineMs} ms` }
      if (res.outcome === HandoffOutcome.CONFIRMED) return { type: 'handoff-confirmed' }
      return { type: 'handoff-refused', reason: res.reason || 'refused', ...(res.retryAfter != null ? { retryAfterMs: durationToMs(res.retryAfter, 0) } : {}) }
    } catch (err) {
      const f = describeGrpcError(err)
      return { type: 'link-lost', reason: f.message, ...(f.retryAfterMs != null ? { retryAfterMs: f.retryAfterMs } : {}) }
    }
  }

  private startMonitoring(): void {
    const r = this.registration!
    const epoch = this.epoch
    const health = this.components.health ?? ALWAYS_HEALTHY
    // The first report of a stream carries the capabilities; later ones only when they changed.
    let sentCapabilities: string | undefined
    this.link.startHeartbeats(r.leaseId, r.heartbeatIntervalMs, r.leaseDeadline, {
      report: () => {
        const h = withStateProblems(health(), this.stateProblems())
        const capabilities = this.capabilities()
        const fingerprint = JSON.stringify(capabilities)
        const changed = fingerprint !== sentCapabilities
        if (changed && sentCapabilities != null) {
          this.counters.capabilityUpdates++
          // A runtime's reason text may change often (restart countdowns): only what a manager schedules on is worth an info line.
          const was = JSON.parse(sentCapabilities) as Capabilities
          const significant = was.runtime?.availability !== capabilities.runtime?.availability || JSON.stringify([was.components, was.labels]) !== JSON.stringify([capabilities.components, capabilities.labels])
          this.log[significant ? 'info' : 'debug']('capabilities changed; sending them with the heartbeat', { runtime: capabilities.runtime, components: capabilities.components })
        }
        sentCapabilities = fingerprint
        return {
          phase: this.state.phase,
          state: h.state,
          components: h.components,
          usage: resourceUsage(),
          workloads: this.components.runtime?.workloads?.() ?? [],
          configVersion: this.config!.current().version,
          ...(changed ? { capabilities } : {}),
          ...lastTrialReport(this.config!)
        }
      },
      onAck: (ack) => {
        this.counters.heartbeatAcks++
        this.duties.onAck(ack, this.state.phase === Phase.MANAGED, this.controller?.signal)
      },
      onLost: (failure) =>
        this.dispatch({ type: 'link-lost', reason: failure.message, ...(failure.retryAfterMs != null ? { retryAfterMs: failure.retryAfterMs } : {}) }, epoch),
      missedAcks: () => this.init.missedAcksBeforeFallback ?? 3
    })
    // Management commands are accepted only now, after the handoff committed.
    if (this.commandExecutor != null && this.link.endpoint != null) {
      const identity = this.components.identity
      this.session = new CommandSession(this.commandExecutor, {
        endpoint: this.link.endpoint,
        credentials: endpointCredentials(identity, { networkId: this.init.networkId, role: 'manager' }),
        channelOptions: defaultChannelOptions(this.init.networkId),
        identity: { networkId: this.init.networkId, nodeId: this.init.nodeId, spiffeId: identity.spiffeId, certificateSha256: identity.report().certificateSha256 ?? '' },
        leaseId: r.leaseId,
        logger: this.log
      })
      this.session.start()
    }
  }

  /** What the node can do now (sent at registration, and with a heartbeat whenever it changed). */
  private capabilities(): Capabilities {
    this.host ??= hostFacts()
    return nodeCapabilities(this.components.runtime ?? NO_RUNTIME, effectiveConfig(this.config!.local(), this.config!.current()).config.labels, this.init.agentVersion ?? '', this.components.installedComponents?.() ?? [], this.host)
  }

  private readonly onIdentityState = (report: { usable: boolean }): void => {
    this.duties.maybeRenew(this.state.phase === Phase.MANAGED, this.controller?.signal)
    // Repaired while waiting in RECOVERY (an operator restored the files): try now, not after the backoff.
    // Only while a retry actually waits: during an enrolment (also inside RECOVERY) the
    // new certificate is usable before the trust bundle is saved, and checking then would enrol again.
    if (this.state.phase === Phase.RECOVERY && report.usable && this.retryWait != null) this.retryWait.abort('now')
  }

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
      ...(this.nextAttemptAtMs != null ? { nextAttemptAtMs: this.nextAttemptAtMs } : {}),
      history: this.history,
      link: this.link,
      leaseId: this.registration?.leaseId ?? '',
      spores: this.spores?.status(),
      config: this.config,
      problems: this.stateProblems(),
      extraComponents: this.components.health?.().components ?? [],
      runtime: this.components.runtime ?? NO_RUNTIME,
      agentVersion: this.init.agentVersion ?? '',
      startedAt: this.startedAt,
      bootId: this.bootId
    })
  }
}

/** The timings node-core may change on a running agent (all manager-owned). */
export type AgentTunables = Pick<BootstrapAgentInit, 'handoffDeadlineMs' | 'defaultHeartbeatIntervalMs' | 'configConfirmWindowMs' | 'reconnect' | 'missedAcksBeforeFallback'>

/** The last config trial as a heartbeat field (so the manager sees a revert, also one made at boot). */
function lastTrialReport(store: ConfigStore): { lastConfigTrial?: { version: number; outcome: string; reason: string; at: Date } } {
  const t = store.lastTrial()
  return t != null ? { lastConfigTrial: { version: t.version, outcome: t.outcome, reason: t.reason, at: new Date(t.atMs) } } : {}
}

export type BootstrapAgent = DefaultBootstrapAgent

/** The event that says an action failed, so the phase that waits for its result moves on. */
function failureEvent(action: AgentAction, reason: string): AgentEvent | undefined {
  switch (action.type) {
    case 'check-identity':
      return { type: 'identity-invalid', reason }
    case 'enrol':
      return { type: 'enrolment-failed', reason }
    case 'discover':
      return { type: 'no-endpoints', reason }
    case 'register':
      return { type: 'registration-failed', reason }
    case 'commit-handoff':
    case 'start-monitoring':
      return { type: 'link-lost', reason }
    default:
      // stop-monitoring, rollback-config: logged; the retry that follows them still runs.
      return undefined
  }
}

export function createBootstrapAgent(components: BootstrapAgentComponents, init: BootstrapAgentInit): BootstrapAgent {
  return new DefaultBootstrapAgent(components, init)
}
