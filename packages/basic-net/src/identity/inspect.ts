import { createHash, createPrivateKey, type X509Certificate } from 'node:crypto'
import { IdentityState, type SpiffeId, type SpiffeRole } from '@mycelium/core-interfaces'
import { checkPeerIdentity } from '../tls/peer-identity.js'
import { parseCertificates } from '../x509.js'

/** PEM material of an identity as it is kept on disk. */
export interface IdentityMaterial {
  /** PKCS#8 PEM private key. */
  keyPem: string
  /** Certificate chain, leaf first. */
  certificateChainPem: string
  /** The network's CA certificate(s). */
  caPem: string
}

export interface InspectOptions {
  networkId: string
  role: SpiffeRole
  /** Node id (or manager service) the certificate must name. */
  name?: string
  nowMs?: number
  /** Renewal is due when less validity remains. @default a third of the lifetime */
  renewBeforeMs?: number
  /** Where the chain and the trust bundle were read (named in reasons). @default "certificate chain", "trust bundle" */
  sources?: { certificateChain?: string; trustBundle?: string }
}

export interface IdentityReport {
  state: IdentityState
  /** Why, for anything but VALID. */
  reason: string
  /** Whether TLS can use it (VALID or RENEWAL_DUE). */
  usable: boolean
  spiffeId?: SpiffeId
  notBefore?: Date
  notAfter?: Date
  /** Hex SHA-256 of the leaf certificate's DER. */
  certificateSha256?: string
}

const invalid = (reason: string): IdentityReport => ({ state: IdentityState.INVALID, reason, usable: false })

/**
 * Why `chain` (leaf first) does not lead to one of `cas` with valid
 * signatures, or undefined when it does. Validity windows are not checked here.
 */
export function verifyChain(chain: X509Certificate[], cas: X509Certificate[]): string | undefined {
  for (let i = 0; i < chain.length; i++) {
    const cert = chain[i]!
    const issuer = i + 1 < chain.length ? chain[i + 1] : cas.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))
    if (issuer == null || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      return `certificate ${i + 1} ("${cert.subject.replace(/\n/g, ', ')}") is not signed by the network CA`
    }
    if (i + 1 < chain.length && !issuer.ca) return `certificate ${i + 2} is not a CA but issued certificate ${i + 1}`
  }
  return undefined
}

/** Why a certificate is outside its validity window at `nowMs`, or undefined. */
export function validityProblem(cert: X509Certificate, nowMs: number): { state: IdentityState; reason: string } | undefined {
  return windowProblem({ fromMs: Date.parse(cert.validFrom), toMs: Date.parse(cert.validTo) }, nowMs)
}

function windowProblem(window: { fromMs: number; toMs: number }, nowMs: number): { state: IdentityState; reason: string } | undefined {
  if (nowMs < window.fromMs) {
    return { state: IdentityState.NOT_YET_VALID, reason: `not valid before ${new Date(window.fromMs).toISOString()} (clock?)` }
  }
  if (nowMs > window.toMs) {
    return { state: IdentityState.EXPIRED, reason: `expired at ${new Date(window.toMs).toISOString()}; renew or re-enrol` }
  }
  return undefined
}

/**
 * What a material proves whatever the time: parsed and verified once per
 * material (the costly part: certificates, the key, signatures), then judged
 * against the clock as often as needed by `judgeIdentity`.
 */
export type IdentityExamination =
  | { problem: string }
  | {
      problem?: undefined
      spiffeId: SpiffeId
      notBefore: Date
      notAfter: Date
      certificateSha256: string
      /** Validity windows to hold at judgement: the chain's and the CAs' that issued in it. */
      windows: Array<{ fromMs: number; toMs: number }>
    }

/**
 * Checks an identity's material the way a peer would, and more: the chain
 * reaches the network CA with valid signatures, the private key matches the
 * leaf, and the leaf's URI SAN is `spiffe://<network>/<role>/<name>`. Never
 * throws: problems are reported. Validity in time is `judgeIdentity`'s.
 */
export function examineIdentity(material: IdentityMaterial, options: Omit<InspectOptions, 'nowMs' | 'renewBeforeMs'>): IdentityExamination {
  let chain: X509Certificate[]
  let cas: X509Certificate[]
  try {
    chain = parseCertificates(material.certificateChainPem, options.sources?.certificateChain ?? 'certificate chain')
    cas = parseCertificates(material.caPem, options.sources?.trustBundle ?? 'trust bundle')
  } catch (err) {
    return { problem: (err as Error).message }
  }
  const leaf = chain[0]!
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(material.keyPem))) return { problem: 'the private key does not match the certificate' }
  } catch (err) {
    return { problem: `the private key does not parse: ${(err as Error).message}` }
  }

  const chainProblem = verifyChain(chain, cas)
  if (chainProblem != null) return { problem: chainProblem }

  let spiffeId: SpiffeId
  try {
    spiffeId = checkPeerIdentity(
      leaf.subjectAltName,
      { networkId: options.networkId, role: options.role, ...(options.name != null ? { name: options.name } : {}) },
      'own certificate'
    )
  } catch (err) {
    return { problem: (err as Error).message }
  }
  return {
    spiffeId,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    certificateSha256: createHash('sha256').update(leaf.raw).digest('hex'),
    windows: [...chain, ...cas.filter((ca) => chain.some((c) => c.checkIssued(ca)))].map((c) => ({
      fromMs: Date.parse(c.validFrom),
      toMs: Date.parse(c.validTo)
    }))
  }
}

/** An examined identity at `nowMs`: within every validity window, and whether renewal is due. */
export function judgeIdentity(examined: IdentityExamination, nowMs: number, renewBeforeMs?: number): IdentityReport {
  if (examined.problem != null) return invalid(examined.problem)
  const { spiffeId, notBefore, notAfter, certificateSha256 } = examined
  const base = { spiffeId, notBefore, notAfter, certificateSha256 }
  for (const window of examined.windows) {
    const problem = windowProblem(window, nowMs)
    if (problem != null) return { ...base, ...problem, usable: false }
  }
  const lifetime = notAfter.getTime() - notBefore.getTime()
  const renewBefore = renewBeforeMs ?? lifetime / 3
  if (notAfter.getTime() - nowMs < renewBefore) {
    return { ...base, state: IdentityState.RENEWAL_DUE, usable: true, reason: `expires at ${notAfter.toISOString()}; renewal due` }
  }
  return { ...base, state: IdentityState.VALID, usable: true, reason: '' }
}

/** `examineIdentity` then `judgeIdentity` at `options.nowMs` (now by default). */
export function inspectIdentity(material: IdentityMaterial, options: InspectOptions): IdentityReport {
  return judgeIdentity(examineIdentity(material, options), options.nowMs ?? Date.now(), options.renewBeforeMs)
}
