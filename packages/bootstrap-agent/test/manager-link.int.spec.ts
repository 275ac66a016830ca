import * as grpc from '@grpc/grpc-js'
import { HealthState, NetworkManagerService, Phase, type ReportHealthRequest, type ReportHealthResponse } from '@mycelium/core-interfaces'
import { until } from '@mycelium/testing'
import { ManagerLink, type LinkFailure } from '../src/manager-link.js'

/**
 * handoff.missedAcksBeforeFallback reaches the heartbeat loop: against a
 * real gRPC server that reads heartbeats and never acks, the link is
 * declared down when that many beats are outstanding — counted in beats the
 * server received, not in time.
 */
describe('manager link: missed acks before fallback', () => {
  let server: grpc.Server
  let address: string
  const received: ReportHealthRequest[] = []
  let ack = false

  beforeAll(async () => {
    server = new grpc.Server()
    const unimplemented = (_call: unknown, cb: (err: Partial<grpc.ServiceError>) => void): void => cb({ code: grpc.status.UNIMPLEMENTED })
    server.addService(NetworkManagerService, {
      enroll: unimplemented,
      registerNode: unimplemented,
      commitHandoff: unimplemented,
      requestAssignments: unimplemented,
      requestConfigUpdate: unimplemented,
      renewCertificate: unimplemented,
      reportHealth: (call: grpc.ServerDuplexStream<ReportHealthRequest, ReportHealthResponse>) => {
        call.on('data', (req: ReportHealthRequest) => {
          received.push(req)
          if (ack) call.write({ sequence: req.sequence, leaseRevoked: false, reason: '', latestConfigVersion: 0, assignmentsGeneration: 0 })
        })
        call.on('error', () => undefined)
      }
    } as unknown as grpc.UntypedServiceImplementation)
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)))
    )
    address = `127.0.0.1:${port}`
  })
  afterAll(() => server.forceShutdown())

  const run = async (missedAcks: number): Promise<{ failure: LinkFailure; beats: number }> => {
    received.length = 0
    const link = new ManagerLink({ credentials: grpc.credentials.createInsecure(), dialTimeoutMs: 2000 })
    await link.connect([{ address, expectedIdentity: '', zone: '', priority: 0 }], new AbortController().signal)
    const failure = await new Promise<LinkFailure>((resolve) =>
      link.startHeartbeats('lease-1', 100, Date.now() + 3_600_000, {
        report: () => ({
          phase: Phase.MANAGED,
          state: HealthState.HEALTHY,
          components: [],
          workloads: [],
          configVersion: 0,
          dynamicComponents: [],
          appliedAssignmentsGeneration: 0
        }),
        onAck: () => undefined,
        onLost: resolve,
        missedAcks: () => missedAcks
      })
    )
    // The beats the link wrote before giving up all reach the server — waited for before the
    // close, which would cut the stream under a beat still in flight.
    await until('the written heartbeats at the server', () => received.length >= missedAcks)
    link.close()
    const beats = received.length
    return { failure, beats }
  }

  it.each([2, 5])('declares the link down after %i unanswered heartbeats', async (n) => {
    ack = false
    const { failure, beats } = await run(n)
    expect(failure.message).toBe(`${n} heartbeats unanswered in a row (missedAcksBeforeFallback ${n})`)
    expect(beats).toBe(n)
    expect(received.map((r) => r.sequence)).toEqual(Array.from({ length: n }, (_, i) => i + 1))
  })
})
