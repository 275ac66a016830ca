import { Spore, type SignedSpore } from '@mycelium/core-interfaces'
import { serviceSpore, signSporeForTest, testSigningKey, testTrustBundle } from '@mycelium/testing'
import {
  decodeSignedSpore,
  isSporeRejectedError,
  trustedSporeKeys,
  verifySpore,
  type SporeRejectedError,
  type TrustMark,
  type VerifyContext
} from '../src/index.js'

const NET = 'net1'
const NOW = Date.parse('2026-06-01T12:00:00Z')
const keys = [testSigningKey(), testSigningKey(), testSigningKey()]
const stranger = testSigningKey()
// 2 of 3 keys must sign.
const trust = trustedSporeKeys(testTrustBundle(NET, keys, 2), NET)

function ctx(marks: Record<string, TrustMark> = {}, nowMs = NOW): VerifyContext {
  return { trust, nowMs, clockSlackMs: 30_000, source: 'test-source', markFor: (n) => marks[n] }
}

const spore = (overrides: Partial<Spore> = {}): Spore => ({
  ...serviceSpore(NET, 'network-manager', 5, ['10.0.0.1:7000'], NOW),
  ...overrides
})

function rejection(signed: SignedSpore, c = ctx()): SporeRejectedError {
  try {
    verifySpore(signed, c)
  } catch (err) {
    if (isSporeRejectedError(err)) return err
    throw err
  }
  throw new Error('expected a rejection')
}

