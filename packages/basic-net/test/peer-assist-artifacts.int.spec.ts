import { createHash, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { PeerAssistClient, type FetchArtifactResponse } from '@mycelium/core-interfaces'
import {
  ARTIFACT_CHUNK_BYTES,
  clientCredentials,
  createPeerAssistServer,
  defaultChannelOptions,
  type IdentityStore,
  type PeerAssistServer
} from '../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { enrolledIdentity, tempDir } from './helpers/pki.js'

/**
 * PeerAssist.FetchArtifact over real mTLS: a peer serves only an artifact it
 * holds by digest, no larger than its limit, from the offset asked, in
 * bounded chunks; anything else is a named gRPC status.
 */
const NET = 'net-art'
let ca: CertificateAuthority
let tmp: ReturnType<typeof tempDir>
let nodeA: IdentityStore
let nodeB: IdentityStore
let server: PeerAssistServer
let client: PeerAssistClient
const bytes = randomBytes(3 * ARTIFACT_CHUNK_BYTES + 1234)
const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`

beforeAll(async () => {
  tmp = tempDir('basic-net-artifacts-')
  ca = await CertificateAuthority.create(NET)
  nodeA = await enrolledIdentity(ca, 'node', 'node-a', tmp.dir)
  nodeB = await enrolledIdentity(ca, 'node', 'node-b', tmp.dir)
  const path = join(tmp.dir, 'held.tar.gz')
  writeFileSync(path, bytes)
  const big = `sha256:${'b'.repeat(64)}`
  server = createPeerAssistServer(
    {
      identity: nodeA,
      artifacts: async (d) => (d === digest ? { path, size: bytes.length } : d === big ? { path, size: 2 ** 40 } : undefined)
    },
    { networkId: NET, nodeId: 'node-a' }
  )
  await server.start()
  client = new PeerAssistClient(server.address, clientCredentials(nodeB, { networkId: NET, role: 'node' }), defaultChannelOptions(NET))
})

afterAll(async () => {
  client?.close()
  await server?.stop()
  nodeA?.stop()
  nodeB?.stop()
  tmp?.cleanup()
})

async function fetch(d: string, offset: number): Promise<FetchArtifactResponse[]> {
  const chunks: FetchArtifactResponse[] = []
  for await (const c of client.fetchArtifact({ digest: d, offset }, new grpc.Metadata(), {
    deadline: Date.now() + 20_000
  }) as AsyncIterable<FetchArtifactResponse>)
    chunks.push(c)
  return chunks
}
const status = async (p: Promise<unknown>): Promise<grpc.status | undefined> => {
  try {
    await p
  } catch (err) {
    return (err as grpc.ServiceError).code
  }
  return undefined
}

describe('PeerAssist.FetchArtifact (real mTLS)', () => {
  it('streams a held artifact in order, from the offset asked, in bounded chunks', async () => {
    const all = await fetch(digest, 0)
    expect(Buffer.concat(all.map((c) => c.data))).toEqual(bytes)
    expect(all.every((c) => c.data.length <= ARTIFACT_CHUNK_BYTES && c.totalSize === bytes.length)).toBe(true)
    expect(all.map((c) => c.offset)).toEqual(all.map((_, i) => i * ARTIFACT_CHUNK_BYTES))
    const rest = await fetch(digest, 100_000)
    expect(rest[0]!.offset).toBe(100_000)
    expect(Buffer.concat(rest.map((c) => c.data))).toEqual(bytes.subarray(100_000))
    expect(await fetch(digest, bytes.length)).toEqual([])
  })

  it('refuses what it does not hold, an oversized artifact, a bad digest and an offset past the end', async () => {
    expect(await status(fetch(`sha256:${'a'.repeat(64)}`, 0))).toBe(grpc.status.NOT_FOUND)
    expect(await status(fetch(`sha256:${'b'.repeat(64)}`, 0))).toBe(grpc.status.NOT_FOUND)
    expect(await status(fetch('md5:abc', 0))).toBe(grpc.status.INVALID_ARGUMENT)
    expect(await status(fetch(digest, bytes.length + 1))).toBe(grpc.status.OUT_OF_RANGE)
  })
})
