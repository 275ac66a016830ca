import * as grpc from '@grpc/grpc-js'
import { checkPeerIdentity, type PeerRequirement } from './peer-identity.js'
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
export function callerIdentity(call: { getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string } } }, required: PeerRequirement): ReturnType<typeof checkPeerIdentity> {
  return checkPeerIdentity(call.getAuthContext().sslPeerCertificate?.subjectaltname, required, 'caller')
}
