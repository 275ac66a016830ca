import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { getEventListeners, once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Spore, type SignedSpore, type TrustBundle } from '@mycelium/core-interfaces'
import {
  createTestPki,
  serviceSpore,
  signSporeForTest,
  testSigningKey,
  testTrustBundle,
  until,
  type TestPki,
  type TestSigningKey
} from '@mycelium/testing'
import {
  createSporeClient,
  fileSource,
  formatSporeBundleJson,
  httpsSource,
  sporeServiceSource,
  type SporeClient,
  type SporeClientStatus,
  type SporeRejectedError
} from '../src/index.js'
import { nodeCredentials, startTestSporeServer, type TestSporeServer } from './helpers/grpc-servers.js'

const NET = 'net1'
let dir: string
let keys: TestSigningKey[]
let trustBundle: TrustBundle
const clients: SporeClient[] = []

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spore-client-'))
  keys = [testSigningKey(), testSigningKey()]
  trustBundle = testTrustBundle(NET, keys, 2)
})
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()))
  rmSync(dir, { recursive: true, force: true })
})

const sign = (spore: Spore): SignedSpore => signSporeForTest(spore, keys)
const writeBundle = (path: string, spores: SignedSpore[]): void => writeFileSync(path, formatSporeBundleJson(spores))

function client(
  sources: Parameters<typeof createSporeClient>[0],
  init: Partial<Parameters<typeof createSporeClient>[1]> = {}
): SporeClient {
  const c = createSporeClient(sources, { networkId: NET, trustBundle, cachePath: join(dir, 'cache', 'spores.bin'), ...init })
  clients.push(c)
  return c
}

