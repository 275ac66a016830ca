import * as grpc from '@grpc/grpc-js'
import { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import {
  formatJoinToken,
  NetworkManagerClient,
  parseJoinToken,
  supportedContractVersions,
  type TrustBundle
} from '@mycelium/core-interfaces'
import { callUnary } from '@mycelium/core-utils'
import { createIdentityStore, defaultChannelOptions, type IdentityStore } from '@mycelium/basic-net'
import { enrol, fetchPinnedCa } from '@mycelium/bootstrap-agent'
import { CheckFailedError, expectThat } from '../errors.js'
import { codeOf, statusName } from '../context.js'

export const ENROLMENT_PINNED_CA = {
  name: 'enrolment.pinned-ca',
  proves:
    "A node holding only a join token finds the pinned CA in the enrolment endpoint's TLS chain, and Enroll issues it a certificate for exactly its SPIFFE id, signed by that CA, with a trust bundle that contains it."
}
export const ENROLMENT_REFUSES_BAD_TOKEN = {
  name: 'enrolment.refuses-bad-token',
  proves: 'Enroll refuses a join token whose secret is wrong (UNAUTHENTICATED or PERMISSION_DENIED) and issues no certificate for it.'
}

export interface Enrolled {
  identity: IdentityStore
  trustBundle: TrustBundle
  networkId: string
  nodeId: string
  detail: string
}

/** Enrols a new node identity in `dir` with the real agent code (bootstrap-agent `enrol`), then checks what was issued. */
export async function enrolNode(options: {
  address: string
  joinToken: string
  nodeId: string
  dir: string
  timeoutMs: number
}): Promise<Enrolled> {
  let token
  try {
    token = parseJoinToken(options.joinToken, 'join token')
  } catch (err) {
    throw new CheckFailedError((err as Error).message)
  }
  const identity = createIdentityStore(
    {},
    {
      networkId: token.networkId,
      name: options.nodeId,
      keyFile: join(options.dir, 'node.key'),
      certificateFile: join(options.dir, 'node.crt'),
      caFile: join(options.dir, 'ca.crt')
    }
  )
  await identity.start()
  try {
    let trustBundle: TrustBundle
    try {
      trustBundle = await enrol({
        identity,
        networkId: token.networkId,
        nodeId: options.nodeId,
        joinToken: options.joinToken,
        endpoints: [{ address: options.address, expectedIdentity: '', zone: '', priority: 0 }],
        timeoutMs: options.timeoutMs
      })
    } catch (err) {
      throw new CheckFailedError(`enrolment with the join token failed: ${(err as Error).message}`)
    }
    const material = identity.material()
    expectThat(material != null, 'Enroll answered, but its certificate chain is not usable with the node key')
    const leaf = new X509Certificate(material.certificateChainPem)
    const wanted = `URI:spiffe://${token.networkId}/node/${options.nodeId}`
    expectThat(
      (leaf.subjectAltName ?? '').split(/,\s*/).includes(wanted),
      `the issued certificate names ${leaf.subjectAltName ?? 'nothing'}, not ${wanted}`
    )
    const pinned = trustBundle.caCertificatesPem
      .map((pem) => new X509Certificate(pem))
      .find((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))
    expectThat(pinned != null, 'the issued certificate is not signed by a CA of the trust bundle')
    return {
      identity,
      trustBundle,
      networkId: token.networkId,
      nodeId: options.nodeId,
      detail: `enrolled ${wanted.slice(4)}, certificate valid to ${leaf.validTo}`
    }
  } catch (err) {
    identity.stop()
    throw err
  }
}

/** Enroll with the right token id but a wrong secret must not issue anything. */
export async function checkBadTokenRefused(options: {
  address: string
  joinToken: string
  nodeId: string
  csrDer: Buffer
  timeoutMs: number
  signal: AbortSignal
}): Promise<string> {
  const token = parseJoinToken(options.joinToken, 'join token')
  const caPem = await fetchPinnedCa(options.address, token.caSha256, options.timeoutMs)
  // The same token with its last secret character changed: only the secret is wrong.
  const last = token.secret.slice(-1) === 'a' ? 'b' : 'a'
  const wrong = formatJoinToken({ ...token, secret: `${token.secret.slice(0, -1)}${last}` })
  const client = new NetworkManagerClient(
    options.address,
    grpc.credentials.createSsl(Buffer.from(caPem), null, null, { checkServerIdentity: () => undefined }),
    defaultChannelOptions(token.networkId)
  )
  try {
    const nodeId = options.nodeId
    await callUnary(
      client.enroll.bind(client),
      { joinToken: wrong, csrDer: options.csrDer, networkId: token.networkId, nodeId, contractVersions: supportedContractVersions() },
      options.signal,
      options.timeoutMs
    )
    throw new CheckFailedError('Enroll issued a certificate for a join token with a wrong secret')
  } catch (err) {
    const code = codeOf(err)
    if (code === grpc.status.UNAUTHENTICATED || code === grpc.status.PERMISSION_DENIED) return `refused: ${statusName(err)}`
    if (code == null) throw err
    throw new CheckFailedError(`Enroll answered a wrong secret with ${statusName(err)}, not UNAUTHENTICATED or PERMISSION_DENIED`)
  } finally {
    client.close()
  }
}
