import * as grpc from '@grpc/grpc-js'
import { join } from 'node:path'
import { createIdentityStore, serverCredentials, type IdentityStore } from '@mycelium/basic-net'
import { buildCommand, type DevNetwork } from '@mycelium/dev-network'
import type { ConformanceTriggers } from '@mycelium/conformance'

/** A manager identity (service name) issued by the dev network's CA, key and certificate in `dir`. */
export async function managerIdentity(net: DevNetwork, service: string, dir: string): Promise<IdentityStore> {
  const store = createIdentityStore(
    {},
    {
      networkId: net.networkId,
      name: service,
      role: 'manager',
      keyFile: join(dir, `${service}.key`),
      certificateFile: join(dir, `${service}.crt`),
      caFile: join(dir, `${service}-ca.crt`)
    }
  )
  await store.start()
  const { certificatePem } = await net.ca.issueFromCsr(await store.createCsr(), {
    notAfter: new Date(Date.now() + 86_400_000),
    hostNames: { dns: ['localhost'], ip: ['127.0.0.1'] }
  })
  await store.install(certificatePem, net.caPem)
  return store
}

/** A gRPC server on 127.0.0.1 with a manager identity, node client certificates required: a place for a deliberately wrong manager. */
export async function wrongManager(
  net: DevNetwork,
  service: string,
  dir: string,
  add: (server: grpc.Server) => void
): Promise<{ address: string; stop(): void }> {
  const identity = await managerIdentity(net, service, dir)
  const server = new grpc.Server()
  add(server)
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(identity, { networkId: net.networkId, role: 'node' }), (err, p) =>
      err != null ? reject(err) : resolve(p)
    )
  )
  return {
    address: `127.0.0.1:${port}`,
    stop: () => {
      server.forceShutdown()
      identity.stop()
    }
  }
}

/** Triggers for a dev network: commands through its Command Channel, spore changes by republishing. */
export function devNetworkTriggers(net: DevNetwork): ConformanceTriggers {
  return {
    sendCommand: ({ nodeId, kind }) => {
      const spec =
        kind === 'restart'
          ? { kind: 'restart' as const }
          : { kind: 'emergency' as const, action: 'dump-diagnostics', reason: 'conformance kit' }
      net.commands.send(nodeId, buildCommand(net, nodeId, spec))
      return Promise.resolve()
    },
    changeSpores: () => net.publishAll()
  }
}
