import * as grpc from '@grpc/grpc-js'
import { PeerAssistClient, strictClient, type AbortOptions, type FetchArtifactResponse, type Endpoint } from '@mycelium/core-interfaces'
import { ArtifactNotHeldError, type ArtifactPiece, type PeerArtifactSource } from '@mycelium/self-update'

/** Chunks are 64 KiB (basic-net ARTIFACT_CHUNK_BYTES): a response larger than this is refused by the decoder. */
const StrictPeerAssistClient = strictClient(PeerAssistClient, { maxBytes: 256 * 1024 })

export interface PeerArtifactDeps {
  /** Peers alive now, best first (the peer monitor's `alivePeers`). */
  alivePeers: () => Endpoint[]
  /** mTLS as a node to nodes (basic-net `clientCredentials(identity, { role: 'node' })`). */
  credentials: grpc.ChannelCredentials
  channelOptions: grpc.ChannelOptions
}

/**
 * The peers self-update may fetch an artifact from when the Update Manager is
 * unreachable: each alive peer, dialled over mTLS (node identity) for
 * PeerAssist.FetchArtifact. The runner (packages/self-update) checks what they
 * send: order, size, sha256.
 */
export function peerArtifactSources(d: PeerArtifactDeps): PeerArtifactSource[] {
  return d.alivePeers().map((endpoint) => ({
    name: `peer ${endpoint.address}`,
    fetch: (sha256: string, offset: number, options: AbortOptions) => fetchPieces(d, endpoint, sha256, offset, options)
  }))
}

async function* fetchPieces(
  d: PeerArtifactDeps,
  endpoint: Endpoint,
  sha256: string,
  offset: number,
  options: AbortOptions
): AsyncGenerator<ArtifactPiece> {
  const client = new StrictPeerAssistClient(endpoint.address, d.credentials, d.channelOptions)
  const call = client.fetchArtifact({ digest: `sha256:${sha256}`, offset })
  const cancel = (): void => call.cancel()
  options.signal?.addEventListener('abort', cancel, { once: true })
  try {
    for await (const chunk of call as AsyncIterable<FetchArtifactResponse>) {
      yield { offset: chunk.offset, data: chunk.data, totalSize: chunk.totalSize }
    }
  } catch (err) {
    if ((err as Partial<grpc.ServiceError>).code === grpc.status.NOT_FOUND) throw new ArtifactNotHeldError((err as Error).message)
    throw err
  } finally {
    options.signal?.removeEventListener('abort', cancel)
    call.cancel()
    client.close()
  }
}
