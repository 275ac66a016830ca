import { Phase, type Endpoint } from '@mycelium/core-interfaces'

/**
 * The handoff state machine as a pure function. The runner feeds it events
 * (results of the actions it executes, timers, failures) and executes the
 * actions it returns, one step at a time.
 *
 *   BOOTSTRAP ─▶ DISCOVERY ─▶ REGISTRATION ─▶ HANDOFF ─▶ MANAGED
 *      │ invalid     │ none found   │ refused     │ refused / no confirmation in time
 *      ▼             ▼              ▼             ▼             │ link lost
 *   RECOVERY      FALLBACK ◀────────────────────────────────────┘
 *      │ identity usable   │ registered (attempts run inside FALLBACK)
 *      ▼                   ▼
 *   DISCOVERY           HANDOFF
 *
 * A phase says what is true of the node, not which action runs: retries
 * are *steps inside* their phase. FALLBACK reconnects by running discovery
 * and registration inside FALLBACK (a node whose managers are down reports
 * FALLBACK, never REGISTRATION) and leaves only when a registration
 * succeeds; RECOVERY re-checks or re-enrols its identity inside RECOVERY and
 * leaves only when the identity is usable; BOOTSTRAP enrols inside
 * BOOTSTRAP. A transition keeps the phase (a step) or changes it; only
 * changes are history and metrics.
 *
 * The state carries the data the phases act on: the endpoints the last
 * discovery found (in dial order) and the last registration (lease, handoff
 * id, deadlines), kept until a newer one replaces it.
 *
 * Invariants: every state carries the reason it entered its phase; a step
 * says what it does (`step`) and a failed attempt why (`lastError`);
 * `failures` counts failed rounds in FALLBACK (since the node last was
 * MANAGED) and in RECOVERY (since entering it), and drives the capped,
 * jittered backoff of both; an event that does not belong to the current
 * phase changes nothing (the runner also discards results of actions started
 * before the last step).
 */
export type AgentEvent =
  /** Identity checked at boot (or after enrolment/recovery). */
  | { type: 'identity-valid' }
  | { type: 'identity-missing'; reason: string; canEnrol: boolean }
  | { type: 'identity-invalid'; reason: string }
  | { type: 'enrolled' }
  | { type: 'enrolment-failed'; reason: string }
  | { type: 'endpoints-found'; endpoints: Endpoint[] }
  | { type: 'no-endpoints'; reason: string }
  | { type: 'registered'; registration: Registration }
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

/** What a registration granted; deadlines on the manager link's monotonic clock (ManagerClock). */
export interface Registration {
  leaseId: string
  leaseDeadline: number
  heartbeatIntervalMs: number
  handoffId: string
  handoffDeadline: number
}

export interface MachineState {
  phase: Phase
  /** Why the node entered this phase; kept while it stays in it. */
  reason: string
  /** What the node does now inside the phase ('' when nothing beyond the phase itself). */
  step: string
  /** Why the last attempt inside this phase failed ('' when none failed yet). */
  lastError: string
  /** Failed rounds: in FALLBACK since the node last was MANAGED, in RECOVERY since entering it. Drives backoff, attempt numbers, spore refresh. */
  failures: number
  /** Network Manager endpoints in dial order, from the last discovery that found any. */
  endpoints: readonly Endpoint[]
  /** The last registration; kept (status shows its lease) until a newer one replaces it. */
  registration?: Registration
}

export interface Transition {
  state: MachineState
  actions: AgentAction[]
}

export const INITIAL_STATE: MachineState = {
  phase: Phase.BOOTSTRAP,
  reason: 'agent starting',
  step: 'checking the identity',
  lastError: '',
  failures: 0,
  endpoints: []
}

/** Whether a transition changes the phase (history, metrics) or is a step inside it (logged, visible in status). */
export const changesPhase = (from: MachineState, t: Transition): boolean => from.phase !== t.state.phase

/** The retry attempt in progress or scheduled next in a phase that retries; 0 elsewhere. */
export const attemptOf = (s: MachineState): number =>
  s.phase === Phase.FALLBACK || s.phase === Phase.RECOVERY ? Math.max(1, s.failures) : 0

/** A phase change; the data (endpoints, registration) carries over unless `data` replaces it. */
const enter = (
  s: MachineState,
  phase: Phase,
  reason: string,
  failures: number,
  actions: AgentAction[],
  step = '',
  lastError = '',
  data: Partial<Pick<MachineState, 'endpoints' | 'registration'>> = {}
): Transition => ({
  state: { ...s, ...data, phase, reason, step, lastError, failures },
  actions
})

const stay = (s: MachineState, step: string, actions: AgentAction[]): Transition => ({ state: { ...s, step }, actions })

