import * as grpc from '@grpc/grpc-js'

/**
 * Counts the calls each method received (by path, e.g.
 * `/mycelium.v1.SporeService/WatchSpores`): what a fleet's storm really asks
 * of the manager process, read by the scale bench beside its CPU. Counted when
 * the call arrives, before any fault or admission decides its fate.
 */
export function countingInterceptor(counts: Map<string, number>): grpc.ServerInterceptor {
  return (method, call) => {
    counts.set(method.path, (counts.get(method.path) ?? 0) + 1)
    return new grpc.ServerInterceptingCall(call)
  }
}
