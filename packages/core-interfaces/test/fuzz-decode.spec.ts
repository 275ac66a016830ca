import fc from 'fast-check'
import * as contracts from '../src/index.js'
import { decodeStrict, isInvalidInputError, type MessageDecoder } from '../src/index.js'

/**
 * Property tests over every v1 message the node can receive (all generated
 * message types of mycelium.core.v1 and the well-known types they use):
 * strict decoding of hostile bytes is either a message or an
 * InvalidInputError — never another exception, never a hang — and whatever
 * it accepts the lenient generated decoder reads the same way.
 * FUZZ_RUNS raises the number of runs (`npm run fuzz`); the default keeps CI fast.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 60)

interface MessageType extends MessageDecoder<unknown> {
  encode(message: unknown): { finish(): Uint8Array }
  fromPartial(o: object): unknown
}
const isMessageType = (v: unknown): v is MessageType => {
  const t = v as Partial<MessageType> | null
  return (
    typeof t === 'object' &&
    t != null &&
    typeof t.decode === 'function' &&
    typeof t.encode === 'function' &&
    typeof t.fromPartial === 'function'
  )
}
const messages = (Object.entries(contracts) as Array<[string, unknown]>)
  .flatMap(([name, v]): Array<[string, MessageType]> => (isMessageType(v) ? [[name, v]] : []))
  .sort(([a], [b]) => a.localeCompare(b))

function varint(n: bigint): number[] {
  const out: number[] = []
  let v = n
  do {
    out.push(Number(v & 0x7fn) | (v > 0x7fn ? 0x80 : 0))
    v >>= 7n
  } while (v > 0n)
  return out
}

/** Protobuf-shaped bytes: fields 1–15 of any wire type, nested a few levels, with hostile varints and lengths mixed in. */
const wireBytes: fc.Arbitrary<Uint8Array> = fc
  .letrec<{ msg: number[] }>((tie) => ({
    msg: fc
      .array(
        fc.oneof(
          fc
            .record({
              f: fc.integer({ min: 1, max: 15 }),
              v: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n + 9n }), fc.constantFrom(0n, 1n, 2n ** 53n + 1n, 2n ** 63n))
            })
            .map(({ f, v }) => [f << 3, ...varint(v)]),
          fc
            .record({ f: fc.integer({ min: 1, max: 15 }), b: fc.uint8Array({ maxLength: 24 }) })
            .map(({ f, b }) => [(f << 3) | 2, b.length, ...b]),
          fc
            .record({ f: fc.integer({ min: 1, max: 15 }), m: tie('msg') as fc.Arbitrary<number[]> })
            .map(({ f, m }) => [(f << 3) | 2, ...varint(BigInt(m.length)), ...m]),
          fc
            .record({ f: fc.integer({ min: 1, max: 15 }), b: fc.uint8Array({ minLength: 4, maxLength: 4 }) })
            .map(({ f, b }) => [(f << 3) | 5, ...b]),
          fc
            .record({ f: fc.integer({ min: 1, max: 15 }), b: fc.uint8Array({ minLength: 8, maxLength: 8 }) })
            .map(({ f, b }) => [(f << 3) | 1, ...b]),
          fc.constantFrom([0], [0x80, 0x00], [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], [0x0b], [0x0c])
        ),
        { maxLength: 6, depthIdentifier: 'msg' }
      )
      .map((parts) => parts.flat())
  }))
  .msg.map((a) => Uint8Array.from(a))

const anyBytes = fc.oneof(wireBytes, fc.uint8Array({ maxLength: 256 }))

it('finds the message types', () => {
  expect(messages.length).toBeGreaterThan(40)
  expect(messages.map(([name]) => name)).toEqual(
    expect.arrayContaining(['SignedSpore', 'Spore', 'RelayDistressRequest', 'NodeConfig', 'Timestamp'])
  )
})

describe.each(messages)('%s', (_name, type) => {
  it('strict decoding of hostile bytes is a message or an InvalidInputError, and agrees with the generated decoder', () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        let strict: unknown
        try {
          strict = decodeStrict(type, bytes, 'fuzz')
        } catch (err) {
          if (!isInvalidInputError(err)) throw err
          return
        }
        expect(type.decode(bytes)).toEqual(strict)
      }),
      { numRuns: RUNS }
    )
  })

  it('accepts what the generated encoder writes from anything the lenient decoder read', () => {
    fc.assert(
      fc.property(anyBytes, (bytes) => {
        let lenient: unknown
        let encoded: Uint8Array
        try {
          lenient = type.decode(bytes)
          encoded = type.encode(lenient).finish()
        } catch {
          return // not even the lenient reader (or the writer) takes it
        }
        try {
          expect(decodeStrict(type, encoded, 'fuzz')).toEqual(type.decode(encoded))
        } catch (err) {
          // Only values the strict rules exist to refuse may fail here.
          if (!isInvalidInputError(err) || !/timestamp|MAX_SAFE|SAFE_INTEGER|UTF-8/.test((err as Error).message)) throw err
        }
      }),
      { numRuns: RUNS }
    )
  })
})
