import * as grpc from '@grpc/grpc-js'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { isIP } from 'node:net'
import { join } from 'node:path'
import {
  InvalidConfigError,
  caCertificateSha256,
  CommandChannelService,
  formatJoinToken,
  formatSpiffeId,
  NetworkManagerService,
  SporeServiceService,
  TrustBundle,
  type Logger,
  SERVICE_NAMES,
  type ServiceName
} from '@mycelium/core-interfaces'
import { writeFileAtomic, type RateLimit } from '@mycelium/core-utils'
import { createIdentityStore, DEFAULT_SERVER_OPTIONS, serverCredentials, type IdentityStore } from '@mycelium/basic-net'
import { CertificateAuthority } from '@mycelium/dev-pki'
import { formatSporeBundleJsonForFile, trustBundleFor } from './files.js'
import { DevCommandChannel } from './command-channel.js'
import { countingInterceptor } from './call-counts.js'
import { faultInterceptor, noFaults, type Faults } from './faults.js'
import { DevNetworkManager, type ManagerClockFaults } from './network-manager.js'
import { DevSporeManager } from './spore-manager.js'
import type { DistressDesk } from './distress-desk.js'
import { DevUpdateManager } from './update-manager.js'
import { createState, loadState, newJoinTokenSecret, saveState, stateWritesSettled, type DevNetworkState } from './state.js'
import { signingKeyFromPem } from '@mycelium/spore-tools'

export interface DevNetworkInit {
  /** @default "dev" */
  networkId?: string
  /** State directory, kept across restarts. Unset: a temp dir removed by stop(). */
  dir?: string
  /** @default "127.0.0.1" */
  host?: string
  /** Ports; 0 picks one. @default the ports of the last run in `dir`, else 0 */
  ports?: { networkManager?: number; enrollment?: number; sporeManager?: number }
  heartbeatIntervalMs?: number
  leaseTtlMs?: number
  handoffDeadlineMs?: number
  /** The Network Manager's failover grace (network-manager.ts `failoverGraceMs`). @default 0 (off) */
  failoverGraceMs?: number
  registrationRate?: RateLimit
  /** The Network Manager's clock faults (skew, absolute times only) for skew tests. @default none */
  managerClock?: ManagerClockFaults
  /** Node certificate validity. @default 24 h */
  certificateTtlMs?: number
  logger?: Logger
}

export type ManagerName = typeof SERVICE_NAMES.networkManager | typeof SERVICE_NAMES.sporeManager

export interface DevNetworkEndpoints {
  /** NetworkManager + CommandChannel, mTLS (node certificates). */
  networkManager: string
  /** NetworkManager.Enroll only, TLS without client certificates. */
  enrollment: string
  /** SporeService, mTLS. */
  sporeManager: string
}

interface ManagerServer {
  server?: grpc.Server
  port: number
  start(): Promise<void>
}

/** A running dev network: the distributed side of every v1 contract, with fault controls. */
export class DevNetwork {
  readonly faults: Record<ManagerName, Faults> = { 'network-manager': noFaults(), 'spore-manager': noFaults() }
  /** Calls received per method path since this process started the network (all three servers). */
  readonly calls = new Map<string, number>()
  private constructor(
    readonly dir: string,
    private readonly ownsDir: boolean,
    readonly state: DevNetworkState,
    readonly ca: CertificateAuthority,
    readonly networkManager: DevNetworkManager,
    readonly commands: DevCommandChannel,
    readonly spores: DevSporeManager,
    private readonly identities: IdentityStore[],
    private readonly servers: Record<ManagerName | 'enrollment', ManagerServer>,
    private readonly host: string
  ) {}

