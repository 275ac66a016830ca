import { createPrivateKey, sign, verify, X509Certificate } from 'node:crypto'
import { decodeStrict, PeerAnnouncement, SignedPeerAnnouncement, type Endpoint, type NodeIdentity } from '@mycelium/core-interfaces'
import { checkPeerIdentity } from '../tls/peer-identity.js'
import { validityProblem, verifyChain, type IdentityMaterial } from '../identity/inspect.js'
import { parseCertificates } from '../x509.js'

/** Why an announcement was ignored. Each is counted separately. */
export type IgnoreReason =
  'malformed' | 'unsigned' | 'untrusted-certificate' | 'foreign-network' | 'bad-signature' | 'identity-mismatch' | 'stale' | 'self'

export type AnnouncementVerdict = { ok: true; announcement: PeerAnnouncement } | { ok: false; reason: IgnoreReason; detail: string }

/** Signs an announcement with the identity's key and attaches its certificate chain. */
export function signAnnouncement(announcement: PeerAnnouncement, material: IdentityMaterial): Uint8Array {
  const bytes = Buffer.from(PeerAnnouncement.encode(announcement).finish())
  const chain = parseCertificates(material.certificateChainPem, 'own certificate chain').map((c) => c.raw)
  return SignedPeerAnnouncement.encode({
    announcement: bytes,
    signature: sign('sha256', bytes, createPrivateKey(material.keyPem)),
    certificateChainDer: chain
  }).finish()
}

export interface VerifyAnnouncementOptions {
  networkId: string
  /** The network CA certificate(s), PEM. */
  caPem: string
  selfNodeId: string
  nowMs: number
  /** Announcements older (or further in the future) than this are stale. */
  maxAgeMs: number
}

/**
 * Accepts an announcement only if it is signed by the key of a certificate
 * that chains to our network CA, is valid now, names a node of our network,
 * matches the identity the announcement claims, and is fresh.
 */
export function verifyAnnouncement(datagram: Uint8Array, options: VerifyAnnouncementOptions): AnnouncementVerdict {
  let signed: SignedPeerAnnouncement
  let announcement: PeerAnnouncement
  try {
    // Strict: a datagram from anyone on the LAN (canonical varints, timestamps in range).
    signed = decodeStrict(SignedPeerAnnouncement, datagram, 'announcement datagram')
    announcement = decodeStrict(PeerAnnouncement, signed.announcement, 'announcement')
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: (err as Error).message }
  }
  if (signed.signature.length === 0 || signed.certificateChainDer.length === 0) {
    return { ok: false, reason: 'unsigned', detail: 'no signature or no certificate' }
  }
  let chain: X509Certificate[]
  try {
    chain = signed.certificateChainDer.map((der) => new X509Certificate(der))
  } catch (err) {
    return { ok: false, reason: 'malformed', detail: `certificate: ${(err as Error).message}` }
  }
  const chainProblem = verifyChain(chain, parseCertificates(options.caPem, 'trust bundle'))
  if (chainProblem != null) return { ok: false, reason: 'untrusted-certificate', detail: chainProblem }
  const validity = validityProblem(chain[0]!, options.nowMs)
  if (validity != null) return { ok: false, reason: 'untrusted-certificate', detail: validity.reason }
  let spiffe
  try {
    spiffe = checkPeerIdentity(chain[0]!.subjectAltName, { networkId: options.networkId, role: 'node' }, 'announcement')
  } catch (err) {
    return { ok: false, reason: 'foreign-network', detail: (err as Error).message }
  }
  if (!verify('sha256', signed.announcement, chain[0]!.publicKey, signed.signature)) {
    return { ok: false, reason: 'bad-signature', detail: `signature does not verify for ${spiffe.name}` }
  }
  const claimed: NodeIdentity | undefined = announcement.identity
  if (claimed?.networkId !== spiffe.networkId || claimed.nodeId !== spiffe.name) {
    return {
      ok: false,
      reason: 'identity-mismatch',
      detail: `claims ${claimed?.networkId}/${claimed?.nodeId}, certificate is ${spiffe.networkId}/${spiffe.name}`
    }
  }
  if (spiffe.name === options.selfNodeId) return { ok: false, reason: 'self', detail: 'our own announcement' }
  const sentAt = announcement.sentAt?.getTime() ?? 0
  if (Math.abs(options.nowMs - sentAt) > options.maxAgeMs) {
    return { ok: false, reason: 'stale', detail: `sent at ${new Date(sentAt).toISOString()}` }
  }
  return { ok: true, announcement }
}

/** The endpoints of an accepted announcement (at least one). */
export function announcedEndpoints(a: PeerAnnouncement): Endpoint[] {
  return a.endpoints.filter((e) => e.address !== '')
}
