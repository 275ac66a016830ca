import * as grpc from '@grpc/grpc-js'
import {
  PeerAssistClient,
  strictClient,
  UnavailableError,
  type Endpoint,
  type GetSporesRequest,
  type GetSporesResponse,
  type SignedSpore
} from '@mycelium/core-interfaces'
import { callUnary, ClientPool, firstAnswer } from './grpc-call.js'
import { SourceGuard, type SourceGuardInit, type SporeFetchOptions, type SporeSource } from './source.js'

/** Responses are decoded strictly (canonical varints, timestamps in range, size-bounded). */
const StrictPeerAssistClient = strictClient(PeerAssistClient, { maxBytes: 8 * 1024 * 1024 })

export interface PeerSourceInit extends SourceGuardInit {
  /** Peers to ask, best first (basic-net's peer table supplies them). */
  peers: () => Endpoint[]
  /** mTLS credentials that present the node identity and check the node role. */
  credentials: grpc.ChannelCredentials
  channelOptions?: grpc.ChannelOptions
  /** Peers asked per fetch, until one answers. @default 3 */
  maxPeersPerFetch?: number
}

class PeerSporeSource implements SporeSource {
  readonly id = 'peers'
  readonly kind = 'peers' as const
  private readonly guard: SourceGuard
  private readonly pool: ClientPool<PeerAssistClient>

  constructor(private readonly init: PeerSourceInit) {
    this.guard = new SourceGuard(this.id, init)
    this.pool = new ClientPool((address) => new StrictPeerAssistClient(address, init.credentials, init.channelOptions))
  }

  fetch(options: SporeFetchOptions = {}): Promise<SignedSpore[]> {
    return this.guard.run(options, async (signal) => {
      const peers = this.init.peers().slice(0, this.init.maxPeersPerFetch ?? 3)
      if (peers.length === 0) throw new UnavailableError(`${this.id}: no peers known`)
      return firstAnswer(
        `${this.id}: no peer answered`,
        peers.map((p) => p.address),
        signal,
        async (address) => {
          const client = this.pool.get(address)
          const res = await callUnary<GetSporesRequest, GetSporesResponse>(
            client.getSpores.bind(client),
            { knownSequences: options.knownSequences ?? {} },
            signal,
            this.guard.timeoutMs
          )
          return res.spores
        }
      )
    })
  }

  close(): void {
    this.pool.close()
  }
}

/** Spores held by peers, through PeerAssist.GetSpores (each is verified again here). */
export function peerSource(init: PeerSourceInit): SporeSource & { close(): void } {
  return new PeerSporeSource(init)
}
