import { EventEmitter } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import {
  Assignment,
  DynamicComponentState,
  InvalidInputError,
  NotFoundError,
  UnavailableError,
  silentLogger,
  type ComponentHealth,
  type ComponentInfo,
  type DynamicComponentStatus,
  type Logger,
  type Startable
} from '@mycelium/core-interfaces'
import { coalescing } from '@mycelium/core-utils'
import { ArtifactStore } from './artifact-store.js'
import { detectCgroupV2, type CgroupSupport } from './cgroup.js'
import { ComponentTable, type Entry } from './component-table.js'
import type { RunRecord } from './component-process.js'
import * as D from './defaults.js'
import { desiredComponents } from './desired.js'
import { ManagerStateFile } from './manager-state.js'
import type { ComponentManagerComponents, ComponentManagerEvents, ComponentManagerInit } from './manager-options.js'
import { planComponents, type ComponentSpec } from './planner.js'
import { rssOf, rssOfTree } from './proc.js'
import { applyPins, observedComponents, type Pin } from './reconcile-inputs.js'
import { componentHealth, componentInfo, componentStatus, restingState } from './status-view.js'
import { healthVerdict, idleExpired } from './supervision-policy.js'
import { ComponentSupervisor } from './supervisor.js'

export type { ComponentManagerComponents, ComponentManagerEvents, ComponentManagerInit } from './manager-options.js'

/**
 * The dynamic component manager: desired state from assignments (persisted,
 * so it survives an agent restart and the loss of every manager), resolved
 * against verified component spores, reconciled by the pure planner and
 * executed by the supervisor, one step at a time (the reconcile runs are
 * serialised).
 *
 * Components are processes of their own that outlive the agent: stop()
 * leaves them running (as workloads are), and the next start() adopts each
 * one that still runs (same PID and start time, answering Hello) or stops
 * it and starts it afresh — never a second copy. Only an unassignment,
 * an idle on-demand component, a restart or unloadAll() stops one.
 */
export class ComponentManager extends EventEmitter<ComponentManagerEvents> implements Startable {
  private readonly log: Logger
  private readonly store: ArtifactStore
  private readonly table: ComponentTable
  private readonly supervisor: ComponentSupervisor
  private readonly stateFile: ManagerStateFile
  private generation = 0
  private assignments: Assignment[] = []
  private known: Record<string, ComponentSpec> = {}
  private pinned: Record<string, Pin> = {}
  private cgroup: CgroupSupport = { available: false, reason: 'not detected yet' }
  private controller?: AbortController
  private timer?: NodeJS.Timeout
  private catalogueKey = ''
  private ticking = false
  private readonly runDir: string
  /** Why no component can be installed or started on this node (the store could not be opened). */
  private unusable?: string

  constructor(
    private readonly components: ComponentManagerComponents,
    private readonly init: ComponentManagerInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('component-manager')
    this.runDir = init.runDir ?? join(init.dir, 'run')
    this.stateFile = new ManagerStateFile(this.log, join(init.dir, 'state'))
    this.store = new ArtifactStore({
      dir: join(init.dir, 'store'),
      maxBytes: init.storeMaxBytes ?? D.DEFAULT_STORE_MAX_BYTES,
      caPem: init.caPem ?? (() => undefined),
      fetchTimeoutMs: init.fetchTimeoutMs ?? D.DEFAULT_FETCH_TIMEOUT_MS
    })
    const changed = (): void => void this.emit('changed')
    this.table = new ComponentTable(
      { log: this.log, changed },
      { restartBackoff: init.restartBackoff ?? D.DEFAULT_RESTART_BACKOFF, random: init.random ?? Math.random }
    )
    this.supervisor = new ComponentSupervisor(
      {
        log: this.log,
        table: this.table,
        store: this.store,
        known: () => this.known,
        cgroup: () => this.cgroup,
        persist: async () => this.persist(),
        changed
      },
      { ...init, runDir: this.runDir }
    )
  }

  isStarted(): boolean {
    return this.controller != null
  }

