import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from 'node:crypto'
import { decodeStrict, Distress, DistressEnvelope } from '@mycelium/core-interfaces'
import { checkPeerIdentity } from '../tls/peer-identity.js'
import { verifyChain, type IdentityMaterial } from '../identity/inspect.js'
import { parseCertificates } from '../x509.js'

/** Distress ids are short tokens (a UUID is 36 characters). */
export const DISTRESS_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/
/** Evidence lines a Distress may carry, and characters per line. */
export const DISTRESS_MAX_EVIDENCE = { lines: 16, chars: 256 } as const

/** Why a distress envelope was refused. */
export type DistressRefusal = 'malformed' | 'unsigned' | 'untrusted-certificate' | 'foreign-network' | 'bad-signature' | 'forged-node'

/** A signed call for help that is not acceptable; `reason` says which check failed. */
export class DistressRefusedError extends Error {
  override readonly name = 'DistressRefusedError'
  constructor(
    readonly reason: DistressRefusal,
    message: string
  ) {
    super(message)
  }
}

export const isDistressRefusedError = (err: unknown): err is DistressRefusedError =>
  (err as { name?: unknown } | null)?.name === 'DistressRefusedError'

/** A verified envelope: the Distress and the node (network, name) its certificate proves, with the certificate's public key. */
export interface VerifiedDistress {
  distress: Distress
  networkId: string
  nodeId: string
  /** The signing certificate (leaf): a relayed CSR must carry its key. */
  certificate: X509Certificate
}

/** Signs a Distress with the node's key and attaches its certificate chain. */
export function signDistress(distress: Distress, material: IdentityMaterial, hopsRemaining: number): DistressEnvelope {
  const bytes = Buffer.from(Distress.encode(distress).finish())
  return {
    distress: bytes,
    signature: sign('sha256', bytes, createPrivateKey(material.keyPem)),
    certificateChainDer: parseCertificates(material.certificateChainPem, 'own certificate chain').map((c) => c.raw),
    hopsRemaining
  }
}

/**
 * Accepts an envelope only if its certificate chains to the network CA,
 * names a node of `networkId`, its key signed the Distress, and the Distress
 * names that same node (a relay cannot forge another node's call). The
 * certificate's validity period is not checked: a node whose certificate
 * expired while offline must still be able to ask for a renewal. Bounds the
 * evidence and the id. Throws DistressRefusedError.
 */
export function verifyDistress(envelope: DistressEnvelope, options: { networkId: string; caPem: string }): VerifiedDistress {
  let distress: Distress
  try {
    distress = decodeStrict(Distress, envelope.distress, 'DistressEnvelope.distress')
  } catch (err) {
    throw new DistressRefusedError('malformed', (err as Error).message)
  }
  if (!DISTRESS_ID_PATTERN.test(distress.distressId))
    throw new DistressRefusedError('malformed', `Distress.distress_id must match ${DISTRESS_ID_PATTERN.source}`)
  if (distress.evidence.length > DISTRESS_MAX_EVIDENCE.lines || distress.evidence.some((l) => l.length > DISTRESS_MAX_EVIDENCE.chars))
    throw new DistressRefusedError(
      'malformed',
      `Distress.evidence: at most ${DISTRESS_MAX_EVIDENCE.lines} lines of ${DISTRESS_MAX_EVIDENCE.chars} characters`
    )
  if (envelope.signature.length === 0 || envelope.certificateChainDer.length === 0)
    throw new DistressRefusedError('unsigned', 'DistressEnvelope carries no signature or no certificate')
  let chain: X509Certificate[]
  try {
    chain = envelope.certificateChainDer.map((der) => new X509Certificate(der))
  } catch (err) {
    throw new DistressRefusedError('malformed', `DistressEnvelope.certificate_chain_der: ${(err as Error).message}`)
  }
  const problem = verifyChain(chain, parseCertificates(options.caPem, 'trust bundle'))
  if (problem != null) throw new DistressRefusedError('untrusted-certificate', `not a member of ${options.networkId}: ${problem}`)
  let spiffe
  try {
    spiffe = checkPeerIdentity(chain[0]!.subjectAltName, { networkId: options.networkId, role: 'node' }, 'distress envelope')
  } catch (err) {
    throw new DistressRefusedError('foreign-network', (err as Error).message)
  }
  if (!verify('sha256', envelope.distress, chain[0]!.publicKey, envelope.signature))
    throw new DistressRefusedError('bad-signature', `the signature does not verify for node ${spiffe.name}`)
  const claimed = distress.node
  if (claimed?.nodeId !== spiffe.name || claimed.networkId !== spiffe.networkId)
    throw new DistressRefusedError(
      'forged-node',
      `the distress names ${claimed?.networkId ?? '?'}/${claimed?.nodeId ?? '?'}, its certificate is ${spiffe.networkId}/${spiffe.name}`
    )
  return { distress, networkId: spiffe.networkId, nodeId: spiffe.name, certificate: chain[0]! }
}

/** Whether a CSR (DER) carries the public key of `certificate` (a renewal never changes the node's key through a relay). */
export function csrKeyMatches(csrPublicKeySpkiDer: Buffer, certificate: X509Certificate): boolean {
  const own = certificate.publicKey.export({ type: 'spki', format: 'der' })
  return (
    Buffer.compare(
      createPublicKey({ key: csrPublicKeySpkiDer, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }),
      own
    ) === 0
  )
}
