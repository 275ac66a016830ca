import * as grpc from '@grpc/grpc-js'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { NetworkManagerClient, supportedContractVersions, type EnrollResponse } from '@mycelium/core-interfaces'
import { createIdentityStore, defaultChannelOptions } from '@mycelium/basic-net'
import type { DevNetwork } from '@mycelium/dev-network'
import type { IdentityFiles } from '@mycelium/conformance'

/** Enrols `nodeId` on `net` and leaves its key, certificate and CA as PEM files in `dir` (what a CI job hands the CLI). */
export async function enrolledIdentityFiles(net: DevNetwork, nodeId: string, dir: string): Promise<IdentityFiles> {
  mkdirSync(dir, { recursive: true })
  const files = { keyFile: join(dir, 'node.key'), certificateFile: join(dir, 'node.crt'), caFile: join(dir, 'ca.crt') }
  const store = createIdentityStore({}, { networkId: net.networkId, name: nodeId, ...files })
  await store.start()
  const client = new NetworkManagerClient(
    net.endpoints.enrollment,
    grpc.credentials.createSsl(Buffer.from(net.caPem), null, null, { checkServerIdentity: () => undefined }),
    defaultChannelOptions(net.networkId)
  )
  try {
    const request = {
      joinToken: await net.newJoinToken(),
      csrDer: await store.createCsr(),
      networkId: net.networkId,
      nodeId,
      contractVersions: supportedContractVersions()
    }
    const res = await new Promise<EnrollResponse>((resolve, reject) =>
      client.enroll(request, (err, r) => (err != null ? reject(err) : resolve(r)))
    )
    await store.install(res.certificateChainPem.join('\n'), net.caPem)
    return files
  } finally {
    client.close()
    store.stop()
  }
}
