/**
 * @packageDocumentation
 * The Self-Hosting Handoff Process: the handoff state machine (pure), its
 * runner, the manager link (registration, two-phase handoff, heartbeats,
 * failure detection), fallback with capped jittered reconnection, the config
 * store (try-mode with last-known-good) and the agent state store.
 */
export {
  nextPhase,
  INITIAL_STATE,
  changesPhase,
  attemptOf,
  type AgentEvent,
  type AgentAction,
  type MachineState,
  type Registration,
  type Transition
} from './phase-machine.js'
export {
  planRetry,
  DEFAULT_RECONNECT_WINDOW_CAP_MS,
  DEFAULT_RESERVATION_JITTER_MS,
  type RetryPlan,
  type RetryPlanInput
} from './reconnect-window.js'
export {
  DEFAULT_HANDOFF_DEADLINE_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_CONFIG_CONFIRM_WINDOW_MS,
  DEFAULT_MISSED_ACKS_BEFORE_FALLBACK,
  DEFAULT_HISTORY_SIZE,
  DEFAULT_RECONNECT,
  DEFAULT_RENEW_RETRY_MS,
  DEFAULT_RANDOM
} from './defaults.js'
// Types only: the agent builds these; callers read them through BootstrapAgent.
export type { ManagerClock } from './manager-clock.js'
export {
  ConfigStore,
  tryConfig,
  validateRemoteConfig,
  type TrialInfo,
  type TrialOptions,
  type TrialOutcome,
  type LastTrial
} from './config-store.js'
export {
  CONFIG_OWNERSHIP,
  MANAGER_SECTIONS,
  ownerOf,
  nodeOwnedKeysTouched,
  effectiveConfig,
  type ConfigOwner,
  type ConfigSection,
  type EffectiveConfig,
  type SectionVersions
} from './config-ownership.js'
export { createBootstrapAgent } from './agent.js'
export { AssignmentFollower, componentsReportFields, type AssignmentsUpdate, type ComponentsReport } from './assignments.js'
export type {
  BootstrapAgent,
  BootstrapAgentComponents,
  BootstrapAgentInit,
  BootstrapAgentEvents,
  AgentCounters,
  PhaseStep,
  AgentTunables
} from './agent-types.js'
export { enrol, fetchPinnedCa, EnrolmentError, isEnrolmentError, type EnrolOptions } from './enrolment.js'
export type { LinkFailure } from './manager-link.js'
export { openAgentState, type AgentState, type AgentStateStore } from './agent-state.js'
export { agentStatePaths, displaced, diagnosticsPath, type AgentStatePaths } from './state-layout.js'
export {
  nodeCapabilities,
  hostFacts,
  resourceUsage,
  RESOURCE_SAMPLE_MS,
  NO_RUNTIME,
  ALWAYS_HEALTHY,
  type RuntimeView,
  type NodeHealth,
  type HostFacts
} from './node-facts.js'
export type { CommandExecutor, CommandHandlers, ExecutorInit, ExecutorEvents } from './commands/executor.js'
export type { CommandJournal } from './commands/journal.js'
export {
  DEFAULT_COMMAND_JOURNAL,
  FINAL_STATES,
  INTERRUPTED_REASON,
  JournalFullError,
  isJournalFullError,
  isIdempotent,
  planInterrupted,
  type CommandJournalInit,
  type InterruptedPlan,
  type JournalEntry
} from './commands/journal.js'
export { validateCommand, type Validation, type ValidationContext } from './commands/validate.js'
export { buildStatusReport, type StatusInput } from './agent-status.js'
