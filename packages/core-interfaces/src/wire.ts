import { BinaryReader, WireType } from '@bufbuild/protobuf/wire'
import { makeGenericClientConstructor } from '@grpc/grpc-js'
import { InvalidInputError } from './errors.js'

/**
 * Strict protobuf decoding for everything the node receives.
 *
 * The generated ts-proto decoders read with `@bufbuild/protobuf`'s lenient
 * BinaryReader: a 10-byte varint for 2^64 wraps to 0, 2^64+7 to 7, invalid
 * UTF-8 becomes U+FFFD, a NUL byte (tag 0) ends a message, and a
 * google.protobuf.Timestamp with seconds = 1e13 becomes an Invalid Date.
 * Each of those lets two readers see different values in the same signed
 * bytes. `decodeStrict` runs the same generated decoder over
 * `StrictBinaryReader` (the generated code accepts any BinaryReader and passes
 * it down to nested messages) and then checks what the reader cannot see:
 * every byte consumed and every Timestamp inside protobuf's valid range.
 *
 * Invariants enforced (all throw InvalidInputError naming `where`):
 * - varints are canonical: no redundant 0x80 padding, at most 10 bytes, and
 *   the 10th byte carries only the 64th bit (no overflow);
 * - uint32 (tags, lengths, uint32 fields) fit 32 bits in at most 5 bytes;
 *   int32/enum values are int32 (sign-extended negatives allowed);
 * - 64-bit integers: ts-proto (forceLong=number) refuses values beyond 2^53
 *   itself, so no value is rounded;
 * - strings are valid UTF-8; groups (wire types 3/4) are refused;
 * - the message spans exactly the input (no trailing bytes, no tag 0 at the
 *   top level; a nested message is bounded by its length but a tag 0 inside
 *   one still ends it early, as in the generated code);
 * - Dates are within 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z.
 */

/** google.protobuf.Timestamp's valid range (0001-01-01 .. 9999-12-31). */
export const TIMESTAMP_MIN_SECONDS = -62_135_596_800
export const TIMESTAMP_MAX_SECONDS = 253_402_300_799
const DATE_MIN_MS = TIMESTAMP_MIN_SECONDS * 1000
const DATE_MAX_MS = TIMESTAMP_MAX_SECONDS * 1000 + 999
/**
 * ts-proto builds a Date as seconds*1000 + nanos/1e6 in floating point, which
 * can round the very last valid Timestamp up by a millisecond: decoded Dates
 * get that much slack (the raw Timestamp check, `timestampProblem`, is exact).
 */
const DECODED_DATE_MAX_MS = DATE_MAX_MS + 1

class WireError extends Error {}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const decodeUtf8Strict = (bytes: Uint8Array): string => {
  try {
    return fatalUtf8.decode(bytes)
  } catch {
    throw new WireError('string is not valid UTF-8')
  }
}

interface ReaderInternals {
  buf: Uint8Array
  pos: number
  len: number
  varint64Lo: number
  varint64Hi: number
  varint64: () => void
  uint32: () => number
}

/**
 * A BinaryReader that refuses non-canonical and overflowing varints and
 * invalid UTF-8. Hand it to any generated `X.decode(reader)`.
 */
export class StrictBinaryReader extends BinaryReader {
  constructor(buf: Uint8Array) {
    super(buf, decodeUtf8Strict)
    const self = this as unknown as ReaderInternals
    // The base class installs these as instance properties, so they are
    // replaced here rather than overridden on the prototype.
    self.varint64 = () => {
      const [lo, hi] = readVarint(self, 10)
      self.varint64Lo = lo
      self.varint64Hi = hi
    }
    self.uint32 = () => {
      const [lo] = readVarint(self, 5)
      return lo >>> 0
    }
  }

  override int32(): number {
    const self = this as unknown as ReaderInternals
    const [lo, hi] = readVarint(self, 10)
    // Non-negative int32s are plain varints; negative ones are sign-extended to 64 bits.
    if ((hi === 0 && lo >= 0) || (hi === -1 && lo < 0)) return lo
    throw new WireError('int32 value out of range')
  }

  override string(): string {
    return super.string(true)
  }

  override skip(wireType: WireType, fieldNo?: number): Uint8Array {
    const self = this as unknown as ReaderInternals
    if (wireType === WireType.Varint) {
      const start = self.pos
      readVarint(self, 10)
      return self.buf.subarray(start, self.pos)
    }
    if (wireType === WireType.StartGroup || wireType === WireType.EndGroup) {
      throw new WireError(`group (wire type ${wireType}) in field ${fieldNo ?? '?'}: not used by proto3`)
    }
    return super.skip(wireType, fieldNo)
  }
}

