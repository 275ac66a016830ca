/**
 * @packageDocumentation
 * The Self-Hosting Handoff Process: the handoff state machine (pure), its
 * runner, the manager link (registration, two-phase handoff, heartbeats,
 * failure detection), fallback with capped jittered reconnection, the config
 * store (try-mode with last-known-good) and the agent state store.
 */
export { nextPhase, INITIAL_STATE, type AgentEvent, type AgentAction, type MachineState, type Transition } from './phase-machine.js'
export { ConfigStore, tryConfig, validateRemoteConfig, type TrialInfo, type TrialOptions, type TrialOutcome } from './config-store.js'
