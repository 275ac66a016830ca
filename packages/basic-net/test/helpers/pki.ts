import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createIdentityStore, type IdentityStore } from '../../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'

/** Identity files in a temp dir, enrolled through the real path: key on the node → CSR → CA → install. */
export async function enrolledIdentity(
  ca: CertificateAuthority,
  role: 'node' | 'manager',
  name: string,
  dir: string,
  options: { reloadIntervalMs?: number; notAfter?: Date } = {}
): Promise<IdentityStore> {
  const base = join(dir, `${role}-${name}`)
  const store = createIdentityStore(
    {},
    {
      networkId: ca.networkId,
      name,
      role,
      keyFile: `${base}.key`,
      certificateFile: `${base}.crt`,
      caFile: `${base}-ca.crt`,
      reloadIntervalMs: options.reloadIntervalMs ?? 60_000
    }
  )
  await store.start()
  const { certificatePem } = await ca.issueFromCsr(await store.createCsr(), options.notAfter != null ? { notAfter: options.notAfter } : {})
  await store.install(certificatePem, ca.certificatePem)
  return store
}

/** Raw PEM material outside any store (for peers that misbehave: expired, foreign CA...). */
export async function rawIdentity(
  ca: CertificateAuthority,
  spiffeUri: string,
  validity: { notBefore?: Date; notAfter?: Date } = {}
): Promise<{ keyPem: Buffer; certPem: Buffer }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const certPem = await ca.issue(spiffeUri, publicKey, validity)
  return { keyPem: Buffer.from(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), certPem: Buffer.from(certPem) }
}

export function tempDir(prefix: string): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}
