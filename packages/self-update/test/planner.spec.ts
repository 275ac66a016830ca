import { compareVersions, networkContractMax, planUpdate, releaseRefusal, watchDecision, type UpdateRequest } from '../src/index.js'

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

  it('names each refusal (the code status and the REJECTED reason carry)', () => {
    expect(planUpdate(req({ version: '0.0.9' }), facts)).toMatchObject({ action: 'refuse', code: 'downgrade' })
    expect(planUpdate(req({ version: '0.1.0' }), facts)).toMatchObject({ code: 'same-version' })
    expect(planUpdate(req({ artifactDigest: 'md5:abc' }), facts)).toMatchObject({ code: 'bad-digest' })
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

describe('releaseRefusal', () => {
  const release = { version: '0.2.0', minContractVersion: 1, channel: 'stable' }
  it('takes a release on the node channel whose contract the managers speak', () => {
    expect(releaseRefusal(release, { channel: 'stable', networkContractMax: 1 })).toBeUndefined()
    // An empty channel on either side is "stable".
    expect(releaseRefusal({ ...release, channel: '' }, { channel: '', networkContractMax: 1 })).toBeUndefined()
    expect(releaseRefusal({ ...release, minContractVersion: 0 }, { channel: 'stable', networkContractMax: 1 })).toBeUndefined()
  })
  it('refuses another channel and a contract beyond the managers, by name', () => {
    expect(releaseRefusal({ ...release, channel: 'beta' }, { channel: 'stable', networkContractMax: 1 })).toEqual({
      code: 'channel-mismatch',
      reason: 'release 0.2.0 is on channel "beta", this node follows "stable" (update.channel)'
    })
    expect(releaseRefusal({ ...release, minContractVersion: 3 }, { channel: 'stable', networkContractMax: 2 })).toMatchObject({
      code: 'contract-unsupported',
      reason: expect.stringContaining("needs contract version 3 or higher, the network's managers speak at most 2") as unknown
    })
  })
  it("the network speaks the lowest max of its service spores, else this agent's", () => {
    const service = (max: number) => ({
      name: `service/s${max}`,
      spore: {
        networkId: 'n',
        name: `service/s${max}`,
        sequence: 1,
        issuedAt: undefined,
        expiresAt: undefined,
        body: { $case: 'service' as const, value: { service: 's', endpoints: [], contractVersions: { min: 1, max } } }
      }
    })
    expect(networkContractMax([service(3), service(2)])).toBe(2)
    expect(networkContractMax([])).toBe(1)
  })
})

describe('watchDecision', () => {
  const base = {
    manifest: { component: '', version: '0.2.0', channel: 'stable' },
    channel: 'stable',
    currentVersion: '0.1.0',
    record: { format: 1 as const, active: 'a' as const },
    nowMs: 1_000_000,
    lastStartMs: 0,
    minIntervalMs: 600_000
  }
  const last = { outcome: 'rolled-back' as const, slot: 'b' as const, version: '0.2.0', reason: 'x', atMs: 0, reported: true }
  const trial = {
    slot: 'b' as const,
    previous: 'a' as const,
    version: '0.3.0',
    commandId: 'c',
    startedAtMs: 0,
    windowMs: 1,
    boots: 1,
    exits: []
  }
  it.each([
    ['a higher version on the channel', base, 'update'],
    ['another channel', { ...base, manifest: { ...base.manifest, channel: 'beta' } }, 'other-channel'],
    ['the running version', { ...base, manifest: { ...base.manifest, version: '0.1.0' } }, 'not-newer'],
    ['a lower version', { ...base, manifest: { ...base.manifest, version: '0.0.1' } }, 'not-newer'],
    ['a trial on', { ...base, record: { ...base.record, trial } }, 'trial-on'],
    ['a version rolled back before', { ...base, record: { ...base.record, last } }, 'rolled-back-before'],
    ['a start within the interval', { ...base, lastStartMs: 900_000 }, 'too-soon']
  ])('%s: %s', (_t, f, expected) => {
    expect(watchDecision(f)).toBe(expected)
  })
})
