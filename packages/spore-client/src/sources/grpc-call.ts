import type * as grpc from '@grpc/grpc-js'
import { UnavailableError } from '@mycelium/core-interfaces'
import { unavailable } from '@mycelium/core-utils'

export { callUnary, unavailable } from '@mycelium/core-utils'

/** One client per address, created lazily and closed together. */
export class ClientPool<C extends grpc.Client> {
  private readonly clients = new Map<string, C>()
  constructor(private readonly create: (address: string) => C) {}

  get(address: string): C {
    let client = this.clients.get(address)
    if (client == null) {
      client = this.create(address)
      this.clients.set(address, client)
    }
    return client
  }

  close(): void {
    for (const client of this.clients.values()) client.close()
    this.clients.clear()
  }
}

/**
 * Asks each endpoint in turn until one answers; an abort ends the round at
 * once. All failing → UnavailableError naming `what` and every endpoint's
 * reason. `onFailure` lets a caller rotate its starting endpoint.
 */
export async function firstAnswer<T>(
  what: string,
  addresses: string[],
  signal: AbortSignal,
  ask: (address: string) => Promise<T>,
  onFailure: (address: string) => void = () => undefined
): Promise<T> {
  const failures: string[] = []
  for (const address of addresses) {
    try {
      return await ask(address)
    } catch (err) {
      if (signal.aborted) throw err
      failures.push(unavailable(address, err as grpc.ServiceError).message)
      onFailure(address)
    }
  }
  throw new UnavailableError(`${what} (${failures.join('; ')})`)
}
