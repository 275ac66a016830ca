import { sign } from 'node:crypto'
import { ReleaseManifest, Spore, type TrustBundle } from '@mycelium/core-interfaces'
import { testSigningKey, testTrustBundle, type TestSigningKey } from '@mycelium/testing'
import { publishedManifest, releaseProblem, type PublishedRelease } from '../src/self-update-release.js'

const DIGEST = `sha256:${'a'.repeat(64)}`
const releaseKey = testSigningKey()
const stranger = testSigningKey()
const unsigned: TrustBundle = testTrustBundle('net1', [testSigningKey()], 1)
const signed: TrustBundle = { ...unsigned, releaseKeys: [releaseKey.signingKey], releaseThreshold: 1 }

/** A `release/node-core` spore for `version` (digest DIGEST, 10 bytes, channel stable), signed by `signers`. */
function published(
  bundle: TrustBundle,
  version: string | undefined,
  signers: TestSigningKey[] = [releaseKey],
  channel = 'stable'
): PublishedRelease {
  if (version == null) return { bundle, spores: [] }
  const manifest = Buffer.from(
    ReleaseManifest.encode(
      ReleaseManifest.fromPartial({ networkId: 'net1', version, artifactDigest: DIGEST, sizeBytes: 10, minContractVersion: 1, channel })
    ).finish()
  )
  const signatures = signers.map((k) => ({ keyId: k.keyId, signature: sign(null, manifest, k.privateKey) }))
  const spore = Spore.fromPartial({
    networkId: 'net1',
    name: 'release/node-core',
    body: { $case: 'release', value: { manifest, signatures } }
  })
  return { bundle, spores: [{ name: 'release/node-core', spore }] }
}

const node = { networkId: 'net1', channel: 'stable' }
const update = { version: '2.0.0', artifactDigest: DIGEST }

describe('releaseProblem (does an update fit the published release, pure)', () => {
  it('accepts the release the network signed, with the artifact size it names', () => {
    expect(releaseProblem(update, published(signed, '2.0.0'), node)).toEqual({ sizeBytes: 10 })
  })

  it('in a network that signs its releases, refuses what no release key signed: no spore, a stranger’s signature, another version', () => {
    expect(releaseProblem(update, published(signed, undefined), node).refusal).toEqual({
      code: 'release-unverified',
      reason: expect.stringContaining('no release/node-core spore')
    })
    expect(releaseProblem(update, published(signed, '2.0.0', [stranger]), node).refusal).toEqual({
      code: 'release-unverified',
      reason: expect.stringContaining(`signed by unknown key ${stranger.keyId}`)
    })
    expect(releaseProblem(update, published(signed, '3.0.0'), node)).toEqual({
      refusal: { code: 'release-mismatch', reason: `release/node-core names 3.0.0 (${DIGEST}), not 2.0.0 (${DIGEST})` },
      sizeBytes: 0
    })
  })

  it('in a network without release keys, trusts the manager’s command (no spore, an unsigned or other release), size unknown', () => {
    expect(releaseProblem(update, undefined, node)).toEqual({ sizeBytes: 0 })
    expect(releaseProblem(update, published(unsigned, undefined), node)).toEqual({ sizeBytes: 0 })
    expect(releaseProblem(update, published(unsigned, '3.0.0', []), node)).toEqual({ sizeBytes: 0 })
    expect(releaseProblem(update, published(unsigned, '2.0.0', []), node)).toEqual({ sizeBytes: 10 })
  })

  it('refuses a release on another channel than the node follows, signed or not', () => {
    for (const bundle of [signed, unsigned]) {
      expect(releaseProblem(update, published(bundle, '2.0.0', [releaseKey], 'beta'), node).refusal?.code).toBe('channel-mismatch')
    }
  })
})

describe('publishedManifest (what the channel watch may act on, pure)', () => {
  it('is the verified manifest, none without a release spore, and throws for one no release key signed', () => {
    expect(publishedManifest(published(signed, '2.0.0'), 'net1')?.version).toBe('2.0.0')
    expect(publishedManifest(published(signed, undefined), 'net1')).toBeUndefined()
    expect(() => publishedManifest(published(signed, '2.0.0', [stranger]), 'net1')).toThrow(/unknown key/)
  })
})