  async start(): Promise<void> {
    if (this.controller != null) return
    const controller = new AbortController()
    this.controller = controller
    try {
      try {
        await Promise.all([
          mkdir(this.runDir, { recursive: true }),
          mkdir(join(this.init.dir, 'logs'), { recursive: true }),
          this.store.open()
        ])
        this.unusable = undefined
      } catch (err) {
        // A state dir we cannot write (read-only, full) must not keep the node from starting: every component says why.
        this.unusable = `component store unusable: ${(err as Error).message}`
        this.log.error('component store unusable; components cannot be installed', { err })
      }
      this.cgroup = await detectCgroupV2(this.init.cgroupRoot ?? D.DEFAULT_CGROUP_ROOT)
      if (this.cgroup.available) this.log.info('cgroup v2 limits enabled for components', { dir: this.cgroup.dir })
      else this.log.info('component resource limits: Node heap limit only', { reason: this.cgroup.reason })
      const running = await this.load()
      await this.supervisor.adopt(running, (name) => this.parametersOf(name), controller.signal)
    } catch (err) {
      this.controller = undefined
      throw err
    }
    this.timer = setInterval(() => void this.tick(), this.init.healthIntervalMs ?? D.DEFAULT_HEALTH_INTERVAL_MS)
    this.timer.unref()
    void this.reconcile()
  }

  /** Stops managing; the component processes keep running (the next start adopts them). */
  async stop(): Promise<void> {
    if (this.controller == null) return
    this.controller.abort()
    this.controller = undefined
    clearInterval(this.timer)
    await this.reconcile().catch(() => undefined)
    for (const e of this.table.values()) e.proc?.close()
    this.table.clear()
  }

  /** Stops every component process (teardown, tests); assignments stay stored. */
  async unloadAll(reason = 'unloaded'): Promise<void> {
    for (const e of this.table.values()) await this.supervisor.stopProcess(e, reason)
    await this.persist()
  }

  /** The assignment generation in force. */
  get assignmentsGeneration(): number {
    return this.generation
  }

  /**
   * A new full set of assignments. One older than the generation in force
   * is ignored (a late answer); an equal one is applied (a registration
   * re-states the set). Persisted before it is acted on; resolves once the
   * runner acted on it (each component's outcome is in its status).
   */
  async setAssignments(generation: number, assignments: Assignment[]): Promise<void> {
    if (generation < this.generation) {
      this.log.debug('stale assignments ignored', { generation, current: this.generation })
      return
    }
    this.generation = generation
    this.assignments = assignments.map((a) => Assignment.fromPartial(a))
    // A reassignment is a new chance for what failed before.
    for (const e of this.table.values()) e.blocked = undefined
    this.log.info('assignments received', { generation, assignments: assignments.map((a) => `${a.componentSpore}=${a.desiredState}`) })
    await this.persist()
    await this.reconcile()
  }

  /**
   * An on-demand component is used: started if it is not running (resolves
   * once it answered Hello, or rejects with the reason it could not start),
   * and its idle time starts again.
   */
  async use(name: string, options: { signal?: AbortSignal } = {}): Promise<DynamicComponentStatus> {
    const e = this.table.get(name)
    if (e == null || this.controller == null) throw new NotFoundError(`component ${name} is not assigned to this node`)
    e.lastUseMs = Date.now()
    e.wanted = true
    await this.reconcile()
    const s = this.statusOf(e)
    if (e.proc == null) throw new UnavailableError(`component ${name} is not running: ${e.reason || DynamicComponentState[e.state]}`)
    options.signal?.throwIfAborted()
    return s
  }