  static async start(init: DevNetworkInit = {}): Promise<DevNetwork> {
    const ownsDir = init.dir == null
    const dir = init.dir ?? (await mkdtemp(join(tmpdir(), 'dev-network-')))
    const networkId = init.networkId ?? 'dev'
    const state = (await loadState(dir)) ?? (await createState(networkId))
    if (state.networkId !== networkId && init.networkId != null) {
      throw new InvalidConfigError(`holds network "${state.networkId}", not "${networkId}"`, dir)
    }
    const save = (): Promise<void> => saveState(dir, state)
    await save()
    const ca = await CertificateAuthority.load(state.networkId, state.ca.certificatePem, state.ca.keyPem)
    const sporeKeys = state.sporeKeys.map((pem, i) => signingKeyFromPem(pem, `${dir} spore key ${i}`))
    const trustBundle = (): TrustBundle => trustBundleFor(state, ca.certificatePem)
    const certificateTtlMs = init.certificateTtlMs ?? 86_400_000
    const spores = new DevSporeManager(state, sporeKeys, save)
    const manager = new DevNetworkManager(
      { state, ca, trustBundle, certificateTtlMs, save },
      { networkId: state.networkId, ...pick(init), spores: () => spores.list() }
    )
    const commands = new DevCommandChannel(manager, state.networkId)

    // Manager identities, issued by our CA on every start.
    const identities: IdentityStore[] = []
    const host = init.host ?? '127.0.0.1'
    const managerIdentity = async (service: string): Promise<IdentityStore> => {
      const base = join(dir, 'managers', service)
      const store = createIdentityStore(
        { ...(init.logger != null ? { logger: init.logger } : {}) },
        {
          networkId: state.networkId,
          name: service,
          role: 'manager',
          keyFile: `${base}.key`,
          certificateFile: `${base}.crt`,
          caFile: join(dir, 'ca.crt')
        }
      )
      await store.start()
      const { certificatePem } = await ca.issueFromCsr(await store.createCsr(), {
        notAfter: new Date(Date.now() + 30 * 86_400_000),
        hostNames: isIP(host) !== 0 ? { dns: ['localhost'], ip: [host] } : { dns: [host, 'localhost'] }
      })
      await store.install(certificatePem, ca.certificatePem)
      identities.push(store)
      return store
    }
    const nmIdentity = await managerIdentity(SERVICE_NAMES.networkManager)
    const smIdentity = await managerIdentity(SERVICE_NAMES.sporeManager)
    const nodeOnly = { networkId: state.networkId, role: 'node' as const }

    const server = (port: number, build: () => { server: grpc.Server; creds: grpc.ServerCredentials }): ManagerServer => {
      const m: ManagerServer = {
        port,
        async start() {
          if (m.server != null) return
          const { server: s, creds } = build()
          m.port = await new Promise<number>((resolve, reject) =>
            s.bindAsync(`${host}:${m.port}`, creds, (err, p) => (err != null ? reject(err) : resolve(p)))
          )
          m.server = s
        }
      }
      return m
    }
    const servers = {
      'network-manager': server(init.ports?.networkManager ?? state.ports.networkManager ?? 0, () => {
        const s = new grpc.Server({
          ...DEFAULT_SERVER_OPTIONS,
          interceptors: [countingInterceptor(net.calls), faultInterceptor(() => net.faults['network-manager'])]
        })
        s.addService(NetworkManagerService, manager.handlers())
        s.addService(CommandChannelService, commands.handlers())
        return { server: s, creds: serverCredentials(nmIdentity, nodeOnly) }
      }),
      enrollment: server(init.ports?.enrollment ?? state.ports.enrollment ?? 0, () => {
        const s = new grpc.Server({
          ...DEFAULT_SERVER_OPTIONS,
          interceptors: [countingInterceptor(net.calls), faultInterceptor(() => net.faults['network-manager'])]
        })
        s.addService(NetworkManagerService, { enroll: manager.handlers().enroll } as never)
        const m = nmIdentity.material()!
        // The chain includes the CA, so a node holding only the join token's
        // CA hash can check what it is shown.
        const creds = grpc.ServerCredentials.createSsl(
          null,
          [{ private_key: Buffer.from(m.keyPem), cert_chain: Buffer.from(`${m.certificateChainPem.trim()}\n${ca.certificatePem}`) }],
          false
        )
        return { server: s, creds }
      }),
      'spore-manager': server(init.ports?.sporeManager ?? state.ports.sporeManager ?? 0, () => {
        const s = new grpc.Server({
          ...DEFAULT_SERVER_OPTIONS,
          interceptors: [countingInterceptor(net.calls), faultInterceptor(() => net.faults['spore-manager'])]
        })
        s.addService(SporeServiceService, spores.handlers())
        return { server: s, creds: serverCredentials(smIdentity, nodeOnly) }
      })
    }
    const net: DevNetwork = new DevNetwork(dir, ownsDir, state, ca, manager, commands, spores, identities, servers, host)
    try {
      for (const s of Object.values(servers)) await s.start()
    } catch (err) {
      await net.stop()
      throw err
    }
    manager.start()
    state.ports = {
      networkManager: servers['network-manager'].port,
      enrollment: servers.enrollment.port,
      sporeManager: servers['spore-manager'].port
    }
    await save()
    await net.publishAll()
    await net.writeFiles()
    init.logger?.info('dev network up', { networkId: state.networkId, dir, ...net.endpoints })
    return net
  }

