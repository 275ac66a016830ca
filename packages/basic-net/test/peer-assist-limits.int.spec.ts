import * as grpc from '@grpc/grpc-js'
import { PeerAssistClient, Phase, type RelayDistressResponse } from '@mycelium/core-interfaces'
import {
  clientCredentials,
  createPeerAssistServer,
  defaultChannelOptions,
  PEER_ASSIST_MAX_REQUEST_BYTES,
  type IdentityStore,
  type PeerAssistServer
} from '../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { enrolledIdentity, tempDir } from './helpers/pki.js'

/**
 * Class 8 of the hostile-input issue: one peer must not pin memory through
 * PeerAssist. Sizes are bounded per rpc (before buffering for the largest,
 * at decoding for the others), distress ids have a grammar, and the dedup
 * memory is bounded by bytes as well as by count.
 */
const NET = 'net1'
let ca: CertificateAuthority
let tmp: ReturnType<typeof tempDir>
let nodeA: IdentityStore
let nodeB: IdentityStore
let server: PeerAssistServer
let client: PeerAssistClient
const relayed: string[] = []

beforeAll(async () => {
  tmp = tempDir('basic-net-limits-')
  ca = await CertificateAuthority.create(NET)
  nodeA = await enrolledIdentity(ca, 'node', 'node-a', tmp.dir)
  nodeB = await enrolledIdentity(ca, 'node', 'node-b', tmp.dir)
  server = createPeerAssistServer(
    {
      identity: nodeA,
      state: () => ({ phase: Phase.MANAGED, managersReachable: true }),
      onDistress: async (signal) => {
        relayed.push(signal.distressId)
        return { delivered: true, reason: 'ok' }
      }
    },
    { networkId: NET, nodeId: 'node-a', distressMemoryBytes: 4096 }
  )
  await server.start()
  client = new PeerAssistClient(server.address, clientCredentials(nodeB, { networkId: NET, role: 'node' }), {
    ...defaultChannelOptions(NET),
    'grpc.max_send_message_length': 64 * 1024 * 1024
  })
})

afterAll(async () => {
  client?.close()
  await server?.stop()
  nodeA?.stop()
  nodeB?.stop()
  tmp?.cleanup()
})

const relay = (distressId: string, reason = 'lost'): Promise<RelayDistressResponse> =>
  new Promise((resolve, reject) =>
    client.relayDistress(
      { signal: { distressId, phase: Phase.FALLBACK, reason, hopsRemaining: 2, node: undefined, raisedAt: new Date() } },
      new grpc.Metadata(),
      { deadline: Date.now() + 10_000 },
      (err, res) => (err != null ? reject(err) : resolve(res))
    )
  )
const refusal = async (p: Promise<unknown>): Promise<grpc.ServiceError> => {
  try {
    await p
  } catch (err) {
    return err as grpc.ServiceError
  }
  throw new Error('expected a refusal')
}

describe('PeerAssist limits (real mTLS)', () => {
  it('relays a well-formed signal once and drops its repeat', async () => {
    expect((await relay('d-1')).delivered).toBe(true)
    expect(await relay('d-1')).toEqual({ delivered: false, reason: 'already relayed' })
    expect(relayed).toEqual(['d-1'])
  })

  it('refuses 4 MB distress ids before they are remembered', async () => {
    const before = server.distressMemoryUsage()
    for (let i = 0; i < 5; i++) {
      const err = await refusal(relay(`${i}${'x'.repeat(4 * 1024 * 1024)}`))
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
    }
    expect(server.distressMemoryUsage()).toEqual(before)
  })

  it('refuses a request over its rpc limit although under the server limit', async () => {
    const err = await refusal(relay('d-2', 'r'.repeat(PEER_ASSIST_MAX_REQUEST_BYTES.relayDistress + 10)))
    expect(err.code).toBe(grpc.status.INTERNAL)
    expect(err.details).toMatch(/deserializing request/)
  })

  it.each([
    ['a 65-character id', 'x'.repeat(65)],
    ['spaces', 'a b'],
    ['a NUL', 'a\u0000'],
    ['non-ASCII', 'dé']
  ])('refuses a distress id with %s (INVALID_ARGUMENT)', async (_what, id) => {
    const err = await refusal(relay(id))
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT)
  })

  it('bounds the dedup memory by bytes: many distinct ids keep it under the limit', async () => {
    for (let i = 0; i < 200; i++) await relay(`${String(i).padStart(4, '0')}-${'y'.repeat(59)}`)
    const usage = server.distressMemoryUsage()
    expect(usage.bytes).toBeLessThanOrEqual(4096)
    expect(usage.ids).toBeLessThanOrEqual(Math.floor(4096 / 64))
    // The newest is still remembered.
    expect((await relay(`0199-${'y'.repeat(59)}`)).reason).toBe('already relayed')
  })
})
