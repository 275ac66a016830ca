import * as grpc from '@grpc/grpc-js'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { Phase, Spore, SporeServiceClient, supportedContractVersions, type WatchSporesResponse } from '@mycelium/core-interfaces'
import { clientCredentials, defaultChannelOptions, type IdentityStore } from '@mycelium/basic-net'
import { createSporeClient, fileSource, sporeServiceSource, trustedSporeKeys, verifySpore, type SporeClient } from '@mycelium/spore-client'
import { loadState, startDevNetwork, type DevNetwork } from '../src/index.js'
import { enrolledNode, managerClient, unary } from './helpers/node.js'

let net: DevNetwork
let dir: string
let node: IdentityStore
const closers: Array<() => void | Promise<void>> = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dev-net-sm-'))
  net = await startDevNetwork({ networkId: 'net1' })
  node = (await enrolledNode(net, 'node-1', dir)).store
})
afterAll(async () => {
  for (const c of closers.reverse()) await c()
  node?.stop()
  await net?.stop()
  rmSync(dir, { recursive: true, force: true })
})

function sm(): SporeServiceClient {
  const c = new SporeServiceClient(
    net.endpoints.sporeManager,
    clientCredentials(node, { networkId: 'net1', role: 'manager' }),
    defaultChannelOptions('net1')
  )
  closers.push(() => c.close())
  return c
}

const names = (spores: Array<{ spore: Uint8Array }>): string[] => spores.map((s) => Spore.decode(s.spore).name).sort()

