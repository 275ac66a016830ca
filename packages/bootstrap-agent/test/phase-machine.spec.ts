import { Phase } from '@mycelium/core-interfaces'
import { INITIAL_STATE, nextPhase, type AgentEvent, type MachineState } from '../src/index.js'

const EVENTS: AgentEvent[] = [
  { type: 'identity-valid' },
  { type: 'identity-missing', reason: 'no certificate', canEnrol: true },
  { type: 'identity-invalid', reason: 'wrong CA' },
  { type: 'enrolled' },
  { type: 'enrolment-failed', reason: 'bad token' },
  { type: 'endpoints-found', count: 2 },
  { type: 'no-endpoints', reason: 'no spore' },
  { type: 'registered', leaseId: 'L1' },
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
  BOOTSTRAP: { 'identity-valid': 'DISCOVERY', 'identity-missing': 'BOOTSTRAP', 'identity-invalid': 'RECOVERY', enrolled: 'BOOTSTRAP', 'enrolment-failed': 'RECOVERY' },
  DISCOVERY: { 'endpoints-found': 'REGISTRATION', 'no-endpoints': 'FALLBACK' },
  REGISTRATION: { registered: 'HANDOFF', 'registration-failed': 'FALLBACK' },
  HANDOFF: { 'handoff-confirmed': 'MANAGED', 'handoff-refused': 'FALLBACK', 'handoff-timeout': 'FALLBACK', 'link-lost': 'FALLBACK' },
  MANAGED: { 'link-lost': 'FALLBACK' },
  FALLBACK: { 'retry-timer': 'DISCOVERY' },
  RECOVERY: { 'retry-timer': 'BOOTSTRAP' }
}

const state = (phase: Phase, failures = 0): MachineState => ({ phase, reason: 'test', failures })

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

  it('walks the happy path from a fresh node with a join token to MANAGED', () => {
    const path: AgentEvent[] = [
      { type: 'identity-missing', reason: 'no certificate', canEnrol: true },
      { type: 'enrolled' },
      { type: 'identity-valid' },
      { type: 'endpoints-found', count: 1 },
      { type: 'registered', leaseId: 'L' },
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
    t = nextPhase(t.state, { type: 'no-endpoints', reason: 'all failed' })!
    expect(t.state.failures).toBe(2)
    expect(nextPhase(state(Phase.HANDOFF, 5), { type: 'handoff-confirmed' })!.state.failures).toBe(0)
  })

  it('first discovery does not force a spore refresh; retries after a failure do', () => {
    expect(nextPhase(state(Phase.BOOTSTRAP), { type: 'identity-valid' })!.actions).toEqual([{ type: 'discover', refresh: false }])
    expect(nextPhase(state(Phase.FALLBACK, 0), { type: 'retry-timer' })!.actions).toEqual([{ type: 'discover', refresh: false }])
  })

  it('goes to RECOVERY, not a crash, for an invalid identity or an impossible enrolment', () => {
    expect(nextPhase(state(Phase.BOOTSTRAP), { type: 'identity-invalid', reason: 'key does not match' })!.state).toMatchObject({ phase: Phase.RECOVERY, reason: 'identity invalid: key does not match' })
    expect(nextPhase(state(Phase.BOOTSTRAP), { type: 'identity-missing', reason: 'no certificate', canEnrol: false })!.state.phase).toBe(Phase.RECOVERY)
  })
})
