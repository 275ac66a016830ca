import { createHash, randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { basename, join } from 'node:path'
import { sign } from 'node:crypto'
import {
  EmergencyAction,
  EmergencyOperation,
  formatSpiffeId,
  NotFoundError,
  ReleaseManifest,
  SERVICE_NAMES,
  type Command,
  type Logger
} from '@mycelium/core-interfaces'
import type { SigningPrivateKey } from '@mycelium/spore-tools'
import { createIdentityStore, type IdentityStore } from '@mycelium/basic-net'
import type { CertificateAuthority } from '@mycelium/dev-pki'
import type { DevCommandChannel } from './command-channel.js'
import type { DevSporeManager } from './spore-manager.js'

export interface UpdateManagerComponents {
  ca: CertificateAuthority
  commands: DevCommandChannel
  spores: DevSporeManager
  /** The network's release keys (they sign release manifests). */
  releaseKeys: () => SigningPrivateKey[]
  /** The network's operator keys (they sign emergency operations such as ALLOW_DOWNGRADE). */
  operatorKeys: () => SigningPrivateKey[]
  logger?: Logger
}

export interface UpdateManagerInit {
  networkId: string
  /** Where its key and certificate live. */
  dir: string
  /** @default "127.0.0.1" */
  host?: string
}

/** Fault controls of the artifact server (tests, bench). */
export interface ArtifactFaults {
  /** Each response stops sending after this many bytes and keeps the connection open (a stalled download). */
  stallAfterBytes?: number
  /** The next response ends (cleanly) after this many bytes, short of its length; then cleared. */
  cutOnceAfterBytes?: number
  /** Serves these bytes instead of the file's (same length): a digest mismatch. */
  corrupt?: boolean
}

export interface Artifact {
  url: string
  /** "sha256:<hex>" */
  digest: string
  size: number
}

/**
 * The dev Update Manager: serves release artifacts over HTTPS with a
 * certificate from the network CA (HEAD for the size, ranged GET for resumable
 * downloads), publishes `service/update-manager`, and sends `update` commands
 * on the Command Channel. Client certificates are not asked for: artifacts
 * are public and verified by digest.
 */
export class DevUpdateManager {
  private server?: Server
  private identity?: IdentityStore
  private readonly files = new Map<string, string>()
  readonly faults: ArtifactFaults = {}
  /** Byte ranges requested, in order ("" for a whole file). */
  readonly requests: string[] = []

  constructor(
    private readonly components: UpdateManagerComponents,
    private readonly init: UpdateManagerInit
  ) {}

  get address(): string {
    const a = this.server?.address() as AddressInfo | undefined
    if (a == null) throw new NotFoundError('the update manager is not started')
    return `${this.init.host ?? '127.0.0.1'}:${a.port}`
  }

  async start(): Promise<void> {
    if (this.server != null) return
    const host = this.init.host ?? '127.0.0.1'
    const base = join(this.init.dir, 'managers', SERVICE_NAMES.updateManager)
    const identity = createIdentityStore(
      { ...(this.components.logger != null ? { logger: this.components.logger } : {}) },
      {
        networkId: this.init.networkId,
        name: SERVICE_NAMES.updateManager,
        role: 'manager',
        keyFile: `${base}.key`,
        certificateFile: `${base}.crt`,
        caFile: join(this.init.dir, 'ca.crt')
      }
    )
    await identity.start()
    const { certificatePem } = await this.components.ca.issueFromCsr(await identity.createCsr(), {
      notAfter: new Date(Date.now() + 30 * 86_400_000),
      hostNames: { dns: ['localhost'], ip: [host] }
    })
    await identity.install(certificatePem, this.components.ca.certificatePem)
    this.identity = identity
    const m = identity.material()!
    const server = createServer(
      { key: m.keyPem, cert: `${m.certificateChainPem.trim()}\n${this.components.ca.certificatePem}`, minVersion: 'TLSv1.2' },
      (req, res) => {
        void this.serve(req.method ?? 'GET', req.url ?? '', req.headers.range, res)
      }
    )
    await new Promise<void>((resolve) => server.listen(0, host, resolve))
    this.server = server
    await this.components.spores.publish(`service/${SERVICE_NAMES.updateManager}`, {
      $case: 'service',
      value: {
        service: SERVICE_NAMES.updateManager,
        endpoints: [
          {
            address: this.address,
            expectedIdentity: formatSpiffeId({ networkId: this.init.networkId, role: 'manager', name: SERVICE_NAMES.updateManager }),
            zone: '',
            priority: 0
          }
        ],
        contractVersions: { min: 1, max: 1 }
      }
    })
  }

  stop(): void {
    this.server?.closeAllConnections()
    this.server?.close()
    this.server = undefined
    this.identity?.stop()
  }

  /** Serves `file` at https://<address>/artifacts/<name>. */
  async addArtifact(file: string): Promise<Artifact> {
    const name = basename(file)
    this.files.set(name, file)
    const hash = createHash('sha256')
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
    return { url: `https://${this.address}/artifacts/${name}`, digest: `sha256:${hash.digest('hex')}`, size: (await stat(file)).size }
  }

  /**
   * Publishes `release/node-core`: a manifest of `version` and `artifact`, signed by the
   * network's release keys (or by `signWith`: a key the trust bundle does not name, for tests).
   */
  async publishRelease(
    version: string,
    artifact: Artifact,
    options: { channel?: string; minContractVersion?: number; signWith?: SigningPrivateKey[] } = {}
  ): Promise<void> {
    const manifest = ReleaseManifest.encode({
      networkId: this.init.networkId,
      component: '',
      version,
      artifactDigest: artifact.digest,
      sizeBytes: artifact.size,
      artifactUrls: [artifact.url],
      minContractVersion: options.minContractVersion ?? 1,
      channel: options.channel ?? 'stable'
    }).finish()
    const keys = options.signWith ?? this.components.releaseKeys()
    await this.components.spores.publish('release/node-core', {
      $case: 'release',
      value: {
        manifest: Buffer.from(manifest),
        signatures: keys.map((k) => ({ keyId: k.keyId, signature: sign(null, manifest, k.privateKey) }))
      }
    })
  }

  /** Sends an operator-signed ALLOW_DOWNGRADE emergency command (the next update may go lower); returns its id. */
  sendAllowDowngrade(nodeId: string, reason: string): string {
    const commandId = randomUUID()
    const operation = Buffer.from(
      EmergencyOperation.encode({
        commandId,
        networkId: this.init.networkId,
        nodeId,
        action: EmergencyAction.ALLOW_DOWNGRADE,
        reason,
        expiresAt: new Date(Date.now() + 600_000)
      }).finish()
    )
    const signatures = this.components.operatorKeys().map((k) => ({ keyId: k.keyId, signature: sign(null, operation, k.privateKey) }))
    this.components.commands.send(nodeId, {
      commandId,
      issuedAt: new Date(),
      deadline: new Date(Date.now() + 600_000),
      issuer: SERVICE_NAMES.updateManager,
      kind: { $case: 'emergency', value: { operation, signatures } }
    })
    return commandId
  }

  /** Sends an `update` command for node-core itself (or `component`); returns its id. */
  sendUpdate(
    nodeId: string,
    update: { version: string; artifact: Pick<Artifact, 'digest' | 'url'>; component?: string; deadlineMs?: number }
  ): string {
    const command: Command = {
      commandId: randomUUID(),
      issuedAt: new Date(),
      deadline: new Date(Date.now() + (update.deadlineMs ?? 600_000)),
      issuer: SERVICE_NAMES.updateManager,
      kind: {
        $case: 'update',
        value: {
          component: update.component ?? '',
          version: update.version,
          artifactDigest: update.artifact.digest,
          artifactUrls: [update.artifact.url]
        }
      }
    }
    this.components.commands.send(nodeId, command)
    return command.commandId
  }

  private async serve(method: string, url: string, range: string | undefined, res: import('node:http').ServerResponse): Promise<void> {
    const file = this.files.get(url.replace(/^\/artifacts\//, ''))
    if (file == null) return void res.writeHead(404).end()
    const size = (await stat(file)).size
    if (method === 'HEAD') return void res.writeHead(200, { 'content-length': size, 'accept-ranges': 'bytes' }).end()
    this.requests.push(range ?? '')
    const m = /^bytes=(\d+)-$/.exec(range ?? '')
    const from = m != null ? Number(m[1]) : 0
    if (from >= size) return void res.writeHead(416, { 'content-range': `bytes */${size}` }).end()
    res.writeHead(m != null ? 206 : 200, {
      'content-length': size - from,
      ...(m != null ? { 'content-range': `bytes ${from}-${size - 1}/${size}` } : {})
    })
    const limit = this.faults.cutOnceAfterBytes ?? this.faults.stallAfterBytes
    const cutOnce = this.faults.cutOnceAfterBytes != null
    this.faults.cutOnceAfterBytes = undefined
    const stream = createReadStream(file, { start: from, ...(limit != null ? { end: from + limit - 1 } : {}) })
    stream.on('data', (chunk) => res.write(this.faults.corrupt === true ? Buffer.alloc(chunk.length, 0x5a) : chunk))
    stream.on('end', () => {
      if (limit == null) res.end()
      else if (cutOnce) res.socket?.end() // short of content-length: the client resumes
      // stalled: the connection stays open until the client goes
    })
  }
}