  get networkId(): string {
    return this.state.networkId
  }

  get endpoints(): DevNetworkEndpoints {
    return {
      networkManager: `${this.host}:${this.servers['network-manager'].port}`,
      enrollment: `${this.host}:${this.servers.enrollment.port}`,
      sporeManager: `${this.host}:${this.servers['spore-manager'].port}`
    }
  }

  /** Emergency contact: calls for help relayed by peers, and emergency commands an operator prepares for them. */
  get distress(): DistressDesk {
    return this.networkManager.distressDesk
  }

  get caPem(): string {
    return this.ca.certificatePem
  }

  get trustBundle(): TrustBundle {
    return this.trustBundleOf()
  }

  /** The first join token (each token enrols one node; see newJoinToken). */
  get joinToken(): string {
    return this.formatToken(this.state.joinTokens[0]!)
  }

  /** Mints a new join token (one per node). */
  async newJoinToken(): Promise<string> {
    const t = newJoinTokenSecret()
    this.state.joinTokens.push(t)
    await saveState(this.dir, this.state)
    return this.formatToken(t)
  }

  /** Mints `count` join tokens with one state write (a fleet's worth). */
  async newJoinTokens(count: number): Promise<string[]> {
    const minted = Array.from({ length: count }, () => newJoinTokenSecret())
    this.state.joinTokens.push(...minted)
    await saveState(this.dir, this.state)
    return minted.map((t) => this.formatToken(t))
  }

  /**
   * A node-core config (YAML) pointing a node at this network: enrolment
   * endpoint, bootstrap file, and the given local settings.
   */
  nodeConfigYaml(node: {
    nodeId: string
    stateDir: string
    joinTokenFile: string
    socketPath: string
    httpListenAddress?: string
    readyInFallback?: boolean
    logLevel?: string
  }): string {
    return [
      `networkId: ${this.networkId}`,
      `nodeId: ${node.nodeId}`,
      `stateDir: ${node.stateDir}`,
      'identity:',
      `  joinTokenFile: ${node.joinTokenFile}`,
      '  enrollmentEndpoints:',
      `    - address: ${this.endpoints.enrollment}`,
      'discovery:',
      `  bootstrapFile: ${this.bootstrapFile}`,
      'status:',
      `  socketPath: ${node.socketPath}`,
      `  httpListenAddress: "${node.httpListenAddress ?? 'off'}"`,
      `  readyInFallback: ${node.readyInFallback ?? true}`,
      'logging:',
      `  level: ${node.logLevel ?? 'info'}`,
      '  format: json',
      ''
    ].join('\n')
  }

  /** Path of the SporeBundle (JSON) a node can ship as its bootstrap file. */
  get bootstrapFile(): string {
    return join(this.dir, 'bootstrap.json')
  }

  /** Crash-stops one manager (open streams die); `startManager` brings it back on the same port. */
  async stopManager(name: ManagerName): Promise<void> {
    const targets =
      name === 'network-manager' ? [this.servers['network-manager'], this.servers.enrollment] : [this.servers['spore-manager']]
    if (name === 'network-manager') this.networkManager.stop()
    for (const t of targets) {
      t.server?.forceShutdown()
      t.server = undefined
    }
  }

  async startManager(name: ManagerName): Promise<void> {
    if (name === 'network-manager') {
      await this.servers['network-manager'].start()
      await this.servers.enrollment.start()
      this.networkManager.start()
    } else {
      await this.servers['spore-manager'].start()
    }
  }

  /** Starts the Update Manager (artifacts over HTTPS, `service/update-manager`, update commands); stopped with the network. */
  async startUpdateManager(): Promise<DevUpdateManager> {
    const releaseKeys = () => (this.state.releaseKeys ?? []).map((pem) => signingKeyFromPem(pem))
    const um = new DevUpdateManager(
      {
        ca: this.ca,
        commands: this.commands,
        spores: this.spores,
        releaseKeys,
        operatorKeys: () => this.state.operatorKeys.map((pem) => signingKeyFromPem(pem))
      },
      { networkId: this.networkId, dir: this.dir, host: this.host }
    )
    await um.start()
    this.updateManagers.push(um)
    return um
  }

