import * as grpc from '@grpc/grpc-js'
import { AbortError, isUnavailableError, retryAfterFromStatus, UnavailableError } from '@mycelium/core-interfaces'

/** A generated grpc-js unary method, bound to its client. */
export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Res) => void
) => grpc.ClientUnaryCall

/**
 * A failed call as the one retry-after shape, UnavailableError, naming what
 * was called and keeping the original as cause: a gRPC status carries its
 * code, details and the manager's `retry-after-ms`; an UnavailableError keeps
 * its wait; anything else its message.
 */
export function unavailable(what: string, err: unknown): UnavailableError {
  const e = err as Partial<grpc.ServiceError> & Error
  if (typeof e.code === 'number') {
    return new UnavailableError(`${what}: ${grpc.status[e.code] ?? e.code} ${e.details}`, retryAfterFromStatus(e), { cause: err })
  }
  return new UnavailableError(`${what}: ${e.message}`, isUnavailableError(err) ? err.retryAfterMs : undefined, { cause: err })
}

/**
 * Calls a unary method with a deadline. Aborting `signal` cancels the call
 * (grpc-js `call.cancel()`, so the server sees it end) and rejects with
 * AbortError at once, however far away the deadline is; a signal already
 * aborted never starts the call. Other failures reject with the gRPC
 * ServiceError (its code says DEADLINE_EXCEEDED, UNAVAILABLE, ...).
 */
export function callUnary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, signal: AbortSignal, deadlineMs: number): Promise<Res> {
  if (signal.aborted) return Promise.reject(abortError(signal))
  return new Promise((resolve, reject) => {
    const call = method(request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err, res) => {
      signal.removeEventListener('abort', onAbort)
      if (signal.aborted) reject(abortError(signal, err))
      else if (err != null) reject(err)
      else resolve(res)
    })
    function onAbort(): void {
      reject(abortError(signal))
      call.cancel()
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function abortError(signal: AbortSignal, cause?: unknown): AbortError {
  return new AbortError('the gRPC call was aborted', { cause: cause ?? signal.reason })
}