  /**
   * An `update` command for a component: the given version (fetched and
   * verified by its digest) replaces the running one through the same
   * planner and runner — installed beside the old one, started, and kept
   * only when it answers Hello; otherwise the old version runs again and
   * this rejects with the reason. The version stays in place of the
   * spore's until the spore names other bytes (a newer release).
   */
  async update(
    target: { name: string; version: string; digest: string; urls: string[] },
    options: { signal?: AbortSignal } = {}
  ): Promise<void> {
    const e = this.table.get(target.name)
    const current = e?.spec
    if (e == null || current == null || this.controller == null)
      throw new NotFoundError(`component ${target.name} is not assigned to this node (update command)`)
    if (!/^sha256:[0-9a-f]{64}$/.test(target.digest))
      throw new InvalidInputError(`artifact_digest "${target.digest}" is not "sha256:<64 hex>"`, 'update command')
    const urls = target.urls.filter((u) => u.startsWith('https://'))
    if (urls.length === 0) throw new InvalidInputError(`artifact_urls has no https:// URL (${target.urls.length} given)`, 'update command')
    const base = this.components.catalogue().find((b) => b.name === target.name)?.artifactDigest ?? current.digest
    const previous = this.pinned[target.name]
    this.pinned[target.name] = { spec: { ...current, version: target.version, digest: target.digest, urls, sizeBytes: 0 }, base }
    e.blocked = undefined
    await this.persist()
    await this.reconcile()
    options.signal?.throwIfAborted()
    const now = this.table.get(target.name)
    const done = now?.proc != null ? now.proc.record.digest === target.digest : this.known[target.name]?.digest === target.digest
    if (done && now?.blocked == null) return
    // What ran before (an earlier update's version, or the spore's) stays the desired one.
    if (previous != null) this.pinned[target.name] = previous
    else delete this.pinned[target.name]
    await this.persist()
    throw new UnavailableError(
      `update of ${target.name} to ${target.version} failed: ${now?.blocked?.reason ?? (now?.reason || 'not installed')}`
    )
  }

  /**
   * The restart command for `component/<name>`: an on-demand component is
   * used (started if idle), any other one is stopped and started again with
   * a fresh restart budget.
   */
  async restart(name: string): Promise<void> {
    const e = this.table.get(name)
    if (e == null || this.controller == null) throw new NotFoundError(`component ${name} is not assigned to this node`)
    if (e.spec?.onDemand === true) {
      await this.use(name)
      return
    }
    e.blocked = undefined
    e.crashes = []
    e.backoff.reset()
    await this.supervisor.stopProcess(e, 'restart command')
    await this.reconcile()
    if (e.proc == null) throw new UnavailableError(`component ${name} did not start again: ${e.reason}`)
  }

  /** Dynamic components for NodeStatus and heartbeats (with memory). */
  status(): DynamicComponentStatus[] {
    return [...this.table.values()].sort((a, b) => a.name.localeCompare(b.name)).map((e) => this.statusOf(e))
  }

  /** The agent's own RSS plus every component process tree's, in bytes. */
  memory(): { agentRssBytes: number; componentsRssBytes: number } {
    let children = 0
    for (const e of this.table.values()) if (e.proc?.alive() === true) children += rssOfTree(e.proc.record.pid)
    return { agentRssBytes: rssOf(process.pid), componentsRssBytes: children }
  }

  /** Installed components for capabilities (no memory: capabilities are re-sent only when this changes). */
  installed(): ComponentInfo[] {
    return this.status().map(componentInfo)
  }

  /** Component health for the node's aggregate: running or idle is healthy; anything else degrades the node, never fails it. */
  health(): ComponentHealth[] {
    return [...this.table.values()].map(componentHealth)
  }

  /** Whether cgroup v2 limits are applied, and why not. */
  get limits(): CgroupSupport {
    return this.cgroup
  }

  private statusOf(e: Entry): DynamicComponentStatus {
    const live = e.proc?.alive() === true ? { pid: e.proc.record.pid, rssBytes: rssOfTree(e.proc.record.pid) } : undefined
    return componentStatus(e, live)
  }

  // --- persistence ----------------------------------------------------------------

  /** Restores assignments, known specs and pins; returns the processes the previous run recorded. */
  private async load(): Promise<Record<string, RunRecord>> {
    const s = await this.stateFile.read()
    if (s == null) return {}
    this.generation = s.generation
    this.assignments = s.assignments
    this.known = s.known
    this.pinned = s.pinned
    return s.running
  }

  private async persist(): Promise<void> {
    const running: Record<string, RunRecord> = {}
    for (const e of this.table.values()) if (e.proc != null) running[e.name] = e.proc.record
    await this.stateFile.write({
      generation: this.generation,
      assignments: this.assignments,
      known: this.known,
      running,
      pinned: this.pinned
    })
  }

