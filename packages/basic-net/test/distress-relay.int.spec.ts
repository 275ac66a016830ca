import * as grpc from '@grpc/grpc-js'
import { Distress, DistressProblem, PeerAssistClient, Phase, type RelayDistressResponse } from '@mycelium/core-interfaces'
import { CertificateAuthority } from '@mycelium/dev-pki'
import {
  clientCredentials,
  createPeerAssistServer,
  defaultChannelOptions,
  signDistress,
  type IdentityStore,
  type PeerAssistServer,
  type SignedDistressRelay
} from '../src/index.js'
import { enrolledIdentity, tempDir } from './helpers/pki.js'

/**
 * A signed call for help through PeerAssist (real mTLS): verified (signer =
 * the node named), deduplicated, hop-limited, rate-limited per sending peer,
 * and handed on with one hop less.
 */
const NET = 'net1'
let tmp: ReturnType<typeof tempDir>
let relayNode: IdentityStore
let caller: IdentityStore
let foreign: IdentityStore
let server: PeerAssistServer
const handed: SignedDistressRelay[] = []

beforeAll(async () => {
  tmp = tempDir('basic-net-distress-')
  const ca = await CertificateAuthority.create(NET)
  relayNode = await enrolledIdentity(ca, 'node', 'relay', tmp.dir)
  caller = await enrolledIdentity(ca, 'node', 'caller', tmp.dir)
  foreign = await enrolledIdentity(await CertificateAuthority.create(NET), 'node', 'caller', tmp.dir + '/foreign')
  server = createPeerAssistServer(
    {
      identity: relayNode,
      onSignedDistress: async (relay) => {
        handed.push(relay)
        return { delivered: true, reason: 'ok' }
      }
    },
    { networkId: NET, nodeId: 'relay', distressRate: { burst: 6, perSecond: 0.001 } }
  )
  await server.start()
})
afterAll(async () => {
  await server?.stop()
  for (const i of [relayNode, caller, foreign]) i?.stop()
  tmp?.cleanup()
})

const distress = (id: string, nodeId = 'caller'): Distress => ({
  distressId: id,
  node: { networkId: NET, nodeId, spiffeId: `spiffe://${NET}/node/${nodeId}`, certificateSha256: '' },
  phase: Phase.FALLBACK,
  problem: DistressProblem.MANAGERS_UNREACHABLE,
  evidence: ['lost'],
  raisedAt: new Date()
})
const send = (envelope: ReturnType<typeof signDistress>): Promise<RelayDistressResponse> => {
  const client = new PeerAssistClient(
    server.address,
    clientCredentials(caller, { networkId: NET, role: 'node' }),
    defaultChannelOptions(NET)
  )
  return new Promise((resolve, reject) =>
    client.relayDistress({ envelope }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => {
      client.close()
      if (err != null) reject(err)
      else resolve(res)
    })
  )
}
const code = async (p: Promise<unknown>): Promise<grpc.status> => {
  try {
    await p
  } catch (err) {
    return (err as grpc.ServiceError).code
  }
  throw new Error('expected a refusal')
}

describe('RelayDistress with a signed envelope', () => {
  it('hands a verified call on with one hop less, once; a repeat is dropped', async () => {
    expect((await send(signDistress(distress('s-1'), caller.material()!, 2))).delivered).toBe(true)
    expect(handed).toHaveLength(1)
    expect(handed[0]).toMatchObject({ from: 'caller', verified: { nodeId: 'caller' }, envelope: { hopsRemaining: 1 } })
    expect(await send(signDistress(distress('s-1'), caller.material()!, 2))).toEqual({ delivered: false, reason: 'already relayed' })
    expect(handed).toHaveLength(1)
  })

  it('drops a call with no hops left', async () => {
    expect(await send(signDistress(distress('s-2'), caller.material()!, 0))).toEqual({ delivered: false, reason: 'hop limit reached' })
  })

  it('refuses an altered call (bad signature) and one signed by a key of another CA', async () => {
    const env = signDistress(distress('s-3'), caller.material()!, 2)
    env.distress = Buffer.from(Distress.encode({ ...distress('s-3'), evidence: ['altered by a relay'] }).finish())
    expect(await code(send(env))).toBe(grpc.status.PERMISSION_DENIED)
    expect(await code(send(signDistress(distress('s-4'), foreign.material()!, 2)))).toBe(grpc.status.PERMISSION_DENIED)
  })

  it('rate-limits calls per sending peer (RESOURCE_EXHAUSTED)', async () => {
    const codes: Array<grpc.status | 'ok'> = []
    for (let i = 0; i < 4; i++)
      codes.push(await code(send(signDistress(distress(`r-${i}`), caller.material()!, 2))).catch(() => 'ok' as const))
    expect(codes.at(-1)).toBe(grpc.status.RESOURCE_EXHAUSTED)
  })
})