describe('SporeService', () => {
  it('lists the bootstrap and service spores, each verifying against the trust bundle (2 of 3 keys)', async () => {
    const client = sm()
    const { spores } = await unary(client.listSpores.bind(client), { namePrefix: '' })
    expect(names(spores)).toEqual(['bootstrap', 'service/network-manager', 'service/spore-manager'])
    const trust = trustedSporeKeys(net.trustBundle, 'net1')
    for (const s of spores) {
      const { verified } = verifySpore(s, { trust, nowMs: Date.now(), clockSlackMs: 0, source: 'test', markFor: () => undefined })
      expect(verified.sequence).toBeGreaterThan(0)
    }
    const nm = await unary(client.getSpore.bind(client), { name: 'service/network-manager' })
    const body = Spore.decode(nm.spore!.spore).body
    expect(body?.$case === 'service' && body.value.endpoints[0]?.address).toBe(net.endpoints.networkManager)
    const missing = (await unary(client.getSpore.bind(client), { name: 'nope' }).catch((e: unknown) => e)) as grpc.ServiceError
    expect(missing.code).toBe(grpc.status.NOT_FOUND)
  })

  it('watch streams the snapshot, then each publication; a lower sequence is published and refused by a node', async () => {
    const client = sm()
    const stream = client.watchSpores({ namePrefix: 'service/', knownSequences: {} })
    const batches: WatchSporesResponse[] = []
    stream.on('data', (b: WatchSporesResponse) => batches.push(b))
    stream.on('error', () => undefined)
    closers.push(() => stream.cancel())
    await once(stream, 'data')
    expect(batches[0]?.snapshotComplete).toBe(true)
    expect(names(batches[0]!.spores)).toEqual(['service/network-manager', 'service/spore-manager'])
    await net.publishAll()
    const end = Date.now() + 5000
    while (batches.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
    expect(batches.slice(1).flatMap((b) => names(b.spores))).toEqual(['service/network-manager', 'service/spore-manager'])

    // A node following the Spore Manager refuses the rollback attempt.
    const sporeClient: SporeClient | undefined = createSporeClient(
      {
        sources: [fileSource({ path: net.bootstrapFile })],
        sporeManager: sporeServiceSource({
          credentials: clientCredentials(node, { networkId: 'net1', role: 'manager' }),
          endpoints: () => sporeClient!.resolveService('spore-manager')
        })
      },
      { networkId: 'net1', trustBundle: net.trustBundle }
    )
    closers.push(() => sporeClient!.stop())
    await sporeClient.start()
    await sporeClient.refresh()
    const endMode = Date.now() + 5000
    while (sporeClient.status().mode !== 'spore-manager' && Date.now() < endMode) await new Promise((r) => setTimeout(r, 10))
    const rejected = once(sporeClient, 'spore:rejected')
    net.spores.publishLowerSequence('service/network-manager')
    const [err] = await rejected
    expect(err.name).toBe('SporeRollbackError')
  })
})

describe('fault controls', () => {
  const registration = (client: ReturnType<typeof managerClient>, timeoutMs = 3000) =>
    unary(
      client.registerNode.bind(client),
      {
        identity: { networkId: 'net1', nodeId: 'node-1', spiffeId: '', certificateSha256: '' },
        capabilities: {
          cpuCores: 1,
          cpuModel: '',
          memoryBytes: 1,
          os: 'linux',
          osRelease: '',
          arch: 'x64',
          components: [],
          labels: {},
          agentVersion: ''
        },
        contractVersions: supportedContractVersions(),
        configVersion: 0,
        bootId: 'b',
        fromPhase: Phase.DISCOVERY,
        completedCommandIds: []
      },
      timeoutMs
    )

  it('refuses or delays calls on demand', async () => {
    const client = managerClient(net, node)
    closers.push(() => client.close())
    net.faults['network-manager'].refuseWith = grpc.status.UNAVAILABLE
    const refused = (await registration(client).catch((e: unknown) => e)) as grpc.ServiceError
    expect(refused.code).toBe(grpc.status.UNAVAILABLE)
    expect(refused.details).toContain('refused by fault control')
    net.faults['network-manager'].refuseWith = undefined
    net.faults['network-manager'].delayMs = 1000
    const late = (await registration(client, 200).catch((e: unknown) => e)) as grpc.ServiceError
    expect(late.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    net.faults['network-manager'].delayMs = 0
    expect((await registration(client)).lease).toBeDefined()
  })

  it('leaves a handoff unanswered when told to', async () => {
    const client = managerClient(net, node)
    closers.push(() => client.close())
    const res = await registration(client)
    net.networkManager.handoffFaults.ignoreHandoff = true
    try {
      const err = (await unary(
        client.commitHandoff.bind(client),
        { handoffId: res.handoffId, leaseId: res.lease!.leaseId, configVersion: 0 },
        300
      ).catch((e: unknown) => e)) as grpc.ServiceError
      expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED)
    } finally {
      net.networkManager.handoffFaults.ignoreHandoff = false
    }
  })

  it('stops and restarts a manager on the same port, and kills streams', async () => {
    const client = sm()
    const stream = client.watchSpores({ namePrefix: '', knownSequences: {} })
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve))
    await once(stream, 'data') // the server holds the stream now
    stream.on('data', () => undefined)
    net.killStreams()
    expect((await ended).code).toBe(grpc.status.UNAVAILABLE)

    const port = net.endpoints.sporeManager
    await net.stopManager('spore-manager')
    const down = (await unary(client.listSpores.bind(client), { namePrefix: '' }, 1000).catch((e: unknown) => e)) as grpc.ServiceError
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(down.code)
    await net.startManager('spore-manager')
    expect(net.endpoints.sporeManager).toBe(port)
    // The client's channel is backing off after the refusals; wait until it reconnects.
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e) => (e != null ? reject(e) : resolve())))
    const up = await unary(client.listSpores.bind(client), { namePrefix: '' }, 5000)
    expect(up.spores.length).toBe(3)
  })
})

describe('persistence (dev-network up --dir)', () => {
  it('keeps its CA, nodes, sequences and ports across a restart', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'dev-net-state-'))
    try {
      const first = await startDevNetwork({ networkId: 'net7', dir: stateDir })
      const ca = first.caPem
      const endpoints = first.endpoints
      ;(await enrolledNode(first, 'node-p', stateDir)).store.stop()
      const seqBefore = (await loadState(stateDir))!.sequences['service/network-manager']!
      await first.stop()

      const second = await startDevNetwork({ networkId: 'net7', dir: stateDir })
      try {
        expect(second.caPem).toBe(ca)
        expect(second.endpoints).toEqual(endpoints)
        const state = (await loadState(stateDir))!
        expect(Object.keys(state.nodes)).toContain('node-p')
        expect(state.sequences['service/network-manager']).toBeGreaterThan(seqBefore)
        expect(readFileSync(join(stateDir, 'join-token'), 'utf8').trim()).toBe(second.joinToken)
      } finally {
        await second.stop()
      }
    } finally {
      rmSync(stateDir, { recursive: true, force: true })
    }
  })
})
