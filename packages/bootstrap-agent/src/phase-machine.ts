import { Phase } from '@mycelium/core-interfaces'

/**
 * The handoff state machine as a pure function. The runner feeds it events
 * (results of the actions it executes, timers, failures) and executes the
 * actions it returns, one transition at a time.
 *
 *   BOOTSTRAP ─▶ DISCOVERY ─▶ REGISTRATION ─▶ HANDOFF ─▶ MANAGED
 *      │ invalid     │ none found   │ refused     │ refused / no confirmation in time
 *      ▼             ▼              ▼             ▼             │ link lost
 *   RECOVERY      FALLBACK ◀────────────────────────────────────┘
 *      └─(retry)─▶ BOOTSTRAP   FALLBACK ─(retry, backoff + jitter)─▶ DISCOVERY
 *
 * Invariants: every transition carries a reason; an event that does not
 * belong to the current phase changes nothing (the runner also discards
 * results of actions started before the last transition).
 */
export type AgentEvent =
  /** Identity checked at boot (or after enrolment/recovery). */
  | { type: 'identity-valid' }
  | { type: 'identity-missing'; reason: string; canEnrol: boolean }
  | { type: 'identity-invalid'; reason: string }
  | { type: 'enrolled' }
  | { type: 'enrolment-failed'; reason: string }
  | { type: 'endpoints-found'; count: number }
  | { type: 'no-endpoints'; reason: string }
  | { type: 'registered'; leaseId: string }
  | { type: 'registration-failed'; reason: string; retryAfterMs?: number }
  | { type: 'handoff-confirmed' }
  | { type: 'handoff-refused'; reason: string; retryAfterMs?: number }
  | { type: 'handoff-timeout'; reason: string }
  | { type: 'link-lost'; reason: string; retryAfterMs?: number }
  | { type: 'retry-timer' }

export type AgentAction =
  | { type: 'check-identity' }
  | { type: 'enrol' }
  | { type: 'discover'; refresh: boolean }
  | { type: 'register' }
  | { type: 'commit-handoff' }
  | { type: 'start-monitoring' }
  | { type: 'stop-monitoring' }
  | { type: 'rollback-config'; reason: string }
  | { type: 'schedule-retry'; retryAfterMs: number }

export interface MachineState {
  phase: Phase
  reason: string
  /** Failed reconnection rounds since the node last was MANAGED (drives backoff and spore refresh). */
  failures: number
}

export interface Transition {
  state: MachineState
  actions: AgentAction[]
}

export const INITIAL_STATE: MachineState = { phase: Phase.BOOTSTRAP, reason: 'agent starting', failures: 0 }

const to = (phase: Phase, reason: string, failures: number, actions: AgentAction[]): Transition => ({
  state: { phase, reason, failures },
  actions
})

const fallback = (s: MachineState, reason: string, retryAfterMs = 0, extra: AgentAction[] = []): Transition =>
  to(Phase.FALLBACK, reason, s.failures + 1, [...extra, { type: 'schedule-retry', retryAfterMs }])

/**
 * The next state and the actions to run, or `undefined` when the event does
 * not apply in the current phase (it is then ignored).
 */
export function nextPhase(s: MachineState, e: AgentEvent): Transition | undefined {
  switch (s.phase) {
    case Phase.BOOTSTRAP:
      switch (e.type) {
        case 'identity-valid':
          return to(Phase.DISCOVERY, 'identity valid; resolving Network Manager endpoints from spores', s.failures, [{ type: 'discover', refresh: false }])
        case 'identity-missing':
          return e.canEnrol
            ? to(Phase.BOOTSTRAP, `${e.reason}; enrolling with the join token`, s.failures, [{ type: 'enrol' }])
            : to(Phase.RECOVERY, `${e.reason}; no join token to enrol with`, s.failures, [{ type: 'schedule-retry', retryAfterMs: 0 }])
        case 'identity-invalid':
          return to(Phase.RECOVERY, `identity invalid: ${e.reason}`, s.failures, [{ type: 'schedule-retry', retryAfterMs: 0 }])
        case 'enrolled':
          return to(Phase.BOOTSTRAP, 'enrolled; checking the new identity', s.failures, [{ type: 'check-identity' }])
        case 'enrolment-failed':
          return to(Phase.RECOVERY, `enrolment failed: ${e.reason}`, s.failures + 1, [{ type: 'schedule-retry', retryAfterMs: 0 }])
        default:
          return undefined
      }
    case Phase.RECOVERY:
      return e.type === 'retry-timer'
        ? to(Phase.BOOTSTRAP, `retrying after: ${s.reason}`, s.failures, [{ type: 'check-identity' }])
        : undefined
    case Phase.DISCOVERY:
      switch (e.type) {
        case 'endpoints-found':
          return to(Phase.REGISTRATION, `found ${e.count} Network Manager endpoint(s); registering`, s.failures, [{ type: 'register' }])
        case 'no-endpoints':
          return fallback(s, `no Network Manager endpoint: ${e.reason}`)
        default:
          return undefined
      }
    case Phase.REGISTRATION:
      switch (e.type) {
        case 'registered':
          return to(Phase.HANDOFF, `registered with lease ${e.leaseId}; committing handoff`, s.failures, [{ type: 'commit-handoff' }])
        case 'registration-failed':
          return fallback(s, `registration failed: ${e.reason}`, e.retryAfterMs)
        default:
          return undefined
      }
    case Phase.HANDOFF:
      switch (e.type) {
        case 'handoff-confirmed':
          return to(Phase.MANAGED, 'handoff confirmed by the Network Manager', 0, [{ type: 'start-monitoring' }])
        case 'handoff-refused':
          return fallback(s, `handoff refused: ${e.reason}; keeping local control`, e.retryAfterMs, [
            { type: 'rollback-config', reason: `handoff refused: ${e.reason}` }
          ])
        case 'handoff-timeout':
          return fallback(s, `handoff not confirmed: ${e.reason}; rolled back to local control`, 0, [
            { type: 'rollback-config', reason: `handoff not confirmed: ${e.reason}` }
          ])
        case 'link-lost':
          return fallback(s, `link lost during handoff: ${e.reason}`, e.retryAfterMs, [
            { type: 'rollback-config', reason: `link lost during handoff: ${e.reason}` }
          ])
        default:
          return undefined
      }
    case Phase.MANAGED:
      return e.type === 'link-lost'
        ? fallback(s, `manager link lost: ${e.reason}`, e.retryAfterMs, [{ type: 'stop-monitoring' }])
        : undefined
    case Phase.FALLBACK:
      // After a failed round, re-resolve spores (and ask peers) before trying again.
      return e.type === 'retry-timer'
        ? to(Phase.DISCOVERY, `reconnecting (attempt ${s.failures + 1})`, s.failures, [{ type: 'discover', refresh: s.failures > 0 }])
        : undefined
    default:
      return undefined
  }
}
