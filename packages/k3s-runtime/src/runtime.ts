import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import {
  Availability,
  HealthState,
  K3sRole,
  silentLogger,
  UnavailableError,
  type ComponentHealth,
  type K3sConfig,
  type Logger,
  type RuntimeCapability,
  type Startable,
  type WorkloadStatus
} from '@mycelium/core-interfaces'
import { writeFileAtomic } from '@mycelium/core-utils'
import { findK3sBinary, k3sVersion } from './binary.js'
import { CriClient, DEFAULT_CRI_SOCKET } from './cri.js'
import { renderK3s, validateK3sConfig, type RenderedK3s } from './k3s-config.js'
import { KubeApiView, type KubeNode, type KubePod } from './kube-api.js'
import { setUnschedulable } from './cordon.js'
import type { K3sStep } from './planner.js'
import { K3sSupervisor, type K3sProcessStatus, type K3sSupervisorInit } from './supervisor.js'
import { DEFAULT_WORKLOADS_INTERVAL_MS } from './defaults.js'

export interface K3sRuntimeInit {
  k3s: K3sConfig | undefined
  /** Default Kubernetes node name. */
  nodeId?: string
  /** The core's state dir; the runtime keeps its files in `<stateDir>/k3s`. Required to supervise K3s. */
  stateDir?: string
  /** The PATH to search when no binary is configured (node-core passes process.env.PATH). */
  path?: string
  /** How often the CRI is asked for the workload list. @default DEFAULT_WORKLOADS_INTERVAL_MS */
  workloadsIntervalMs?: number
  /** Supervisor tuning (tests shorten the intervals). */
  supervisor?: Partial<Omit<K3sSupervisorInit, 'dir' | 'probe'>>
}

export interface K3sRuntimeComponents {
  logger?: Logger
}

/**
 * The node's container runtime (see `createK3sRuntime`). `start`/`stop` are
 * idempotent; stopping it never stops K3s.
 */
export interface K3sRuntime extends EventEmitter<{ change: [] }>, Startable {
  stop(): void
  /** A new NodeConfig.k3s (from the manager or a reset): the planner decides whether K3s restarts. */
  reconfigure(k3s: K3sConfig | undefined): Promise<K3sStep[]>
  /** The restart command for this component: K3s restarted once with a fresh restart budget. */
  restart(reason?: string): Promise<void>
  /** The last list the CRI gave; kept while the CRI does not answer (the workloads most likely still run). */
  workloads(): WorkloadStatus[]
  /** Nodes and pods as the Kubernetes API sees them (servers, while K3s answers); otherwise why not. */
  kubernetes(): Promise<{ nodes: KubeNode[]; pods: KubePod[] } | { unavailable: string }>
  /** Writes `kubernetes.json` beside the runtime's own files, for a diagnostics dump. */
  writeSnapshot(): Promise<void>
  /**
   * Cordons (false) or uncordons (true) this node through the Kubernetes API
   * when K3s runs here as a server; 'no-k3s' when K3s is not enabled (nothing
   * to cordon). Throws UnavailableError when the API does not answer.
   */
  setSchedulable(schedulable: boolean): Promise<'done' | 'no-k3s'>
  processStatus(): K3sProcessStatus | undefined
  /** What the runtime offers (registration, heartbeats, status). */
  capability(): RuntimeCapability
  /** This component's line in node health. */
  health(): ComponentHealth
}

/** The node's container runtime, configured from NodeConfig.k3s. */
export function createK3sRuntime(components: K3sRuntimeComponents, init: K3sRuntimeInit): K3sRuntime {
  return new DefaultK3sRuntime(components, init)
}

/**
 * The node's container runtime as the rest of the core sees it: K3s
 * configured from NodeConfig and supervised, its workloads read through the
 * CRI (which needs neither the Kubernetes API nor the managers), and the
 * Kubernetes API view while K3s serves it. Disabled or not installed, it
 * reports "unavailable" with the reason and the rest of the core runs
 * normally (what a developer machine shows). Stopping it never stops K3s.
 */
class DefaultK3sRuntime extends EventEmitter<{ change: [] }> implements K3sRuntime {
  private readonly log: Logger
  private k3s: K3sConfig | undefined
  private unavailable: string | undefined = 'not checked yet'
  private version = ''
  private supervisor: K3sSupervisor | undefined
  private cri: CriClient | undefined
  private snapshot: WorkloadStatus[] = []
  private criError: string | undefined
  private timer: NodeJS.Timeout | undefined
  private started = false

