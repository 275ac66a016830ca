import { createHash, type KeyObject } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import type { experimental } from '@grpc/grpc-js'
import {
  formatSpiffeId,
  IdentityState,
  InvalidInputError,
  silentLogger,
  type Logger,
  type SpiffeRole,
  type Startable
} from '@mycelium/core-interfaces'
import { coalescing, writeFileAtomic } from '@mycelium/core-utils'
import { createCsr } from '../x509.js'
import type { CsrMaker } from './csr-child.js'
import {
  examineIdentity,
  inspectIdentity,
  judgeIdentity,
  type IdentityExamination,
  type IdentityMaterial,
  type IdentityReport
} from './inspect.js'
import { loadOrCreateKey } from './node-key.js'

type CertificateProvider = experimental.CertificateProvider
type CaListener = experimental.CaCertificateUpdateListener
type IdentityListener = experimental.IdentityCertificateUpdateListener

export interface IdentityStoreComponents {
  logger?: Logger
  /** How CSRs are made (the daemon: in a child process, `csrInChildProcess`). @default createCsr, in this process */
  makeCsr?: CsrMaker
}

export interface IdentityStoreInit {
  networkId: string
  /** Node id, or the service name of a manager identity. */
  name: string
  /** @default 'node' */
  role?: SpiffeRole
  keyFile: string
  certificateFile: string
  caFile: string
  /** How often the files are re-read and the validity re-checked. @default 5000 */
  reloadIntervalMs?: number
  /** @default a third of the certificate's lifetime */
  renewBeforeMs?: number
  now?: () => number
}

export const DEFAULT_IDENTITY_RELOAD_INTERVAL_MS = 5000

export interface IdentityStoreEvents {
  /** New usable material is in force (new connections use it). */
  change: [report: IdentityReport]
  /** The identity state changed (e.g. VALID → RENEWAL_DUE → EXPIRED). */
  state: [report: IdentityReport]
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    throw new InvalidInputError(
      code === 'EISDIR' ? 'a directory is in place of the file' : `cannot read (${code ?? (err as Error).message})`,
      path,
      { cause: err }
    )
  }
}

/**
 * The identity of this process on disk: key (created here, 0600), certificate
 * chain and trust bundle. It re-reads the files on an interval and hands new
 * usable material to grpc-js as a CertificateProvider, so renewed
 * certificates reach new connections without a restart. Material that fails
 * inspection is reported and never replaces usable material.
 */
class DefaultIdentityStore extends EventEmitter<IdentityStoreEvents> implements IdentityStore {
  private readonly log: Logger
  private readonly role: SpiffeRole
  private readonly spiffe: string
  private key?: { privateKey: KeyObject; pem: string }
  private keyLoading?: Promise<{ privateKey: KeyObject; pem: string }>
  private inForce?: IdentityMaterial
  private inForceDigest?: string
  /** The last material examined (digest of chain and trust bundle, and the key), so an unchanged reload only checks the clock. */
  private examined?: { digest: string; keyPem: string; examination: IdentityExamination }
  private last: IdentityReport = { state: IdentityState.MISSING, reason: 'not loaded yet', usable: false }
  private timer?: NodeJS.Timeout
  private readonly caListeners = new Set<CaListener>()
  private readonly identityListeners = new Set<IdentityListener>()

  constructor(
    private readonly components: IdentityStoreComponents,
    private readonly init: IdentityStoreInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('basic-net:identity')
    this.role = init.role ?? 'node'
    this.spiffe = formatSpiffeId({ networkId: init.networkId, role: this.role, name: init.name })
  }

  get spiffeId(): string {
    return this.spiffe
  }

  isStarted(): boolean {
    return this.timer != null
  }

