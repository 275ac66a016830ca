import type { EventEmitter } from 'node:events'
import type {
  AbortOptions,
  ComponentInfo,
  EmergencyAction,
  Phase,
  Endpoint,
  Logger,
  NodeConfig,
  PhaseTransition,
  Startable,
  StatusReport,
  TrustBundle,
  UpdateStatus
} from '@mycelium/core-interfaces'
import type { BackoffOptions } from '@mycelium/core-utils'
import type { IdentityStore } from '@mycelium/basic-net'
import type { SporeClient } from '@mycelium/spore-client'
import type { ConfigStore, TrialOutcome } from './config-store.js'
import type { CommandExecutor, CommandHandlers } from './commands/executor.js'
import type { ManagerClock } from './manager-clock.js'
import type { AgentEvent } from './phase-machine.js'
import type { AssignmentsUpdate, ComponentsReport } from './assignments.js'
import type { NodeHealth, RuntimeView } from './node-facts.js'

/** What the agent is given (components) and told (init), what it emits, and what it counts. */
export interface BootstrapAgentComponents {
  logger?: Logger
  identity: IdentityStore
  /** Builds the spore client once the trust bundle is known (after enrolment on a fresh node). */
  createSporeClient: (trustBundle: TrustBundle) => SporeClient
  runtime?: RuntimeView
  /** Node health for heartbeats and config trials. @default always healthy */
  health?: () => NodeHealth
  /** Puts a NodeConfig into effect (node-core reconfigures its components). */
  applyConfig?: (config: NodeConfig) => Promise<void>
  /** Refuses a manager's config before it is tried (values the generic checks cannot judge); throws InvalidConfigError naming the key. */
  validateConfig?: (config: NodeConfig) => void
  /** The config store, opened by the caller before its components were built from it (node-core); default: the agent opens it at start. */
  openConfigStore?: () => Promise<ConfigStore>
  /** Restarts a core component ("" = the whole agent) for the restart command. */
  restart?: (component: string) => Promise<void>
  /** Emergency actions other than reset-to-last-known-good (isolate, stop workloads, diagnostics). */
  emergency?: (action: EmergencyAction, reason: string) => Promise<void>
  /** Self-update of the agent (node-core): the update command's handlers. Absent: updates are refused. */
  selfUpdate?: Pick<CommandHandlers, 'refuseUpdate' | 'update'>
  /** The self-update state sent with every heartbeat (slot, trial, last outcome). @default none */
  updateStatus?: () => UpdateStatus | undefined
  /**
   * Components installed on the node beyond the container runtime (which is
   * listed when available). Read at registration and at every heartbeat: a
   * change is sent to the manager with the next heartbeat. @default none
   */
  installedComponents?: () => ComponentInfo[]
  /** A new full set of assignments (registration reply, or RequestAssignments after an ack announced a newer generation). */
  onAssignments?: (update: AssignmentsUpdate) => void
  /** Dynamic components and the assignment generation applied, sent with every heartbeat. @default none */
  componentsReport?: () => ComponentsReport
}

