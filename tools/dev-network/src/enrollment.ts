import * as grpc from '@grpc/grpc-js'
import { timingSafeEqual, X509Certificate } from 'node:crypto'
import {
  caCertificateSha256,
  isInvalidInputError,
  negotiateContractVersion,
  parseJoinToken,
  supportedContractVersions,
  type EnrollRequest,
  type EnrollResponse,
  type TrustBundle
} from '@mycelium/core-interfaces'
import { parseCsr, type CertificateAuthority } from '@mycelium/dev-pki'
import type { DevNetworkState } from './state.js'

export interface EnrollmentContext {
  state: DevNetworkState
  ca: CertificateAuthority
  trustBundle: () => TrustBundle
  certificateTtlMs: number
  /** Persist the state after a change. */
  save: () => Promise<void>
}

const same = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))

/** A status error for a refused enrolment. */
// An Error (with a stack) that grpc-js sends as its status: code and details.
const refuse = (code: grpc.status, details: string): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() })

/**
 * Enrol: a join token (which pins our CA) and a CSR for
 * spiffe://<network>/node/<id> in, a certificate chain out. A token serves
 * one node (that node may enrol again, e.g. after losing its key).
 */
export async function enroll(ctx: EnrollmentContext, req: EnrollRequest): Promise<EnrollResponse> {
  let token
  try {
    token = parseJoinToken(req.joinToken, 'EnrollRequest.join_token')
  } catch (err) {
    throw refuse(grpc.status.UNAUTHENTICATED, (err as Error).message)
  }
  const known = ctx.state.joinTokens.find((t) => t.tokenId === token.tokenId)
  if (known == null || !same(known.secret, token.secret)) throw refuse(grpc.status.UNAUTHENTICATED, 'join token not recognised')
  if (token.networkId !== ctx.state.networkId) {
    throw refuse(grpc.status.PERMISSION_DENIED, `join token is for network "${token.networkId}", this is "${ctx.state.networkId}"`)
  }
  if (token.caSha256 !== caCertificateSha256(ctx.ca.certificatePem)) {
    throw refuse(grpc.status.FAILED_PRECONDITION, "join token pins another CA than this network's")
  }
  if (known.usedBy != null && known.usedBy !== req.nodeId) {
    throw refuse(grpc.status.PERMISSION_DENIED, `join token already used by node "${known.usedBy}"`)
  }
  if (req.contractVersions == null || negotiateContractVersion(supportedContractVersions(), req.contractVersions) == null) {
    const r = req.contractVersions
    throw refuse(
      grpc.status.FAILED_PRECONDITION,
      `unsupported contract versions ${r?.min ?? '?'}–${r?.max ?? '?'}; this manager speaks 1–1`
    )
  }
  let csr
  try {
    csr = await parseCsr(req.csrDer, 'EnrollRequest.csr_der')
  } catch (err) {
    throw refuse(grpc.status.INVALID_ARGUMENT, isInvalidInputError(err) ? err.message : String(err))
  }
  const id = csr.spiffeId
  if (id.networkId !== ctx.state.networkId) {
    throw refuse(grpc.status.INVALID_ARGUMENT, `CSR is for network "${id.networkId}", this is "${ctx.state.networkId}"`)
  }
  if (id.role !== 'node' || id.name !== req.nodeId) {
    throw refuse(grpc.status.INVALID_ARGUMENT, `CSR names ${csr.spiffeUri}, expected spiffe://${ctx.state.networkId}/node/${req.nodeId}`)
  }
  const notAfter = new Date(Date.now() + ctx.certificateTtlMs)
  const certificatePem = await ctx.ca.issue(csr.spiffeUri, csr.publicKey, { notAfter })
  known.usedBy = req.nodeId
  ctx.state.nodes[req.nodeId] = {
    enrolledAt: new Date().toISOString(),
    certificateSerial: new X509Certificate(certificatePem).serialNumber
  }
  await ctx.save()
  return { certificateChainPem: [certificatePem], trustBundle: ctx.trustBundle(), notAfter }
}
