import { createServer, type Server } from 'node:https'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { isInvalidInputError, isUnavailableError, SporeBundle, type SignedSpore } from '@mycelium/core-interfaces'
import { createTestPki, serviceSpore, signSporeForTest, testSigningKey, type TestPki } from '@mycelium/testing'
import {
  fileSource,
  formatSporeBundleJson,
  httpsSource,
  peerSource,
  sporeServiceSource,
  type SourceGuardInit,
  type SporeSource
} from '../src/index.js'
import { sporeSourceCompliance } from './compliance.js'
import { nodeCredentials, startTestSporeServer } from './helpers/grpc-servers.js'

let pki: TestPki
beforeAll(() => {
  pki = createTestPki('net1')
})
afterAll(() => pki.cleanup())

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'spore-src-'))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

for (const format of ['json', 'binary'] as const) {
  sporeSourceCompliance(
    `bootstrap file (${format})`,
    async (init) => {
      const { dir, cleanup } = tempDir()
      const path = join(dir, `bootstrap.${format}`)
      return {
        source: fileSource({ ...init, path }),
        serve: async (spores) =>
          writeFileSync(path, format === 'json' ? formatSporeBundleJson(spores) : SporeBundle.encode({ spores }).finish()),
        breakBackend: async () => rmSync(path),
        close: async () => cleanup()
      }
    },
    { canHang: false }
  )
}

async function startHttps(pkiToUse: TestPki, handler: (body: () => Buffer, hang: () => boolean) => Parameters<typeof createServer>[1]) {
  const id = pkiToUse.issue(`https-${Date.now()}`, 'spiffe://net1/manager/spore-manager')
  let body: Buffer = Buffer.alloc(0)
  let hanging = false
  const server: Server = createServer(
    { key: id.keyPem, cert: id.certPem },
    handler(
      () => body,
      () => hanging
    )
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}/spores`,
    setBody: (b: Buffer): void => {
      body = b
    },
    hang: (): void => {
      hanging = true
    },
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const bundleHandler = (body: () => Buffer, hang: () => boolean) => (_req: unknown, res: import('node:http').ServerResponse) => {
  if (hang()) return
  res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(body())
}

sporeSourceCompliance('HTTPS with pinned CA', async (init) => {
  const server = await startHttps(pki, bundleHandler)
  return {
    source: httpsSource({ ...init, url: server.url, caPem: pki.caPem }),
    serve: async (spores: SignedSpore[]) => server.setBody(Buffer.from(SporeBundle.encode({ spores }).finish())),
    breakBackend: () => server.close(),
    hang: server.hang,
    close: () => server.close()
  }
})

/** A compliance harness over a real gRPC test server (Spore Manager or peer). */
function grpcHarness(role: 'manager' | 'peer', makeSource: (init: SourceGuardInit, address: string) => SporeSource & { close(): void }) {
  return async (init: SourceGuardInit) => {
    const server = await startTestSporeServer(pki, role)
    const source = makeSource(init, server.address)
    return {
      source,
      serve: async (spores: SignedSpore[]) => server.serve(spores),
      breakBackend: async () => server.kill(),
      hang: () => void (server.hang = true),
      close: async () => {
        source.close()
        server.kill()
      }
    }
  }
}

const only = (address: string) => () => [{ address, expectedIdentity: '', zone: '', priority: 0 }]

sporeSourceCompliance(
  'Spore Manager SporeService (mTLS)',
  grpcHarness('manager', (init, address) => sporeServiceSource({ ...init, credentials: nodeCredentials(pki), endpoints: only(address) }))
)

sporeSourceCompliance(
  'peers via PeerAssist.GetSpores (mTLS)',
  grpcHarness('peer', (init, address) => peerSource({ ...init, credentials: nodeCredentials(pki, 'node-2'), peers: only(address) }))
)

describe('source specifics', () => {
  const key = testSigningKey()
  const spore = signSporeForTest(serviceSpore('net1', 'network-manager', 1, ['127.0.0.1:1']), [key])

  it('bootstrap file: garbage is an InvalidInputError naming the file', async () => {
    const { dir, cleanup } = tempDir()
    try {
      const path = join(dir, 'bootstrap.json')
      writeFileSync(path, '{"spores": [ {"spore": 12} ]}')
      const err = await fileSource({ path })
        .fetch()
        .catch((e: unknown) => e)
      expect(isInvalidInputError(err)).toBe(true)
      expect((err as Error).message).toContain(`${path}: spores[0].spore must be a non-empty base64 string`)
      writeFileSync(path, Buffer.from([0x0a, 0xff, 0xff]))
      const err2 = await fileSource({ path })
        .fetch()
        .catch((e: unknown) => e)
      expect((err2 as Error).message).toContain('neither JSON nor a binary SporeBundle')
    } finally {
      cleanup()
    }
  })

  it('HTTPS: a server certificate from another CA is refused (the CA is pinned)', async () => {
    const otherPki = createTestPki('net1')
    const server = await startHttps(otherPki, bundleHandler)
    try {
      server.setBody(Buffer.from(SporeBundle.encode({ spores: [spore] }).finish()))
      const err = await httpsSource({ url: server.url, caPem: pki.caPem })
        .fetch()
        .catch((e: unknown) => e)
      expect(isUnavailableError(err)).toBe(true)
      expect((err as Error).message).toMatch(/certificate/)
      // the same server passes with its own CA pinned
      expect(await httpsSource({ url: server.url, caPem: otherPki.caPem }).fetch()).toHaveLength(1)
    } finally {
      await server.close()
      otherPki.cleanup()
    }
  })

  it('HTTPS: a non-200 answer carries Retry-After', async () => {
    const server = await startHttps(pki, () => (_req, res) => res.writeHead(503, { 'retry-after': '7' }).end())
    try {
      const err = await httpsSource({ url: server.url, caPem: pki.caPem })
        .fetch()
        .catch((e: unknown) => e)
      expect(isUnavailableError(err) && err.retryAfterMs).toBe(7000)
      expect((err as Error).message).toContain('HTTP 503')
    } finally {
      await server.close()
    }
  })

  it('Spore Manager: watch streams the snapshot then live changes, and fails when the server dies', async () => {
    const server = await startTestSporeServer(pki, 'manager')
    server.serve([spore])
    const source = sporeServiceSource({
      credentials: nodeCredentials(pki),
      endpoints: () => [{ address: server.address, expectedIdentity: '', zone: '', priority: 0 }]
    })
    const controller = new AbortController()
    const batches: number[] = []
    const watching = (async () => {
      for await (const batch of source.watch({ signal: controller.signal, knownSequences: {} })) {
        batches.push(batch.length)
        if (batches.length === 1) server.serve([spore, signSporeForTest(serviceSpore('net1', 'spore-manager', 1, ['127.0.0.1:2']), [key])])
        if (batches.length === 2) server.kill()
      }
    })()
    const err = await watching.catch((e: unknown) => e)
    expect(batches).toEqual([1, 1])
    expect(isUnavailableError(err)).toBe(true)
    expect((err as Error).message).toContain('spore-manager')
    source.close()
  })
})
