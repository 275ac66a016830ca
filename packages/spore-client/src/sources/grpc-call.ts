import * as grpc from '@grpc/grpc-js'
import { retryAfterFromStatus, UnavailableError } from '@mycelium/core-interfaces'

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void
) => grpc.ClientUnaryCall

/** A gRPC failure as UnavailableError naming what was called, keeping the status as cause. */
export function unavailable(what: string, err: grpc.ServiceError): UnavailableError {
  return new UnavailableError(`${what}: ${grpc.status[err.code] ?? err.code} ${err.details}`, retryAfterFromStatus(err), { cause: err })
}

/** Calls a unary method; aborting `signal` cancels the call. */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, signal: AbortSignal, deadlineMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = method(request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) =>
      err != null ? reject(err) : resolve(res)
    )
    const onAbort = (): void => call.cancel()
    signal.addEventListener('abort', onAbort, { once: true })
    call.on('status', () => signal.removeEventListener('abort', onAbort))
  })
}

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
