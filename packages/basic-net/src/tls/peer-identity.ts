import { parseSpiffeId, type SpiffeId, type SpiffeRole } from '@mycelium/core-interfaces'

/** A peer's certificate does not carry the identity the channel requires. */
export class PeerIdentityError extends Error {
  static readonly NAME = 'PeerIdentityError'
  override readonly name = PeerIdentityError.NAME
}
export const isPeerIdentityError = (err: unknown): err is PeerIdentityError => err instanceof Error && err.name === PeerIdentityError.NAME

export interface PeerRequirement {
  networkId: string
  /** The role the peer must have ("manager" for manager channels, "node" for peers). */
  role: SpiffeRole
  /** A specific node id or manager service, when one is expected. */
  name?: string
}

/**
 * The SPIFFE ID of a certificate from its subjectAltName text as node's
 * `tls` and `X509Certificate` render it ("URI:spiffe://net1/node/n1, IP
 * Address:127.0.0.1"). Exactly one spiffe URI is allowed.
 */
export function spiffeIdFromSubjectAltName(subjectAltName: string | undefined, where: string): SpiffeId {
  const uris = (subjectAltName ?? '')
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:spiffe://'))
    .map((entry) => entry.slice('URI:'.length))
  if (uris.length !== 1) throw new PeerIdentityError(`${where}: certificate has ${uris.length} SPIFFE URI SANs, needs exactly one`)
  try {
    return parseSpiffeId(uris[0]!, where)
  } catch (err) {
    throw new PeerIdentityError((err as Error).message)
  }
}

/** Checks a peer certificate's identity; throws PeerIdentityError saying what is wrong. */
export function checkPeerIdentity(subjectAltName: string | undefined, required: PeerRequirement, where: string): SpiffeId {
  const id = spiffeIdFromSubjectAltName(subjectAltName, where)
  const shown = `spiffe://${id.networkId}/${id.role}/${id.name}`
  if (id.networkId !== required.networkId) {
    throw new PeerIdentityError(`${where}: ${shown} belongs to network "${id.networkId}", not "${required.networkId}"`)
  }
  if (id.role !== required.role) {
    throw new PeerIdentityError(`${where}: ${shown} is a ${id.role} identity; a ${required.role} identity is required`)
  }
  if (required.name != null && id.name !== required.name) {
    throw new PeerIdentityError(`${where}: ${shown} is not the expected ${required.role} "${required.name}"`)
  }
  return id
}