  constructor(
    private readonly components: K3sRuntimeComponents,
    private readonly init: K3sRuntimeInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('k3s-runtime')
    this.k3s = init.k3s
  }

  isStarted(): boolean {
    return this.started
  }

  /** Idempotent; concurrent calls share one start; a start that fails stops what it started (never K3s itself) and rethrows. */
  async start(): Promise<void> {
    // A second caller waits for the same start: returning early would report a runtime not configured yet.
    if (this.starting != null) return this.starting
    if (this.started) return
    this.started = true
    this.starting = this.startUp().finally(() => {
      this.starting = undefined
    })
    return this.starting
  }

  private starting?: Promise<void>

  private async startUp(): Promise<void> {
    // A config not validated by a loader (composed in code): unavailable, saying why; nothing started.
    try {
      if (this.k3s != null) validateK3sConfig(this.k3s, 'NodeConfig.k3s')
    } catch (err) {
      this.unavailable = `invalid config: ${(err as Error).message}`
      return
    }
    try {
      await this.configure()
    } catch (err) {
      this.stop()
      throw err
    }
  }

  stop(): void {
    // Never stops K3s: workloads keep running whatever happens to the agent.
    this.started = false
    clearInterval(this.timer)
    this.timer = undefined
    this.supervisor?.stop()
    this.supervisor = undefined
    this.cri?.close()
    this.cri = undefined
  }

  /** A new NodeConfig.k3s (from the manager or a reset): the planner decides whether K3s restarts. */
  async reconfigure(k3s: K3sConfig | undefined): Promise<K3sStep[]> {
    // Invalid: throws, nothing changes (a config trial then reverts with this reason).
    if (k3s != null) validateK3sConfig(k3s, 'NodeConfig.k3s')
    this.k3s = k3s
    return this.started ? this.configure() : []
  }

  /** The restart command for this component: K3s restarted once with a fresh restart budget. */
  async restart(reason = 'restart command'): Promise<void> {
    if (this.supervisor == null) throw new UnavailableError(`k3s is not supervised here (${this.unavailable ?? 'no supervisor'})`)
    await this.supervisor.restartNow(reason)
  }

  private async configure(): Promise<K3sStep[]> {
    const k3s = this.k3s
    if (k3s == null || !k3s.enabled) {
      this.unavailable = 'disabled in NodeConfig (k3s.enabled is false)'
      this.stopCri()
      // Leaves a K3s we ran alive, only unsupervised (the planner's "unmanage").
      return this.supervisor?.apply(undefined) ?? []
    }
    this.startCri(k3s.criSocket || DEFAULT_CRI_SOCKET)
    const found = await findK3sBinary(k3s.binaryPath, this.init.path ?? '')
    if ('missing' in found) {
      this.unavailable = found.missing
      return []
    }
    const version = await k3sVersion(found.binary)
    if ('error' in version) {
      this.unavailable = version.error
      return []
    }
    this.version = version.version
    this.unavailable = undefined
    const dir = this.dir()
    if (dir == null) return []
    if (this.supervisor == null) {
      this.supervisor = new K3sSupervisor(this.components, { ...this.init.supervisor, dir, probe: (r, signal) => this.probe(r, signal) })
      this.supervisor.on('change', () => this.emit('change'))
      await this.supervisor.start()
    }
    const desired = renderK3s(k3s, this.init.nodeId ?? '', found.binary, { kubeconfig: join(dir, 'kubeconfig.yaml') })
    return this.supervisor.apply(desired)
  }

  /** Servers: the API's /readyz through the kubeconfig K3s wrote. Agents: the CRI says RuntimeReady. */
  private async probe(rendered: RenderedK3s, signal: AbortSignal): Promise<{ ready: boolean; reason: string }> {
    const kubeconfig = rendered.config['write-kubeconfig']
    if (rendered.role === 'server' && typeof kubeconfig === 'string') {
      const ready = await new KubeApiView({ kubeconfig }).readyz({ signal })
      return { ready, reason: ready ? '' : '/readyz is not ok yet' }
    }
    const info = await this.cri!.info({ signal })
    return { ready: info.conditions.RuntimeReady === true, reason: info.conditions.RuntimeReady ? '' : 'CRI runtime not ready' }
  }