/**
 * Reads one canonical varint of at most `maxBytes` bytes at `r.pos`; returns
 * its low and high 32 bits (as int32, like the base reader) and advances.
 */
function readVarint(r: ReaderInternals, maxBytes: 5 | 10): [number, number] {
  const buf = r.buf
  let pos = r.pos
  let lo = 0
  let hi = 0
  let b: number
  let i = 0
  do {
    if (i === maxBytes) throw new WireError(`varint longer than ${maxBytes} bytes at offset ${r.pos}`)
    if (pos >= r.len) throw new WireError(`truncated varint at offset ${r.pos}`)
    b = buf[pos++]!
    const bits = b & 0x7f
    if (i < 4) lo |= bits << (7 * i)
    else if (i === 4) {
      lo |= (bits & 0x0f) << 28
      hi |= bits >> 4
    } else hi |= bits << (7 * i - 32)
    i++
  } while ((b & 0x80) !== 0)
  if (maxBytes === 5 && i === 5 && b > 0x0f) throw new WireError(`varint overflows 32 bits at offset ${r.pos}`)
  if (maxBytes === 10 && i === 10 && b > 0x01) throw new WireError(`varint overflows 64 bits at offset ${r.pos}`)
  if (i > 1 && b === 0) throw new WireError(`non-canonical (over-long) varint at offset ${r.pos}`)
  r.pos = pos
  return [lo | 0, hi | 0]
}

/** What a generated ts-proto message type offers for decoding. */
export interface MessageDecoder<T> {
  decode(input: BinaryReader | Uint8Array, length?: number): T
}

/** Limits for `decodeStrict`. */
export interface StrictDecodeOptions {
  /** Refuse inputs larger than this many bytes. @default unlimited */
  maxBytes?: number
  /** Tighter limits for some methods of a service (`strictService`), by method key (e.g. "relayDistress"). */
  maxBytesPerMethod?: Record<string, number>
}

/**
 * Decodes `bytes` as `type` under the strict rules above. Throws
 * InvalidInputError naming `where` and the first problem found.
 */
export function decodeStrict<T>(type: MessageDecoder<T>, bytes: Uint8Array, where: string, options: StrictDecodeOptions = {}): T {
  return runStrict((reader) => type.decode(reader), bytes, where, options)
}

function runStrict<T>(decode: (reader: StrictBinaryReader) => T, bytes: Uint8Array, where: string, options: StrictDecodeOptions): T {
  if (options.maxBytes != null && bytes.length > options.maxBytes) {
    throw new InvalidInputError(`message of ${bytes.length} bytes exceeds the ${options.maxBytes}-byte limit`, where)
  }
  // The generated loop ends a message at tag 0 without a word; framing the
  // top level first refuses a stray NUL anywhere between fields.
  readWireFields(bytes, where)
  const reader = new StrictBinaryReader(bytes)
  let message: T
  try {
    message = decode(reader)
  } catch (err) {
    throw new InvalidInputError(`not a valid protobuf message: ${(err as Error).message}`, where, { cause: err })
  }
  if (reader.pos !== reader.len) {
    throw new InvalidInputError(
      `not a valid protobuf message: stray byte 0x${(bytes[reader.pos - 1] ?? 0).toString(16).padStart(2, '0')} (tag 0 or end-group) at offset ${reader.pos - 1}`,
      where
    )
  }
  const dateProblem = findBadDate(message, 0)
  if (dateProblem != null) throw new InvalidInputError(`not a valid protobuf message: ${dateProblem}`, where)
  return message
}

/** Why `date` is not a valid google.protobuf.Timestamp, or undefined. */
export function dateProblem(date: Date): string | undefined {
  const t = date.getTime()
  if (!Number.isFinite(t)) return 'timestamp is not a finite time'
  if (t < DATE_MIN_MS || t > DATE_MAX_MS) return `timestamp ${date.toISOString()} is outside 0001-01-01..9999-12-31`
  return undefined
}

/** Why a raw Timestamp is invalid (seconds range, nanos 0..999999999), or undefined. */
export function timestampProblem(t: { seconds: number; nanos: number }): string | undefined {
  if (!Number.isSafeInteger(t.seconds) || t.seconds < TIMESTAMP_MIN_SECONDS || t.seconds > TIMESTAMP_MAX_SECONDS) {
    return `timestamp seconds ${t.seconds} outside 0001-01-01..9999-12-31`
  }
  if (!Number.isInteger(t.nanos) || t.nanos < 0 || t.nanos > 999_999_999) return `timestamp nanos ${t.nanos} outside 0..999999999`
  return undefined
}

