import * as grpc from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { addHealthService } from '../src/grpc-health.js'

/**
 * grpc.health.v1.Health (ts-proto codecs) against a client built from the
 * reference health.proto (grpc-health-check's, via proto-loader), over a real
 * unix socket: what grpc_health_probe and kubelet probes see.
 */
describe('grpc.health.v1.Health', () => {
  const dir = mkdtempSync(join(tmpdir(), 'node-core-health-'))
  const server = new grpc.Server()
  let client: grpc.Client & Record<string, (...args: unknown[]) => unknown>

  beforeAll(async () => {
    addHealthService(server, { '': 'SERVING', 'mycelium.core.v1.NodeStatus': 'SERVING', other: 'NOT_SERVING' })
    const address = `unix://${join(dir, 'h.sock')}`
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => (err != null ? reject(err) : resolve()))
    )
    const definition = loadSync('health/v1/health.proto', {
      keepCase: true,
      enums: String,
      defaults: true,
      includeDirs: [join(require.resolve('grpc-health-check/package.json'), '..', 'proto')]
    })
    const Health = (grpc.loadPackageDefinition(definition) as any).grpc.health.v1.Health
    client = new Health(address, grpc.credentials.createInsecure())
  })

  afterAll(() => {
    client.close()
    server.forceShutdown()
    rmSync(dir, { recursive: true, force: true })
  })

  const unary = (name: string, request: object): Promise<{ err: grpc.ServiceError | null; res: unknown }> =>
    new Promise((resolve) => client[name]!(request, (err: grpc.ServiceError | null, res: unknown) => resolve({ err, res })))

  it('Check answers each known service, and NOT_FOUND for another', async () => {
    expect((await unary('Check', { service: '' })).res).toEqual({ status: 'SERVING' })
    expect((await unary('Check', { service: 'mycelium.core.v1.NodeStatus' })).res).toEqual({ status: 'SERVING' })
    expect((await unary('Check', { service: 'other' })).res).toEqual({ status: 'NOT_SERVING' })
    const unknown = await unary('Check', { service: 'nope' })
    expect([unknown.err?.code, unknown.err?.details]).toEqual([grpc.status.NOT_FOUND, 'Health status unknown for service nope'])
  })

  it('Watch sends the status (SERVICE_UNKNOWN for an unknown service) and stays open', async () => {
    const first = (service: string): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const call = client.Watch!({ service }) as grpc.ClientReadableStream<unknown>
        call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? undefined : reject(err)))
        call.once('data', (m) => {
          resolve(m)
          call.cancel()
        })
      })
    expect(await first('mycelium.core.v1.NodeStatus')).toEqual({ status: 'SERVING' })
    expect(await first('nope')).toEqual({ status: 'SERVICE_UNKNOWN' })
  })

  it('List returns every status', async () => {
    expect((await unary('List', {})).res).toEqual({
      statuses: { '': { status: 'SERVING' }, 'mycelium.core.v1.NodeStatus': { status: 'SERVING' }, other: { status: 'NOT_SERVING' } }
    })
  })
})
