/**
 * The slot launcher's decision (slot-launcher.cjs `decideBoot`, `recordExit`): pure, no
 * processes. A trial boots until N exits within M seconds, too many boots, a failure it
 * reported itself, or the end of its window — then the previous slot boots and the record
 * says why; a record naming a slot without a release never stops a boot.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const launcher = require('../slot-launcher.cjs') as {
  decideBoot(record: unknown, present: Record<string, boolean>, nowMs: number, policy?: unknown): Decision
  recordExit(record: unknown, slot: string, nowMs: number): BootRecord
  DEFAULT_POLICY: { maxTrialExits: number; trialExitWindowMs: number; maxTrialBoots: number }
  policyFromEnv(env: Record<string, string | undefined>): { maxTrialExits: number; trialExitWindowMs: number; maxTrialBoots: number }
}

interface Trial {
  slot: string
  previous: string
  version: string
  commandId: string
  startedAtMs: number
  windowMs: number
  boots: number
  exits: number[]
  failure?: string
}
interface BootRecord {
  format: number
  active: string
  trial?: Trial
  last?: { outcome: string; slot: string; reason: string; commandId?: string; reported: boolean }
}
interface Decision {
  slot: string | null
  record: BootRecord
  reason: string
}

const both = { a: true, b: true }
const NOW = 1_000_000
const trial = (over: Partial<Trial> = {}): BootRecord => ({
  format: 1,
  active: 'a',
  trial: {
    slot: 'b',
    previous: 'a',
    version: '0.2.0',
    commandId: 'c1',
    startedAtMs: NOW - 1000,
    windowMs: 60_000,
    boots: 0,
    exits: [],
    ...over
  }
})

describe('slot launcher decision', () => {
  it('with no record boots the first slot that holds a release, and none when no slot does', () => {
    expect(launcher.decideBoot(undefined, { a: false, b: true }, NOW)).toMatchObject({ slot: 'b', record: { active: 'b' } })
    expect(launcher.decideBoot(undefined, { a: false, b: false }, NOW).slot).toBeNull()
  })

  it('boots the active slot, or the other one when the active slot holds no release', () => {
    expect(launcher.decideBoot({ format: 1, active: 'b' }, both, NOW)).toMatchObject({ slot: 'b', record: { active: 'b' } })
    expect(launcher.decideBoot({ format: 1, active: 'b' }, { a: true, b: false }, NOW)).toMatchObject({
      slot: 'a',
      record: { active: 'a' }
    })
  })

  it('boots a trial and counts the boot before the child starts', () => {
    const d = launcher.decideBoot(trial({ boots: 1 }), both, NOW)
    expect(d.slot).toBe('b')
    expect(d.record.trial?.boots).toBe(2)
    expect(d.record.active).toBe('a') // not committed: the previous slot stays the one to fall back to
  })

  it('rolls back after N exits within M seconds, and not for exits spread wider apart', () => {
    const { maxTrialExits, trialExitWindowMs } = launcher.DEFAULT_POLICY
    let r = trial()
    for (let i = 0; i < maxTrialExits; i++) r = launcher.recordExit(r, 'b', NOW - i)
    const d = launcher.decideBoot(r, both, NOW)
    expect(d.slot).toBe('a')
    expect(d.record).toMatchObject({
      active: 'a',
      trial: undefined,
      last: { outcome: 'rolled-back', slot: 'b', commandId: 'c1', reported: false }
    })
    expect(d.record.last?.reason).toContain(`exited ${maxTrialExits} times`)

    const spread = trial({ exits: Array.from({ length: maxTrialExits }, (_, i) => NOW - trialExitWindowMs - 1 - i * 10) })
    expect(launcher.decideBoot(spread, both, NOW).slot).toBe('b')
  })

  it('only a trial child exit counts against the trial', () => {
    const r = trial()
    expect(launcher.recordExit(r, 'a', NOW)).toBe(r)
    expect(launcher.recordExit({ format: 1, active: 'a' }, 'a', NOW)).toEqual({ format: 1, active: 'a' })
  })

  it('rolls back after too many boots without a commit (launcher deaths leave no exit)', () => {
    const d = launcher.decideBoot(trial({ boots: launcher.DEFAULT_POLICY.maxTrialBoots }), both, NOW)
    expect(d.slot).toBe('a')
    expect(d.record.last?.reason).toContain('without a commit')
  })

  it('rolls back when the window has passed, when the trial reported a failure, or when its slot is empty', () => {
    const late = launcher.decideBoot(trial({ startedAtMs: NOW - 60_001 }), both, NOW)
    expect(late).toMatchObject({ slot: 'a', record: { last: { outcome: 'rolled-back' } } })
    expect(late.record.last?.reason).toContain('did not reach MANAGED and HEALTHY within 60 s')
    expect(launcher.decideBoot(trial({ failure: 'unhealthy: spores' }), both, NOW).record.last?.reason).toBe('unhealthy: spores')
    expect(launcher.decideBoot(trial(), { a: true, b: false }, NOW).record.last?.reason).toBe('slot b holds no release')
  })

  it('a rolled-back record whose previous slot is gone still boots the slot that holds a release', () => {
    const d = launcher.decideBoot(trial({ failure: 'x' }), { a: false, b: true }, NOW)
    expect(d.slot).toBe('b')
    expect(d.record.active).toBe('b')
  })

  it('takes the trial policy from the unit environment, and a bad value is refused naming the variable', () => {
    expect(launcher.policyFromEnv({})).toEqual(launcher.DEFAULT_POLICY)
    const policy = launcher.policyFromEnv({
      NODE_CORE_TRIAL_MAX_EXITS: '2',
      NODE_CORE_TRIAL_EXIT_WINDOW_MS: '10000',
      NODE_CORE_TRIAL_MAX_BOOTS: '4'
    })
    expect(policy).toEqual({ maxTrialExits: 2, trialExitWindowMs: 10_000, maxTrialBoots: 4 })
    // Two exits now roll back with this policy (three with the default).
    let r = trial()
    for (let i = 0; i < 2; i++) r = launcher.recordExit(r, 'b', NOW - i)
    expect(launcher.decideBoot(r, both, NOW, policy).record.last?.reason).toContain('exited 2 times within 10 s')
    expect(launcher.decideBoot(r, both, NOW).slot).toBe('b')
    expect(() => launcher.policyFromEnv({ NODE_CORE_TRIAL_MAX_EXITS: '0' })).toThrow(
      'NODE_CORE_TRIAL_MAX_EXITS="0" is not an integer from 1 to 100'
    )
    expect(() => launcher.policyFromEnv({ NODE_CORE_TRIAL_EXIT_WINDOW_MS: '5m' })).toThrow('NODE_CORE_TRIAL_EXIT_WINDOW_MS="5m"')
    expect(() => launcher.policyFromEnv({ NODE_CORE_UPDATE_TRIAL_WINDOW_MS: '-1' })).toThrow('NODE_CORE_UPDATE_TRIAL_WINDOW_MS="-1"')
  })
})
