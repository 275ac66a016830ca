import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { RetryWait } from './retry-wait.js'
import {
  durationToMs,
  NodeConfig,
  Phase,
  silentLogger,
  type Capabilities,
  type Endpoint,
  type Logger,
  type PhaseTransition,
  type StatusReport,
  isManagerIdentity,
  SERVICE_NAMES
} from '@mycelium/core-interfaces'
import { DEFAULT_DIAL_TIMEOUT_MS, defaultChannelOptions, endpointCredentials } from '@mycelium/basic-net'
import type { SporeClient } from '@mycelium/spore-client'
import { openAgentState, type AgentState, type AgentStateStore } from './agent-state.js'
import { DEFAULT_HISTORY_SIZE, DEFAULT_MISSED_ACKS_BEFORE_FALLBACK, DEFAULT_RANDOM, DEFAULT_RECONNECT } from './defaults.js'
import { buildStatusReport, lastTrialReport, withStateProblems } from './agent-status.js'
import { CommandExecutor } from './commands/executor.js'
import { CommandSession } from './commands/session.js'
import { orderEndpoints, trustedOperatorKeys, zoneOf } from '@mycelium/spore-client'
import { ConfigStore } from './config-store.js'
import { effectiveConfig } from './config-ownership.js'
import { ManagedDuties } from './managed-duties.js'
import { checkIdentity, enrolStep, type IdentityStepDeps } from './identity-steps.js'
import { ManagerLink } from './manager-link.js'
import { DEFAULT_RECONNECT_WINDOW_CAP_MS, planRetry } from './reconnect-window.js'
import { AssignmentFollower, componentsReportFields } from './assignments.js'
import { capabilityTracker, commitStep, registerStep, type ManagerStepDeps } from './registration.js'
import type { ManagerClock } from './manager-clock.js'
import { ALWAYS_HEALTHY, hostFacts, NO_RUNTIME, nodeCapabilities, resourceUsage, type HostFacts } from './node-facts.js'
import {
  attemptOf,
  failureEventOf,
  INITIAL_STATE,
  nextPhase,
  type AgentAction,
  type AgentEvent,
  type MachineState
} from './phase-machine.js'
import type {
  AgentCounters,
  AgentTunables,
  BootstrapAgent,
  BootstrapAgentComponents,
  BootstrapAgentEvents,
  BootstrapAgentInit
} from './agent-types.js'

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
class DefaultBootstrapAgent extends EventEmitter<BootstrapAgentEvents> implements BootstrapAgent {
  private readonly log: Logger
  private state: MachineState = INITIAL_STATE
  private phaseSince = Date.now()
  private epoch = 0
  private history: PhaseTransition[] = []
  private controller?: AbortController
  private spores?: SporeClient
  private config?: ConfigStore
  private readonly files: AgentState
  private readonly stateStore: AgentStateStore
  private readonly link: ManagerLink
  private readonly duties: ManagedDuties
  private readonly assignments: AssignmentFollower
  /** The retry wait (FALLBACK, RECOVERY): cut short or superseded without stopping the run. */
  private readonly retry = new RetryWait()
  private starting?: Promise<void>
  private host?: HostFacts
  private commandExecutor?: CommandExecutor
  private session?: CommandSession
  private readonly bootId = randomUUID()
  private readonly startedAt = new Date()
  readonly counters: AgentCounters = { transitions: {}, steps: 0, reconnectAttempts: 0, heartbeatAcks: 0, capabilityUpdates: 0 }

  /** The injected jitter source (backoff, endpoint shuffle). */
  private readonly random: () => number
  /** The fleet reconnect window the manager last advertised (0: none): FALLBACK spreads over it. */
  private reconnectWindowMs = 0

  /** Our own copy of the caller's init: retune changes it (the caller's object may be frozen or shared). */
  private readonly init: BootstrapAgentInit

  constructor(
    private readonly components: BootstrapAgentComponents,
    init: BootstrapAgentInit
  ) {
    super()
    this.init = { ...init }
    this.random = init.random ?? DEFAULT_RANDOM
    this.log = (components.logger ?? silentLogger()).forComponent('bootstrap-agent').child({ nodeId: init.nodeId })
    this.files = openAgentState(init.stateDir, { logger: this.log })
    this.stateStore = this.files.store
    this.link = new ManagerLink({
      credentials: endpointCredentials(components.identity, { networkId: init.networkId, role: 'manager' }),
      // A private subchannel per link: a new dial never inherits the backoff
      // of a failed one, so the agent's jittered schedule alone decides retries.
      channelOptions: { ...defaultChannelOptions(init.networkId), 'grpc.use_local_subchannel_pool': 1 },
      dialTimeoutMs: init.dialTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS,
      logger: this.log
    })
    this.assignments = new AssignmentFollower(this.link, components.onAssignments, this.log)
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
      (await this.files.openConfig(
        this.init.initialConfig ?? NodeConfig.fromPartial({ networkId: this.init.networkId, nodeId: this.init.nodeId })
      ))
    if (signal.aborted) return
    const journal = await this.files.openJournal()
    const commandExecutor = new CommandExecutor(
      this.duties.commandHandlers(() => this.controller?.signal),
      journal,
      {
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
      }
    )
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
    this.retry.reset()
    this.record(Phase.UNSPECIFIED, Phase.BOOTSTRAP, 'agent started')
    this.execute([{ type: 'check-identity' }])
  }

