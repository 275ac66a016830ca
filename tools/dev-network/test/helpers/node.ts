import * as grpc from '@grpc/grpc-js'
import { join } from 'node:path'
import { NetworkManagerClient, supportedContractVersions, type EnrollResponse } from '@mycelium/core-interfaces'
import { clientCredentials, createIdentityStore, defaultChannelOptions, type IdentityStore } from '@mycelium/basic-net'
import type { DevNetwork } from '../../src/index.js'

export function unary<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  timeoutMs = 5000
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err != null ? reject(err) : resolve(res)))
  )
}

/** A node's identity store in `dir` (key created there). */
export async function nodeStore(net: DevNetwork, nodeId: string, dir: string, networkId = net.networkId): Promise<IdentityStore> {
  const store = createIdentityStore(
    {},
    {
      networkId,
      name: nodeId,
      keyFile: join(dir, `${nodeId}.key`),
      certificateFile: join(dir, `${nodeId}.crt`),
      caFile: join(dir, `${nodeId}-ca.crt`)
    }
  )
  await store.start()
  return store
}

/** A client for the enrolment endpoint: TLS trusting the CA, no client certificate. */
export function enrollmentClient(net: DevNetwork): NetworkManagerClient {
  return new NetworkManagerClient(
    net.endpoints.enrollment,
    grpc.credentials.createSsl(Buffer.from(net.caPem), null, null, { checkServerIdentity: () => undefined }),
    defaultChannelOptions(net.networkId)
  )
}

/** Enrols through the real rpc and installs the certificate. */
export async function enrolledNode(
  net: DevNetwork,
  nodeId: string,
  dir: string,
  joinToken?: string
): Promise<{ store: IdentityStore; response: EnrollResponse }> {
  const store = await nodeStore(net, nodeId, dir)
  const client = enrollmentClient(net)
  try {
    const response = await unary(client.enroll.bind(client), {
      joinToken: joinToken ?? (await net.newJoinToken()),
      csrDer: await store.createCsr(),
      networkId: net.networkId,
      nodeId,
      contractVersions: supportedContractVersions()
    })
    await store.install(response.certificateChainPem.join('\n'), response.trustBundle!.caCertificatesPem.join('\n'))
    return { store, response }
  } finally {
    client.close()
  }
}

/** A NetworkManager client presenting the node identity and requiring a manager. */
export function managerClient(net: DevNetwork, store: IdentityStore): NetworkManagerClient {
  return new NetworkManagerClient(
    net.endpoints.networkManager,
    clientCredentials(store, { networkId: net.networkId, role: 'manager' }),
    defaultChannelOptions(net.networkId)
  )
}
