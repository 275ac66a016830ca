import { execFileSync } from 'node:child_process'
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto'
import { signingKeyId, Spore, type SignedSpore, type TrustBundle } from '@mycelium/core-interfaces'
import { trustedSporeKeys, verifySpore } from '@mycelium/spore-client'
import type { Scenario } from '../harness.js'

/**
 * Spore verifications per second on one core: decode, Ed25519 signature
 * check(s), network/time/rollback checks — the node's full verifySpore.
 */
function keysAndBundle(
  n: number,
  threshold: number
): { bundle: TrustBundle; keys: Array<{ keyId: string; privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'] }> } {
  const keys = Array.from({ length: n }, () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519')
    const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32)
    return { keyId: signingKeyId(raw), raw, privateKey }
  })
  return {
    keys,
    bundle: {
      networkId: 'bench',
      caCertificatesPem: [],
      sporeKeys: keys.map((k) => ({ keyId: k.keyId, publicKey: k.raw, label: '' })),
      sporeThreshold: threshold,
      operatorKeys: [],
      operatorThreshold: 0,
      releaseKeys: [],
      releaseThreshold: 0
    }
  }
}

function makeSpores(
  count: number,
  signers: Array<{ keyId: string; privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'] }>
): SignedSpore[] {
  const now = Date.now()
  return Array.from({ length: count }, (_, i) => {
    const bytes = Buffer.from(
      Spore.encode({
        networkId: 'bench',
        name: `service/svc-${i}`,
        sequence: 1,
        issuedAt: new Date(now - 1000),
        expiresAt: new Date(now + 3_600_000),
        body: {
          $case: 'service',
          value: { service: `svc-${i}`, endpoints: [{ address: `10.0.${i % 250}.1:7000`, expectedIdentity: '', zone: 'a', priority: 0 }] }
        }
      }).finish()
    )
    return { spore: bytes, signatures: signers.map((k) => ({ keyId: k.keyId, signature: sign(null, bytes, k.privateKey) })) }
  })
}

const COUNT = 20_000

/** node's raw crypto.verify rate for one Ed25519 key: the floor verifySpore sits on. */
function rawVerifyPerSecond(spores: SignedSpore[], publicKey: ReturnType<typeof generateKeyPairSync>['publicKey']): number {
  const start = process.hrtime.bigint()
  for (const s of spores) verify(null, s.spore, publicKey, s.signatures[0]!.signature)
  return spores.length / (Number(process.hrtime.bigint() - start) / 1e9)
}

/** `openssl speed ed25519` verify/s (native C, same OpenSSL family), or NaN if unavailable. */
function opensslVerifyPerSecond(): number {
  try {
    const out = execFileSync('openssl', ['speed', '-seconds', '1', 'ed25519'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
    const line = out.split('\n').find((l) => l.includes('Ed25519'))
    const cols = line?.trim().split(/\s+/) ?? []
    return Number(cols[cols.length - 1])
  } catch {
    return Number.NaN
  }
}

function scenario(id: string, n: number, k: number, target?: number): Scenario {
  return {
    id,
    description: `verifySpore on ${COUNT} distinct spores, ${k}-of-${n} Ed25519 signatures, one core; floors: node crypto.verify and openssl speed`,
    runs: 5,
    metrics: [
      { name: 'verifications', unit: '/s', better: 'higher', ...(target != null ? { target } : {}) },
      { name: 'node-ed25519-verify', unit: '/s', better: 'higher' },
      { name: 'openssl-speed-verify', unit: '/s', better: 'higher' },
      { name: 'efficiency-vs-raw-verify', unit: 'ratio', better: 'higher' }
    ],
    async run() {
      const { bundle, keys } = keysAndBundle(n, k)
      const trust = trustedSporeKeys(bundle, 'bench')
      const spores = makeSpores(COUNT, keys.slice(0, k))
      const ctx = { trust, nowMs: Date.now(), clockSlackMs: 30_000, source: 'bench', markFor: () => undefined }
      const start = process.hrtime.bigint()
      for (const s of spores) verifySpore(s, ctx)
      const rate = COUNT / (Number(process.hrtime.bigint() - start) / 1e9)
      const floor = rawVerifyPerSecond(spores, trust.keys.get(keys[0]!.keyId)!)
      return {
        verifications: rate,
        'node-ed25519-verify': floor,
        'openssl-speed-verify': opensslVerifyPerSecond(),
        // 1.0 would mean verifySpore costs exactly k raw verifications and nothing else.
        'efficiency-vs-raw-verify': (rate * k) / floor
      }
    }
  }
}

/** Re-receiving the trusted set (watch snapshot, poll, peers): no signature work. */
const reverify: Scenario = {
  id: 'spore-reverify-trusted',
  description: `verifySpore on ${COUNT} spores already trusted (identical bytes), one core`,
  runs: 5,
  metrics: [{ name: 'verifications', unit: '/s', better: 'higher', target: 10_000 }],
  async run() {
    const { bundle, keys } = keysAndBundle(1, 1)
    const trust = trustedSporeKeys(bundle, 'bench')
    const spores = makeSpores(COUNT, keys)
    const marks = new Map(
      spores.map((s) => [Spore.decode(s.spore).name, { sequence: 1, digest: createHash('sha256').update(s.spore).digest('hex') }])
    )
    const ctx = { trust, nowMs: Date.now(), clockSlackMs: 30_000, source: 'bench', markFor: (name: string) => marks.get(name) }
    const start = process.hrtime.bigint()
    for (const s of spores) verifySpore(s, ctx)
    return { verifications: COUNT / (Number(process.hrtime.bigint() - start) / 1e9) }
  }
}

export const sporeVerifyScenarios: Scenario[] = [scenario('spore-verify-1of1', 1, 1, 10_000), scenario('spore-verify-2of3', 3, 2), reverify]
