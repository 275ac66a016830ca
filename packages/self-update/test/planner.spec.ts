import { compareVersions, planUpdate, type UpdateRequest } from '../src/index.js'

const SHA = 'a'.repeat(64)
const req = (over: Partial<UpdateRequest> = {}): UpdateRequest => ({
  commandId: 'c1',
  component: '',
  version: '0.2.0',
  artifactDigest: `sha256:${SHA}`,
  artifactUrls: ['https://127.0.0.1:1/a.tar.gz'],
  ...over
})
const facts = { currentVersion: '0.1.0', runningSlot: 'a' as const, record: { format: 1 as const, active: 'a' as const } }

describe('planUpdate', () => {
  it('installs a higher version into the other slot', () => {
    expect(planUpdate(req(), facts)).toEqual({ action: 'install', slot: 'b', previous: 'a', sha256: SHA })
    expect(planUpdate(req(), { ...facts, runningSlot: 'b', record: { format: 1, active: 'b' } })).toMatchObject({
      slot: 'a',
      previous: 'b'
    })
  })

  it.each([
    ['a component update', req({ component: 'k3s' }), 'component updates ("k3s")'],
    ['a lower version', req({ version: '0.0.9' }), 'lower than the running 0.1.0'],
    ['the running version', req({ version: '0.1.0' }), 'already running'],
    ['a version that is not semver', req({ version: 'latest' }), 'not a semantic version'],
    ['a malformed digest', req({ artifactDigest: 'md5:abc' }), 'not sha256:'],
    ['no https URL', req({ artifactUrls: ['http://x/a.tgz'] }), 'no https:// URL']
  ])('refuses %s with a reason', (_t, r, reason) => {
    const plan = planUpdate(r, facts)
    expect(plan.action).toBe('refuse')
    expect(plan.action === 'refuse' && plan.reason).toContain(reason)
  })

  it('a downgrade only with the operator allowance', () => {
    expect(planUpdate(req({ version: '0.0.9' }), { ...facts, allowDowngrade: true })).toMatchObject({ action: 'install' })
  })

  it('answers a command seen again from the boot record: confirm its trial, report its outcome, never install twice', () => {
    const trial = {
      slot: 'b' as const,
      previous: 'a' as const,
      version: '0.2.0',
      commandId: 'c1',
      startedAtMs: 0,
      windowMs: 1,
      boots: 1,
      exits: []
    }
    expect(planUpdate(req(), { ...facts, runningSlot: 'b', record: { format: 1, active: 'a', trial } })).toEqual({
      action: 'confirm-trial'
    })
    expect(planUpdate(req({ commandId: 'c2' }), { ...facts, record: { format: 1, active: 'a', trial } })).toMatchObject({
      action: 'refuse',
      reason: expect.stringContaining('another update (c1') as unknown
    })
    const last = {
      outcome: 'rolled-back' as const,
      slot: 'b' as const,
      version: '0.2.0',
      commandId: 'c1',
      reason: 'exited 3 times',
      atMs: 0,
      reported: false
    }
    expect(planUpdate(req(), { ...facts, record: { format: 1, active: 'a', last } })).toEqual({
      action: 'report',
      outcome: 'rolled-back',
      reason: 'exited 3 times'
    })
  })
})

describe('compareVersions', () => {
  it('orders by semver precedence', () => {
    expect(compareVersions('0.10.0', '0.9.9')).toBe(1)
    expect(compareVersions('1.0.0-rc.1', '1.0.0')).toBe(-1)
    expect(compareVersions('1.0.0', '1.0.0')).toBe(0)
    expect(compareVersions('x', '1.0.0')).toBeUndefined()
  })
})