describe('SporeClient', () => {
  it('boots from the disk cache with every source unreachable', async () => {
    const bootstrapPath = join(dir, 'bootstrap.json')
    writeBundle(bootstrapPath, [sign(serviceSpore(NET, 'network-manager', 3, ['10.1.0.1:7000', '10.1.0.2:7000']))])
    const first = client({ sources: [fileSource({ path: bootstrapPath })] })
    await first.start()
    await first.refresh()
    expect(first.resolveService('network-manager').map((e) => e.address)).toEqual(['10.1.0.1:7000', '10.1.0.2:7000'])
    await first.stop()

    // Second boot: the file is gone, HTTPS points at a closed port.
    rmSync(bootstrapPath)
    const offline = client({
      sources: [fileSource({ path: bootstrapPath }), httpsSource({ url: 'https://127.0.0.1:9/spores', caPem: '', timeoutMs: 500 })]
    })
    await offline.start()
    // Served from the cache before any source answered.
    expect(offline.resolveService('network-manager').map((e) => e.address)).toEqual(['10.1.0.1:7000', '10.1.0.2:7000'])
    expect(offline.status().activeSource).toBe('cache')
    const result = await offline.refresh()
    expect(result.failures.map((f) => f.source)).toEqual([`file:${bootstrapPath}`, 'https://127.0.0.1:9/spores'])
    expect(offline.resolveService('network-manager')).toHaveLength(2)
  })

  it("leaves a caller's long-lived signal as it found it after many refreshes (no per-call residue)", async () => {
    const bootstrapPath = join(dir, 'bootstrap.json')
    writeBundle(bootstrapPath, [sign(serviceSpore(NET, 'network-manager', 3, ['10.1.0.1:7000']))])
    const c = client({
      sources: [fileSource({ path: bootstrapPath }), httpsSource({ url: 'https://127.0.0.1:9/spores', caPem: '', timeoutMs: 500 })]
    })
    await c.start()
    const lifetime = new AbortController()
    for (let i = 0; i < 50; i++) await c.refresh({ signal: lifetime.signal })
    // Node 20's AbortSignal.any kept one WeakRef per call in the input's dependant set, forever.
    const dependants = Object.getOwnPropertySymbols(lifetime.signal).find((s) => s.description === 'kDependantSignals')
    expect((dependants != null ? (lifetime.signal as unknown as Record<symbol, Set<unknown> | undefined>)[dependants]?.size : 0) ?? 0).toBe(
      0
    )
    expect(getEventListeners(lifetime.signal, 'abort')).toHaveLength(0)
    expect(c.resolveService('network-manager')).toHaveLength(1)
  })

  it('refuses a lower sequence, also after a restart, and keeps what it trusts', async () => {
    const path = join(dir, 'bootstrap.json')
    writeBundle(path, [sign(serviceSpore(NET, 'network-manager', 5, ['10.0.0.5:1']))])
    const a = client({ sources: [fileSource({ path })] })
    await a.start()
    await a.refresh()
    await a.stop()

    writeBundle(path, [sign(serviceSpore(NET, 'network-manager', 4, ['10.6.6.6:1']))])
    const b = client({ sources: [fileSource({ path })] })
    const rejected: SporeRejectedError[] = []
    b.on('spore:rejected', (e) => rejected.push(e))
    await b.start()
    await b.refresh()
    // The background poll and this refresh may both have read the file: each read is refused.
    expect(rejected.length).toBeGreaterThanOrEqual(1)
    for (const e of rejected)
      expect([e.name, e.sporeName, e.source]).toEqual(['SporeRollbackError', 'service/network-manager', `file:${path}`])
    expect(b.resolveService('network-manager').map((e) => e.address)).toEqual(['10.0.0.5:1'])
    expect(b.status().rejectedCount).toBe(rejected.length)
  })

  it('keeps rollback protection for a spore that expired while offline', async () => {
    let now = Date.parse('2026-03-01T00:00:00Z')
    const path = join(dir, 'bootstrap.json')
    writeBundle(path, [sign(serviceSpore(NET, 'network-manager', 9, ['10.0.0.9:1'], now))])
    const a = client({ sources: [fileSource({ path })] }, { now: () => now })
    await a.start()
    await a.refresh()
    await a.stop()
    now += 3 * 86_400_000 // the spore (1 day) has expired
    writeBundle(path, [sign(serviceSpore(NET, 'network-manager', 2, ['10.6.6.6:1'], now))])
    const b = client({ sources: [fileSource({ path })] }, { now: () => now })
    const rejected: string[] = []
    b.on('spore:rejected', (e) => rejected.push(e.name))
    await b.start()
    expect(b.resolveService('network-manager')).toEqual([]) // expired: not served
    await b.refresh()
    expect(rejected[0]).toBe('ExpiredSporeError') // the cached copy, at start
    expect(rejected.length).toBeGreaterThanOrEqual(2)
    expect(new Set(rejected.slice(1))).toEqual(new Set(['SporeRollbackError']))
  })

  it('reports a corrupt cache and carries on without it', async () => {
    const cachePath = join(dir, 'cache', 'spores.bin')
    const seed = client({ sources: [] })
    await seed.start()
    seed.ingest([sign(serviceSpore(NET, 'network-manager', 1, ['10.0.0.1:1']))], 'test')
    await seed.stop()
    writeFileSync(cachePath, 'garbage')
    writeFileSync(`${cachePath}.prev`, 'garbage')
    const c = client({ sources: [] })
    await c.start()
    expect(c.status().cacheProblem).toMatch(/cache .*spores.bin ignored: .*bad magic/)
    expect(c.list()).toEqual([])
  })

  it('rotates its trust bundle from a verified bootstrap spore and keeps it across restarts', async () => {
    const newKeys = [testSigningKey()]
    const rotated = testTrustBundle(NET, newKeys, 1)
    const now = Date.now()
    const bootstrap = sign({
      networkId: NET,
      name: 'bootstrap',
      sequence: 2,
      issuedAt: new Date(now - 1000),
      expiresAt: new Date(now + 86_400_000),
      body: { $case: 'bootstrap', value: { trustBundle: rotated, seeds: [], httpsUrls: [] } }
    })
    const byNewKey = signSporeForTest(serviceSpore(NET, 'network-manager', 1, ['10.9.9.9:1']), newKeys)
    const a = client({ sources: [] })
    await a.start()
    // One batch, new-key spore first: the client orders the bootstrap spore before it.
    expect(a.ingest([byNewKey, bootstrap], 'test').accepted).toEqual(['bootstrap', 'service/network-manager'])
    await a.stop()
    const b = client({ sources: [] })
    await b.start()
    expect(b.bootstrap().trustBundle.sporeKeys.map((k) => k.keyId)).toEqual([newKeys[0]!.keyId])
    expect(b.resolveService('network-manager')).toHaveLength(1)
  })

  it('keeps spores accepted under the old keys across a rotation and a restart (each under the bundle that accepted it)', async () => {
    // K1–K3 (threshold 2) accept every service spore; then a bootstrap spore
    // signed by K1+K2 rotates to N1,N2 (threshold 1); then a restart.
    const k = [testSigningKey(), testSigningKey(), testSigningKey()]
    const n = [testSigningKey(), testSigningKey()]
    const original = testTrustBundle(NET, k, 2)
    const rotated = testTrustBundle(NET, n, 1)
    const now = Date.now()
    const nm = signSporeForTest(serviceSpore(NET, 'network-manager', 4, ['10.4.0.1:7000']), [k[0]!, k[2]!])
    const sm = signSporeForTest(serviceSpore(NET, 'spore-manager', 2, ['10.4.0.2:7000']), [k[1]!, k[2]!])
    const bootstrap = signSporeForTest(
      {
        networkId: NET,
        name: 'bootstrap',
        sequence: 7,
        issuedAt: new Date(now - 1000),
        expiresAt: new Date(now + 86_400_000),
        body: { $case: 'bootstrap', value: { trustBundle: rotated, seeds: [], httpsUrls: [] } }
      },
      [k[0]!, k[1]!]
    )
    const a = client({ sources: [] }, { trustBundle: original })
    await a.start()
    expect(a.ingest([nm, sm], 'test').accepted).toHaveLength(2)
    expect(a.ingest([bootstrap], 'test').accepted).toEqual(['bootstrap'])
    const byNew = signSporeForTest(serviceSpore(NET, 'update-manager', 1, ['10.4.0.3:7000']), [n[1]!])
    expect(a.ingest([byNew], 'test').accepted).toEqual(['service/update-manager'])
    await a.stop()

    for (let restart = 0; restart < 2; restart++) {
      const b = client({ sources: [] }, { trustBundle: original })
      const dropped: SporeRejectedError[] = []
      b.on('spore:rejected', (e) => dropped.push(e))
      await b.start()
      expect(dropped).toEqual([])
      expect(
        b
          .list()
          .map((s) => s.name)
          .sort()
      ).toEqual(['bootstrap', 'service/network-manager', 'service/spore-manager', 'service/update-manager'])
      expect(b.resolveService('network-manager')[0]?.address).toBe('10.4.0.1:7000')
      // The rotated bundle is in force: old keys alone no longer suffice for new spores.
      expect(
        b
          .bootstrap()
          .trustBundle.sporeKeys.map((key) => key.keyId)
          .sort()
      ).toEqual(n.map((key) => key.keyId).sort())
      const oldKeysOnly = signSporeForTest(serviceSpore(NET, 'network-manager', 5, ['10.6.6.6:1']), [k[0]!, k[1]!])
      expect(b.ingest([oldKeysOnly], 'test').rejected.map((e) => e.name)).toEqual(['UnknownSporeKeyError'])
      await b.stop() // the second round reads the cache this client wrote (format 2 again)
    }
  })

  it('refuses timer durations a timer cannot hold', () => {
    for (const refreshIntervalMs of [0, -1, 2 ** 31, 720 * 3_600_000, Number.NaN]) {
      expect(() => createSporeClient({}, { networkId: NET, trustBundle, refreshIntervalMs })).toThrow(/SporeClientInit.refreshIntervalMs/)
    }
    expect(() => createSporeClient({}, { networkId: NET, trustBundle, clockSlackMs: 2 ** 40 })).toThrow(/clockSlackMs/)
  })

  it('takes a fleet reconnect window for its watch redial, and refuses one a timer cannot hold, changing nothing', () => {
    const c = createSporeClient({}, { networkId: NET, trustBundle })
    expect(c.timing().reconnectWindowMs).toBe(0)
    c.retune({ reconnectWindowMs: 32_000 })
    expect(c.timing().reconnectWindowMs).toBe(32_000)
    for (const reconnectWindowMs of [-1, 2 ** 31, Number.NaN]) {
      expect(() => c.retune({ reconnectWindowMs, clockSlackMs: 1 })).toThrow(/reconnectWindowMs/)
    }
    expect(c.timing()).toMatchObject({ reconnectWindowMs: 32_000, clockSlackMs: 30_000 })
  })

  it('refuses an oversized batch as a whole, with one error and nothing trusted changed', async () => {
    const c = client({ sources: [] })
    await c.start()
    const empty = Array.from({ length: 100_000 }, () => ({ spore: Buffer.alloc(0), signatures: [] }))
    const rejected: unknown[] = []
    c.on('spore:rejected', (e) => rejected.push(e))
    expect(() => c.ingest(empty, 'peer:x')).toThrow(/100000 spores in one batch, more than the 1024 allowed/)
    expect(rejected).toEqual([])
    expect(c.status().rejectedCount).toBe(0)
  })

  describe('following the Spore Manager', () => {
    let pki: TestPki
    let server: TestSporeServer
    beforeAll(() => {
      pki = createTestPki(NET)
    })
    afterAll(() => pki.cleanup())
    afterEach(() => server?.kill())

    it('follows WatchSpores, serves the cache while the manager is dead, and reconnects with backoff', async () => {
      server = await startTestSporeServer(pki, 'manager')
      const smSpore = sign(serviceSpore(NET, 'spore-manager', 1, [server.address]))
      const nm = (seq: number, addr: string): SignedSpore => sign(serviceSpore(NET, 'network-manager', seq, [addr]))
      server.serve([smSpore, nm(1, '10.0.0.1:1')])

      const bootstrapPath = join(dir, 'bootstrap.json')
      writeBundle(bootstrapPath, [smSpore])
      let c: SporeClient | undefined
      const sm = sporeServiceSource({
        credentials: nodeCredentials(pki),
        endpoints: () => c!.resolveService('spore-manager'),
        rateLimit: { burst: 50, perSecond: 50 }
      })
      c = client({ sources: [fileSource({ path: bootstrapPath })], sporeManager: sm }, { reconnect: { initialMs: 50, maxMs: 400 } })
      const statuses: SporeClientStatus[] = []
      c.on('status', (s) => statuses.push(s))
      await c.start()

      // Learns the Spore Manager from the bootstrap file, then follows its stream.
      await until('network-manager from the watch stream', () => c!.resolveService('network-manager')[0]?.address === '10.0.0.1:1')
      await until('mode spore-manager', () => c!.status().mode === 'spore-manager')

      const changed = once(c, 'change')
      server.serve([smSpore, nm(2, '10.0.0.2:1')])
      expect(await changed).toEqual([['service/network-manager']])
      expect(c.resolveService('network-manager')[0]?.address).toBe('10.0.0.2:1')

      // Kill the manager: fallback, cached set still served.
      const opened = server.watchesOpened
      server.kill()
      await until('fallback', () => c!.status().mode === 'fallback')
      expect(c.status().reason).toMatch(/Spore Manager unavailable/)
      expect(c.resolveService('network-manager')[0]?.address).toBe('10.0.0.2:1')
      // Reconnect attempts keep going, spaced by backoff (bounded by maxMs 400).
      await new Promise((r) => setTimeout(r, 1200))
      const fallbacks = statuses.filter((s) => s.mode === 'fallback').length
      expect(fallbacks).toBeGreaterThanOrEqual(2)
      expect(fallbacks).toBeLessThan(60)

      // The manager returns on the same address with a newer spore.
      server.serve([smSpore, nm(3, '10.0.0.3:1')])
      await server.restart()
      await until('reconnected and caught up', () => c!.resolveService('network-manager')[0]?.address === '10.0.0.3:1')
      await until('mode spore-manager again', () => c!.status().mode === 'spore-manager')
      expect(server.watchesOpened).toBeGreaterThan(opened)
    })
  })
})
