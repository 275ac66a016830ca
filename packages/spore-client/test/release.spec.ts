import { sign } from 'node:crypto'
import { ReleaseManifest, type ReleaseBody } from '@mycelium/core-interfaces'
import { testSigningKey, testTrustBundle, type TestSigningKey } from '@mycelium/testing'
import { isReleaseVerificationError, verifyReleaseManifest } from '../src/index.js'

const sporeKey = testSigningKey()
const [r1, r2] = [testSigningKey(), testSigningKey()]
const bundle = (threshold: number, keys: TestSigningKey[] = [r1!, r2!]) => ({
  ...testTrustBundle('net1', [sporeKey], 1),
  releaseKeys: keys.map((k) => k.signingKey),
  releaseThreshold: threshold
})
const body = (signers: TestSigningKey[], networkId = 'net1'): ReleaseBody => {
  const manifest = Buffer.from(
    ReleaseManifest.encode({
      networkId,
      component: '',
      version: '1.2.3',
      artifactDigest: `sha256:${'a'.repeat(64)}`,
      sizeBytes: 10,
      artifactUrls: ['https://x/a.tgz'],
      minContractVersion: 1,
      channel: 'stable'
    }).finish()
  )
  return { manifest, signatures: signers.map((k) => ({ keyId: k.keyId, signature: sign(null, manifest, k.privateKey) })) }
}
const refusal = (f: () => unknown): string => {
  try {
    f()
  } catch (err) {
    if (isReleaseVerificationError(err)) return err.message
    throw err
  }
  throw new Error('not refused')
}

describe('verifyReleaseManifest (the release-key role)', () => {
  it('returns the manifest once release_threshold distinct release keys signed it', () => {
    expect(verifyReleaseManifest(body([r1!, r2!]), bundle(2), 'net1')).toMatchObject({ version: '1.2.3', sizeBytes: 10 })
  })

  it('refuses too few release signatures, a spore key in place of a release key, another network, a bundle without release keys', () => {
    expect(refusal(() => verifyReleaseManifest(body([r1!]), bundle(2), 'net1'))).toContain('1 valid release signatures of 2 required')
    expect(refusal(() => verifyReleaseManifest(body([sporeKey]), bundle(1), 'net1'))).toContain(`signed by unknown key ${sporeKey.keyId}`)
    expect(refusal(() => verifyReleaseManifest(body([r1!], 'net2'), bundle(1), 'net1'))).toContain('is for network "net2"')
    expect(refusal(() => verifyReleaseManifest(body([r1!]), bundle(0, []), 'net1'))).toContain('names no release keys')
  })

  it('refuses a tampered manifest', () => {
    const b = body([r1!])
    b.manifest = Buffer.from(b.manifest)
    b.manifest[b.manifest.length - 1] ^= 1
    expect(refusal(() => verifyReleaseManifest(b, bundle(1), 'net1'))).toContain('does not verify')
  })
})
