import { X509Certificate } from 'node:crypto'
import { InvalidInputError } from './errors.js'
import { isValidIdLabel } from './spiffe.js'

/**
 * A join token, given to an operator once per node (like kubeadm's token plus
 * `--discovery-token-ca-cert-hash`): it authorises one enrolment and pins the
 * network CA, so the node can trust the CA it is shown before it has any
 * certificate. Text form: `myc1.<network>.<id>.<secret>.<ca-sha256-hex>`.
 */
export interface JoinToken {
  networkId: string
  /** Public part: which token (6–16 lower-case letters or digits). */
  tokenId: string
  /** Secret part (at least 16 lower-case letters or digits). */
  secret: string
  /** Lower-case hex SHA-256 of the network CA certificate's DER. */
  caSha256: string
}

const PREFIX = 'myc1'

export function formatJoinToken(token: JoinToken): string {
  return [PREFIX, token.networkId, token.tokenId, token.secret, token.caSha256].join('.')
}

/** Parses a join token; errors say which part is wrong, never echo the secret. */
export function parseJoinToken(text: string, where = 'join token'): JoinToken {
  const parts = text.trim().split('.')
  if (parts.length !== 5 || parts[0] !== PREFIX) {
    throw new InvalidInputError('not a join token (expected myc1.<network>.<id>.<secret>.<ca-sha256>)', where)
  }
  const [, networkId, tokenId, secret, caSha256] = parts as [string, string, string, string, string]
  if (!isValidIdLabel(networkId)) throw new InvalidInputError(`network "${networkId}" is not a valid id`, where)
  if (!/^[a-z0-9]{6,16}$/.test(tokenId)) throw new InvalidInputError('token id must be 6–16 lower-case letters or digits', where)
  if (!/^[a-z0-9]{16,64}$/.test(secret)) throw new InvalidInputError('secret must be 16–64 lower-case letters or digits', where)
  if (!/^[0-9a-f]{64}$/.test(caSha256)) throw new InvalidInputError('CA hash must be 64 lower-case hex digits', where)
  return { networkId, tokenId, secret, caSha256 }
}

/** The SHA-256 (hex) of a PEM certificate's DER, as join tokens pin it. */
export function caCertificateSha256(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase()
}
