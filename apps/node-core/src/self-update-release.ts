import { ReleaseManifest, type Spore, type TrustBundle, type UpdateCommand } from '@mycelium/core-interfaces'
import { verifyReleaseManifest } from '@mycelium/spore-client'
import { networkContractMax, releaseRefusal, type RefusalCode } from '@mycelium/self-update'

/**
 * Whether an update fits the release the network published
 * (`release/node-core`), and which manifest the channel watch may act on.
 * Pure — the trust bundle and verified spores are handed in — so the rules
 * (signed networks refuse what their release keys did not sign; unsigned
 * networks trust the manager's command) are tested without a network.
 */

/** The trust bundle in force and every verified spore (`release/node-core`, `service/*`). */
export interface PublishedRelease {
  bundle: TrustBundle
  spores: Array<{ name: string; spore: Spore }>
}

/** A named refusal (the command's REJECTED reason starts with the name). */
export interface Refusal {
  code: RefusalCode
  reason: string
}

/** What the command's REJECTED reason says. */
export const said = (r: Refusal): string => `${r.code}: ${r.reason}`

/**
 * The `release/node-core` manifest: verified against the release keys when
 * the trust bundle names some, decoded as is otherwise; undefined when no
 * such spore is published. Throws when it does not verify (or decode).
 */
export function publishedManifest(r: PublishedRelease, networkId: string): ReleaseManifest | undefined {
  const body = r.spores.find((s) => s.name === 'release/node-core')?.spore.body
  if (body?.$case !== 'release') return undefined
  return (r.bundle.releaseKeys ?? []).length > 0
    ? verifyReleaseManifest(body.value, r.bundle, networkId, 'release/node-core')
    : ReleaseManifest.decode(body.value.manifest)
}

/**
 * The update must fit the `release/node-core` spore: when the trust bundle names release
 * keys, the spore must name this version and digest, its manifest signed by enough
 * release keys (without release keys the network signs no releases: the manager's
 * command is trusted, and a spore naming the same artifact still says its channel and
 * contract). The release's channel must be the node's, and its minimum contract version
 * one the network's managers speak. `sizeBytes`: the artifact's size when the release
 * names it (0: unknown).
 */
export function releaseProblem(
  u: Pick<UpdateCommand, 'version' | 'artifactDigest'>,
  r: PublishedRelease | undefined,
  node: { networkId: string; channel: string }
): { refusal?: Refusal; sizeBytes: number } {
  if (r == null) return { sizeBytes: 0 }
  const signed = (r.bundle.releaseKeys ?? []).length > 0
  let manifest: ReleaseManifest | undefined
  try {
    manifest = publishedManifest(r, node.networkId)
  } catch (err) {
    return signed ? { refusal: { code: 'release-unverified', reason: (err as Error).message }, sizeBytes: 0 } : { sizeBytes: 0 }
  }
  if (manifest == null)
    return signed
      ? {
          refusal: {
            code: 'release-unverified',
            reason: 'no release/node-core spore: this network signs its releases (release keys in the trust bundle)'
          },
          sizeBytes: 0
        }
      : { sizeBytes: 0 }
  const same = manifest.component === '' && manifest.version === u.version && manifest.artifactDigest === u.artifactDigest
  if (!same)
    return signed
      ? {
          refusal: {
            code: 'release-mismatch',
            reason: `release/node-core names ${manifest.version} (${manifest.artifactDigest}), not ${u.version} (${u.artifactDigest})`
          },
          sizeBytes: 0
        }
      : { sizeBytes: 0 }
  const refusal = releaseRefusal(
    { version: manifest.version, minContractVersion: manifest.minContractVersion, channel: manifest.channel },
    { channel: node.channel, networkContractMax: networkContractMax(r.spores) }
  )
  return { ...(refusal != null ? { refusal } : {}), sizeBytes: manifest.sizeBytes }
}