  /** Stops the run (safe to call twice, and after a failed start). Workloads are never touched. */
  async stop(): Promise<void> {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    this.epoch++
    this.retry.cancel()
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

  /** The Network Manager endpoint this node holds its lease with, while MANAGED (emergency contact relays to it). */
  get managerEndpoint(): Endpoint | undefined {
    return this.state.phase === Phase.MANAGED ? this.link.endpoint : undefined
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
    this.retry.cancel()
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
    this.history = [...this.history, transition].slice(-(this.init.historySize ?? DEFAULT_HISTORY_SIZE))
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
          const event = failureEventOf(action, `${action.type} failed: ${(err as Error).message}`)
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
        return enrolStep(this.identitySteps())
      case 'discover':
        return this.discover(action.refresh)
      case 'register':
        return registerStep(this.managerStep(), signal)
      case 'commit-handoff':
        return commitStep(this.managerStep(), signal)
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
        // In FALLBACK the manager's fleet reconnect window widens the jitter (reconnect-window.ts).
        const fallback = this.state.phase === Phase.FALLBACK
        const plan = planRetry(
          { failures: this.state.failures, retryAfterMs: action.retryAfterMs, reconnectWindowMs: fallback ? this.reconnectWindowMs : 0 },
          { ...DEFAULT_RECONNECT, ...this.init.reconnect },
          this.random,
          this.init.reconnectWindowCapMs
        )
        const delay = plan.delayMs
        this.log.info('retry scheduled', {
          phase: Phase[this.state.phase],
          attempt: attemptOf(this.state),
          delayMs: delay,
          ceilingMs: plan.ceilingMs,
          retryAfterMs: action.retryAfterMs,
          ...(plan.windowMs > 0 ? { reconnectWindowMs: plan.windowMs } : {})
        })
        if (!(await this.retry.wait(delay, signal))) return undefined
        if (this.state.phase === Phase.FALLBACK) this.counters.reconnectAttempts++
        return { type: 'retry-timer' }
      }
    }
  }

  private identitySteps(): IdentityStepDeps {
    return { components: this.components, init: this.init, stateStore: this.stateStore }
  }

  /** `undefined` when the run was stopped meanwhile: no spore client may outlive its run. */
  private async checkIdentity(signal: AbortSignal): Promise<AgentEvent | undefined> {
    const checked = await checkIdentity(this.identitySteps(), this.spores != null, signal)
    if (checked == null) {
      this.log.debug('identity check abandoned: the agent was stopped')
      return undefined
    }
    if (checked.spores != null) {
      this.spores = checked.spores
      // A window learned before this spore client existed (a run restarted) applies to it too.
      this.learnReconnectWindow(this.reconnectWindowMs)
    }
    return checked.event
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
    if (endpoints.length === 0)
      return { type: 'no-endpoints', reason: 'no spore names a Network Manager (cache empty and sources unreachable?)' }
    // The dial order: priority, the node's own zone first, shuffled so a fleet spreads over managers.
    const zone = zoneOf(effectiveConfig(this.config!.local(), this.config!.current()).config.labels)
    return { type: 'endpoints-found', endpoints: orderEndpoints(endpoints, { zone, random: this.random }) }
  }

  /** What registration and the handoff commit need of the agent, read when each runs. */
  private managerStep(): ManagerStepDeps {
    const journal = this.commandExecutor?.journal
    return {
      link: this.link,
      init: this.init,
      identity: this.components.identity,
      state: this.state,
      configVersion: this.config!.current().version,
      capabilities: () => this.capabilities(),
      bootId: this.bootId,
      ...(journal != null ? { journal } : {}),
      onRegistered: (res) => {
        this.learnReconnectWindow(durationToMs(res.reconnectWindow, 0))
        this.assignments.onRegistered(res)
      },
      log: this.log
    }
  }

  /** The fleet window the manager advertised: this agent's reconnections use it, and so does the spore watch's redial. */
  private learnReconnectWindow(windowMs: number): void {
    this.reconnectWindowMs = windowMs
    this.spores?.retune({ reconnectWindowMs: Math.min(windowMs, this.init.reconnectWindowCapMs ?? DEFAULT_RECONNECT_WINDOW_CAP_MS) })
  }

  private startMonitoring(): void {
    const r = this.state.registration!
    const epoch = this.epoch
    const health = this.components.health ?? ALWAYS_HEALTHY
    // The first report of a stream carries the capabilities; later ones only when they changed.
    const capabilitiesChanged = capabilityTracker(this.log, () => this.counters.capabilityUpdates++)
    this.link.startHeartbeats(r.leaseId, r.heartbeatIntervalMs, r.leaseDeadline, {
      report: () => {
        const h = withStateProblems(health(), this.stateProblems())
        const capabilities = this.capabilities()
        const changed = capabilitiesChanged(capabilities)
        return {
          phase: this.state.phase,
          state: h.state,
          components: h.components,
          usage: resourceUsage(),
          workloads: this.components.runtime?.workloads?.() ?? [],
          configVersion: this.config!.current().version,
          ...(changed ? { capabilities } : {}),
          ...componentsReportFields(this.components.componentsReport),
          update: this.components.updateStatus?.(),
          ...lastTrialReport(this.config!)
        }
      },
      onAck: (ack) => {
        this.counters.heartbeatAcks++
        if (ack.reconnectWindow != null) this.learnReconnectWindow(durationToMs(ack.reconnectWindow, 0))
        this.duties.onAck(ack, this.state.phase === Phase.MANAGED, this.controller?.signal)
        this.assignments.onAck(ack, r.leaseId, this.controller?.signal)
      },
      onLost: (failure) =>
        this.dispatch(
          { type: 'link-lost', reason: failure.message, ...(failure.retryAfterMs != null ? { retryAfterMs: failure.retryAfterMs } : {}) },
          epoch
        ),
      missedAcks: () => this.init.missedAcksBeforeFallback ?? DEFAULT_MISSED_ACKS_BEFORE_FALLBACK
    })
    // Management commands are accepted only now, after the handoff committed.
    if (this.commandExecutor != null && this.link.endpoint != null) {
      const identity = this.components.identity
      this.session = new CommandSession(this.commandExecutor, {
        endpoint: this.link.endpoint,
        credentials: endpointCredentials(identity, { networkId: this.init.networkId, role: 'manager' }),
        channelOptions: defaultChannelOptions(this.init.networkId),
        identity: {
          networkId: this.init.networkId,
          nodeId: this.init.nodeId,
          spiffeId: identity.spiffeId,
          certificateSha256: identity.report().certificateSha256 ?? ''
        },
        leaseId: r.leaseId,
        logger: this.log
      })
      this.session.start()
    }
  }

  /** What the node can do now (sent at registration, and with a heartbeat whenever it changed). */
  private capabilities(): Capabilities {
    this.host ??= hostFacts()
    return nodeCapabilities(
      this.components.runtime ?? NO_RUNTIME,
      effectiveConfig(this.config!.local(), this.config!.current()).config.labels,
      this.init.agentVersion ?? '',
      this.components.installedComponents?.() ?? [],
      this.host
    )
  }

  private readonly onIdentityState = (report: { usable: boolean }): void => {
    this.duties.maybeRenew(this.state.phase === Phase.MANAGED, this.controller?.signal)
    // Repaired while waiting in RECOVERY (an operator restored the files): try now, not after the backoff.
    // Only while a retry actually waits: during an enrolment (also inside RECOVERY) the
    // new certificate is usable before the trust bundle is saved, and checking then would enrol again.
    if (this.state.phase === Phase.RECOVERY && report.usable && this.retry.waiting) this.retry.now()
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
      ...(this.retry.nextAttemptAtMs != null ? { nextAttemptAtMs: this.retry.nextAttemptAtMs } : {}),
      history: this.history,
      link: this.link,
      leaseId: this.state.registration?.leaseId ?? '',
      spores: this.spores?.status(),
      config: this.config,
      problems: this.stateProblems(),
      extraComponents: this.components.health?.().components ?? [],
      runtime: this.components.runtime ?? NO_RUNTIME,
      agentVersion: this.init.agentVersion ?? '',
      startedAt: this.startedAt,
      bootId: this.bootId,
      componentsReport: this.components.componentsReport
    })
  }
}

export function createBootstrapAgent(components: BootstrapAgentComponents, init: BootstrapAgentInit): BootstrapAgent {
  return new DefaultBootstrapAgent(components, init)
}
