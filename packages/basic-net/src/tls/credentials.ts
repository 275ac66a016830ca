import * as grpc from '@grpc/grpc-js'
import { parseSpiffeId, type Endpoint } from '@mycelium/core-interfaces'
import { checkPeerIdentity, PeerIdentityError, type PeerRequirement } from './peer-identity.js'
import type { IdentityStore } from '../identity/identity-store.js'

/**
 * Channel options every mTLS channel of the core uses. Identities are SPIFFE
 * IDs, not host names, so the name checked by TLS is replaced by the role
 * check below; a fixed SNI name also keeps node from warning about IP
 * addresses as server names.
 */
export function defaultChannelOptions(networkId: string): grpc.ChannelOptions {
  return {
    'grpc.ssl_target_name_override': `${networkId}.mycelium.invalid`,
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.initial_reconnect_backoff_ms': 250,
    'grpc.max_reconnect_backoff_ms': 5_000
  }
}

/** Options for servers: accept the clients' keepalive pings. */
export const DEFAULT_SERVER_OPTIONS: grpc.ServerOptions = {
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000
}

/**
 * Client credentials presenting this identity, trusting only the network CA,
 * and accepting a server only if its certificate has the required role (a
 * manager channel refuses a node certificate, and the reverse). The material
 * comes from the identity store, so renewed certificates are used by new
 * connections without restarting anything. TLS 1.2 is the minimum (node's
 * default; node-core does not lower it).
 */
export function clientCredentials(identity: IdentityStore, required: PeerRequirement): grpc.ChannelCredentials {
  return grpc.experimental.createCertificateProviderChannelCredentials(identity, identity, {
    checkServerIdentity: (_host, cert) => {
      try {
        checkPeerIdentity(cert.subjectaltname, required, 'server')
        return undefined
      } catch (err) {
        return err as Error
      }
    }
  })
}

/**
 * What a server at `endpoint` must present: `base` (network and role),
 * narrowed to the exact identity of `Endpoint.expected_identity` when set.
 * An expected identity of another network or role, or not a SPIFFE ID,
 * throws PeerIdentityError: such an endpoint can never be accepted.
 */
export function requirementForEndpoint(endpoint: Endpoint, base: PeerRequirement): PeerRequirement {
  if (endpoint.expectedIdentity === '') return base
  let id
  try {
    id = parseSpiffeId(endpoint.expectedIdentity, `endpoint ${endpoint.address} expected_identity`)
  } catch (err) {
    throw new PeerIdentityError((err as Error).message)
  }
  if (id.networkId !== base.networkId || id.role !== base.role || (base.name != null && base.name !== id.name)) {
    throw new PeerIdentityError(
      `endpoint ${endpoint.address} expects ${endpoint.expectedIdentity}, which is not a ${base.role}${base.name != null ? ` "${base.name}"` : ''} of network "${base.networkId}"`
    )
  }
  return { ...base, name: id.name }
}

/**
 * Client credentials built per endpoint, so each channel enforces its
 * endpoint's `expected_identity` (a Spore Manager certificate cannot pass
 * as the Network Manager). Cached per expected identity. An endpoint whose
 * expected identity can never match gets credentials that refuse every
 * server, with the reason.
 */
export function endpointCredentials(identity: IdentityStore, base: PeerRequirement): (endpoint: Endpoint) => grpc.ChannelCredentials {
  const cache = new Map<string, grpc.ChannelCredentials>()
  return (endpoint) => {
    const key = endpoint.expectedIdentity
    let credentials = cache.get(key)
    if (credentials == null) {
      let required: PeerRequirement | PeerIdentityError
      try {
        required = requirementForEndpoint(endpoint, base)
      } catch (err) {
        required = err as PeerIdentityError
      }
      credentials =
        required instanceof Error
          ? grpc.experimental.createCertificateProviderChannelCredentials(identity, identity, {
              checkServerIdentity: () => required as Error
            })
          : clientCredentials(identity, required)
      cache.set(key, credentials)
    }
    return credentials
  }
}

/**
 * Refuses, with PERMISSION_DENIED and the reason, any call whose client
 * certificate lacks the required role. (The TLS layer already refused
 * clients without a certificate from the network CA.)
 */
export function peerRoleInterceptor(required: PeerRequirement): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            try {
              checkPeerIdentity(call.getAuthContext().sslPeerCertificate?.subjectaltname, required, `client of ${method.path}`)
              mdNext(metadata)
            } catch (err) {
              call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: (err as Error).message, metadata: new grpc.Metadata() })
            }
          }
        })
      }
    })
}

/** Server credentials: this identity, client certificates required and role-checked, reloaded on renewal. */
export function serverCredentials(identity: IdentityStore, required: PeerRequirement): grpc.ServerCredentials {
  const tls = grpc.experimental.createCertificateProviderServerCredentials(identity, identity, true)
  return grpc.experimental.createServerCredentialsWithInterceptors(tls, [peerRoleInterceptor(required)])
}

/** The SPIFFE identity of the caller of a server handler (already checked by the interceptor). */
export function callerIdentity(
  call: { getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string } } },
  required: PeerRequirement
): ReturnType<typeof checkPeerIdentity> {
  return checkPeerIdentity(call.getAuthContext().sslPeerCertificate?.subjectaltname, required, 'caller')
}
