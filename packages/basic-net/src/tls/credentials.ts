import * as grpc from '@grpc/grpc-js'
import type { SecureContext } from 'node:tls'
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
  return providerCredentials(identity, (_host, cert) => {
    try {
      checkPeerIdentity(cert.subjectaltname, required, 'server')
      return undefined
    } catch (err) {
      return err as Error
    }
  })
}

/**
 * grpc-js's certificate-provider channel credentials, building one TLS
 * SecureContext per identity update instead of one per connection attempt.
 *
 * grpc-js 1.14 calls `createSecureContext` (OpenSSL parsing the key, the
 * certificate and the CA: ~4 ms of CPU) twice for every connection attempt
 * of such a channel — while a manager is down, at every redial of every
 * channel. A context holds only the material, so connections can share it;
 * the provider hands grpc-js a new update object for every new material
 * (the identity store publishes on change only), and a new update means a
 * new context. If a grpc-js release no longer has the method, nothing is
 * changed and the credentials only cost more CPU.
 */
function providerCredentials(
  identity: IdentityStore,
  checkServerIdentity: grpc.VerifyOptions['checkServerIdentity']
): grpc.ChannelCredentials {
  const credentials = grpc.experimental.createCertificateProviderChannelCredentials(identity, identity, { checkServerIdentity })
  const impl = credentials as unknown as {
    getLatestSecureContext?: () => SecureContext | null
    latestCaUpdate?: unknown
    latestIdentityUpdate?: unknown
  }
  const build = impl.getLatestSecureContext
  if (typeof build !== 'function') return credentials
  let last: { ca: unknown; identity: unknown; context: SecureContext } | undefined
  impl.getLatestSecureContext = function (this: typeof impl): SecureContext | null {
    if (last != null && last.ca === this.latestCaUpdate && last.identity === this.latestIdentityUpdate) return last.context
    const context = build.call(this)
    last = context == null ? undefined : { ca: this.latestCaUpdate, identity: this.latestIdentityUpdate, context }
    return context
  }
  return credentials
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
        required instanceof Error ? providerCredentials(identity, () => required as Error) : clientCredentials(identity, required)
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
