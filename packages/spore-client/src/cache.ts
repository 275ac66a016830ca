import { InvalidInputError, SignedSpore, TrustBundle } from '@mycelium/core-interfaces'
import { readStateFile, writeStateFile } from '@mycelium/core-utils'
import type { TrustMark } from './verify.js'

/**
 * The last verified state, so a node boots with no network: the trust bundle
 * in force, the spores, and the rollback marks (kept even for spores that
 * expired, so an old spore can never come back after a restart).
 * Stored as JSON inside a checksummed, atomically written state file.
 */
export interface CachedState {
  trustBundle: TrustBundle
  spores: CachedSpore[]
  marks: Record<string, TrustMark>
}

/**
 * A spore with the trust bundle that accepted it. After a rotation the
 * spores signed by the old keys stay trusted (as they do while running);
 * a restart re-verifies each under the bundle that accepted it, never under
 * the rotated one, which would drop them all.
 */
export interface CachedSpore {
  signed: SignedSpore
  acceptedUnder: TrustBundle
}

/**
 * Format 2 adds `bundles` (each trust bundle that accepted a cached spore,
 * once) and `acceptedUnder` (per spore, an index into `bundles`). Format 1
 * caches are still read: their spores are checked under `trustBundle`.
 */
interface CacheJson {
  format: 1 | 2
  trustBundle: unknown
  bundles?: unknown[]
  spores: unknown[]
  acceptedUnder?: number[]
  marks: Record<string, TrustMark>
}

export async function saveCache(path: string, state: CachedState): Promise<void> {
  const bundles: unknown[] = []
  const index = new Map<string, number>()
  const acceptedUnder = state.spores.map(({ acceptedUnder: bundle }) => {
    const json = TrustBundle.toJSON(bundle)
    const key = JSON.stringify(json)
    let i = index.get(key)
    if (i == null) {
      i = bundles.push(json) - 1
      index.set(key, i)
    }
    return i
  })
  const json: CacheJson = {
    format: 2,
    trustBundle: TrustBundle.toJSON(state.trustBundle),
    bundles,
    spores: state.spores.map((s) => SignedSpore.toJSON(s.signed)),
    acceptedUnder,
    marks: state.marks
  }
  await writeStateFile(path, Buffer.from(JSON.stringify(json)))
}

export interface LoadedCache {
  state: CachedState
  /** Set when the newest copy was unusable and the previous one was read. */
  recoveredReason?: string
}

/** `undefined` when there is no cache; throws (CorruptStateError, InvalidInputError, SyntaxError) when it is unusable. */
export async function loadCache(path: string): Promise<LoadedCache | undefined> {
  const content = await readStateFile(path)
  if (content == null) return undefined
  const json = JSON.parse(content.data.toString('utf8')) as CacheJson
  if (json.format !== 1 && json.format !== 2) throw new InvalidInputError(`unsupported cache format ${String(json.format)}`, path)
  const marks: Record<string, TrustMark> = {}
  for (const [name, mark] of Object.entries(json.marks ?? {})) {
    if (typeof mark?.sequence !== 'number' || typeof mark?.digest !== 'string') throw new InvalidInputError(`bad mark for "${name}"`, path)
    marks[name] = { sequence: mark.sequence, digest: mark.digest }
  }
  const trustBundle = TrustBundle.fromJSON(json.trustBundle)
  const bundles = (json.bundles ?? []).map((b) => TrustBundle.fromJSON(b))
  const spores = (json.spores ?? []).map((s, i): CachedSpore => {
    const at = json.format === 2 ? json.acceptedUnder?.[i] : undefined
    const acceptedUnder = at == null ? trustBundle : bundles[at]
    if (acceptedUnder == null) throw new InvalidInputError(`spore ${i} names trust bundle ${at}, which the cache does not hold`, path)
    return { signed: SignedSpore.fromJSON(s), acceptedUnder }
  })
  return {
    state: { trustBundle, spores, marks },
    ...(content.recoveredFromPrevious != null ? { recoveredReason: content.recoveredFromPrevious.reason } : {})
  }
}
