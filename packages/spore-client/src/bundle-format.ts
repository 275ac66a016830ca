import {
  decodeStrict,
  InvalidInputError,
  isTooManyFieldsError,
  readWireFields,
  SporeBundle,
  type SignedSpore,
  type WireField
} from '@mycelium/core-interfaces'

/**
 * A bundle with more spores than this is refused as a whole: a network has a
 * handful of managers and components, and thousands of records are only ever
 * an attempt to stall the event loop with one rejection each.
 */
export const MAX_SPORES_PER_BUNDLE = 1024
/** Largest spore bundle read from a file or an HTTP body. */
export const MAX_SPORE_BUNDLE_BYTES = 8 * 1024 * 1024

/** Strict standard base64 (with padding), as the JSON mapping writes bytes. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Reads a SporeBundle from a file or HTTP body: its JSON mapping when the
 * first non-blank byte is "{", binary protobuf otherwise. Throws
 * InvalidInputError naming `where` (and the record) on anything else.
 *
 * The binary form has no header of its own, so it is framed by its content:
 * non-empty, at most MAX_SPORE_BUNDLE_BYTES, only field 1 (spores) at the top
 * level, every varint canonical, every record a well-formed SignedSpore with
 * spore bytes. Random bytes or a run of NULs fail
 * one of these at once instead of reading as an empty bundle.
 */
export function parseSporeBundle(bytes: Uint8Array, where: string): SignedSpore[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length === 0) throw new InvalidInputError('empty file: not a spore bundle', where)
  if (buf.length > MAX_SPORE_BUNDLE_BYTES) {
    throw new InvalidInputError(`${buf.length} bytes, more than the ${MAX_SPORE_BUNDLE_BYTES} a spore bundle may have`, where)
  }
  const first = buf.toString('utf8', 0, Math.min(buf.length, 64)).trimStart()[0]
  return first === '{' ? parseJson(buf, where) : parseBinary(buf, where)
}

function parseJson(buf: Buffer, where: string): SignedSpore[] {
  let json: unknown
  try {
    json = JSON.parse(buf.toString('utf8'))
  } catch (err) {
    throw new InvalidInputError(`invalid JSON: ${(err as Error).message}`, where)
  }
  const spores = (json as { spores?: unknown }).spores
  if (spores == null) return []
  if (!Array.isArray(spores)) throw new InvalidInputError('"spores" must be an array', where)
  checkCount(spores.length, where)
  for (const [i, s] of spores.entries()) {
    const at = `spores[${i}]`
    if (typeof s !== 'object' || s == null || Array.isArray(s)) throw new InvalidInputError(`${at} must be an object`, where)
    const { spore, signatures } = s as { spore?: unknown; signatures?: unknown }
    if (typeof spore !== 'string' || spore.length === 0 || !BASE64.test(spore)) {
      throw new InvalidInputError(`${at}.spore must be a non-empty base64 string`, where)
    }
    if (signatures != null && !Array.isArray(signatures)) throw new InvalidInputError(`${at}.signatures must be an array`, where)
    for (const [j, sig] of ((signatures as unknown[] | undefined) ?? []).entries()) {
      const { keyId, signature } = (sig ?? {}) as { keyId?: unknown; signature?: unknown }
      if (typeof sig !== 'object' || sig == null || typeof keyId !== 'string' || typeof signature !== 'string' || !BASE64.test(signature)) {
        throw new InvalidInputError(`${at}.signatures[${j}] must be an object { keyId: string, signature: base64 string }`, where)
      }
    }
  }
  return SporeBundle.fromJSON(json).spores
}

function parseBinary(buf: Buffer, where: string): SignedSpore[] {
  // "neither JSON nor a binary SporeBundle: <what is wrong>", naming the file.
  const refuse = (err: unknown): never => {
    throw new InvalidInputError(`neither JSON nor a ${(err as Error).message}`, where, { cause: err })
  }
  const what = 'binary SporeBundle'
  let fields: WireField[] = []
  try {
    fields = readWireFields(buf, what, { maxFields: MAX_SPORES_PER_BUNDLE })
  } catch (err) {
    if (isTooManyFieldsError(err)) {
      throw new InvalidInputError(`more than the ${MAX_SPORES_PER_BUNDLE} spores a bundle may hold (refused as a whole)`, where)
    }
    refuse(err)
  }
  const stray = fields.find((f) => f.fieldNo !== 1 || f.bytes == null)
  if (stray != null) {
    throw new InvalidInputError(
      `not a spore bundle: top-level field ${stray.fieldNo} (wire type ${stray.wireType}), only field 1 (spores) is allowed`,
      where
    )
  }
  // Counted before any record is decoded: the bundle is refused as a whole.
  checkCount(fields.length, where)
  let spores: SignedSpore[] = []
  try {
    spores = decodeStrict(SporeBundle, buf, what).spores
  } catch (err) {
    refuse(err)
  }
  for (const [i, s] of spores.entries()) {
    if (s.spore.length === 0) throw new InvalidInputError(`not a spore bundle: spores[${i}] has no spore bytes`, where)
  }
  return spores
}

function checkCount(count: number, where: string): void {
  if (count > MAX_SPORES_PER_BUNDLE) {
    throw new InvalidInputError(`${count} spores, more than the ${MAX_SPORES_PER_BUNDLE} a bundle may hold (refused as a whole)`, where)
  }
}

/** The JSON form of a set of spores, as the bootstrap file and the tools write it. */
export function formatSporeBundleJson(spores: SignedSpore[]): string {
  return `${JSON.stringify(SporeBundle.toJSON({ spores }), null, 2)}\n`
}