/** A failed attempt inside FALLBACK or RECOVERY: count it, say why, wait (backoff, at least `retryAfterMs`). */
const failedAttempt = (s: MachineState, error: string, retryAfterMs = 0): Transition => {
  const failures = s.failures + 1
  const what = s.phase === Phase.FALLBACK ? 'reconnection' : 'identity'
  return {
    state: { ...s, failures, lastError: error, step: `waiting before ${what} attempt ${failures}` },
    actions: [{ type: 'schedule-retry', retryAfterMs }]
  }
}

const fallback = (s: MachineState, reason: string, retryAfterMs = 0, extra: AgentAction[] = []): Transition =>
  enter(
    s,
    Phase.FALLBACK,
    reason,
    s.failures + 1,
    [...extra, { type: 'schedule-retry', retryAfterMs }],
    `waiting before reconnection attempt ${s.failures + 1}`,
    reason
  )

const recovery = (s: MachineState, reason: string): Transition =>
  enter(s, Phase.RECOVERY, reason, 1, [{ type: 'schedule-retry', retryAfterMs: 0 }], 'waiting before identity attempt 1', reason)

/** Identity events are read the same in BOOTSTRAP and RECOVERY; only where a failure leads differs. */
function identityStep(s: MachineState, e: AgentEvent, fail: (reason: string) => Transition): Transition | undefined {
  switch (e.type) {
    case 'identity-valid':
      return enter(s, Phase.DISCOVERY, 'identity valid; resolving Network Manager endpoints from spores', 0, [
        { type: 'discover', refresh: false }
      ])
    case 'identity-missing':
      return e.canEnrol
        ? stay(s, `${e.reason}; enrolling with the join token`, [{ type: 'enrol' }])
        : fail(`${e.reason}; no join token to enrol with`)
    case 'identity-invalid':
      return fail(`identity invalid: ${e.reason}`)
    case 'enrolled':
      return stay(s, 'enrolled; checking the new identity', [{ type: 'check-identity' }])
    case 'enrolment-failed':
      return fail(`enrolment failed: ${e.reason}`)
    default:
      return undefined
  }
}

/**
 * The next state and the actions to run, or `undefined` when the event does
 * not apply in the current phase (it is then ignored).
 */
export function nextPhase(s: MachineState, e: AgentEvent): Transition | undefined {
  switch (s.phase) {
    case Phase.BOOTSTRAP:
      return identityStep(s, e, (reason) => recovery(s, reason))
    case Phase.RECOVERY:
      if (e.type === 'retry-timer')
        return stay(s, `identity attempt ${s.failures}: re-reading the identity files`, [{ type: 'check-identity' }])
      return identityStep(s, e, (reason) => failedAttempt(s, reason))
    case Phase.DISCOVERY:
      switch (e.type) {
        case 'endpoints-found':
          return enter(
            s,
            Phase.REGISTRATION,
            `found ${e.endpoints.length} Network Manager endpoint(s); registering`,
            s.failures,
            [{ type: 'register' }],
            '',
            '',
            { endpoints: e.endpoints }
          )
        case 'no-endpoints':
          return fallback(s, `no Network Manager endpoint: ${e.reason}`)
        default:
          return undefined
      }
    case Phase.REGISTRATION:
      switch (e.type) {
        case 'registered':
          return enter(
            s,
            Phase.HANDOFF,
            `registered with lease ${e.registration.leaseId}; committing handoff`,
            s.failures,
            [{ type: 'commit-handoff' }],
            '',
            '',
            { registration: e.registration }
          )
        case 'registration-failed':
          return fallback(s, `registration failed: ${e.reason}`, e.retryAfterMs)
        default:
          return undefined
      }
    case Phase.HANDOFF:
      switch (e.type) {
        case 'handoff-confirmed':
          return enter(s, Phase.MANAGED, 'handoff confirmed by the Network Manager', 0, [{ type: 'start-monitoring' }])
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
    case Phase.FALLBACK: {
      const attempt = `reconnection attempt ${s.failures}`
      switch (e.type) {
        // After a failed round, re-resolve spores (and ask peers) before trying again.
        case 'retry-timer':
          return stay(s, `${attempt}: resolving Network Manager endpoints`, [{ type: 'discover', refresh: s.failures > 0 }])
        case 'endpoints-found':
          return stay({ ...s, endpoints: e.endpoints }, `${attempt}: registering (${e.endpoints.length} endpoint(s))`, [
            { type: 'register' }
          ])
        case 'no-endpoints':
          return failedAttempt(s, `no Network Manager endpoint: ${e.reason}`)
        case 'registration-failed':
          return failedAttempt(s, `registration failed: ${e.reason}`, e.retryAfterMs)
        case 'registered':
          return enter(
            s,
            Phase.HANDOFF,
            `reconnected (${attempt}): registered with lease ${e.registration.leaseId}; committing handoff`,
            s.failures,
            [{ type: 'commit-handoff' }],
            '',
            '',
            {
              registration: e.registration
            }
          )
        default:
          return undefined
      }
    }
    default:
      return undefined
  }
}

/** The event that says an action failed, so the phase that waits for its result moves on. */
export function failureEventOf(action: AgentAction, reason: string): AgentEvent | undefined {
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