  private readonly updateManagers: DevUpdateManager[] = []

  /** Kills every open stream (health, commands, spore watches) without stopping servers. */
  killStreams(): void {
    this.networkManager.killHealthStreams()
    this.commands.killStreams()
    this.spores.killStreams()
  }

  async stop(): Promise<void> {
    for (const um of this.updateManagers.splice(0)) um.stop()
    this.networkManager.stop()
    for (const s of Object.values(this.servers)) {
      s.server?.forceShutdown()
      s.server = undefined
    }
    for (const id of this.identities) id.stop()
    if (this.ownsDir) {
      await stateWritesSettled(this.dir) // one still landing would make the removal fail (ENOTEMPTY)
      await rm(this.dir, { recursive: true, force: true })
    }
  }

  private trustBundleOf(): TrustBundle {
    return trustBundleFor(this.state, this.ca.certificatePem)
  }

  private formatToken(t: { tokenId: string; secret: string }): string {
    return formatJoinToken({
      networkId: this.state.networkId,
      tokenId: t.tokenId,
      secret: t.secret,
      caSha256: caCertificateSha256(this.ca.certificatePem)
    })
  }

  /** (Re)publishes bootstrap and service spores with the current endpoints (sequences bump). */
  async publishAll(): Promise<void> {
    const e = this.endpoints
    const endpoint = (address: string, service: ServiceName) => ({
      address,
      expectedIdentity: formatSpiffeId({ networkId: this.networkId, role: 'manager', name: service }),
      zone: '',
      priority: 0
    })
    const { networkManager, sporeManager } = SERVICE_NAMES
    const range = { min: 1, max: 1 }
    await this.spores.publish('bootstrap', {
      $case: 'bootstrap',
      value: {
        trustBundle: this.trustBundleOf(),
        seeds: [endpoint(e.networkManager, networkManager), endpoint(e.sporeManager, sporeManager)],
        httpsUrls: []
      }
    })
    await this.spores.publish(`service/${networkManager}`, {
      $case: 'service',
      value: { service: networkManager, endpoints: [endpoint(e.networkManager, networkManager)], contractVersions: range }
    })
    await this.spores.publish(`service/${sporeManager}`, {
      $case: 'service',
      value: { service: sporeManager, endpoints: [endpoint(e.sporeManager, sporeManager)], contractVersions: range }
    })
  }

  /** ca.crt, trust-bundle.json, bootstrap.json, join-token and endpoints.json in the state dir. */
  private async writeFiles(): Promise<void> {
    await writeFileAtomic(join(this.dir, 'ca.crt'), this.ca.certificatePem, { mode: 0o644 })
    await writeFileAtomic(this.bootstrapFile, formatSporeBundleJsonForFile(this.spores.list()), { mode: 0o644 })
    await writeFileAtomic(join(this.dir, 'join-token'), `${this.joinToken}\n`, { mode: 0o600 })
    await writeFileAtomic(join(this.dir, 'endpoints.json'), `${JSON.stringify(this.endpoints, null, 2)}\n`, { mode: 0o644 })
    await writeFileAtomic(join(this.dir, 'trust-bundle.json'), `${JSON.stringify(TrustBundle.toJSON(this.trustBundleOf()), null, 2)}\n`, {
      mode: 0o644
    })
  }
}

function pick(init: DevNetworkInit): Omit<ConstructorParameters<typeof DevNetworkManager>[1], 'networkId'> {
  return {
    ...(init.heartbeatIntervalMs != null ? { heartbeatIntervalMs: init.heartbeatIntervalMs } : {}),
    ...(init.leaseTtlMs != null ? { leaseTtlMs: init.leaseTtlMs } : {}),
    ...(init.handoffDeadlineMs != null ? { handoffDeadlineMs: init.handoffDeadlineMs } : {}),
    ...(init.failoverGraceMs != null ? { failoverGraceMs: init.failoverGraceMs } : {}),
    ...(init.registrationRate != null ? { registrationRate: init.registrationRate } : {}),
    ...(init.managerClock != null ? { clock: init.managerClock } : {})
  }
}

/** Starts a dev network (in-process). */
export function startDevNetwork(init: DevNetworkInit = {}): Promise<DevNetwork> {
  return DevNetwork.start(init)
}
