import { InvalidInputError, isInvalidInputError } from './errors.js'

/**
 * Identities are SPIFFE IDs in a certificate's URI SAN:
 * `spiffe://<network>/node/<node-id>` or `spiffe://<network>/manager/<service>`.
 * The path's first segment is the role channels check.
 */
export type SpiffeRole = 'node' | 'manager'

export interface SpiffeId {
  networkId: string
  role: SpiffeRole
  /** Node id or manager service name. */
  name: string
}

/** Network ids, node ids and service names: lower-case DNS labels. */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/

export function isValidIdLabel(value: string): boolean {
  return LABEL.test(value)
}

export function formatSpiffeId(id: SpiffeId): string {
  for (const [field, value] of [
    ['networkId', id.networkId],
    ['name', id.name]
  ] as const) {
    if (!isValidIdLabel(value)) {
      throw new InvalidInputError(`"${value}" is not a valid id (lower-case letters, digits, "-")`, `SpiffeId.${field}`)
    }
  }
  return `spiffe://${id.networkId}/${id.role}/${id.name}`
}

/** Parses a SPIFFE ID of one of the two roles; throws InvalidInputError naming `where`. */
export function parseSpiffeId(uri: string, where = 'SPIFFE ID'): SpiffeId {
  const match = /^spiffe:\/\/([^/]+)\/(node|manager)\/([^/]+)$/.exec(uri)
  if (match == null) {
    throw new InvalidInputError(`"${uri}" is not spiffe://<network>/(node|manager)/<name>`, where)
  }
  const [, networkId, role, name] = match as unknown as [string, string, SpiffeRole, string]
  if (!isValidIdLabel(networkId) || !isValidIdLabel(name)) {
    throw new InvalidInputError(`"${uri}" has an invalid network id or name`, where)
  }
  return { networkId, role, name }
}

/**
 * Every key and certificate signature of a network: ECDSA P-256 with SHA-256
 * (what every TLS stack speaks), as WebCrypto algorithm parameters. Nodes
 * (basic-net: keys, CSRs) and certificate authorities (dev-pki) both use it.
 */
export const NETWORK_KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const
/** The signature algorithm over {@link NETWORK_KEY_ALGORITHM} keys. */
export const NETWORK_SIGNATURE_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const

/**
 * The manager services' names, one place for each: `ServiceBody.service`, the
 * `service/<name>` spore, and `<service>` in `spiffe://<network>/manager/<service>`.
 */
export const SERVICE_NAMES = {
  networkManager: 'network-manager',
  sporeManager: 'spore-manager',
  updateManager: 'update-manager'
} as const
export type ServiceName = (typeof SERVICE_NAMES)[keyof typeof SERVICE_NAMES]

/**
 * Whether `uri` is the SPIFFE id of a manager of `service` (in any network:
 * the channel checks the network). A malformed id is simply not one.
 */
export function isManagerIdentity(uri: string, service: string): boolean {
  try {
    const id = parseSpiffeId(uri)
    return id.role === 'manager' && id.name === service
  } catch (err) {
    if (isInvalidInputError(err)) return false
    throw err
  }
}
