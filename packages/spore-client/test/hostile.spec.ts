import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { isInvalidInputError, Spore, SporeBundle, Timestamp, type SignedSpore } from '@mycelium/core-interfaces'
import { serviceSpore, signSporeForTest, testSigningKey, testTrustBundle, encodeVarint } from '@mycelium/testing'
import {
  formatSporeBundleJson,
  isSporeRejectedError,
  MAX_SPORES_PER_BUNDLE,
  parseSporeBundle,
  sporeNameProblem,
  trustedSporeKeys,
  verifySpore,
  type VerifyContext
} from '../src/index.js'

/**
 * Hostile spores, one class per block: every input must be refused with a
 * named error (never accepted, never a TypeError), and what is valid today
 * stays valid. Property runs: FUZZ_RUNS (default small, `npm run fuzz` raises it).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 200)

const NET = 'net1'
const NOW = Date.parse('2026-06-01T12:00:00Z')
const keys = [testSigningKey(), testSigningKey()]
const trust = trustedSporeKeys(testTrustBundle(NET, keys, 2), NET)
const ctx = (): VerifyContext => ({ trust, nowMs: NOW, clockSlackMs: 30_000, source: 'hostile', markFor: () => undefined })
const good = (): Spore => serviceSpore(NET, 'network-manager', 5, ['10.0.0.1:7000'], NOW)

/** The outcome of verifying: 'accepted', a rejection name, or 'crashed: …'. */
function outcome(signed: SignedSpore): string {
  try {
    verifySpore(signed, ctx())
    return 'accepted'
  } catch (err) {
    return isSporeRejectedError(err) ? err.name : `crashed: ${(err as Error).name} ${(err as Error).message}`
  }
}

/** Raw Spore bytes with the given fields appended (a signer can sign any bytes). */
const withFields = (spore: Spore, extra: number[]): Buffer => Buffer.concat([Buffer.from(Spore.encode(spore).finish()), Buffer.from(extra)])
const timestampField = (field: 4 | 5, seconds: number, nanos: number): number[] => {
  const ts = Timestamp.encode({ seconds, nanos }).finish()
  return [(field << 3) | 2, ts.length, ...ts]
}

describe("class 2: timestamps outside protobuf's range are refused", () => {
  it.each([
    ['expires_at seconds 1e13', { ...good(), expiresAt: undefined }, timestampField(5, 1e13, 0)],
    ['issued_at seconds 1e13', { ...good(), issuedAt: undefined }, timestampField(4, 1e13, 0)],
    ['expires_at in year 10000', { ...good(), expiresAt: undefined }, timestampField(5, 253_402_300_800, 0)],
    ['issued_at before year 1', { ...good(), issuedAt: undefined }, timestampField(4, -62_135_596_801, 0)],
    ['expires_at nanos 1e9', { ...good(), expiresAt: undefined }, timestampField(5, NOW / 1000 + 3600, 1_000_000_000)],
    ['issued_at nanos -1', { ...good(), issuedAt: undefined }, timestampField(4, NOW / 1000 - 60, -1)]
  ])('%s → MalformedSporeError', (_what, spore, extra) => {
    expect(outcome(signSporeForTest(withFields(spore, extra), keys))).toBe('MalformedSporeError')
  })

  it('accepts the edges of the range (and still judges expiry by them)', () => {
    const farFuture = signSporeForTest(
      withFields({ ...good(), expiresAt: undefined }, timestampField(5, 253_402_300_799, 999_999_999)),
      keys
    )
    expect(outcome(farFuture)).toBe('accepted')
  })

  it('property: any (seconds, nanos) outside the range is refused, inside is judged by time alone', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: false }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (secondsRaw, nanos) => {
        const seconds = Math.trunc(secondsRaw)
        if (!Number.isSafeInteger(seconds)) return true // not encodable as int64 by the writer
        const signed = signSporeForTest(withFields({ ...good(), expiresAt: undefined }, timestampField(5, seconds, nanos)), keys)
        const result = outcome(signed)
        const inRange = seconds >= -62_135_596_800 && seconds <= 253_402_300_799 && nanos >= 0 && nanos <= 999_999_999
        if (!inRange) return result === 'MalformedSporeError'
        return ['accepted', 'ExpiredSporeError', 'MalformedSporeError'].includes(result)
      }),
      { numRuns: RUNS }
    )
  })
})

