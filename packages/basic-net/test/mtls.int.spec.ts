import * as grpc from '@grpc/grpc-js'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import tls from 'node:tls'
import { readFileSync, writeFileSync } from 'node:fs'
import { PeerAssistClient, Phase, type PingResponse } from '@mycelium/core-interfaces'
import {
  clientCredentials,
  createPeerAssistServer,
  endpointCredentials,
  requirementForEndpoint,
  defaultChannelOptions,
  type IdentityStore,
  type PeerAssistServer
} from '../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { enrolledIdentity, rawIdentity, tempDir } from './helpers/pki.js'

const NET = 'net1'
let ca: CertificateAuthority
let otherCa: CertificateAuthority
let tmp: ReturnType<typeof tempDir>
let nodeA: IdentityStore
let nodeB: IdentityStore
let server: PeerAssistServer
const clients: grpc.Client[] = []

function ping(client: PeerAssistClient): Promise<PingResponse> {
  return new Promise((resolve, reject) =>
    client.ping({ sequence: 7, phase: Phase.MANAGED }, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, res) =>
      err != null ? reject(err) : resolve(res)
    )
  )
}

function client(address: string, creds: grpc.ChannelCredentials): PeerAssistClient {
  const c = new PeerAssistClient(address, creds, defaultChannelOptions(NET))
  clients.push(c)
  return c
}

const rawCreds = (m: { keyPem: Buffer; certPem: Buffer } | undefined, caPem: string, check?: grpc.VerifyOptions) =>
  grpc.credentials.createSsl(Buffer.from(caPem), m?.keyPem ?? null, m?.certPem ?? null, check ?? { checkServerIdentity: () => undefined })

beforeAll(async () => {
  tmp = tempDir('basic-net-mtls-')
  ca = await CertificateAuthority.create(NET)
  otherCa = await CertificateAuthority.create(NET, { commonName: 'impostor CA' })
  nodeA = await enrolledIdentity(ca, 'node', 'node-a', tmp.dir, { reloadIntervalMs: 100 })
  nodeB = await enrolledIdentity(ca, 'node', 'node-b', tmp.dir)
  server = createPeerAssistServer(
    { identity: nodeA, state: () => ({ phase: Phase.FALLBACK, managersReachable: false }) },
    { networkId: NET, nodeId: 'node-a' }
  )
  await server.start()
})

afterAll(async () => {
  for (const c of clients) c.close()
  await server?.stop()
  nodeA?.stop()
  nodeB?.stop()
  tmp?.cleanup()
})

