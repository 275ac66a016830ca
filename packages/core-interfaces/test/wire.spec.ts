import {
  decodeStrict,
  isInvalidInputError,
  readWireFields,
  isTooManyFieldsError,
  SignedSpore,
  Spore,
  SporeBundle,
  timestampProblem,
  Timestamp,
  Endpoint,
  ComponentHealth
} from '../src/index.js'
import { encodeVarint } from '@mycelium/testing'

/** A Spore whose field 3 (sequence) is the given raw varint bytes. */
const sporeWithSequenceBytes = (raw: number[]): Uint8Array => Uint8Array.from([0x18, ...raw])

function refusal(fn: () => unknown): Error {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  throw new Error('expected a refusal')
}

describe('decodeStrict', () => {
  it('decodes what the generated encoder writes, unchanged', () => {
    const spore: Spore = {
      networkId: 'net1',
      name: 'service/x',
      sequence: 2 ** 53 - 1,
      issuedAt: new Date('0001-01-01T00:00:00Z'),
      expiresAt: new Date('9999-12-31T23:59:59.999Z'),
      body: {
        $case: 'service',
        value: {
          service: 'x',
          endpoints: [{ address: 'a:1', priority: 5, expectedIdentity: 'spiffe://n/manager/x', zone: 'z' }],
          contractVersions: undefined
        }
      }
    }
    const back = decodeStrict(Spore, Spore.encode(spore).finish(), 'test')
    expect(back).toEqual(spore)
  })

  it.each([
    ['2^64 in 10 bytes (wraps to 0 leniently)', encodeVarint(2n ** 64n)],
    ['2^64+7 (wraps to 7 leniently)', encodeVarint(2n ** 64n + 7n)],
    ['11-byte varint', [...Array(10).fill(0x81), 0x01]],
    ['over-long 7 (0x87 0x00)', encodeVarint(7n, 2)],
    ['over-long 0 in 10 bytes', encodeVarint(0n, 10)],
    ['2^53 + 1 (would round)', encodeVarint(2n ** 53n + 1n)],
    ['2^63 (would round)', encodeVarint(2n ** 63n)],
    ['truncated varint', [0x80, 0x80]]
  ])('refuses %s as a uint64 sequence', (_what, raw) => {
    const err = refusal(() => decodeStrict(Spore, sporeWithSequenceBytes(raw), 'spore.bin'))
    expect(isInvalidInputError(err)).toBe(true)
    expect(err.message).toContain('spore.bin')
    // The lenient reader indeed misreads (or throws on) the same bytes.
  })

  it('accepts the largest safe sequence and negative int32 (sign-extended) values', () => {
    expect(decodeStrict(Spore, sporeWithSequenceBytes(encodeVarint(2n ** 53n - 1n)), 't').sequence).toBe(2 ** 53 - 1)
    const negative = ComponentHealth.encode({ name: '', state: -1 as never, reason: '', restarts: 0 }).finish()
    expect(decodeStrict(ComponentHealth, negative, 't').state).toBe(-1)
    // ComponentHealth.state (field 2, enum/int32) = 2^40
    expect(
      isInvalidInputError(refusal(() => decodeStrict(ComponentHealth, Uint8Array.from([0x10, ...encodeVarint(2n ** 40n)]), 't')))
    ).toBe(true)
  })

  it('refuses an int32 outside int32 and a uint32 length over 5 bytes', () => {
    // Endpoint.priority (field 4, uint32) = 2^40
    expect(isInvalidInputError(refusal(() => decodeStrict(Endpoint, Uint8Array.from([0x20, ...encodeVarint(2n ** 40n)]), 't')))).toBe(true)
    // Spore.name (field 2, string) with a 6-byte length
    expect(isInvalidInputError(refusal(() => decodeStrict(Spore, Uint8Array.from([0x12, ...encodeVarint(1n, 6), 0x41]), 't')))).toBe(true)
  })

  it('refuses invalid UTF-8, tag 0, trailing NULs, groups and truncation', () => {
    const cases = [
      Uint8Array.from([0x12, 0x02, 0xc3, 0x28]), // invalid UTF-8 name
      new Uint8Array(1024), // NULs: tag 0 ended the message leniently
      Uint8Array.from([...Spore.encode({ networkId: 'n', name: 'b', sequence: 1, body: undefined }).finish(), 0]),
      Uint8Array.from([0x0b, 0x0c]), // start group
      Uint8Array.from([0x12, 0x05, 0x41]) // length beyond the input
    ]
    for (const bytes of cases) expect(isInvalidInputError(refusal(() => decodeStrict(Spore, bytes, 't')))).toBe(true)
  })

  it('refuses timestamps outside 0001..9999 or not finite', () => {
    for (const seconds of [1e13, -62_135_596_801, 253_402_300_801]) {
      const bytes = Spore.encode({ networkId: 'n', name: 'b', sequence: 1, body: undefined }).finish()
      const ts = Timestamp.encode({ seconds, nanos: 0 }).finish()
      const withTs = Uint8Array.from([...bytes, 0x22, ts.length, ...ts])
      expect(isInvalidInputError(refusal(() => decodeStrict(Spore, withTs, 't')))).toBe(true)
    }
    expect(timestampProblem({ seconds: 0, nanos: 1_000_000_000 })).toMatch(/nanos/)
    expect(timestampProblem({ seconds: 0, nanos: -1 })).toMatch(/nanos/)
    expect(timestampProblem({ seconds: 253_402_300_799, nanos: 999_999_999 })).toBeUndefined()
  })

  it('enforces a size limit', () => {
    const bytes = SporeBundle.encode({ spores: [{ spore: Buffer.alloc(100), signatures: [] }] }).finish()
    expect(refusal(() => decodeStrict(SporeBundle, bytes, 'bundle', { maxBytes: 50 })).message).toMatch(/exceeds the 50-byte limit/)
    expect(decodeStrict(SignedSpore, SignedSpore.encode({ spore: Buffer.from('x'), signatures: [] }).finish(), 't').spore.length).toBe(1)
  })
})

describe('readWireFields', () => {
  it('lists top-level fields and refuses garbage', () => {
    const bytes = Spore.encode({ networkId: 'n', name: 'b', sequence: 3, body: undefined }).finish()
    expect(readWireFields(bytes, 't').map((f) => f.fieldNo)).toEqual([1, 2, 3])
    expect(isInvalidInputError(refusal(() => readWireFields(new Uint8Array(8), 't')))).toBe(true)
  })

  it('stops at maxFields with TooManyFieldsError', () => {
    const bytes = new Uint8Array(2000).map((_, i) => (i % 2 === 0 ? 0x0a : 0))
    expect(readWireFields(bytes, 't', { maxFields: 1000 })).toHaveLength(1000)
    const err = refusal(() => readWireFields(Uint8Array.from([...bytes, 0x0a, 0]), 'bundle', { maxFields: 1000 }))
    expect(isTooManyFieldsError(err)).toBe(true)
    expect(err.message).toBe('bundle: more than 1000 top-level fields (refused as a whole)')
  })
})
