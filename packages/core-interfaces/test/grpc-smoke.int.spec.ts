import * as grpc from '@grpc/grpc-js'
import {
  SporeServiceClient,
  SporeServiceService,
  type SporeServiceServer,
  SignedSpore,
  Spore,
  type WatchSporesResponse
} from '../src/index.js'
import { createTestPki, type TestPki } from '@mycelium/testing'

// The generated service definition and client really talk to each other:
// a grpc-js server on 127.0.0.1:0 over mTLS serving SporeService, called
// with the generated client (unary + server stream + a status error).

const NETWORK = 'net1'

function signedSpore(name: string, sequence: number): SignedSpore {
  const spore = Spore.encode({
    networkId: NETWORK,
    name,
    sequence,
    issuedAt: new Date('2026-01-01T00:00:00Z'),
    expiresAt: new Date('2027-01-01T00:00:00Z'),
    body: {
      $case: 'service',
      value: { service: 'network-manager', endpoints: [{ address: '127.0.0.1:7000', expectedIdentity: '', zone: 'a', priority: 1 }] }
    }
  }).finish()
  return { spore: Buffer.from(spore), signatures: [{ keyId: 'k1', signature: Buffer.alloc(64, 7) }] }
}

describe('generated v1 code over real grpc-js mTLS', () => {
  let pki: TestPki
  let server: grpc.Server
  let client: SporeServiceClient
  let seenPeerCertSubject: string | undefined
  const spores = [signedSpore('service/network-manager', 3), signedSpore('service/spore-manager', 1)]

  beforeAll(async () => {
    pki = createTestPki(NETWORK)
    const manager = pki.issue('spore-manager', `spiffe://${NETWORK}/manager/spore-manager`)
    const node = pki.issue('node-1', `spiffe://${NETWORK}/node/node-1`)

    const impl: SporeServiceServer = {
      getSpore(call, callback) {
        const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN
        seenPeerCertSubject = Array.isArray(cn) ? cn[0] : cn
        const found = spores.find((s) => Spore.decode(s.spore).name === call.request.name)
        if (found == null) {
          callback({ code: grpc.status.NOT_FOUND, details: `no spore named "${call.request.name}"` })
          return
        }
        callback(null, { spore: found })
      },
      listSpores(call, callback) {
        const prefix = call.request.namePrefix
        callback(null, { spores: spores.filter((s) => Spore.decode(s.spore).name.startsWith(prefix)) })
      },
      watchSpores(call) {
        const known = call.request.knownSequences
        const fresh = spores.filter((s) => {
          const spore = Spore.decode(s.spore)
          return spore.sequence > (known[spore.name] ?? 0)
        })
        call.write({ spores: fresh, snapshotComplete: true })
        call.end()
      }
    }

    server = new grpc.Server()
    server.addService(SporeServiceService, impl)
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(
        '127.0.0.1:0',
        grpc.ServerCredentials.createSsl(pki.caPem, [{ private_key: manager.keyPem, cert_chain: manager.certPem }], true),
        (err, p) => (err != null ? reject(err) : resolve(p))
      )
    })
    client = new SporeServiceClient(`127.0.0.1:${port}`, grpc.credentials.createSsl(pki.caPem, node.keyPem, node.certPem))
  })

  afterAll(async () => {
    client?.close()
    await new Promise<void>((resolve) => (server == null ? resolve() : server.tryShutdown(() => resolve())))
    pki?.cleanup()
  })

  it('answers a unary call and the oneof body survives the round trip', async () => {
    const res = await new Promise<SignedSpore | undefined>((resolve, reject) =>
      client.getSpore({ name: 'service/network-manager' }, (err, r) => (err != null ? reject(err) : resolve(r.spore)))
    )
    expect(seenPeerCertSubject).toBe('node-1')
    const spore = Spore.decode(res!.spore)
    expect(spore.sequence).toBe(3)
    expect(spore.expiresAt).toEqual(new Date('2027-01-01T00:00:00Z'))
    expect(spore.body?.$case).toBe('service')
    if (spore.body?.$case === 'service') {
      expect(spore.body.value.endpoints[0]?.address).toBe('127.0.0.1:7000')
    }
    expect(res!.signatures[0]?.signature).toEqual(Buffer.alloc(64, 7))
  })

  it('carries a status error to the client', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => client.getSpore({ name: 'nope' }, (e) => resolve(e!)))
    expect(err.code).toBe(grpc.status.NOT_FOUND)
    expect(err.details).toContain('nope')
  })

  it('streams only spores newer than the caller knows', async () => {
    const batches: WatchSporesResponse[] = []
    await new Promise<void>((resolve, reject) => {
      const stream = client.watchSpores({ namePrefix: '', knownSequences: { 'service/network-manager': 3 } })
      stream.on('data', (b: WatchSporesResponse) => batches.push(b))
      stream.on('error', reject)
      stream.on('end', resolve)
    })
    expect(batches).toHaveLength(1)
    expect(batches[0]!.snapshotComplete).toBe(true)
    expect(batches[0]!.spores.map((s) => Spore.decode(s.spore).name)).toEqual(['service/spore-manager'])
  })

  it('refuses a client without a certificate (mTLS required)', async () => {
    const address = client.getChannel().getTarget().replace(/^dns:/, '')
    const anonymous = new SporeServiceClient(address, grpc.credentials.createSsl(pki.caPem))
    try {
      const err = await new Promise<grpc.ServiceError>((resolve) =>
        anonymous.listSpores({ namePrefix: '' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e!))
      )
      expect(err).toBeDefined()
      expect(err.code).toBe(grpc.status.UNAVAILABLE)
    } finally {
      anonymous.close()
    }
  })
})
