import * as grpc from '@grpc/grpc-js'
import { UnavailableError, retryAfterFromStatus } from '@mycelium/core-interfaces'

/** A generated grpc-js unary method, bound to its client. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void
) => grpc.ClientUnaryCall

/** A gRPC failure as UnavailableError naming what was called, keeping the status as cause. */
export function unavailable(what: string, err: grpc.ServiceError): UnavailableError {
  return new UnavailableError(`${what}: ${grpc.status[err.code] ?? err.code} ${err.details}`, retryAfterFromStatus(err), { cause: err })
}

/** Calls a unary method with a deadline; aborting `signal` cancels the call. */
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
