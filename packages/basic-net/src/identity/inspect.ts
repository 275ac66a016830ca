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
  if (nowMs < Date.parse(cert.validFrom)) {
    return { state: IdentityState.NOT_YET_VALID, reason: `not valid before ${new Date(cert.validFrom).toISOString()} (clock?)` }
  }
  if (nowMs > Date.parse(cert.validTo)) {
    return { state: IdentityState.EXPIRED, reason: `expired at ${new Date(cert.validTo).toISOString()}; renew or re-enrol` }
  }
  return undefined
}

/**
 * Checks an identity the way a peer would, and more: the chain reaches the
 * network CA with valid signatures, every certificate is within its validity
 * window, the private key matches the leaf, and the leaf's URI SAN is
 * `spiffe://<network>/<role>/<name>`. Never throws: problems are reported.
 */
export function inspectIdentity(material: IdentityMaterial, options: InspectOptions): IdentityReport {
  let chain: X509Certificate[]
  let cas: X509Certificate[]
  try {
    chain = parseCertificates(material.certificateChainPem, options.sources?.certificateChain ?? 'certificate chain')
    cas = parseCertificates(material.caPem, options.sources?.trustBundle ?? 'trust bundle')
  } catch (err) {
    return invalid((err as Error).message)
  }
  const leaf = chain[0]!
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(material.keyPem))) return invalid('the private key does not match the certificate')
  } catch (err) {
    return invalid(`the private key does not parse: ${(err as Error).message}`)
  }

  const chainProblem = verifyChain(chain, cas)
  if (chainProblem != null) return invalid(chainProblem)

  let spiffeId: SpiffeId
  try {
    spiffeId = checkPeerIdentity(
      leaf.subjectAltName,
      { networkId: options.networkId, role: options.role, ...(options.name != null ? { name: options.name } : {}) },
      'own certificate'
    )
  } catch (err) {
    return invalid((err as Error).message)
  }

  const now = options.nowMs ?? Date.now()
  const notBefore = new Date(leaf.validFrom)
  const notAfter = new Date(leaf.validTo)
  const base = {
    spiffeId,
    notBefore,
    notAfter,
    certificateSha256: createHash('sha256').update(leaf.raw).digest('hex')
  }
  for (const cert of [...chain, ...cas.filter((ca) => chain.some((c) => c.checkIssued(ca)))]) {
    const problem = validityProblem(cert, now)
    if (problem != null) return { ...base, ...problem, usable: false }
  }
  const lifetime = notAfter.getTime() - notBefore.getTime()
  const renewBefore = options.renewBeforeMs ?? lifetime / 3
  if (notAfter.getTime() - now < renewBefore) {
    return { ...base, state: IdentityState.RENEWAL_DUE, usable: true, reason: `expires at ${notAfter.toISOString()}; renewal due` }
  }
  return { ...base, state: IdentityState.VALID, usable: true, reason: '' }
}
