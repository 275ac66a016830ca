import { request } from 'node:https'
import { Spore } from '@mycelium/core-interfaces'
import {
  applyFault,
  assignComponent,
  DevArtifactServer,
  parseFaultAction,
  publishComponent,
  startDevNetwork,
  type DevNetwork
} from '../src/index.js'

/** The dev network's component artifacts (HTTPS, network CA), component spores and assignment control. */
let net: DevNetwork
let artifacts: DevArtifactServer

beforeAll(async () => {
  net = await startDevNetwork({ networkId: 'art-net' })
  artifacts = await DevArtifactServer.start(net)
})
afterAll(async () => {
  await artifacts?.stop()
  await net?.stop()
})

function get(url: string, ca?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, ca != null ? { ca } : {}, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('component artifacts and spores', () => {
  it('serves an artifact by digest to a client trusting the network CA, publishes its signed spore, nothing else', async () => {
    const bytes = Buffer.from('not really a tarball')
    const body = await publishComponent(net, artifacts, { name: 'demo', version: '1.2.3', bytes, entry: 'index.cjs', onDemand: true })
    expect(body).toMatchObject({ name: 'demo', version: '1.2.3', artifactSizeBytes: bytes.length, contractVersion: 1, onDemand: true })
    const res = await get(body.artifactUrls[0]!, net.caPem)
    expect(res).toEqual({ status: 200, body: bytes })
    expect((await get(body.artifactUrls[0]!.replace(/[0-9a-f]{64}$/, '0'.repeat(64)), net.caPem)).status).toBe(404)
    // Without the network CA the server is not trusted.
    await expect(get(body.artifactUrls[0]!)).rejects.toThrow(/certificate/)
    const spore = Spore.decode(net.spores.list('component/')[0]!.spore)
    expect(spore).toMatchObject({ name: 'component/demo', body: { $case: 'component', value: { artifactDigest: body.artifactDigest } } })
  })

  it('sets and removes one assignment of a node, keeping the others', async () => {
    assignComponent(net, 'n1', 'a', 'running', { k: 'v' })
    assignComponent(net, 'n1', 'b', 'stopped')
    expect(net.networkManager.assignmentsOf('n1').map((a) => `${a.componentSpore}=${a.desiredState}`)).toEqual([
      'component/a=running',
      'component/b=stopped'
    ])
    expect(await applyFault(net, parseFaultAction({ action: 'assign', node: 'n1', component: 'a', state: 'none' }))).toBe(
      'n1: 1 assignment(s), generation moved'
    )
    expect(net.networkManager.assignmentsOf('n1').map((a) => a.componentSpore)).toEqual(['component/b'])
    expect(() => parseFaultAction({ action: 'assign', node: 'n1', component: 'a', state: 'paused' })).toThrow(
      /state \(running, stopped or none\)/
    )
  })
})