describe('verifySpore', () => {
  it('accepts a spore signed by k of n keys', () => {
    const { verified, unchanged } = verifySpore(signSporeForTest(spore(), [keys[0]!, keys[2]!]), ctx())
    expect(verified.name).toBe('service/network-manager')
    expect(verified.sequence).toBe(5)
    expect(unchanged).toBe(false)
    expect(verified.digest).toMatch(/^[0-9a-f]{64}$/)
  })

  it('accepts k valid signatures even beside a stranger key (key rotation)', () => {
    expect(() => verifySpore(signSporeForTest(spore(), [stranger, keys[0]!, keys[1]!]), ctx())).not.toThrow()
  })

  it('recognises the spore it already trusts as unchanged', () => {
    const signed = signSporeForTest(spore(), [keys[0]!, keys[1]!])
    const { verified } = verifySpore(signed, ctx())
    expect(verifySpore(signed, ctx({ [verified.name]: { sequence: 5, digest: verified.digest } })).unchanged).toBe(true)
  })

  it('recognises exact bytes already trusted without re-checking signatures, but still checks time', () => {
    const signed = signSporeForTest(spore(), [keys[0]!, keys[1]!])
    const { verified } = verifySpore(signed, ctx())
    const mark = { [verified.name]: { sequence: 5, digest: verified.digest } }
    const stripped = { ...signed, signatures: [] }
    expect(verifySpore(stripped, ctx(mark)).unchanged).toBe(true)
    expect(rejection(stripped, ctx(mark, NOW + 2 * 86_400_000)).name).toBe('ExpiredSporeError')
    // other bytes at the trusted sequence still need (and lack) signatures
    const other = {
      spore: Buffer.from(Spore.encode({ ...spore(), name: 'service/network-manager', issuedAt: new Date(NOW) }).finish()),
      signatures: []
    }
    expect(rejection(other, ctx(mark)).name).toBe('InsufficientSporeSignaturesError')
  })

  const cases: Array<[string, () => SignedSpore, string, string, VerifyContext?]> = [
    [
      'one signature short of the threshold',
      () => signSporeForTest(spore(), [keys[0]!]),
      'InsufficientSporeSignaturesError',
      '1 valid of 2'
    ],
    ['a signature by an unknown key', () => signSporeForTest(spore(), [keys[0]!, stranger]), 'UnknownSporeKeyError', stranger.keyId],
    ['the same key counted twice', () => signSporeForTest(spore(), [keys[1]!, keys[1]!]), 'DuplicateSporeSignatureError', keys[1]!.keyId],
    [
      'a tampered body',
      () => {
        const signed = signSporeForTest(spore(), [keys[0]!, keys[1]!])
        const tampered = Spore.encode({ ...spore(), sequence: 6 }).finish()
        return { ...signed, spore: Buffer.from(tampered) }
      },
      'InvalidSporeSignatureError',
      'does not verify'
    ],
    [
      "another network's spore",
      () => signSporeForTest(spore({ networkId: 'net2' }), [keys[0]!, keys[1]!]),
      'WrongNetworkSporeError',
      '"net2"'
    ],
    [
      'an expired one',
      () => signSporeForTest(spore({ issuedAt: new Date(NOW - 7200_000), expiresAt: new Date(NOW - 3600_000) }), [keys[0]!, keys[1]!]),
      'ExpiredSporeError',
      'expired at'
    ],
    [
      'a not-yet-valid one',
      () => signSporeForTest(spore({ issuedAt: new Date(NOW + 3600_000), expiresAt: new Date(NOW + 7200_000) }), [keys[0]!, keys[1]!]),
      'NotYetValidSporeError',
      'in the future'
    ],
    [
      'a lower sequence than trusted',
      () => signSporeForTest(spore({ sequence: 4 }), [keys[0]!, keys[1]!]),
      'SporeRollbackError',
      'lower than the trusted 5',
      ctx({ 'service/network-manager': { sequence: 5, digest: 'x' } })
    ],
    [
      'the trusted sequence with different content',
      () => signSporeForTest(spore(), [keys[0]!, keys[1]!]),
      'SporeEquivocationError',
      'different content',
      ctx({ 'service/network-manager': { sequence: 5, digest: 'feed' } })
    ],
    [
      'truncated bytes',
      () => {
        const signed = signSporeForTest(spore(), [keys[0]!, keys[1]!])
        return { ...signed, spore: signed.spore.subarray(0, signed.spore.length - 5) }
      },
      'MalformedSporeError',
      'not a Spore'
    ],
    [
      'a body that does not match the name',
      () => signSporeForTest(spore({ name: 'service/spore-manager' }), [keys[0]!, keys[1]!]),
      'MalformedSporeError',
      'service body for "spore-manager"'
    ],
    ['no expiry', () => signSporeForTest(spore({ expiresAt: undefined }), [keys[0]!, keys[1]!]), 'MalformedSporeError', 'expires_at']
  ]

  // A rest parameter keeps jest from taking a short row's missing context for its `done` callback.
  it.each(cases)('rejects %s with its own error naming spore, source and reason', (...row) => {
    const [, make, name, detail, c] = row
    const err = rejection(make(), c)
    expect(err.name).toBe(name)
    expect(err.message).toContain(detail)
    expect(err.source).toBe('test-source')
    expect(err.message).toContain('test-source')
    if (name !== 'MalformedSporeError') expect(err.sporeName).toBe('service/network-manager')
  })

  it('accepts within the clock slack and rejects just beyond it', () => {
    const signed = signSporeForTest(spore({ issuedAt: new Date(NOW + 20_000), expiresAt: new Date(NOW + 60_000) }), [keys[0]!, keys[1]!])
    expect(() => verifySpore(signed, ctx())).not.toThrow()
    expect(rejection(signed, ctx({}, NOW - 15_000)).name).toBe('NotYetValidSporeError')
  })

  it('rejects garbage SignedSpore bytes with MalformedSporeError', () => {
    let caught: unknown
    try {
      decodeSignedSpore(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2]), 'file:/x')
    } catch (err) {
      caught = err
    }
    expect(isSporeRejectedError(caught)).toBe(true)
    expect((caught as SporeRejectedError).reason).toBe('malformed')
    expect((caught as Error).message).toContain('file:/x')
  })
})

describe('trustedSporeKeys', () => {
  it('refuses a threshold above the number of keys, naming the field', () => {
    expect(() => trustedSporeKeys(testTrustBundle(NET, keys, 4), NET, 'bundle.json')).toThrow(/bundle.json.sporeThreshold: threshold 4/)
  })
  it('refuses a key whose id does not match it', () => {
    const bundle = testTrustBundle(NET, keys, 2)
    bundle.sporeKeys[1] = { ...bundle.sporeKeys[1]!, keyId: keys[0]!.keyId.replace(/.$/, '0') }
    expect(() => trustedSporeKeys(bundle, NET)).toThrow(/sporeKeys\[1\]: key id/)
  })
  it("refuses another network's bundle", () => {
    expect(() => trustedSporeKeys(testTrustBundle('net9', keys, 2), NET)).toThrow(/networkId/)
  })
})
