import { InvalidInputError, SporeBundle, type SignedSpore } from '@mycelium/core-interfaces'

/**
 * Reads a SporeBundle from a file or HTTP body: its JSON mapping when the
 * first non-blank byte is "{", binary protobuf otherwise. Throws
 * InvalidInputError naming `where` on anything else.
 */
export function parseSporeBundle(bytes: Uint8Array, where: string): SignedSpore[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const first = buf.toString('utf8', 0, Math.min(buf.length, 64)).trimStart()[0]
  if (first === '{') {
    let json: unknown
    try {
      json = JSON.parse(buf.toString('utf8'))
    } catch (err) {
      throw new InvalidInputError(`invalid JSON: ${(err as Error).message}`, where)
    }
    const spores = (json as { spores?: unknown }).spores
    if (spores != null && !Array.isArray(spores)) throw new InvalidInputError('"spores" must be an array', where)
    for (const [i, s] of ((spores as unknown[]) ?? []).entries()) {
      if (typeof s !== 'object' || s == null || typeof (s as { spore?: unknown }).spore !== 'string') {
        throw new InvalidInputError(`spores[${i}].spore must be a base64 string`, where)
      }
    }
    return SporeBundle.fromJSON(json).spores
  }
  try {
    return SporeBundle.decode(buf).spores
  } catch (err) {
    throw new InvalidInputError(`neither JSON nor a binary SporeBundle: ${(err as Error).message}`, where)
  }
}

/** The JSON form of a set of spores, as the bootstrap file and the tools write it. */
export function formatSporeBundleJson(spores: SignedSpore[]): string {
  return `${JSON.stringify(SporeBundle.toJSON({ spores }), null, 2)}\n`
}
