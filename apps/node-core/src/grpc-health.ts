import type * as grpc from '@grpc/grpc-js'
import { HealthCheckResponse_ServingStatus, HealthService, type HealthServer } from './generated/health/v1/health.js'

/**
 * The standard `grpc.health.v1.Health` service (Check, Watch, List) for
 * statuses fixed when the server starts — what the status server serves.
 *
 * Why not grpc-health-check's HealthImplementation: it parses health.proto
 * with @grpc/proto-loader and protobufjs when it is imported, which cost the
 * idle daemon ~1.7 MB of heap and kept server reflection's chunk (protobufjs)
 * loaded from the start (tools/bench footprint, issue #17). The codecs here
 * are ts-proto's, generated from that same health.proto
 * (protos/buf.gen.health.yaml). Behaviour is grpc-health-check's: Check
 * answers NOT_FOUND for an unknown service, Watch sends the status
 * (SERVICE_UNKNOWN for an unknown one) and keeps the stream open, List
 * returns every status.
 */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN'

/** grpc status NOT_FOUND (not imported: grpc-js's enum is a value import). */
const NOT_FOUND = 5

/** Adds grpc.health.v1.Health answering `statuses` (service name → status; '' is the server as a whole). */
export function addHealthService(server: grpc.Server, statuses: Readonly<Record<string, ServingStatus>>): void {
  const known = new Map(Object.entries(statuses).map(([name, s]) => [name, HealthCheckResponse_ServingStatus[s]]))
  const implementation: HealthServer = {
    check: (call, cb) => {
      const status = known.get(call.request.service)
      if (status != null) cb(null, { status })
      else cb({ code: NOT_FOUND, details: `Health status unknown for service ${call.request.service}` })
    },
    // The statuses never change while the server runs: one message, then the stream stays open until the client leaves.
    watch: (call) => {
      call.write({ status: known.get(call.request.service) ?? HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN })
    },
    list: (_call, cb) => {
      cb(null, { statuses: Object.fromEntries([...known].map(([name, status]) => [name, { status }])) })
    }
  }
  server.addService(HealthService, implementation)
}