describe('mTLS between nodes (real TLS, certificates from a CA made in the test)', () => {
  it('succeeds between two nodes of the network, and the server learns who called', async () => {
    const res = await ping(client(server.address, clientCredentials(nodeB, { networkId: NET, role: 'node' })))
    expect(res.sequence).toBe(7)
    expect(res.phase).toBe(Phase.FALLBACK)
    expect(res.identity?.spiffeId).toBe('spiffe://net1/node/node-a')
  })

  it('refuses a client certificate from another CA', async () => {
    const impostor = await rawIdentity(otherCa, 'spiffe://net1/node/node-b')
    const err = (await ping(client(server.address, rawCreds(impostor, ca.certificatePem))).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.UNAVAILABLE)
  })

  it('refuses an expired client certificate', async () => {
    const expired = await rawIdentity(ca, 'spiffe://net1/node/node-b', {
      notBefore: new Date(Date.now() - 2 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000)
    })
    const err = (await ping(client(server.address, rawCreds(expired, ca.certificatePem))).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.UNAVAILABLE)
  })

  it('refuses a client without a certificate', async () => {
    const err = (await ping(client(server.address, rawCreds(undefined, ca.certificatePem))).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.UNAVAILABLE)
  })

  it('refuses a manager certificate where a node is required, saying so', async () => {
    const manager = await rawIdentity(ca, 'spiffe://net1/manager/network-manager')
    const err = (await ping(client(server.address, rawCreds(manager, ca.certificatePem))).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED)
    expect(err.details).toContain('spiffe://net1/manager/network-manager is a manager identity; a node identity is required')
  })

  it('a client requiring a manager refuses a node certificate, saying so', async () => {
    const err = (await ping(client(server.address, clientCredentials(nodeB, { networkId: NET, role: 'manager' }))).catch(
      (e: unknown) => e
    )) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.UNAVAILABLE)
    expect(err.details).toContain('spiffe://net1/node/node-a is a node identity; a manager identity is required')
  })

  it('a client refuses a server certificate from another CA, and an expired one, with the TLS reason', async () => {
    const impostor = await rawIdentity(otherCa, 'spiffe://net1/node/node-x')
    const expired = await rawIdentity(ca, 'spiffe://net1/node/node-y', {
      notBefore: new Date(Date.now() - 2 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000)
    })
    for (const [material, reason] of [
      [impostor, /self.signed|unable to verify|unknown ca/i],
      [expired, /certificate has expired/]
    ] as const) {
      const srv = new grpc.Server()
      srv.addService((await import('@mycelium/core-interfaces')).PeerAssistService, {
        ping: (_c: unknown, cb: grpc.sendUnaryData<PingResponse>) => cb(null, { sequence: 1, phase: 0, managersReachable: false }),
        getSpores: () => undefined,
        relayDistress: () => undefined
      } as never)
      const port = await new Promise<number>((res, rej) =>
        srv.bindAsync(
          '127.0.0.1:0',
          grpc.ServerCredentials.createSsl(null, [{ private_key: material.keyPem, cert_chain: material.certPem }], false),
          (e, p) => (e != null ? rej(e) : res(p))
        )
      )
      try {
        const err = (await ping(client(`127.0.0.1:${port}`, clientCredentials(nodeB, { networkId: NET, role: 'node' }))).catch(
          (e: unknown) => e
        )) as grpc.ServiceError
        expect(err.code).toBe(grpc.status.UNAVAILABLE)
        expect(err.details).toMatch(reason)
      } finally {
        srv.forceShutdown()
      }
    }
  })

  it('enforces Endpoint.expected_identity per endpoint: a Spore Manager certificate does not pass as the Network Manager', async () => {
    const sporeManager = await rawIdentity(ca, 'spiffe://net1/manager/spore-manager')
    const srv = new grpc.Server()
    srv.addService((await import('@mycelium/core-interfaces')).PeerAssistService, {
      ping: (_c: unknown, cb: grpc.sendUnaryData<PingResponse>) => cb(null, { sequence: 1, phase: 0, managersReachable: false }),
      getSpores: () => undefined,
      relayDistress: () => undefined
    } as never)
    const port = await new Promise<number>((res, rej) =>
      srv.bindAsync(
        '127.0.0.1:0',
        grpc.ServerCredentials.createSsl(null, [{ private_key: sporeManager.keyPem, cert_chain: sporeManager.certPem }], false),
        (e, p) => (e != null ? rej(e) : res(p))
      )
    )
    const address = `127.0.0.1:${port}`
    const credsFor = endpointCredentials(nodeB, { networkId: NET, role: 'manager' })
    const endpoint = (expectedIdentity: string) => ({ address, expectedIdentity, zone: '', priority: 0 })
    try {
      // The identity it announces: accepted; none announced: any manager (proto: "Empty: any identity of the role").
      expect((await ping(client(address, credsFor(endpoint('spiffe://net1/manager/spore-manager'))))).sequence).toBe(1)
      expect((await ping(client(address, credsFor(endpoint(''))))).sequence).toBe(1)
      const refusals: Array<[string, RegExp]> = [
        ['spiffe://net1/manager/network-manager', /is not the expected manager "network-manager"/],
        ['spiffe://net2/manager/spore-manager', /not a manager of network "net1"/],
        ['spiffe://net1/node/spore-manager', /not a manager of network "net1"/],
        ['not a spiffe id', /is not spiffe:\/\//]
      ]
      for (const [expected, reason] of refusals) {
        const err = (await ping(client(address, credsFor(endpoint(expected)))).catch((e: unknown) => e)) as grpc.ServiceError
        expect(err.code).toBe(grpc.status.UNAVAILABLE)
        expect(err.details).toMatch(reason)
      }
      expect(() => requirementForEndpoint(endpoint('spiffe://net1/manager/x'), { networkId: NET, role: 'manager', name: 'y' })).toThrow(
        /not a manager "y"/
      )
    } finally {
      srv.forceShutdown()
    }
  })

  it('picks up renewed certificate files for new connections without restarting the server', async () => {
    const seen: string[] = []
    const observe = (): grpc.ChannelCredentials =>
      grpc.experimental.createCertificateProviderChannelCredentials(nodeB, nodeB, {
        checkServerIdentity: (_h, cert) => {
          seen.push(cert.serialNumber)
          return undefined
        }
      })
    await ping(client(server.address, observe()))
    const before = seen.at(-1)!
    // Renew: a new certificate for the same key, written over the file (as enrolment renewal would).
    const { X509Certificate, createPrivateKey, createPublicKey } = await import('node:crypto')
    const keyPem = nodeA.material()!.keyPem
    const renewed = await ca.issue('spiffe://net1/node/node-a', createPublicKey(createPrivateKey(keyPem)))
    const certFile = `${tmp.dir}/node-node-a.crt`
    writeFileSync(certFile, renewed)
    await nodeA.reload()
    expect(new X509Certificate(readFileSync(certFile)).serialNumber).not.toBe(before)
    await ping(client(server.address, observe())) // a new channel → a new TLS connection
    expect(seen.at(-1)).toBe(new X509Certificate(renewed).serialNumber)
    expect(seen.at(-1)).not.toBe(before)
  })

  it('a client builds one TLS context per identity for all its connections, and presents a renewed certificate on the next', async () => {
    const nodeC = await enrolledIdentity(ca, 'node', 'node-c', tmp.dir)
    // A plain TLS server that records the client certificate of every handshake (then hangs up: no HTTP/2 needed).
    const presented: string[] = []
    const m = nodeA.material()!
    const recorder = tls.createServer(
      { key: m.keyPem, cert: m.certificateChainPem, ca: m.caPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] },
      (socket) => {
        presented.push((socket.getPeerCertificate() as { serialNumber: string }).serialNumber)
        socket.destroy()
      }
    )
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve))
    const address = `127.0.0.1:${(recorder.address() as { port: number }).port}`
    const contexts = jest.spyOn(tls, 'createSecureContext')
    // Each channel its own subchannel (no sharing through grpc-js's global pool), so each one connects.
    const own = (credentials: grpc.ChannelCredentials): PeerAssistClient => {
      const c = new PeerAssistClient(address, credentials, { ...defaultChannelOptions(NET), 'grpc.use_local_subchannel_pool': 1 })
      clients.push(c)
      return c
    }
    try {
      const credentials = clientCredentials(nodeC, { networkId: NET, role: 'node' })
      for (let i = 0; i < 3; i++) await ping(own(credentials)).catch(() => undefined) // three channels, three connections
      const first = new X509Certificate(nodeC.material()!.certificateChainPem).serialNumber
      expect(presented.length).toBeGreaterThanOrEqual(3)
      expect(new Set(presented)).toEqual(new Set([first]))
      expect(contexts).toHaveBeenCalledTimes(1)

      const renewed = await ca.issueFromCsr(await nodeC.createCsr())
      await nodeC.install(renewed.certificatePem)
      await ping(own(credentials)).catch(() => undefined)
      expect(presented.at(-1)).toBe(new X509Certificate(renewed.certificatePem).serialNumber)
      expect(contexts).toHaveBeenCalledTimes(2)
    } finally {
      contexts.mockRestore()
      recorder.close()
      nodeC.stop()
    }
  })

  it('refuses TLS 1.1 (openssl s_client)', async () => {
    const port = server.port
    const out = await new Promise<string>((resolve) => {
      const child = execFile(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_1'],
        { timeout: 10_000 },
        (_e, stdout, stderr) => resolve(`${stdout}\n${stderr}`)
      )
      // Keep stdin open a moment so a refusal is not mistaken for a clean close.
      setTimeout(() => child.stdin?.end(), 1000)
    })
    expect(out).toMatch(/no protocols available|unsupported protocol|wrong version number|alert protocol version|handshake failure/i)
    expect(out).not.toMatch(/Cipher is (?!\(NONE\))/)
  })
})
