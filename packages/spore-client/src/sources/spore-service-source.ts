import * as grpc from '@grpc/grpc-js'
import {
  AbortError,
  SporeServiceClient,
  strictClient,
  UnavailableError,
  isUnavailableError,
  type Endpoint,
  type ListSporesResponse,
  type SignedSpore,
  type WatchSporesResponse
} from '@mycelium/core-interfaces'
import { credentialsFor, type EndpointCredentials } from '@mycelium/core-utils'
import { callUnary, ClientPool, firstAnswer, unavailable } from './grpc-call.js'
import { SourceGuard, type SourceGuardInit, type SporeFetchOptions, type WatchableSporeSource } from './source.js'

/** Responses are decoded strictly (canonical varints, timestamps in range, size-bounded). */
const StrictSporeServiceClient = strictClient(SporeServiceClient, { maxBytes: 8 * 1024 * 1024 })

export interface SporeServiceSourceInit extends SourceGuardInit {
  /** Current Spore Manager endpoints (the client passes those of its "service/spore-manager" spore). */
  endpoints: () => Endpoint[]
  /**
   * mTLS credentials that present the node identity and check the manager
   * role — per endpoint (basic-net `endpointCredentials`) so that each
   * endpoint's `expected_identity` is enforced.
   */
  credentials: EndpointCredentials
  /** Extra grpc-js channel options (keepalive, target name override). */
  channelOptions?: grpc.ChannelOptions
}

class SporeServiceSource implements WatchableSporeSource {
  readonly id = 'spore-manager'
  readonly kind = 'spore-manager' as const
  private readonly guard: SourceGuard
  private readonly pool: ClientPool<SporeServiceClient>
  /** Rotates the starting endpoint after each failed watch. */
  private next = 0

  constructor(private readonly init: SporeServiceSourceInit) {
    this.guard = new SourceGuard(this.id, init)
    // Pooled per address and expected identity: the same address announced
    // with another identity must be checked against that one.
    this.pool = new ClientPool((key) => {
      const endpoint = this.endpoints.get(key)!
      return new StrictSporeServiceClient(endpoint.address, credentialsFor(init.credentials, endpoint), init.channelOptions)
    })
  }

  private readonly endpoints = new Map<string, Endpoint>()

  /** The pool key of an endpoint (remembered so the pool can build its client). */
  private keyOf(endpoint: Endpoint): string {
    const key = endpoint.expectedIdentity === '' ? endpoint.address : `${endpoint.address} (${endpoint.expectedIdentity})`
    this.endpoints.set(key, endpoint)
    return key
  }

  private ordered(): Endpoint[] {
    const endpoints = this.init.endpoints()
    if (endpoints.length === 0) throw new UnavailableError(`${this.id}: no endpoints known`)
    const start = this.next % endpoints.length
    return [...endpoints.slice(start), ...endpoints.slice(0, start)]
  }

  fetch(options: SporeFetchOptions = {}): Promise<SignedSpore[]> {
    return this.guard.run(options, async (signal) => {
      const addresses = this.ordered().map((e) => this.keyOf(e))
      return firstAnswer(
        `${this.id}: no endpoint answered`,
        addresses,
        signal,
        async (address) => {
          const client = this.pool.get(address)
          const res = await callUnary<{ namePrefix: string }, ListSporesResponse>(
            client.listSpores.bind(client),
            { namePrefix: '' },
            signal,
            this.guard.timeoutMs
          )
          return res.spores
        },
        () => this.next++
      )
    })
  }

  async *watch(options: SporeFetchOptions): AsyncIterable<SignedSpore[]> {
    this.guard.admit(options)
    const endpoint = this.ordered()[0]!
    const call = this.pool.get(this.keyOf(endpoint)).watchSpores({ namePrefix: '', knownSequences: options.knownSequences ?? {} })
    const onAbort = (): void => call.cancel()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      for await (const batch of call as AsyncIterable<WatchSporesResponse>) {
        yield batch.spores
      }
      // The server ended the stream: a watch is meant to stay open.
      this.next++
      throw new UnavailableError(`${this.id}: ${endpoint.address} ended the watch stream`)
    } catch (err) {
      if (options.signal?.aborted === true) throw new AbortError(`${this.id}: watch aborted`, { cause: err })
      if (isUnavailableError(err)) throw err
      this.next++
      throw unavailable(`${this.id} ${endpoint.address}`, err as grpc.ServiceError)
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
      call.cancel()
    }
  }

  close(): void {
    this.pool.close()
  }
}

/** The Spore Manager's SporeService over mTLS: ListSpores for fetch, WatchSpores for live changes. */
export function sporeServiceSource(init: SporeServiceSourceInit): WatchableSporeSource & { close(): void } {
  return new SporeServiceSource(init)
}
