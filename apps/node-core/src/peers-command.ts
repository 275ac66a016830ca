import * as grpc from '@grpc/grpc-js'
import { Phase, PeerAssistClient, UnavailableError, type NodeConfig, type PingResponse } from '@mycelium/core-interfaces'
import { clientCredentials, defaultChannelOptions } from '@mycelium/basic-net'
import { monotonicMs } from '@mycelium/core-utils'
import { identityStoreFor } from './identity.js'

/**
 * `node-core peers ping <addr>`: calls a peer's PeerAssist.Ping over mTLS
 * with this node's identity, as the peer monitor does — the peer must present
 * a node certificate of this network (SPIFFE URI SAN
 * `spiffe://<network>/node/<id>`, checked here, not a host name) — and says
 * what it answered and the round trip.
 */
export interface PeerPing {
  answer: PingResponse
  /** Round trip of a call on the established connection, ms. */
  rttMs: number
  /** The first call, TLS handshake included, ms. */
  firstCallMs: number
}

export async function pingPeer(config: Readonly<NodeConfig>, address: string, timeoutMs = 5000): Promise<PeerPing> {
  const identity = identityStoreFor(config)
  await identity.start()
  const client = new PeerAssistClient(
    address,
    clientCredentials(identity, { networkId: config.networkId, role: 'node' }),
    defaultChannelOptions(config.networkId)
  )
  const ping = (sequence: number): Promise<PingResponse> =>
    new Promise((resolve, reject) =>
      client.ping(
        { sequence, sentAt: new Date(), phase: Phase.UNSPECIFIED },
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) =>
          err != null
            ? reject(new UnavailableError(`peer ${address} did not answer: ${err.details || err.message}`, undefined, { cause: err }))
            : resolve(res)
      )
    )
  try {
    const t0 = monotonicMs()
    await ping(1)
    const t1 = monotonicMs()
    const answer = await ping(2)
    return { answer, rttMs: monotonicMs() - t1, firstCallMs: t1 - t0 }
  } finally {
    client.close()
    identity.stop()
  }
}

export function formatPeerPing(address: string, p: PeerPing): string {
  const id = p.answer.identity
  return [
    `peer       ${address}`,
    `identity   ${id?.spiffeId || `spiffe://${id?.networkId ?? '?'}/node/${id?.nodeId ?? '?'}`} (its certificate: a node of this network)`,
    `phase      ${Phase[p.answer.phase] ?? p.answer.phase}`,
    `managers   ${p.answer.managersReachable ? 'reachable' : 'not reachable'}`,
    `rtt        ${p.rttMs.toFixed(1)} ms (first call with the TLS handshake: ${p.firstCallMs.toFixed(1)} ms)`
  ].join('\n')
}
