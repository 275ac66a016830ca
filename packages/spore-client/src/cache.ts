import { readStateFile, SignedSpore, TrustBundle, writeStateFile } from '@mycelium/core-interfaces'
import type { TrustMark } from './verify.js'

/**
 * The last verified state, so a node boots with no network: the trust bundle
 * in force, the spores, and the rollback marks (kept even for spores that
 * expired, so an old spore can never come back after a restart).
 * Stored as JSON inside a checksummed, atomically written state file.
 */
export interface CachedState {
  trustBundle: TrustBundle
  spores: SignedSpore[]
  marks: Record<string, TrustMark>
}

interface CacheJson {
  format: 1
  trustBundle: unknown
  spores: unknown[]
  marks: Record<string, TrustMark>
}

export async function saveCache(path: string, state: CachedState): Promise<void> {
  const json: CacheJson = {
    format: 1,
    trustBundle: TrustBundle.toJSON(state.trustBundle),
    spores: state.spores.map((s) => SignedSpore.toJSON(s)),
    marks: state.marks
  }
  await writeStateFile(path, Buffer.from(JSON.stringify(json)))
}

export interface LoadedCache {
  state: CachedState
  /** Set when the newest copy was unusable and the previous one was read. */
  recoveredReason?: string
}

/** `undefined` when there is no cache; throws (CorruptStateError, SyntaxError) when it is unusable. */
export async function loadCache(path: string): Promise<LoadedCache | undefined> {
  const content = await readStateFile(path)
  if (content == null) return undefined
  const json = JSON.parse(content.data.toString('utf8')) as CacheJson
  if (json.format !== 1) throw new Error(`unsupported cache format ${String(json.format)}`)
  const marks: Record<string, TrustMark> = {}
  for (const [name, mark] of Object.entries(json.marks ?? {})) {
    if (typeof mark?.sequence !== 'number' || typeof mark?.digest !== 'string') throw new Error(`bad mark for "${name}"`)
    marks[name] = { sequence: mark.sequence, digest: mark.digest }
  }
  return {
    state: {
      trustBundle: TrustBundle.fromJSON(json.trustBundle),
      spores: (json.spores ?? []).map((s) => SignedSpore.fromJSON(s)),
      marks
    },
    ...(content.recoveredFromPrevious != null ? { recoveredReason: content.recoveredFromPrevious.reason } : {})
  }
}
