import type * as grpc from '@grpc/grpc-js'
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire'

/**
 * The standard `grpc.health.v1.Health` service (Check, Watch, List) for
 * statuses fixed when the server starts — what the status server serves.
 *
 * Why not grpc-health-check's HealthImplementation: it parses health.proto
 * with @grpc/proto-loader and protobufjs when it is imported, which cost the
 * idle daemon ~1.7 MB of heap and kept server reflection's chunk (protobufjs)
 * loaded from the start (tools/bench footprint, issue #17). The two messages
 * are encoded here by hand with the wire codec the generated contracts use.
 * Behaviour is grpc-health-check's: Check answers NOT_FOUND for an unknown
 * service, Watch sends the status (SERVICE_UNKNOWN for an unknown one) and
 * keeps the stream open, List returns every status.
 */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN'

const STATUS_NUMBER: Record<ServingStatus, number> = { UNKNOWN: 0, SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 }
const STATUS_OF = Object.fromEntries(Object.entries(STATUS_NUMBER).map(([k, v]) => [v, k])) as Record<number, ServingStatus>
/** grpc status NOT_FOUND (not imported: grpc-js's enum is a value import). */
const NOT_FOUND = 5

interface CheckRequest {
  service: string
}
interface CheckResponse {
  status: ServingStatus
}
interface ListResponse {
  statuses: Record<string, CheckResponse>
}

/** HealthCheckRequest { string service = 1 } */
export function encodeCheckRequest(m: CheckRequest): Buffer {
  const w = new BinaryWriter()
  if (m.service !== '') w.tag(1, WireType.LengthDelimited).string(m.service)
  return Buffer.from(w.finish())
}

export function decodeCheckRequest(bytes: Uint8Array): CheckRequest {
  const r = new BinaryReader(bytes)
  const m: CheckRequest = { service: '' }
  while (r.pos < r.len) {
    const [field, wireType] = r.tag()
    if (field === 1 && wireType === WireType.LengthDelimited) m.service = r.string()
    else r.skip(wireType)
  }
  return m
}

const writeStatus = (w: BinaryWriter, m: CheckResponse): BinaryWriter =>
  m.status !== 'UNKNOWN' ? w.tag(1, WireType.Varint).int32(STATUS_NUMBER[m.status]) : w

/** HealthCheckResponse { ServingStatus status = 1 } */
export function encodeCheckResponse(m: CheckResponse): Buffer {
  return Buffer.from(writeStatus(new BinaryWriter(), m).finish())
}

export function decodeCheckResponse(bytes: Uint8Array): CheckResponse {
  const r = new BinaryReader(bytes)
  const m: CheckResponse = { status: 'UNKNOWN' }
  while (r.pos < r.len) {
    const [field, wireType] = r.tag()
    if (field === 1 && wireType === WireType.Varint) m.status = STATUS_OF[r.int32()] ?? 'UNKNOWN'
    else r.skip(wireType)
  }
  return m
}

/** HealthListResponse { map<string, HealthCheckResponse> statuses = 1 } (entry: key = 1, value = 2) */
export function encodeListResponse(m: ListResponse): Buffer {
  const w = new BinaryWriter()
  for (const [key, value] of Object.entries(m.statuses)) {
    w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(key).tag(2, WireType.LengthDelimited).fork()
    writeStatus(w, value).join().join()
  }
  return Buffer.from(w.finish())
}

export function decodeListResponse(bytes: Uint8Array): ListResponse {
  const r = new BinaryReader(bytes)
  const m: ListResponse = { statuses: {} }
  while (r.pos < r.len) {
    const [field, wireType] = r.tag()
    if (field !== 1 || wireType !== WireType.LengthDelimited) {
      r.skip(wireType)
      continue
    }
    const entry = new BinaryReader(r.bytes())
    let key = ''
    let value: CheckResponse = { status: 'UNKNOWN' }
    while (entry.pos < entry.len) {
      const [f, t] = entry.tag()
      if (f === 1 && t === WireType.LengthDelimited) key = entry.string()
      else if (f === 2 && t === WireType.LengthDelimited) value = decodeCheckResponse(entry.bytes())
      else entry.skip(t)
    }
    m.statuses[key] = value
  }
  return m
}

const method = <Req, Res>(name: string, responseStream: boolean, decodeReq: (b: Uint8Array) => Req, encodeRes: (m: Res) => Buffer) => ({
  path: `/grpc.health.v1.Health/${name}`,
  requestStream: false,
  responseStream,
  requestSerialize: (m: Req) => (name === 'List' ? Buffer.alloc(0) : encodeCheckRequest(m as CheckRequest)),
  requestDeserialize: (b: Buffer) => decodeReq(b),
  responseSerialize: (m: Res) => encodeRes(m),
  responseDeserialize: (b: Buffer) => (name === 'List' ? decodeListResponse(b) : decodeCheckResponse(b)) as Res,
  originalName: name.charAt(0).toLowerCase() + name.slice(1)
})

/** The grpc.health.v1.Health service definition (also usable by a client: `grpc.makeGenericClientConstructor`). */
export const HEALTH_SERVICE = {
  Check: method<CheckRequest, CheckResponse>('Check', false, decodeCheckRequest, encodeCheckResponse),
  Watch: method<CheckRequest, CheckResponse>('Watch', true, decodeCheckRequest, encodeCheckResponse),
  List: method<Record<string, never>, ListResponse>('List', false, () => ({}), encodeListResponse)
} satisfies grpc.ServiceDefinition

/** Adds grpc.health.v1.Health answering `statuses` (service name → status; '' is the server as a whole). */
export function addHealthService(server: grpc.Server, statuses: Readonly<Record<string, ServingStatus>>): void {
  const known = new Map(Object.entries(statuses))
  server.addService(HEALTH_SERVICE, {
    Check: (call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>, cb: grpc.sendUnaryData<CheckResponse>) => {
      const status = known.get(call.request.service)
      if (status != null) cb(null, { status })
      else cb({ code: NOT_FOUND, details: `Health status unknown for service ${call.request.service}` })
    },
    // The statuses never change while the server runs: one message, then the stream stays open until the client leaves.
    Watch: (call: grpc.ServerWritableStream<CheckRequest, CheckResponse>) => {
      call.write({ status: known.get(call.request.service) ?? 'SERVICE_UNKNOWN' })
    },
    List: (_call: grpc.ServerUnaryCall<Record<string, never>, ListResponse>, cb: grpc.sendUnaryData<ListResponse>) => {
      cb(null, { statuses: Object.fromEntries([...known].map(([name, status]) => [name, { status }])) })
    }
  })
}
