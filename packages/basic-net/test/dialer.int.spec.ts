import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { PeerAssistClient, isAbortError, isUnavailableError, type Endpoint } from '@mycelium/core-interfaces'
import {
  clientCredentials,
  createPeerAssistServer,
  defaultChannelOptions,
  dialFirst,
  watchConnectivity,
  type IdentityStore,
  type PeerAssistServer
} from '../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { enrolledIdentity, tempDir } from './helpers/pki.js'

const NET = 'net1'
const ep = (address: string): Endpoint => ({ address, expectedIdentity: '', zone: '', priority: 0 })

describe('dialFirst (happy eyeballs over real mTLS)', () => {
  let tmp: ReturnType<typeof tempDir>
  let server: PeerAssistServer
  let client: IdentityStore
  let serverId: IdentityStore
  let blackhole: Server
  let blackholeAddress: string
  const sockets = new Set<import('node:net').Socket>()
  let closedAddress: string

  beforeAll(async () => {
    tmp = tempDir('basic-net-dial-')
    const ca = await CertificateAuthority.create(NET)
    serverId = await enrolledIdentity(ca, 'node', 'srv', tmp.dir)
    client = await enrolledIdentity(ca, 'node', 'cli', tmp.dir)
    server = createPeerAssistServer({ identity: serverId }, { networkId: NET, nodeId: 'srv' })
    await server.start()
    // Accepts TCP and never speaks: a dial to it can only time out.
    blackhole = createServer((socket) => sockets.add(socket))
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r))
    blackholeAddress = `127.0.0.1:${(blackhole.address() as AddressInfo).port}`
    const closed = createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    closedAddress = `127.0.0.1:${(closed.address() as AddressInfo).port}`
    await new Promise<void>((r) => closed.close(() => r()))
  })
  afterAll(async () => {
    await server.stop()
    for (const s of sockets) s.destroy()
    await new Promise<void>((r) => blackhole.close(() => r()))
    serverId.stop()
    client.stop()
    tmp.cleanup()
  })

  const connect = (e: Endpoint): PeerAssistClient =>
    new PeerAssistClient(e.address, clientCredentials(client, { networkId: NET, role: 'node' }), defaultChannelOptions(NET))

  it('reaches the live endpoint behind a hanging and a closed one without waiting for their timeouts', async () => {
    const dialed = await dialFirst([ep(blackholeAddress), ep(closedAddress), ep(server.address)], connect, {
      timeoutMs: 10_000,
      staggerMs: 100
    })
    expect(dialed.endpoint.address).toBe(server.address)
    expect(dialed.elapsedMs).toBeLessThan(5_000)
    const states: string[] = []
    const controller = new AbortController()
    watchConnectivity(dialed.client, (s) => states.push(s), controller.signal)
    dialed.client.close()
    await new Promise((r) => setTimeout(r, 50))
    controller.abort()
    expect(states).toContain('SHUTDOWN')
  })

  it("fails with every endpoint's reason when none becomes ready", async () => {
    const err = await dialFirst([ep(closedAddress), ep(blackholeAddress)], connect, { timeoutMs: 500, staggerMs: 50 }).catch(
      (e: unknown) => e
    )
    expect(isUnavailableError(err)).toBe(true)
    expect((err as Error).message).toContain(closedAddress)
    expect((err as Error).message).toContain(blackholeAddress)
  })

  it('stops at once when aborted', async () => {
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    const err = await dialFirst([ep(blackholeAddress)], connect, { timeoutMs: 10_000, signal: controller.signal }).catch((e: unknown) => e)
    expect(isAbortError(err)).toBe(true)
  })
})
