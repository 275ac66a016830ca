import * as grpc from '@grpc/grpc-js'
import { createHash, X509Certificate } from 'node:crypto'
import { connect, type DetailedPeerCertificate, type PeerCertificate } from 'node:tls'
import {
  caCertificateSha256,
  NetworkManagerClient,
  parseJoinToken,
  supportedContractVersions,
  TimeoutError,
  type Endpoint,
  type EnrollResponse,
  type TrustBundle
} from '@mycelium/core-interfaces'
import { checkPeerIdentity, defaultChannelOptions, requirementForEndpoint, type IdentityStore } from '@mycelium/basic-net'

/** Enrolment did not give this node an identity. */
export class EnrolmentError extends Error {
  static readonly NAME = 'EnrolmentError'
  override readonly name = EnrolmentError.NAME
  constructor(
    message: string,
    /** False when retrying with the same token cannot help (bad token, wrong network). */
    readonly retryable: boolean,
    options?: ErrorOptions
  ) {
    super(message, options)
  }
}
export const isEnrolmentError = (err: unknown): err is EnrolmentError => err instanceof Error && err.name === EnrolmentError.NAME

const splitHostPort = (address: string): { host: string; port: number } => {
  const i = address.lastIndexOf(':')
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(address.slice(i + 1)) }
}

const toPem = (der: Buffer): string => new X509Certificate(der).toString()

/**
 * Learns the network CA before the node trusts anything (kubeadm's discovery
 * token CA hash): reads the chain the enrolment endpoint presents, without
 * verifying it, and keeps the certificate whose SHA-256 equals the join
 * token's pin. Anything else is refused.
 */
export function fetchPinnedCa(address: string, caSha256: string, timeoutMs: number): Promise<string> {
  const { host, port } = splitHostPort(address)
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: 'localhost' })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new TimeoutError(`${address}: no TLS handshake within ${timeoutMs} ms`, timeoutMs))
    }, timeoutMs)
    socket.once('error', (err: Error) => {
      clearTimeout(timer)
      reject(new EnrolmentError(`${address}: ${err.message}`, true, { cause: err }))
    })
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      const seen = new Set<string>()
      let cert: PeerCertificate | undefined = socket.getPeerCertificate(true)
      let match: string | undefined
      while (cert?.raw != null && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256)
        if (createHash('sha256').update(cert.raw).digest('hex') === caSha256) match = toPem(cert.raw)
        cert = (cert as DetailedPeerCertificate).issuerCertificate
      }
      socket.destroy()
      if (match == null) reject(new EnrolmentError(`${address} presented no certificate matching the join token's CA hash`, false))
      else resolve(match)
    })
  })
}

const PERMANENT = new Set([
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.FAILED_PRECONDITION
])

export interface EnrolOptions {
  identity: IdentityStore
  networkId: string
  nodeId: string
  joinToken: string
  endpoints: Endpoint[]
  timeoutMs: number
}

/**
 * Exchanges the join token and a CSR (the key stays on the node) for a
 * certificate chain, installs it, and returns the network's trust bundle.
 * Tries the endpoints in order.
 */
export async function enrol(options: EnrolOptions): Promise<TrustBundle> {
  let token
  try {
    token = parseJoinToken(options.joinToken, 'join token')
  } catch (err) {
    throw new EnrolmentError((err as Error).message, false)
  }
  if (token.networkId !== options.networkId) {
    throw new EnrolmentError(
      `the join token is for network "${token.networkId}", this node is configured for "${options.networkId}"`,
      false
    )
  }
  if (options.endpoints.length === 0) throw new EnrolmentError('no enrolment endpoints configured', false)
  const failures: string[] = []
  let retryable = false
  for (const endpoint of options.endpoints) {
    try {
      const caPem = await fetchPinnedCa(endpoint.address, token.caSha256, options.timeoutMs)
      const client = new NetworkManagerClient(
        endpoint.address,
        grpc.credentials.createSsl(Buffer.from(caPem), null, null, {
          checkServerIdentity: (_host, cert) => {
            try {
              checkPeerIdentity(
                cert.subjectaltname,
                requirementForEndpoint(endpoint, { networkId: options.networkId, role: 'manager' }),
                'enrolment server'
              )
              return undefined
            } catch (err) {
              return err as Error
            }
          }
        }),
        defaultChannelOptions(options.networkId)
      )
      let res: EnrollResponse
      try {
        const csrDer = await options.identity.createCsr()
        res = await new Promise<EnrollResponse>((resolve, reject) =>
          client.enroll(
            {
              joinToken: options.joinToken,
              csrDer,
              networkId: options.networkId,
              nodeId: options.nodeId,
              contractVersions: supportedContractVersions()
            },
            new grpc.Metadata(),
            { deadline: Date.now() + options.timeoutMs },
            (err, r) => (err != null ? reject(err) : resolve(r))
          )
        )
      } finally {
        client.close()
      }
      const bundle = res.trustBundle
      if (bundle == null || !bundle.caCertificatesPem.some((pem) => caCertificateSha256(pem) === token.caSha256)) {
        throw new EnrolmentError(`${endpoint.address} answered with a trust bundle that does not contain the pinned CA`, false)
      }
      await options.identity.install(res.certificateChainPem.join('\n'), bundle.caCertificatesPem.join('\n'))
      return bundle
    } catch (err) {
      const e = err as Error & Partial<grpc.ServiceError> & { retryable?: boolean }
      if (e.code != null && typeof e.code === 'number') {
        retryable ||= !PERMANENT.has(e.code)
        failures.push(`${endpoint.address}: ${grpc.status[e.code]} ${e.details ?? ''}`.trim())
      } else {
        retryable ||= e.retryable !== false
        failures.push(`${endpoint.address}: ${e.message}`)
      }
    }
  }
  throw new EnrolmentError(failures.join('; '), retryable)
}