function findBadDate(value: unknown, depth: number): string | undefined {
  if (value == null || typeof value !== 'object' || depth > 128) return undefined
  if (value instanceof Date) return value.getTime() === DECODED_DATE_MAX_MS ? undefined : dateProblem(value)
  if (ArrayBuffer.isView(value)) return undefined
  for (const v of Array.isArray(value) ? value : Object.values(value)) {
    const problem = findBadDate(v, depth + 1)
    if (problem != null) return problem
  }
  return undefined
}

/** One top-level field as it sits on the wire. */
export interface WireField {
  fieldNo: number
  wireType: WireType
  /** The payload of a length-delimited field. */
  bytes?: Uint8Array
}

/**
 * The top-level fields of a message, read strictly (canonical varints, known
 * wire types, lengths within the input). Throws InvalidInputError naming
 * `where`, or TooManyFieldsError past `maxFields` (counted as it reads, so a
 * huge message costs no more than `maxFields` fields). For framing checks and for reading raw sub-messages whose decoded
 * form loses information (a Timestamp's nanos, once turned into a Date).
 */
export function readWireFields(bytes: Uint8Array, where: string, options: { maxFields?: number } = {}): WireField[] {
  const reader = new StrictBinaryReader(bytes)
  const fields: WireField[] = []
  const maxFields = options.maxFields ?? Number.POSITIVE_INFINITY
  try {
    while (reader.pos < reader.len) {
      if (fields.length === maxFields) throw new TooManyFieldsError(maxFields, where)
      const [fieldNo, wireType] = reader.tag()
      if (wireType === WireType.LengthDelimited) fields.push({ fieldNo, wireType, bytes: reader.bytes() })
      else {
        reader.skip(wireType, fieldNo)
        fields.push({ fieldNo, wireType })
      }
    }
  } catch (err) {
    if (isTooManyFieldsError(err)) throw err
    throw new InvalidInputError(`not a valid protobuf message: ${(err as Error).message}`, where, { cause: err })
  }
  return fields
}

/** `readWireFields` met more than `maxFields` top-level fields: the message is refused as a whole. */
export class TooManyFieldsError extends Error {
  static readonly NAME = 'TooManyFieldsError'
  override readonly name = TooManyFieldsError.NAME
  constructor(
    readonly maxFields: number,
    readonly where: string
  ) {
    super(`${where}: more than ${maxFields} top-level fields (refused as a whole)`)
  }
}
export const isTooManyFieldsError = (err: unknown): err is TooManyFieldsError =>
  err instanceof Error && err.name === TooManyFieldsError.NAME

interface GrpcMethodDefinition {
  requestDeserialize: (bytes: Buffer) => unknown
  responseDeserialize: (bytes: Buffer) => unknown
  path: string
}

/**
 * A copy of a generated grpc-js service definition whose request and
 * response deserializers decode strictly (and refuse messages larger than
 * `maxBytes`). Use it for every client and server that receives messages from
 * the network: `new (makeGenericClientConstructor(strictService(X), 'X'))(…)`
 * or `server.addService(strictService(X), handlers)`. A message refused here
 * fails the call (INTERNAL) before any handler sees it.
 */
export function strictService<S extends Record<string, object>>(definition: S, options: StrictDecodeOptions = {}): S {
  const out: Record<string, object> = {}
  for (const [key, method] of Object.entries(definition)) {
    const m = method as GrpcMethodDefinition
    const maxBytes = options.maxBytesPerMethod?.[key] ?? options.maxBytes
    const limits = maxBytes != null ? { maxBytes } : {}
    const wrap = (decode: (bytes: Buffer) => unknown, what: string) => (bytes: Buffer) =>
      // The generated deserializer passes a BinaryReader straight to X.decode.
      runStrict((reader) => decode(reader as unknown as Buffer), bytes, `${m.path} ${what}`, limits)
    out[key] = {
      ...m,
      requestDeserialize: wrap(m.requestDeserialize, 'request'),
      responseDeserialize: wrap(m.responseDeserialize, 'response')
    }
  }
  return out as S
}

/**
 * A generated grpc-js client constructor (e.g. `SporeServiceClient`) whose
 * responses decode strictly: `new (strictClient(SporeServiceClient))(…)`.
 */
export function strictClient<C extends { service: object; serviceName: string }>(ctor: C, options: StrictDecodeOptions = {}): C {
  return makeGenericClientConstructor(
    strictService(ctor.service as Record<string, object>, options) as never,
    ctor.serviceName
  ) as unknown as C
}
