import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { PeerAnnouncement, SignedPeerAnnouncement } from '@mycelium/core-interfaces'
import {
  createMulticastDiscovery,
  signAnnouncement,
  verifyAnnouncement,
  type DiscoveredPeer,
  type IdentityStore,
  type MulticastDiscovery
} from '../src/index.js'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { enrolledIdentity, tempDir } from './helpers/pki.js'

const NET = 'net1'
let tmp: ReturnType<typeof tempDir>
let ca: CertificateAuthority
let a: IdentityStore
let b: IdentityStore
let foreign: IdentityStore

beforeAll(async () => {
  tmp = tempDir('basic-net-disc-')
  ca = await CertificateAuthority.create(NET)
  a = await enrolledIdentity(ca, 'node', 'node-a', tmp.dir)
  b = await enrolledIdentity(ca, 'node', 'node-b', tmp.dir)
  const otherNetwork = await CertificateAuthority.create('net2')
  foreign = await enrolledIdentity(otherNetwork, 'node', 'node-f', tmp.dir)
})
afterAll(() => {
  for (const s of [a, b, foreign]) s?.stop()
  tmp?.cleanup()
})

const announcement = (networkId: string, nodeId: string, sentAt = new Date()): PeerAnnouncement => ({
  identity: { networkId, nodeId, spiffeId: `spiffe://${networkId}/node/${nodeId}`, certificateSha256: '' },
  endpoints: [{ address: `10.77.0.9:7000`, expectedIdentity: '', zone: '', priority: 0 }],
  sentAt,
  sequence: 1
})

describe('announcement verification', () => {
  const opts = () => ({ networkId: NET, caPem: ca.certificatePem, selfNodeId: 'node-a', nowMs: Date.now(), maxAgeMs: 30_000 })

  it('accepts a signed announcement of a node of the network', () => {
    const v = verifyAnnouncement(signAnnouncement(announcement(NET, 'node-b'), b.material()!), opts())
    expect(v.ok).toBe(true)
  })

  it.each([
    [
      'unsigned',
      () =>
        SignedPeerAnnouncement.encode({
          announcement: Buffer.from(PeerAnnouncement.encode(announcement(NET, 'node-b')).finish()),
          signature: Buffer.alloc(0),
          certificateChainDer: []
        }).finish()
    ],
    ['malformed', () => Buffer.from([0x0a, 0xff, 0x01, 0x02])],
    ['untrusted-certificate', () => signAnnouncement(announcement('net2', 'node-f'), foreign.material()!)],
    ['identity-mismatch', () => signAnnouncement(announcement(NET, 'node-c'), b.material()!)],
    ['self', () => signAnnouncement(announcement(NET, 'node-a'), a.material()!)],
    ['stale', () => signAnnouncement(announcement(NET, 'node-b', new Date(Date.now() - 120_000)), b.material()!)],
    [
      'bad-signature',
      () => {
        const signed = SignedPeerAnnouncement.decode(signAnnouncement(announcement(NET, 'node-b'), b.material()!))
        signed.announcement = Buffer.from(PeerAnnouncement.encode({ ...announcement(NET, 'node-b'), sequence: 99 }).finish()) as Buffer
        return SignedPeerAnnouncement.encode(signed).finish()
      }
    ]
  ] as const)('ignores %s announcements', (reason, make) => {
    const v = verifyAnnouncement(make(), opts())
    expect(v).toMatchObject({ ok: false, reason })
  })
})

describe('discovery over real UDP sockets (unicast targets; multicast is covered by the netns test)', () => {
  const started: MulticastDiscovery[] = []
  afterAll(async () => {
    for (const d of started) await d.stop()
  })

  it('finds a peer, and ignores and counts unsigned and foreign-network datagrams', async () => {
    const listener = createMulticastDiscovery(
      { identity: a },
      {
        networkId: NET,
        nodeId: 'node-a',
        port: 0,
        multicast: false,
        endpoints: () => [{ address: '127.0.0.1:1', expectedIdentity: '', zone: '', priority: 0 }]
      }
    )
    await listener.start()
    started.push(listener)
    const target = `127.0.0.1:${listener.port}`
    const announcer = createMulticastDiscovery(
      { identity: b },
      {
        networkId: NET,
        nodeId: 'node-b',
        port: 0,
        multicast: false,
        unicastTargets: [target],
        announceIntervalMs: 50,
        endpoints: () => [{ address: '127.0.0.1:2', expectedIdentity: '', zone: '', priority: 0 }]
      }
    )
    const found = once(listener, 'peer') as Promise<[DiscoveredPeer]>
    await announcer.start()
    started.push(announcer)
    const [peer] = await found
    expect(peer.nodeId).toBe('node-b')
    expect(peer.endpoints.map((e) => e.address)).toEqual(['127.0.0.1:2'])

    // A foreign network's node announces, and someone sends junk.
    const stranger = createMulticastDiscovery(
      { identity: foreign },
      {
        networkId: 'net2',
        nodeId: 'node-f',
        port: 0,
        multicast: false,
        unicastTargets: [target],
        announceIntervalMs: 50,
        endpoints: () => [{ address: '127.0.0.1:3', expectedIdentity: '', zone: '', priority: 0 }]
      }
    )
    await stranger.start()
    started.push(stranger)
    const junk = createSocket('udp4')
    await new Promise<void>((r) => junk.send(Buffer.from([0x0a, 0x02, 0x08, 0x01]), listener.port, '127.0.0.1', () => r()))
    junk.close()
    const end = Date.now() + 5000
    while (
      (listener.counters.ignored['untrusted-certificate'] === 0 ||
        listener.counters.ignored.unsigned + listener.counters.ignored.malformed === 0) &&
      Date.now() < end
    ) {
      await new Promise((r) => setTimeout(r, 20))
    }
    expect(listener.counters.ignored['untrusted-certificate']).toBeGreaterThan(0)
    expect(listener.counters.ignored.unsigned + listener.counters.ignored.malformed).toBeGreaterThan(0)
    expect(listener.counters.accepted).toBeGreaterThan(0)
  })
})
