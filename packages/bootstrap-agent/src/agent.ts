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
  type StatusReport
} from '@mycelium/core-interfaces'
import { DEFAULT_DIAL_TIMEOUT_MS, defaultChannelOptions, endpointCredentials } from '@mycelium/basic-net'
import type { SporeClient } from '@mycelium/spore-client'
import { openAgentState, type AgentState, type AgentStateStore } from './agent-state.js'
import { DEFAULT_MISSED_ACKS_BEFORE_FALLBACK, DEFAULT_RANDOM } from './defaults.js'
import { PhaseTrail } from './phase-trail.js'
import { buildStatusReport } from './agent-status.js'
import { agentCommandSession, createAgentExecutor } from './agent-commands.js'
import type { CommandExecutor } from './commands/executor.js'
import type { CommandSession } from './commands/session.js'
import type { ConfigStore } from './config-store.js'
import { effectiveConfig } from './config-ownership.js'
import { discoverStep } from './discovery-step.js'
import { heartbeatReporter } from './heartbeat-report.js'
import { ManagedDuties } from './managed-duties.js'
import { checkIdentity, enrolStep, type IdentityStepDeps } from './identity-steps.js'
import { ManagerLink } from './manager-link.js'
import { DEFAULT_RECONNECT_WINDOW_CAP_MS } from './reconnect-window.js'
import { retryStep } from './retry-step.js'
import { AssignmentFollower } from './assignments.js'
import { commitStep, registerStep, type ManagerStepDeps } from './registration.js'
import type { ManagerClock } from './manager-clock.js'
import { ALWAYS_HEALTHY, hostFacts, NO_RUNTIME, nodeCapabilities, type HostFacts } from './node-facts.js'
import { failureEventOf, INITIAL_STATE, nextPhase, type AgentAction, type AgentEvent, type MachineState } from './phase-machine.js'
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
  private epoch = 0
  /** History, counters and log lines of the machine's moves. */
  private readonly trail: PhaseTrail
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
  readonly counters: AgentCounters

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
    this.trail = new PhaseTrail(this.stateStore, this.init, this.log)
    this.counters = this.trail.counters
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
    const commandExecutor = createAgentExecutor({
      handlers: this.duties.commandHandlers(() => this.controller?.signal),
      journal,
      init: this.init,
      trustBundle: () => this.spores?.bootstrap().trustBundle,
      clock: this.link.clock,
      log: this.log
    })
    // Stopped while starting: stop() already undid the run; nothing to begin.
    if (signal.aborted) {
      journal.close()
      return
    }
    this.trail.history = history
    this.config = config
    this.commandExecutor = commandExecutor
    // Commands a crash left unfinished: resumed or failed now, reported on the next session.
    void commandExecutor.resumeInterrupted()
    this.components.identity.on('state', this.onIdentityState)
    this.state = INITIAL_STATE
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
    if (before.phase !== t.state.phase) this.record(before.phase, t.state.phase, t.state.reason)
    else this.emit('step', this.trail.step(before, t.state))
    this.execute(t.actions)
  }

  private record(from: Phase, to: Phase, reason: string): void {
    this.emit('transition', this.trail.transition(from, to, reason))
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
        return discoverStep({ spores: this.spores!, labels: () => this.labels(), random: this.random }, action.refresh)
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
        // In FALLBACK the manager's fleet reconnect window widens the jitter (retry-step.ts, reconnect-window.ts).
        const deps = { state: this.state, reconnectWindowMs: this.reconnectWindowMs, init: this.init, random: this.random }
        if (!(await retryStep(deps, action.retryAfterMs, this.retry, this.log, signal))) return undefined
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
    this.link.startHeartbeats(r.leaseId, r.heartbeatIntervalMs, r.leaseDeadline, {
      // The first report of a stream carries the capabilities; later ones only when they changed.
      report: heartbeatReporter({
        phase: () => this.state.phase,
        health: this.components.health ?? ALWAYS_HEALTHY,
        stateProblems: () => this.stateProblems(),
        capabilities: () => this.capabilities(),
        config: () => this.config!,
        components: this.components,
        onCapabilitiesChanged: () => this.counters.capabilityUpdates++,
        log: this.log
      }),
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
    const endpoint = this.link.endpoint
    if (this.commandExecutor != null && endpoint != null) {
      const { commandExecutor: executor, log, init } = this
      this.session = agentCommandSession({ executor, endpoint, identity: this.components.identity, init, leaseId: r.leaseId, log })
      this.session.start()
    }
  }

  /** What the node can do now (sent at registration, and with a heartbeat whenever it changed). */
  private capabilities(): Capabilities {
    this.host ??= hostFacts()
    return nodeCapabilities(
      this.components.runtime ?? NO_RUNTIME,
      this.labels(),
      this.init.agentVersion ?? '',
      this.components.installedComponents?.() ?? [],
      this.host
    )
  }

  /** The node's labels in force (its own and the manager's, by owner). */
  private labels(): Record<string, string> {
    return effectiveConfig(this.config!.local(), this.config!.current()).config.labels
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
      phaseSince: this.trail.phaseSince,
      ...(this.retry.nextAttemptAtMs != null ? { nextAttemptAtMs: this.retry.nextAttemptAtMs } : {}),
      history: this.trail.history,
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