describe('class 3: over-long and overflowing varints are refused, never wrapped or rounded', () => {
  const base = (): Spore => ({ ...good(), sequence: 0 })
  it.each([
    ['2^64 (wraps to 0)', encodeVarint(2n ** 64n)],
    ['2^64 + 7 (wraps to 7)', encodeVarint(2n ** 64n + 7n)],
    ['over-long 7', encodeVarint(7n, 3)],
    ['2^53 + 1 (rounds)', encodeVarint(2n ** 53n + 1n)],
    ['2^64 - 1', encodeVarint(2n ** 64n - 1n)]
  ])('sequence %s → MalformedSporeError', (_what, raw) => {
    expect(outcome(signSporeForTest(withFields(base(), [0x18, ...raw]), keys))).toBe('MalformedSporeError')
  })

  it('property: a sequence is either decoded exactly or refused', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 70n }), fc.integer({ min: 0, max: 12 }), (value, pad) => {
        const raw = encodeVarint(value, pad)
        const result = outcome(signSporeForTest(withFields(base(), [0x18, ...raw]), keys))
        const canonical = raw.length === encodeVarint(value).length && value < 2n ** 64n
        if (canonical && value <= BigInt(Number.MAX_SAFE_INTEGER)) return result === 'accepted'
        return result === 'MalformedSporeError'
      }),
      { numRuns: RUNS }
    )
  })
})

describe('class 4: garbage is not an empty bundle', () => {
  it.each([
    ['1 MB of random bytes', () => randomBytes(1024 * 1024)],
    ['20 MB of NULs', () => Buffer.alloc(20 * 1024 * 1024)],
    ['1 KB of NULs', () => Buffer.alloc(1024)],
    ['an empty file', () => Buffer.alloc(0)],
    ['a stray field', () => Buffer.from([0x10, 0x01])],
    [
      'a trailing NUL',
      () => Buffer.concat([Buffer.from(SporeBundle.encode({ spores: [signSporeForTest(good(), keys)] }).finish()), Buffer.from([0])])
    ],
    ['an empty record', () => Buffer.from([0x0a, 0x00])]
  ])('%s → InvalidInputError naming the file', (_what, make) => {
    let err: unknown
    try {
      parseSporeBundle(make(), '/etc/mycelium/bootstrap.bin')
    } catch (e) {
      err = e
    }
    expect(isInvalidInputError(err)).toBe(true)
    expect((err as Error).message).toContain('/etc/mycelium/bootstrap.bin')
  })

  it('still reads a real binary bundle', () => {
    const spores = [signSporeForTest(good(), keys)]
    expect(parseSporeBundle(SporeBundle.encode({ spores }).finish(), 'f')).toHaveLength(1)
  })

  it('property: random bytes never parse as a bundle with no spores, and never crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 4096 }), (bytes) => {
        try {
          const spores = parseSporeBundle(bytes, 'f')
          return spores.length > 0 && spores.every((s) => s.spore.length > 0)
        } catch (err) {
          return isInvalidInputError(err)
        }
      }),
      { numRuns: RUNS * 5 }
    )
  })
})

describe('class 5: malformed JSON spores give a named error, never a TypeError', () => {
  const valid = JSON.parse(formatSporeBundleJson([signSporeForTest(good(), keys)])) as { spores: Array<Record<string, unknown>> }
  const mutate = (f: (s: Record<string, unknown>) => void): string => {
    const copy = structuredClone(valid)
    f(copy.spores[0]!)
    return JSON.stringify(copy)
  }
  it.each([
    ['"signatures":[null]', mutate((s) => (s.signatures = [null]))],
    ['"signatures":[1]', mutate((s) => (s.signatures = [1]))],
    ['"signatures":"x"', mutate((s) => (s.signatures = 'x'))],
    ['signature not base64', mutate((s) => (s.signatures = [{ keyId: 'k', signature: '***' }]))],
    ['keyId a number', mutate((s) => (s.signatures = [{ keyId: 5, signature: 'AA==' }]))],
    ['spore null', mutate((s) => (s.spore = null))],
    ['spore not base64', mutate((s) => (s.spore = 'not base64!'))],
    ['spores: [null]', '{"spores":[null]}'],
    ['spores: {}', '{"spores":{}}'],
    ['spores: [[]]', '{"spores":[[]]}'],
    ['truncated JSON', '{"spores":[']
  ])('%s → InvalidInputError naming the file and record', (_what, text) => {
    let err: unknown
    try {
      parseSporeBundle(Buffer.from(text), 'bundle.json')
    } catch (e) {
      err = e
    }
    expect(isInvalidInputError(err)).toBe(true)
    expect((err as Error).message).toMatch(/^bundle\.json: /)
  })

  it('verifySpore refuses objects of the wrong shape with MalformedSporeError', () => {
    const signed = signSporeForTest(good(), keys)
    for (const bad of [
      { ...signed, signatures: [null] },
      { ...signed, signatures: null },
      { ...signed, spore: 'x' },
      { ...signed, signatures: [{ keyId: 1, signature: new Uint8Array(64) }] },
      null
    ]) {
      expect(outcome(bad as unknown as SignedSpore)).toBe('MalformedSporeError')
    }
  })

  it('property: any JSON value in a bundle is parsed or refused by name', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (spores, sig) => {
        for (const text of [JSON.stringify({ spores }), JSON.stringify({ spores: [{ spore: 'AAAA', signatures: [sig] }] })]) {
          try {
            for (const s of parseSporeBundle(Buffer.from(text), 'f')) if (outcome(s).startsWith('crashed')) fail(outcome(s))
          } catch (err) {
            if (!isInvalidInputError(err)) return false
          }
        }
        return true
      }),
      { numRuns: RUNS }
    )
  })
})