  private startCri(socket: string): void {
    if (this.cri?.socket === socket) return
    this.stopCri()
    this.cri = new CriClient({ socket })
    const cri = this.cri
    const poll = async (): Promise<void> => {
      try {
        const list = await cri.workloads()
        if (this.cri !== cri) return
        if (this.criError != null) this.log.info('CRI answers again', { socket })
        this.snapshot = list
        this.criError = undefined
      } catch (err) {
        if (this.cri !== cri) return
        const reason = (err as Error).message
        if (this.criError == null) this.log.warn('CRI not answering; keeping the last workload list', { socket, reason })
        this.criError = reason
      }
    }
    void poll()
    this.timer = setInterval(() => void poll(), this.init.workloadsIntervalMs ?? DEFAULT_WORKLOADS_INTERVAL_MS)
    this.timer.unref()
  }

  private stopCri(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.cri?.close()
    this.cri = undefined
    this.snapshot = []
    this.criError = undefined
  }

  /** The last list the CRI gave; kept while the CRI does not answer (the workloads most likely still run). */
  workloads(): WorkloadStatus[] {
    return this.snapshot.map((w) => ({ ...w }))
  }

  /**
   * Nodes and pods as the Kubernetes API sees them (servers, while K3s
   * answers); otherwise why not. For diagnostics and operators' tools.
   */
  async kubernetes(): Promise<{ nodes: KubeNode[]; pods: KubePod[] } | { unavailable: string }> {
    const dir = this.dir()
    if (dir == null || this.k3s?.enabled !== true) return { unavailable: this.unavailable ?? 'k3s not supervised here' }
    if (this.k3s.role === K3sRole.AGENT) return { unavailable: 'k3s runs as an agent here: the Kubernetes API is on its server' }
    const view = new KubeApiView({ kubeconfig: join(dir, 'kubeconfig.yaml') })
    try {
      return { nodes: await view.nodes(), pods: await view.pods() }
    } catch (err) {
      return { unavailable: (err as Error).message }
    }
  }

  /**
   * Writes `kubernetes.json` (workloads, and what the Kubernetes API says now
   * or why it cannot) beside the runtime's own files, for a diagnostics dump.
   */
  async writeSnapshot(): Promise<void> {
    const dir = this.dir()
    if (dir == null) return
    await writeFileAtomic(
      join(dir, 'kubernetes.json'),
      JSON.stringify({ at: new Date(), workloads: this.workloads(), ...(await this.kubernetes()) }, null, 2)
    )
  }

  async setSchedulable(schedulable: boolean): Promise<'done' | 'no-k3s'> {
    const dir = this.dir()
    if (dir == null || this.k3s?.enabled !== true) return 'no-k3s'
    if (this.k3s.role === K3sRole.AGENT)
      throw new UnavailableError('k3s runs as an agent here: its server cordons it (the Kubernetes API is there)')
    await setUnschedulable(join(dir, 'kubeconfig.yaml'), this.k3s.nodeName || this.init.nodeId || '', !schedulable)
    return 'done'
  }

  /** The runtime's own files (config.yaml, k3s.log, kubeconfig.yaml, supervisor state); none without a state dir. */
  private dir(): string | undefined {
    return this.init.stateDir != null ? join(this.init.stateDir, 'k3s') : undefined
  }

  processStatus(): K3sProcessStatus | undefined {
    return this.supervisor?.status()
  }

  capability(): RuntimeCapability {
    const base = { name: 'k3s', version: this.version }
    if (this.unavailable != null) return { ...base, availability: Availability.UNAVAILABLE, reason: this.unavailable }
    const s = this.supervisor?.status()
    if (s == null) return { ...base, availability: Availability.AVAILABLE, reason: '' }
    switch (s.state) {
      case 'ready':
        return { ...base, availability: Availability.AVAILABLE, reason: '' }
      case 'failed':
      case 'stopped':
      case 'unmanaged':
        return { ...base, availability: Availability.UNAVAILABLE, reason: s.reason }
      default:
        return { ...base, availability: Availability.DEGRADED, reason: `${s.state}: ${s.reason}` }
    }
  }

  /** This component's line in node health. */
  health(): ComponentHealth {
    const cap = this.capability()
    const s = this.supervisor?.status()
    const state =
      cap.availability === Availability.AVAILABLE
        ? HealthState.HEALTHY
        : cap.availability === Availability.DEGRADED
          ? HealthState.DEGRADED
          : s?.state === 'failed'
            ? HealthState.UNHEALTHY
            : HealthState.STOPPED
    const cri = this.criError != null ? `; CRI: ${this.criError}` : ''
    return {
      name: 'k3s-runtime',
      state,
      reason: `${cap.reason}${cri}`,
      ...(s != null ? { since: s.since } : {}),
      restarts: s?.restarts ?? 0
    }
  }
}
