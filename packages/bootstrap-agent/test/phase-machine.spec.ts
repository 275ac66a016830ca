import { Phase, type Endpoint } from '@mycelium/core-interfaces'
import { attemptOf, changesPhase, INITIAL_STATE, nextPhase, type AgentEvent, type MachineState, type Registration } from '../src/index.js'

const eps = (n: number): Endpoint[] =>
  Array.from({ length: n }, (_, i) => ({ address: `127.0.0.1:${7000 + i}`, expectedIdentity: '', zone: '', priority: i }))
const reg = (leaseId: string): Registration => ({
  leaseId,
  leaseDeadline: 5000,
  heartbeatIntervalMs: 1000,
  handoffId: `h-${leaseId}`,
  handoffDeadline: 3000
})

const EVENTS: AgentEvent[] = [
  { type: 'identity-valid' },
  { type: 'identity-missing', reason: 'no certificate', canEnrol: true },
  { type: 'identity-invalid', reason: 'wrong CA' },
  { type: 'enrolled' },
  { type: 'enrolment-failed', reason: 'bad token' },
  { type: 'endpoints-found', endpoints: eps(2) },
  { type: 'no-endpoints', reason: 'no spore' },
  { type: 'registered', registration: reg('L1') },
  { type: 'registration-failed', reason: 'RESOURCE_EXHAUSTED', retryAfterMs: 1500 },
  { type: 'handoff-confirmed' },
  { type: 'handoff-refused', reason: 'maintenance', retryAfterMs: 1000 },
  { type: 'handoff-timeout', reason: 'no answer within 10000 ms' },
  { type: 'link-lost', reason: '3 heartbeats unanswered' },
  { type: 'retry-timer' }
]

const PHASES = [Phase.BOOTSTRAP, Phase.DISCOVERY, Phase.REGISTRATION, Phase.HANDOFF, Phase.MANAGED, Phase.FALLBACK, Phase.RECOVERY]

/** Every (phase, event) pair → the phase it leads to, or "-" when the event is ignored there. */
const EXPECTED: Record<string, Record<string, string>> = {
  BOOTSTRAP: {
    'identity-valid': 'DISCOVERY',
    'identity-missing': 'BOOTSTRAP',
    'identity-invalid': 'RECOVERY',
    enrolled: 'BOOTSTRAP',
    'enrolment-failed': 'RECOVERY'
  },
  DISCOVERY: { 'endpoints-found': 'REGISTRATION', 'no-endpoints': 'FALLBACK' },
  REGISTRATION: { registered: 'HANDOFF', 'registration-failed': 'FALLBACK' },
  HANDOFF: { 'handoff-confirmed': 'MANAGED', 'handoff-refused': 'FALLBACK', 'handoff-timeout': 'FALLBACK', 'link-lost': 'FALLBACK' },
  MANAGED: { 'link-lost': 'FALLBACK' },
  // Reconnection attempts run inside FALLBACK; only a successful registration leaves it.
  FALLBACK: {
    'retry-timer': 'FALLBACK',
    'endpoints-found': 'FALLBACK',
    'no-endpoints': 'FALLBACK',
    registered: 'HANDOFF',
    'registration-failed': 'FALLBACK'
  },
  // Identity attempts run inside RECOVERY; only a usable identity leaves it.
  RECOVERY: {
    'retry-timer': 'RECOVERY',
    'identity-valid': 'DISCOVERY',
    'identity-missing': 'RECOVERY',
    'identity-invalid': 'RECOVERY',
    enrolled: 'RECOVERY',
    'enrolment-failed': 'RECOVERY'
  }
}

const state = (phase: Phase, failures = 0): MachineState => ({ phase, reason: 'test', step: '', lastError: '', failures, endpoints: [] })

/** Feeds events in order; returns the final state, the phase changes and the steps inside phases. */
function replay(start: MachineState, events: AgentEvent[]): { s: MachineState; changes: string[]; steps: number; actions: string[] } {
  let s = start
  const changes: string[] = []
  const actions: string[] = []
  let steps = 0
  for (const e of events) {
    const t = nextPhase(s, e)
    if (t == null) throw new Error(`${e.type} ignored in ${Phase[s.phase]}`)
    if (changesPhase(s, t)) changes.push(`${Phase[s.phase]}→${Phase[t.state.phase]}`)
    else steps++
    actions.push(...t.actions.map((a) => a.type))
    s = t.state
  }
  return { s, changes, steps, actions }
}