describe('class 12: the spore name grammar', () => {
  it.each([
    ['a dot-dot path', 'service/../../etc/passwd'],
    ['a slash in the label', 'service/a/b'],
    ['a NUL', 'service/nm\u0000'],
    ['1 MiB of text', `service/${'a'.repeat(1024 * 1024)}`],
    ['a Cyrillic look-alike', 'service/netwоrk-manager'],
    ['upper case', 'service/Network-Manager'],
    ['a leading dash', 'service/-x'],
    ['a trailing dash', 'service/x-'],
    ['an empty label', 'service/'],
    ['a space', 'component/a b'],
    ['bootstrap with a slash', 'bootstrap/'],
    ['Bootstrap', 'Bootstrap'],
    ['an unknown kind', 'other/x']
  ])('%s is refused', (_what, name) => {
    expect(sporeNameProblem(name)).toBeDefined()
    const spore: Spore = {
      ...good(),
      name,
      body: { $case: 'service', value: { service: name.slice(name.indexOf('/') + 1), endpoints: [], contractVersions: undefined } }
    }
    expect(outcome(signSporeForTest(spore, keys))).toBe('MalformedSporeError')
  })

  it.each(['bootstrap', 'service/network-manager', 'component/log-shipper', `service/${'a'.repeat(63)}`, 'service/0'])(
    '%s is a valid name',
    (name) => {
      expect(sporeNameProblem(name)).toBeUndefined()
    }
  )

  it('property: a name is accepted exactly when it matches the grammar', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('service/', 'component/', ''),
        fc.string({ unit: fc.constantFrom('a', 'z', '0', '9', '-', '/', '.', '_', ' ', '\u0000', 'A', 'о', 'é', '\u200b'), maxLength: 70 }),
        (prefix, label) => {
          const name = `${prefix}${label}`
          const ok = /^(bootstrap|(service|component)\/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/.test(name)
          return (sporeNameProblem(name) == null) === ok
        }
      ),
      { numRuns: RUNS }
    )
  })
})

describe('class 14: records per bundle are capped; the bundle is refused as a whole', () => {
  it('a binary bundle of 524,288 empty records is one error, fast', () => {
    const bytes = Buffer.alloc(1024 * 1024)
    for (let i = 0; i < bytes.length; i += 2) bytes[i] = 0x0a // field 1, length 0
    expect(() => parseSporeBundle(bytes, 'b.bin')).toThrow(/more than the 1024 spores a bundle may hold/)
  })

  it('a JSON bundle with too many records is one error', () => {
    const text = JSON.stringify({ spores: Array.from({ length: MAX_SPORES_PER_BUNDLE + 1 }, () => ({ spore: 'AA==', signatures: [] })) })
    expect(() => parseSporeBundle(Buffer.from(text), 'b.json')).toThrow(/1025 spores, more than the 1024/)
  })

  it('MAX_SPORES_PER_BUNDLE records are still read', () => {
    const one = signSporeForTest(good(), keys)
    const bytes = SporeBundle.encode({ spores: Array.from({ length: MAX_SPORES_PER_BUNDLE }, () => one) }).finish()
    expect(parseSporeBundle(bytes, 'b.bin')).toHaveLength(MAX_SPORES_PER_BUNDLE)
  })
})

describe('property: verifySpore over hostile signed bytes', () => {
  it('any bytes, signed by the trusted keys, are accepted only when they are a valid spore, and never crash', () => {
    const valid = Buffer.from(Spore.encode(good()).finish())
    const mutated = fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
      const copy = Buffer.from(valid)
      copy[i] = b
      return copy
    })
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          mutated
        ),
        (bytes) => {
          const result = outcome(signSporeForTest(bytes, keys))
          expect(result).not.toMatch(/^crashed/)
          if (result === 'accepted') {
            const spore = Spore.decode(bytes)
            expect(spore.networkId).toBe(NET)
            expect(sporeNameProblem(spore.name)).toBeUndefined()
          }
        }
      ),
      { numRuns: RUNS }
    )
  })
})
