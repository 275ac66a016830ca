import {
  AbortError,
  InvalidInputError,
  NodeConfig,
  Phase,
  Spore,
  TimeoutError,
  durationToMs,
  formatJoinToken,
  formatSpiffeId,
  isAbortError,
  isInvalidInputError,
  isManagerIdentity,
  isStartable,
  isTimeoutError,
  msToDuration,
  negotiateContractVersion,
  parseJoinToken,
  parseSpiffeId,
  phaseFromJSON,
  SERVICE_NAMES,
  silentLogger,
  supportedContractVersions
} from '../src/index.js'

describe('contract versions', () => {
  it('picks the highest common version', () => {
    expect(negotiateContractVersion({ min: 1, max: 3 }, { min: 2, max: 5 })).toBe(3)
    expect(negotiateContractVersion(supportedContractVersions(), { min: 1, max: 1 })).toBe(1)
  })
  it('finds no version when ranges do not overlap or are empty', () => {
    expect(negotiateContractVersion({ min: 1, max: 1 }, { min: 2, max: 4 })).toBeUndefined()
    expect(negotiateContractVersion({ min: 1, max: 1 }, { min: 0, max: 0 })).toBeUndefined()
  })
})

describe('SPIFFE ids', () => {
  it('round-trips node and manager ids', () => {
    expect(parseSpiffeId('spiffe://net1/node/node-7')).toEqual({ networkId: 'net1', role: 'node', name: 'node-7' })
    const manager = { networkId: 'net1', role: 'manager' as const, name: 'network-manager' }
    expect(parseSpiffeId(formatSpiffeId(manager))).toEqual(manager)
  })
  it.each([
    'spiffe://net1/operator/x',
    'spiffe://net1/node/',
    'spiffe://net1/node/a/b',
    'https://net1/node/a',
    'spiffe://NET/node/a',
    'spiffe://net1/node/-a'
  ])('rejects %s with an error naming where it came from', (uri) => {
    let caught: unknown
    try {
      parseSpiffeId(uri, 'peer certificate URI SAN')
    } catch (err) {
      caught = err
    }
    expect(isInvalidInputError(caught)).toBe(true)
    expect((caught as InvalidInputError).where).toBe('peer certificate URI SAN')
    expect((caught as Error).message).toContain(uri)
  })
  it('recognises a manager of a service by role and name, not by a suffix of the id', () => {
    expect(isManagerIdentity('spiffe://net1/manager/network-manager', SERVICE_NAMES.networkManager)).toBe(true)
    expect(isManagerIdentity('spiffe://net1/manager/spore-manager', SERVICE_NAMES.networkManager)).toBe(false)
    // A node whose id happens to end like the service is not the manager.
    expect(isManagerIdentity('spiffe://net1/node/network-manager', SERVICE_NAMES.networkManager)).toBe(false)
    expect(isManagerIdentity('spiffe://net1/x/manager/network-manager', SERVICE_NAMES.networkManager)).toBe(false)
    expect(isManagerIdentity('not a spiffe id /manager/network-manager', SERVICE_NAMES.networkManager)).toBe(false)
  })
  it('refuses to format an invalid node id', () => {
    expect(() => formatSpiffeId({ networkId: 'net1', role: 'node', name: 'Bad_Id' })).toThrow(/SpiffeId.name/)
  })
})

describe('durations', () => {
  it('converts both ways and falls back when unset', () => {
    expect(durationToMs({ seconds: 1, nanos: 500_000_000 }, 0)).toBe(1500)
    expect(durationToMs(undefined, 42)).toBe(42)
    expect(msToDuration(2250)).toEqual({ seconds: 2, nanos: 250_000_000 })
    expect(durationToMs(msToDuration(12_345), 0)).toBe(12_345)
  })
})

describe('errors', () => {
  it('are recognised by name, also across package copies', () => {
    const foreign = Object.assign(new Error('x'), { name: 'AbortError' })
    expect(isAbortError(foreign)).toBe(true)
    expect(isAbortError(new AbortError())).toBe(true)
    expect(isTimeoutError(new AbortError())).toBe(false)
    expect(new TimeoutError('dial timed out', 500).timeoutMs).toBe(500)
  })
  it('name what was wrong and where', () => {
    const err = new InvalidInputError('field 3 has wire type 7', 'RegisterNodeRequest')
    expect(err.message).toBe('RegisterNodeRequest: field 3 has wire type 7')
    expect(err.name).toBe('InvalidInputError')
  })
})

describe('generated messages', () => {
  it('decode what they encode, including maps, enums and Durations', () => {
    const config: NodeConfig = NodeConfig.fromPartial({
      version: 7,
      networkId: 'net1',
      nodeId: 'n1',
      labels: { zone: 'a' },
      handoff: { commitDeadline: msToDuration(10_000) },
      status: { readyInFallback: false }
    })
    const back = NodeConfig.decode(NodeConfig.encode(config).finish())
    expect(back).toEqual(config)
    // optional bool keeps presence: false is not the same as unset
    expect(back.status?.readyInFallback).toBe(false)
    expect(NodeConfig.decode(NodeConfig.encode(NodeConfig.fromPartial({ status: {} })).finish()).status?.readyInFallback).toBeUndefined()
  })
  it('throw on truncated protobuf instead of returning garbage', () => {
    const bytes = Spore.encode({ networkId: 'net1', name: 'bootstrap', sequence: 1 }).finish()
    expect(() => Spore.decode(bytes.subarray(0, bytes.length - 3))).toThrow()
  })
  it('map enum names from JSON', () => {
    expect(phaseFromJSON('PHASE_MANAGED')).toBe(Phase.MANAGED)
    expect(phaseFromJSON('nonsense')).toBe(Phase.UNRECOGNIZED)
  })
})

describe('small contracts', () => {
  it('silentLogger is a complete Logger', () => {
    const log = silentLogger().forComponent('x').child({ nodeId: 'n' })
    expect(() => log.error('boom', { err: new Error('e') })).not.toThrow()
  })
  it('isStartable recognises the lifecycle shape', () => {
    expect(isStartable({ start() {}, stop() {}, isStarted: () => false })).toBe(true)
    expect(isStartable({ start() {} })).toBe(false)
  })
})

describe('join tokens', () => {
  const token = { networkId: 'net1', tokenId: 'abc123', secret: 'k'.repeat(24), caSha256: 'a'.repeat(64) }
  it('round-trips', () => {
    expect(parseJoinToken(formatJoinToken(token))).toEqual(token)
  })
  it.each([
    ['myc2.net1.abc123.kkkkkkkkkkkkkkkkkkkk.' + 'a'.repeat(64), 'not a join token'],
    ['myc1.net1.ab.kkkkkkkkkkkkkkkkkkkk.' + 'a'.repeat(64), 'token id'],
    ['myc1.net1.abc123.short.' + 'a'.repeat(64), 'secret'],
    ['myc1.net1.abc123.kkkkkkkkkkkkkkkkkkkk.xyz', 'CA hash']
  ])('refuses %s naming the part, not the secret', (text, part) => {
    let caught: unknown
    try {
      parseJoinToken(text, '--join-token')
    } catch (err) {
      caught = err
    }
    expect(isInvalidInputError(caught)).toBe(true)
    expect((caught as Error).message).toContain(part)
    expect((caught as Error).message).toContain('--join-token')
    expect((caught as Error).message).not.toContain('kkkkkkkkkkkkkkkk')
  })
})