describe('nextPhase', () => {
  it('covers every phase × event exactly as the design says', () => {
    for (const phase of PHASES) {
      for (const event of EVENTS) {
        const t = nextPhase(state(phase), event)
        const want = EXPECTED[Phase[phase]]?.[event.type] ?? '-'
        expect([Phase[phase], event.type, t == null ? '-' : Phase[t.state.phase]]).toEqual([Phase[phase], event.type, want])
        if (t != null) expect(t.state.reason.length).toBeGreaterThan(0)
      }
    }
  })

  it('an unreachable manager keeps the node in FALLBACK through every attempt; it leaves only for HANDOFF, once registered', () => {
    const lost = nextPhase(state(Phase.MANAGED), { type: 'link-lost', reason: 'stream error' })!
    const attempts: AgentEvent[] = []
    for (let i = 0; i < 5; i++) {
      attempts.push(
        { type: 'retry-timer' },
        { type: 'endpoints-found', endpoints: eps(1) },
        { type: 'registration-failed', reason: `UNAVAILABLE: attempt ${i + 1}`, retryAfterMs: i === 4 ? 3000 : undefined }
      )
    }
    const r = replay(lost.state, attempts)
    expect(r.changes).toEqual([]) // never DISCOVERY, never REGISTRATION
    expect(r.steps).toBe(15)
    expect(r.s).toMatchObject({
      phase: Phase.FALLBACK,
      reason: 'manager link lost: stream error',
      failures: 6,
      lastError: 'registration failed: UNAVAILABLE: attempt 5',
      step: 'waiting before reconnection attempt 6'
    })
    expect(attemptOf(r.s)).toBe(6)
    expect(r.actions.filter((a) => a === 'discover').length).toBe(5)
    expect(r.actions.filter((a) => a === 'register').length).toBe(5)
    // The manager's retry-after reaches the scheduled retry.
    expect(nextPhase(r.s, { type: 'registration-failed', reason: 'busy', retryAfterMs: 3000 })!.actions).toEqual([
      { type: 'schedule-retry', retryAfterMs: 3000 }
    ])
    const back = replay(r.s, [
      { type: 'retry-timer' },
      { type: 'endpoints-found', endpoints: eps(2) },
      { type: 'registered', registration: reg('L9') },
      { type: 'handoff-confirmed' }
    ])
    expect(back.changes).toEqual(['FALLBACK→HANDOFF', 'HANDOFF→MANAGED'])
    expect(back.s.failures).toBe(0)
  })

  it('a failed handoff after a reconnection is a real change back to FALLBACK, counting on', () => {
    const r = replay(state(Phase.FALLBACK, 3), [
      { type: 'retry-timer' },
      { type: 'endpoints-found', endpoints: eps(1) },
      { type: 'registered', registration: reg('L') },
      { type: 'handoff-timeout', reason: 'no answer' }
    ])
    expect(r.changes).toEqual(['FALLBACK→HANDOFF', 'HANDOFF→FALLBACK'])
    expect(r.s.failures).toBe(4)
    expect(r.actions).toEqual(['discover', 'register', 'commit-handoff', 'rollback-config', 'schedule-retry'])
  })

  it('a garbage identity: one change into RECOVERY, then attempts inside it with growing failures (backoff), until the identity is usable', () => {
    const attempts: AgentEvent[] = [{ type: 'identity-invalid', reason: '/s/identity/node.crt: not a PEM certificate' }]
    for (let i = 0; i < 20; i++)
      attempts.push({ type: 'retry-timer' }, { type: 'identity-invalid', reason: '/s/identity/node.crt: not a PEM certificate' })
    const r = replay(INITIAL_STATE, attempts)
    expect(r.changes).toEqual(['BOOTSTRAP→RECOVERY'])
    expect(r.s).toMatchObject({
      phase: Phase.RECOVERY,
      reason: 'identity invalid: /s/identity/node.crt: not a PEM certificate',
      failures: 21
    })
    expect(r.actions.filter((a) => a === 'schedule-retry').length).toBe(21)
    // Repaired: the next attempt leaves RECOVERY, and FALLBACK's count starts afresh.
    const fixed = replay(r.s, [{ type: 'retry-timer' }, { type: 'identity-valid' }])
    expect(fixed.changes).toEqual(['RECOVERY→DISCOVERY'])
    expect(fixed.s.failures).toBe(0)
    // Enrolling again from RECOVERY stays in RECOVERY until the identity checks out.
    const reenrol = replay(state(Phase.RECOVERY, 2), [
      { type: 'retry-timer' },
      { type: 'identity-missing', reason: 'no certificate', canEnrol: true },
      { type: 'enrolled' },
      { type: 'identity-valid' }
    ])
    expect(reenrol.actions).toEqual(['check-identity', 'enrol', 'check-identity', 'discover'])
    expect(reenrol.changes).toEqual(['RECOVERY→DISCOVERY'])
  })

  it('enrolment is a step inside BOOTSTRAP, not a BOOTSTRAP → BOOTSTRAP transition', () => {
    const r = replay(INITIAL_STATE, [
      { type: 'identity-missing', reason: 'no certificate', canEnrol: true },
      { type: 'enrolled' },
      { type: 'identity-valid' }
    ])
    expect(r.changes).toEqual(['BOOTSTRAP→DISCOVERY'])
    expect(r.steps).toBe(2)
  })

  it('walks the happy path from a fresh node with a join token to MANAGED', () => {
    const path: AgentEvent[] = [
      { type: 'identity-missing', reason: 'no certificate', canEnrol: true },
      { type: 'enrolled' },
      { type: 'identity-valid' },
      { type: 'endpoints-found', endpoints: eps(1) },
      { type: 'registered', registration: reg('L') },
      { type: 'handoff-confirmed' }
    ]
    let s = INITIAL_STATE
    const actions: string[] = []
    for (const e of path) {
      const t = nextPhase(s, e)!
      s = t.state
      actions.push(...t.actions.map((a) => a.type))
    }
    expect(Phase[s.phase]).toBe('MANAGED')
    expect(actions).toEqual(['enrol', 'check-identity', 'discover', 'register', 'commit-handoff', 'start-monitoring'])
  })

  it('rolls back the config when a handoff is refused or not confirmed, and schedules a retry honouring retry-after', () => {
    const refused = nextPhase(state(Phase.HANDOFF), { type: 'handoff-refused', reason: 'busy', retryAfterMs: 4000 })!
    expect(refused.actions).toEqual([
      { type: 'rollback-config', reason: 'handoff refused: busy' },
      { type: 'schedule-retry', retryAfterMs: 4000 }
    ])
    const timeout = nextPhase(state(Phase.HANDOFF), { type: 'handoff-timeout', reason: 'no answer' })!
    expect(timeout.actions.map((a) => a.type)).toEqual(['rollback-config', 'schedule-retry'])
    expect(timeout.state.reason).toContain('rolled back to local control')
  })

  it('stops monitoring when the link is lost, and counts failed rounds until MANAGED again', () => {
    let t = nextPhase(state(Phase.MANAGED), { type: 'link-lost', reason: 'stream error' })!
    expect(t.actions).toEqual([{ type: 'stop-monitoring' }, { type: 'schedule-retry', retryAfterMs: 0 }])
    expect(t.state.failures).toBe(1)
    t = nextPhase(t.state, { type: 'retry-timer' })!
    expect(t.actions).toEqual([{ type: 'discover', refresh: true }])
    expect(t.state.step).toBe('reconnection attempt 1: resolving Network Manager endpoints')
    t = nextPhase(t.state, { type: 'no-endpoints', reason: 'all failed' })!
    expect(t.state.failures).toBe(2)
    expect(t.state.lastError).toBe('no Network Manager endpoint: all failed')
    expect(nextPhase(state(Phase.HANDOFF, 5), { type: 'handoff-confirmed' })!.state.failures).toBe(0)
  })

  it('first discovery does not force a spore refresh; retries after a failure do', () => {
    expect(nextPhase(state(Phase.BOOTSTRAP), { type: 'identity-valid' })!.actions).toEqual([{ type: 'discover', refresh: false }])
    expect(nextPhase(state(Phase.FALLBACK, 0), { type: 'retry-timer' })!.actions).toEqual([{ type: 'discover', refresh: false }])
  })

  it('goes to RECOVERY, not a crash, for an invalid identity or an impossible enrolment', () => {
    expect(nextPhase(state(Phase.BOOTSTRAP), { type: 'identity-invalid', reason: 'key does not match' })!.state).toMatchObject({
      phase: Phase.RECOVERY,
      reason: 'identity invalid: key does not match'
    })
    expect(nextPhase(state(Phase.BOOTSTRAP), { type: 'identity-missing', reason: 'no certificate', canEnrol: false })!.state.phase).toBe(
      Phase.RECOVERY
    )
  })

  it('carries the endpoints and the registration in the state, from the event that found them to the phases that use them', () => {
    const found = eps(2)
    const registration = reg('L7')
    const r = replay(state(Phase.DISCOVERY), [
      { type: 'endpoints-found', endpoints: found },
      { type: 'registered', registration }
    ])
    expect(r.s.endpoints).toEqual(found)
    expect(r.s.registration).toEqual(registration)
    // A lost link keeps both (status still names the lease) until a new round replaces them.
    const lost = replay(r.s, [{ type: 'handoff-confirmed' }, { type: 'link-lost', reason: 'gone' }])
    expect(lost.s).toMatchObject({ phase: Phase.FALLBACK, endpoints: found, registration })
    const again = replay(lost.s, [
      { type: 'retry-timer' },
      { type: 'endpoints-found', endpoints: eps(1) },
      { type: 'registered', registration: reg('L8') }
    ])
    expect(again.s.endpoints).toEqual(eps(1))
    expect(again.s.registration?.leaseId).toBe('L8')
  })
})
