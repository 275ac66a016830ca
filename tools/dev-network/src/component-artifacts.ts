import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:https'
import { isIP, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Assignment, ComponentBody } from '@mycelium/core-interfaces'
import { createIdentityStore, type IdentityStore } from '@mycelium/basic-net'
import type { DevNetwork } from './dev-network.js'

/**
 * Component artifacts of a dev network over HTTPS: a certificate from the
 * network CA (so nodes verify it with the CA of their trust bundle, as they
 * do the managers), artifacts served by digest at
 * `/artifacts/sha256/<hex>`, nothing else. Small on purpose: the Update
 * Manager's ranged artifact serving is a separate piece.
 */
export class DevArtifactServer {
  private readonly blobs = new Map<string, Buffer>()
  /** Requests per path (tests read it). */
  readonly requests = new Map<string, number>()

  private constructor(
    private readonly server: Server,
    private readonly identity: IdentityStore,
    private readonly base: string
  ) {}

  static async start(net: DevNetwork, options: { host?: string; port?: number } = {}): Promise<DevArtifactServer> {
    const host = options.host ?? '127.0.0.1'
    const identity = createIdentityStore(
      {},
      {
        networkId: net.networkId,
        name: 'artifacts',
        role: 'manager',
        keyFile: join(net.dir, 'managers', 'artifacts.key'),
        certificateFile: join(net.dir, 'managers', 'artifacts.crt'),
        caFile: join(net.dir, 'ca.crt')
      }
    )
    await identity.start()
    const { certificatePem } = await net.ca.issueFromCsr(await identity.createCsr(), {
      notAfter: new Date(Date.now() + 30 * 86_400_000),
      hostNames: isIP(host) !== 0 ? { dns: ['localhost'], ip: [host] } : { dns: [host, 'localhost'] }
    })
    await identity.install(certificatePem, net.ca.certificatePem)
    const m = identity.material()!
    let self: DevArtifactServer | undefined
    const server = createServer({ key: m.keyPem, cert: m.certificateChainPem, minVersion: 'TLSv1.2' }, (req, res) => {
      const path = req.url ?? ''
      self!.requests.set(path, (self!.requests.get(path) ?? 0) + 1)
      const match = /^\/artifacts\/sha256\/([0-9a-f]{64})$/.exec(path)
      const body = match != null ? self!.blobs.get(match[1]!) : undefined
      if (req.method !== 'GET' || body == null) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
        return
      }
      res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': body.length }).end(body)
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port ?? 0, host, () => resolve())
    })
    const port = (server.address() as AddressInfo).port
    self = new DevArtifactServer(server, identity, `https://${isIP(host) === 6 ? `[${host}]` : host}:${port}`)
    return self
  }

  /** Serves `bytes`; returns its digest and URL. */
  add(bytes: Buffer): { digest: string; url: string } {
    const hex = createHash('sha256').update(bytes).digest('hex')
    this.blobs.set(hex, bytes)
    return { digest: `sha256:${hex}`, url: `${this.base}/artifacts/sha256/${hex}` }
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.identity.stop()
  }
}

/** A component to publish: its artifact bytes and what its spore says beyond them. */
export interface DevComponent {
  name: string
  version: string
  /** The .tar.gz */
  bytes: Buffer
  entry: string
  args?: string[]
  onDemand?: boolean
  idleTimeoutMs?: number
  heapLimitMb?: number
  memoryLimitBytes?: number
}

/** Serves the artifact and publishes the signed `component/<name>` spore (next sequence). */
export async function publishComponent(net: DevNetwork, artifacts: DevArtifactServer, c: DevComponent): Promise<ComponentBody> {
  const { digest, url } = artifacts.add(c.bytes)
  const body = ComponentBody.fromPartial({
    name: c.name,
    version: c.version,
    artifactDigest: digest,
    artifactUrls: [url],
    entry: c.entry,
    args: c.args ?? [],
    artifactSizeBytes: c.bytes.length,
    contractVersion: 1,
    onDemand: c.onDemand ?? false,
    idleTimeoutMs: c.idleTimeoutMs ?? 0,
    heapLimitMb: c.heapLimitMb ?? 0,
    memoryLimitBytes: c.memoryLimitBytes ?? 0
  })
  await net.spores.publish(`component/${c.name}`, { $case: 'component', value: body })
  return body
}

/**
 * Sets (or, with `state` "none", removes) one component's assignment of a
 * node, keeping the others; the generation moves, nodes learn of it from
 * their next heartbeat ack.
 */
export function assignComponent(
  net: DevNetwork,
  nodeId: string,
  component: string,
  state: 'running' | 'stopped' | 'none',
  parameters: Record<string, string> = {}
): Assignment[] {
  const spore = `component/${component}`
  const others = net.networkManager.assignmentsOf(nodeId).filter((a) => a.componentSpore !== spore)
  const next =
    state === 'none'
      ? others
      : [
          ...others,
          Assignment.fromPartial({ assignmentId: `${nodeId}/${component}`, componentSpore: spore, desiredState: state, parameters })
        ]
  net.networkManager.setAssignments(nodeId, next)
  return next
}