  private parametersOf(name: string): Record<string, string> {
    const a = this.assignments.find((x) => x.componentSpore === `component/${name}`)
    return { ...(a?.parameters ?? {}) }
  }

  // --- the periodic tick: exits, health, idle time, logs, spore changes -----------

  private async tick(): Promise<void> {
    const signal = this.controller?.signal
    if (signal == null || this.ticking) return
    this.ticking = true
    let replan = false
    try {
      const now = Date.now()
      for (const e of this.table.values()) {
        await e.follower?.poll()
        if (e.blocked?.untilMs != null && now >= e.blocked.untilMs) {
          e.blocked = undefined
          replan = true
        }
        const proc = e.proc
        if (proc == null) continue
        if (!proc.alive()) {
          await e.follower?.poll()
          this.supervisor.onExit(e, proc.exitText())
          replan = true
          continue
        }
        try {
          const h = await proc.health(this.init.healthTimeoutMs ?? D.DEFAULT_HEALTH_TIMEOUT_MS, signal)
          if (e.proc !== proc) continue
          if (e.lastWorkCount != null && h.workCount !== e.lastWorkCount) e.lastUseMs = now
          e.lastWorkCount = h.workCount
          const verdict = healthVerdict(h, e.blocked?.reason)
          this.table.setState(e, verdict.state, verdict.reason)
        } catch (err) {
          if (signal.aborted || e.proc !== proc) continue
          this.table.setState(e, DynamicComponentState.UNHEALTHY, `Health not answered: ${(err as Error).message}`)
        }
        if (e.wanted && idleExpired(e.spec, e.lastUseMs, now, this.init.idleTimeoutMs, D.DEFAULT_IDLE_TIMEOUT_MS)) {
          e.wanted = false
          replan = true
        }
      }
      const key = JSON.stringify(this.components.catalogue().map((b) => [b.name, b.artifactDigest]))
      if (key !== this.catalogueKey) {
        this.catalogueKey = key
        replan = true
      }
    } finally {
      this.ticking = false
    }
    if (replan) void this.reconcile()
  }

  // --- the runner ---------------------------------------------------------------

  /** One reconcile at a time; a request during a run queues exactly one more. */
  readonly reconcile = coalescing(async (): Promise<void> => {
    const signal = this.controller?.signal
    if (signal == null || signal.aborted) return
    const pinnedDesired = applyPins(
      desiredComponents(this.assignments, this.components.catalogue(), this.known, {
        artifactMaxBytes: this.init.artifactMaxBytes ?? D.DEFAULT_ARTIFACT_MAX_BYTES
      }),
      this.pinned
    )
    const desired = pinnedDesired.desired
    this.pinned = pinnedDesired.pinned
    if (this.unusable != null) {
      for (const d of desired) {
        const e = this.table.entry(d.name)
        if (e.proc == null) this.table.setState(e, DynamicComponentState.FAILED, this.unusable)
      }
      return
    }
    const installed = await this.store.installed()
    for (const d of desired) {
      const e = this.table.entry(d.name)
      e.assignmentId = d.assignmentId
      if (d.spec != null && e.proc == null) e.spec = d.spec
      if (d.spec != null && !d.spec.onDemand) e.wanted = true
    }
    const steps = planComponents(observedComponents(this.table.values(), installed, desired), desired)
    if (steps.length > 0) this.log.debug('component plan', { steps: steps.map((s) => `${s.type} ${s.name}`) })
    // A failed step ends its component's plan for this run (no start after a failed install).
    const failed = new Set<string>()
    for (const step of steps) {
      if (signal.aborted) return
      if (failed.has(step.name)) continue
      if (!(await this.supervisor.execute(step, signal))) failed.add(step.name)
    }
    // Nothing to do and not running: say where it stands.
    for (const d of desired) {
      const e = this.table.get(d.name)
      const rest = restingState(
        d,
        e == null ? undefined : { state: e.state, running: e.proc != null, blocked: e.blocked != null, wanted: e.wanted }
      )
      if (e != null && rest != null) this.table.setState(e, rest.state, rest.reason)
    }
  })
}
