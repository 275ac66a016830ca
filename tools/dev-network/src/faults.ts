import * as grpc from '@grpc/grpc-js'

/** Fault controls of one manager, changed at run time by tests, demos and the CLI. */
export interface Faults {
  /** Delay every call by this many ms. */
  delayMs: number
  /** Fail every call with this status (e.g. UNAVAILABLE). */
  refuseWith?: grpc.status
}

export const noFaults = (): Faults => ({ delayMs: 0 })

/**
 * A server interceptor applying `faults()` to every call: refused calls get
 * the status before any handler runs; delayed calls reach the handler late.
 */
export function faultInterceptor(faults: () => Faults, exempt: (path: string) => boolean = () => false): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const f = faults()
            if (exempt(method.path)) {
              mdNext(metadata)
            } else if (f.refuseWith != null) {
              call.sendStatus({
                code: f.refuseWith,
                details: `refused by fault control (${grpc.status[f.refuseWith]})`,
                metadata: new grpc.Metadata()
              })
            } else if (f.delayMs > 0) {
              setTimeout(() => mdNext(metadata), f.delayMs)
            } else {
              mdNext(metadata)
            }
          }
        })
      }
    })
}

/** Ends a server stream abruptly with UNAVAILABLE, as a crashed link would look to the client. */
export function killStream(
  call: { emit(event: 'error', status: Partial<grpc.StatusObject>): boolean },
  details = 'killed by fault control'
): void {
  call.emit('error', { code: grpc.status.UNAVAILABLE, details })
}