export interface BootstrapAgentInit {
  networkId: string
  nodeId: string
  /** State directory (config/, agent state, trust bundle). */
  stateDir: string
  /** Join token for the first enrolment. */
  joinToken?: string
  /** Where to enrol (TLS, no client certificate). */
  enrollmentEndpoints?: Endpoint[]
  /** Trust bundle provisioned by the operator (used when none was learnt at enrolment). */
  trustBundle?: TrustBundle
  /** The local config (seeds the config store). */
  initialConfig?: NodeConfig
  /** How long the Network Manager gets to confirm a handoff. @default DEFAULT_HANDOFF_DEADLINE_MS */
  handoffDeadlineMs?: number
  /** Until a lease gives one. @default DEFAULT_HEARTBEAT_INTERVAL_MS */
  defaultHeartbeatIntervalMs?: number
  /** Dialling a manager (and enrolment). @default basic-net DEFAULT_DIAL_TIMEOUT_MS */
  dialTimeoutMs?: number
  /** Retries in FALLBACK (reconnection) and RECOVERY (identity): capped exponential, full jitter. @default DEFAULT_RECONNECT */
  reconnect?: BackoffOptions
  /**
   * The jitter source for retries, a number in [0, 1); each wait is
   * `random() × ceiling`; it also shuffles manager endpoints of equal
   * priority. Injected by the composition; tests pin it to see the backoff.
   * @default DEFAULT_RANDOM
   */
  random?: () => number
  /**
   * The longest fleet reconnect window (a manager's `reconnect_window`) the
   * agent spreads its reconnection over. @default DEFAULT_RECONNECT_WINDOW_CAP_MS
   */
  reconnectWindowCapMs?: number
  /** How long a manager's config is tried before it is kept. @default DEFAULT_CONFIG_CONFIRM_WINDOW_MS */
  configConfirmWindowMs?: number
  /** Heartbeats unanswered in a row before the manager link is declared down. @default DEFAULT_MISSED_ACKS_BEFORE_FALLBACK */
  missedAcksBeforeFallback?: number
  /** Transitions kept for status. @default DEFAULT_HISTORY_SIZE */
  historySize?: number
  /**
   * The agent's version as built (node-core passes its package.json version),
   * reported at registration and in status. @default '' (unknown: reported empty, never guessed)
   */
  agentVersion?: string
}

/** A step inside the current phase (a retry attempt, enrolment): not a phase transition. */
export interface PhaseStep {
  phase: Phase
  step: string
  /** Why the last attempt in this phase failed ('' when none did). */
  lastError: string
}

export interface BootstrapAgentEvents {
  /** A phase change (also in the history and `transitions`). */
  transition: [t: PhaseTransition]
  /** A step inside the phase (logged and shown as status `progress`; not history). */
  step: [s: PhaseStep]
  'config:trial': [outcome: TrialOutcome]
}

/** Counters for metrics (node-core exports them). */
export interface AgentCounters {
  /** Phase changes by phase entered (never a phase "changing" to itself). */
  transitions: Record<string, number>
  /** Steps inside a phase (retry attempts, enrolment). */
  steps: number
  /** Reconnection attempts started in FALLBACK. */
  reconnectAttempts: number
  heartbeatAcks: number
  /** Heartbeats that carried changed capabilities. */
  capabilityUpdates: number
}

/** The timings node-core may change on a running agent (all manager-owned). */
export type AgentTunables = Pick<
  BootstrapAgentInit,
  'handoffDeadlineMs' | 'defaultHeartbeatIntervalMs' | 'configConfirmWindowMs' | 'reconnect' | 'missedAcksBeforeFallback'
>

/**
 * The bootstrap agent (see `createBootstrapAgent`): runs the handoff state
 * machine; start/stop are idempotent and never touch workloads.
 */
export interface BootstrapAgent extends EventEmitter<BootstrapAgentEvents>, Startable {
  start(options?: AbortOptions): Promise<void>
  stop(options?: AbortOptions): Promise<void>
  /** The phase now. */
  readonly phase: Phase
  readonly counters: AgentCounters
  /** The manager's clock as this node follows it (monotonic): for times a manager set, e.g. command deadlines. */
  readonly managerClock: ManagerClock
  /** The Network Manager endpoint this node holds its lease with, while MANAGED (emergency contact relays to it). */
  readonly managerEndpoint: Endpoint | undefined
  /** The spore client, once the trust bundle is known. */
  readonly sporeClient: SporeClient | undefined
  readonly configStore: ConfigStore | undefined
  /** Runs management commands; node-core submits local (manual recovery) operations here too. */
  readonly executor: CommandExecutor | undefined
  /** Manager-owned timings of a new config in force: each is read again at its next use. */
  retune(t: AgentTunables): void
  /** Feeds an event to the state machine (tests and node-core). */
  dispatch(event: AgentEvent): void
  /** The NodeStatus view of the agent. */
  status(): StatusReport
}