  async start(): Promise<void> {
    if (this.timer != null) return
    await this.loadKey(true)
    await this.reload()
    if (this.timer != null) return // a concurrent start() got here first: one reload timer only
    this.timer = setInterval(
      () => void this.reload().catch((err: unknown) => this.log.error('identity reload failed', { err })),
      this.init.reloadIntervalMs ?? DEFAULT_IDENTITY_RELOAD_INTERVAL_MS
    )
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /**
   * The key, loaded (or created) once at a time: concurrent callers share one
   * load, so two starts never each generate a key. `fresh` re-reads the file.
   */
  private loadKey(fresh = false): Promise<{ privateKey: KeyObject; pem: string }> {
    if (!fresh && this.key != null) return Promise.resolve(this.key)
    this.keyLoading ??= loadOrCreateKey(this.init.keyFile, this.log)
      .then((k) => (this.key = k))
      .finally(() => {
        this.keyLoading = undefined
      })
    return this.keyLoading
  }

  /** The latest inspection. */
  report(): IdentityReport {
    return this.last
  }

  /** The usable material in force, if any. */
  material(): IdentityMaterial | undefined {
    return this.inForce
  }

  /** A CSR for this identity, signed by its key (for enrolment and renewal). */
  async createCsr(): Promise<Buffer> {
    const key = await this.loadKey()
    return (this.components.makeCsr ?? createCsr)(key.privateKey, this.spiffe)
  }

  /**
   * Installs a certificate chain (and optionally a new trust bundle) after
   * checking it against the key and the network. Bad material is refused
   * with InvalidInputError and nothing on disk changes.
   */
  async install(certificateChainPem: string, caPem?: string): Promise<IdentityReport> {
    const key = await this.loadKey()
    const ca = caPem ?? (await readOptional(this.init.caFile)) ?? ''
    const report = inspectIdentity({ keyPem: key.pem, certificateChainPem, caPem: ca }, this.inspectOptions())
    if (!report.usable) throw new InvalidInputError(`refusing to install: ${report.reason}`, this.init.certificateFile)
    // PEM files end with a newline, so `cat node.crt ca.crt` is a valid bundle.
    if (caPem != null) await writeFileAtomic(this.init.caFile, withNewline(caPem), { mode: 0o644 })
    await writeFileAtomic(this.init.certificateFile, withNewline(certificateChainPem), { mode: 0o644 })
    return this.reload()
  }

  /** Re-reads the files and re-checks validity; sees every change made before the call. */
  readonly reload: () => Promise<IdentityReport> = coalescing(() => this.doReload())

  private inspectOptions() {
    return {
      networkId: this.init.networkId,
      role: this.role,
      name: this.init.name,
      nowMs: (this.init.now ?? Date.now)(),
      sources: { certificateChain: `certificate chain ${this.init.certificateFile}`, trustBundle: `trust bundle ${this.init.caFile}` },
      ...(this.init.renewBeforeMs != null ? { renewBeforeMs: this.init.renewBeforeMs } : {})
    }
  }

  private async doReload(): Promise<IdentityReport> {
    const key = await this.loadKey()
    let report: IdentityReport
    // An unreadable file (a directory in its place) is an invalid identity naming the file, not a throw.
    const read = await Promise.all([readOptional(this.init.certificateFile), readOptional(this.init.caFile)]).catch((err: Error) => err)
    const [chain, ca] = read instanceof Error ? [] : read
    if (read instanceof Error) {
      report = { state: IdentityState.INVALID, reason: read.message, usable: false }
    } else if (chain == null || ca == null) {
      report = {
        state: IdentityState.MISSING,
        reason:
          chain == null ? `no certificate at ${this.init.certificateFile}: enrolment needed` : `no trust bundle at ${this.init.caFile}`,
        usable: false
      }
    } else {
      const material: IdentityMaterial = { keyPem: key.pem, certificateChainPem: chain, caPem: ca }
      const digest = createHash('sha256').update(chain).update('\0').update(ca).digest('hex')
      // The files are re-read every reload, but parsed and verified only when they (or the key) changed:
      // a reload of unchanged material is a clock check, not certificate parsing and signature checks.
      const options = this.inspectOptions()
      if (this.examined?.digest !== digest || this.examined.keyPem !== key.pem) {
        this.examined = { digest, keyPem: key.pem, examination: examineIdentity(material, options) }
      }
      report = judgeIdentity(this.examined.examination, options.nowMs, options.renewBeforeMs)
      if (report.usable && digest !== this.inForceDigest) {
        this.inForce = material
        this.inForceDigest = digest
        this.publish()
        this.log.info('identity material in force', { spiffeId: this.spiffe, notAfter: report.notAfter?.toISOString() })
        this.emit('change', report)
      }
    }
    if (report.state !== this.last.state || report.reason !== this.last.reason) {
      const log = report.usable ? this.log.info.bind(this.log) : this.log.warn.bind(this.log)
      log('identity state', { state: IdentityState[report.state], reason: report.reason })
      this.last = report
      this.emit('state', report)
    }
    this.last = report
    return report
  }

  private publish(): void {
    const m = this.inForce
    if (m == null) return
    for (const l of this.caListeners) l({ caCertificate: Buffer.from(m.caPem) })
    for (const l of this.identityListeners) l({ certificate: Buffer.from(m.certificateChainPem), privateKey: Buffer.from(m.keyPem) })
  }

  // grpc-js registers its watcher only after adding the listener, so the
  // current material is delivered on the next microtask, not synchronously.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener)
    queueMicrotask(() => {
      if (this.inForce != null && this.caListeners.has(listener)) listener({ caCertificate: Buffer.from(this.inForce.caPem) })
    })
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener)
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener)
    queueMicrotask(() => {
      if (this.inForce != null && this.identityListeners.has(listener)) {
        listener({ certificate: Buffer.from(this.inForce.certificateChainPem), privateKey: Buffer.from(this.inForce.keyPem) })
      }
    })
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener)
  }
}

/**
 * The identity of this process on disk (see `createIdentityStore`), and the
 * grpc-js CertificateProvider that hands renewed material to new connections.
 */
export interface IdentityStore extends EventEmitter<IdentityStoreEvents>, Startable, CertificateProvider {
  /** spiffe://<network>/<role>/<name> of this identity. */
  readonly spiffeId: string
  start(): Promise<void>
  stop(): void
  /** The identity's state now (usable, missing, invalid, expiring) and why. */
  report(): IdentityReport
  /** The material in force, when usable. */
  material(): IdentityMaterial | undefined
  /** A CSR for this identity's key (enrolment, renewal). */
  createCsr(): Promise<Buffer>
  /** Installs a new certificate chain (and trust bundle) after checking it; returns the new report. */
  install(certificateChainPem: string, caPem?: string): Promise<IdentityReport>
  /** Re-reads the files now (concurrent calls share one read). */
  readonly reload: () => Promise<IdentityReport>
}

/** The identity (key, certificate chain, trust bundle) of a node or manager, reloaded from disk. */
export function createIdentityStore(components: IdentityStoreComponents, init: IdentityStoreInit): IdentityStore {
  return new DefaultIdentityStore(components, init)
}

/** `pem` ending with exactly one newline. */
const withNewline = (pem: string): string => `${pem.replace(/\s+$/, '')}\n`
