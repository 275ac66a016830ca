import { EventEmitter } from 'node:events'
import { readFileSync, readdirSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import {
  Assignment,
  DynamicComponentState,
  HealthState,
  InvalidInputError,
  NotFoundError,
  UnavailableError,
  silentLogger,
  type ComponentBody,
  type ComponentHealth,
  type ComponentInfo,
  type DynamicComponentStatus,
  type Logger,
  type Startable
} from '@mycelium/core-interfaces'
import { Backoff, coalescing, readStateFile, writeStateFile, type BackoffOptions } from '@mycelium/core-utils'
import { ArtifactStore } from './artifact-store.js'
import { detectCgroupV2, limitProcess, releaseCgroup, type CgroupSupport } from './cgroup.js'
import { ComponentProcess, type RunRecord } from './component-process.js'
import * as D from './defaults.js'
import { desiredComponents } from './desired.js'
import { isArtifactFetchError, isComponentInstallError } from './errors.js'
import { parametersKey, planComponents, type ComponentSpec, type ComponentStep, type ObservedComponent } from './planner.js'
import { LogFollower, processStartTime } from '@mycelium/core-utils'
import { rssOf, rssOfTree } from './proc.js'

export interface ComponentManagerComponents {
  logger?: Logger
  /** The verified `component/<name>` spores (SporeClient.listComponents); unsigned or expired ones never appear. */
  catalogue: () => ComponentBody[]
}

export interface ComponentManagerInit {
  /** Root of the manager's files: `state` (assignments, specs, running processes), `store/`, `logs/`. */
  dir: string
  /** Where the unix sockets go (a path under 108 bytes). @default `<dir>/run` */
  runDir?: string
  /** The network CA (PEM) artifact servers must chain to; read at each fetch. @default the system CAs */
  caPem?: () => string | undefined
  /** @default DEFAULT_STORE_MAX_BYTES */
  storeMaxBytes?: number
  /** @default DEFAULT_ARTIFACT_MAX_BYTES */
  artifactMaxBytes?: number
  /** @default DEFAULT_START_TIMEOUT_MS */
  startTimeoutMs?: number
  /** @default DEFAULT_HEALTH_INTERVAL_MS */
  healthIntervalMs?: number
  /** @default DEFAULT_HEALTH_TIMEOUT_MS */
  healthTimeoutMs?: number
  /** @default DEFAULT_STOP_GRACE_MS */
  stopGraceMs?: number
  /** @default DEFAULT_RESTART_BUDGET */
  restartBudget?: { maxRestarts: number; windowMs: number }
  /** @default DEFAULT_RESTART_BACKOFF */
  restartBackoff?: BackoffOptions
  /** @default DEFAULT_IDLE_TIMEOUT_MS */
  idleTimeoutMs?: number
  /** @default DEFAULT_HEAP_LIMIT_MB */
  heapLimitMb?: number
  /** @default DEFAULT_INSTALL_RETRY_MS */
  installRetryMs?: number
  /** @default DEFAULT_FETCH_TIMEOUT_MS */
  fetchTimeoutMs?: number
  /** @default DEFAULT_LOG_MAX_BYTES */
  logMaxBytes?: number
  /** @default DEFAULT_CGROUP_ROOT */
  cgroupRoot?: string
  /** Node.js executable for JavaScript entries. @default process.execPath */
  nodePath?: string
  /** @default DEFAULT_COMPONENT_PATH */
  path?: string
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number
}

export interface ComponentManagerEvents {
  /** Something status shows changed (state, version, reason). */
  changed: []
}

/** One component as the runner tracks it. */
interface Entry {
  name: string
  state: DynamicComponentState
  reason: string
  since: Date
  restarts: number
  crashes: number[]
  backoff: Backoff
  /** No install/start of `digest` until `untilMs` (undefined: until the spore names other bytes, or reassignment). */
  blocked?: { digest: string; reason: string; untilMs?: number }
  proc?: ComponentProcess
  follower?: LogFollower
  spec?: ComponentSpec
  assignmentId: string
  /** On-demand: last time it was used (a use() call or work done). */
  lastUseMs?: number
  /** On-demand: a use() waits for it to run. */
  wanted: boolean
  lastWorkCount?: number
}

interface PersistedState {
  generation: number
  assignments: unknown[]
  known: Record<string, ComponentSpec>
  running: Record<string, RunRecord>
  /** Versions an `update` command put in place of the spore's, while the spore still names `base`. */
  pinned?: Record<string, { spec: ComponentSpec; base: string }>
}

/**
 * The dynamic component manager: desired state from assignments (persisted,
 * so it survives an agent restart and the loss of every manager), resolved
 * against verified component spores, reconciled by the pure planner and
 * executed here, one step at a time (the reconcile runs are serialised).
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
  private readonly entries = new Map<string, Entry>()
  private generation = 0
  private assignments: Assignment[] = []
  private known: Record<string, ComponentSpec> = {}
  private pinned: Record<string, { spec: ComponentSpec; base: string }> = {}
  private cgroup: CgroupSupport = { available: false, reason: 'not detected yet' }
  private controller?: AbortController
  private timer?: NodeJS.Timeout
  private catalogueKey = ''
  private ticking = false
  private readonly runDir: string
  private readonly random: () => number
  private readonly stateFile: string
  /** Why no component can be installed or started on this node (the store could not be opened). */
  private unusable?: string

  constructor(
    private readonly components: ComponentManagerComponents,
    private readonly init: ComponentManagerInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('component-manager')
    this.runDir = init.runDir ?? join(init.dir, 'run')
    this.random = init.random ?? Math.random
    this.stateFile = join(init.dir, 'state')
    this.store = new ArtifactStore({
      dir: join(init.dir, 'store'),
      maxBytes: init.storeMaxBytes ?? D.DEFAULT_STORE_MAX_BYTES,
      caPem: init.caPem ?? (() => undefined),
      fetchTimeoutMs: init.fetchTimeoutMs ?? D.DEFAULT_FETCH_TIMEOUT_MS
    })
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
      await this.adopt(running, controller.signal)
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
    for (const e of this.entries.values()) e.proc?.close()
    this.entries.clear()
  }

  /** Stops every component process (teardown, tests); assignments stay stored. */
  async unloadAll(reason = 'unloaded'): Promise<void> {
    for (const e of this.entries.values()) await this.stopProcess(e, reason)
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
    for (const e of this.entries.values()) e.blocked = undefined
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
    const e = this.entries.get(name)
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
    const e = this.entries.get(target.name)
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
    const now = this.entries.get(target.name)
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
    const e = this.entries.get(name)
    if (e == null || this.controller == null) throw new NotFoundError(`component ${name} is not assigned to this node`)
    if (e.spec?.onDemand === true) {
      await this.use(name)
      return
    }
    e.blocked = undefined
    e.crashes = []
    e.backoff.reset()
    await this.stopProcess(e, 'restart command')
    await this.reconcile()
    if (e.proc == null) throw new UnavailableError(`component ${name} did not start again: ${e.reason}`)
  }

  /** Dynamic components for NodeStatus and heartbeats (with memory). */
  status(): DynamicComponentStatus[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name)).map((e) => this.statusOf(e))
  }

  /** The agent's own RSS plus every component process tree's, in bytes. */
  memory(): { agentRssBytes: number; componentsRssBytes: number } {
    let children = 0
    for (const e of this.entries.values()) if (e.proc?.alive() === true) children += rssOfTree(e.proc.record.pid)
    return { agentRssBytes: rssOf(process.pid), componentsRssBytes: children }
  }

  /** Installed components for capabilities (no memory: capabilities are re-sent only when this changes). */
  installed(): ComponentInfo[] {
    return this.status().map((s) => ({
      name: s.name,
      version: s.version,
      artifactDigest: s.artifactDigest,
      state: s.state,
      restarts: s.restarts,
      reason: s.reason
    }))
  }

  /** Component health for the node's aggregate: running or idle is healthy; anything else degrades the node, never fails it. */
  health(): ComponentHealth[] {
    return [...this.entries.values()].map((e) => ({
      name: `component:${e.name}`,
      state:
        e.state === DynamicComponentState.RUNNING || e.state === DynamicComponentState.IDLE ? HealthState.HEALTHY : HealthState.DEGRADED,
      reason: e.reason,
      since: e.since,
      restarts: e.restarts
    }))
  }

  /** Whether cgroup v2 limits are applied, and why not. */
  get limits(): CgroupSupport {
    return this.cgroup
  }

  private statusOf(e: Entry): DynamicComponentStatus {
    const alive = e.proc?.alive() === true
    return {
      name: e.name,
      version: e.proc?.record.version ?? e.spec?.version ?? '',
      artifactDigest: e.proc?.record.digest ?? e.spec?.digest ?? '',
      state: e.state,
      restarts: e.restarts,
      reason: e.reason,
      rssBytes: alive ? rssOfTree(e.proc!.record.pid) : 0,
      assignmentId: e.assignmentId,
      pid: alive ? e.proc!.record.pid : 0,
      onDemand: e.spec?.onDemand ?? false
    }
  }

  private entry(name: string): Entry {
    let e = this.entries.get(name)
    if (e == null) {
      e = {
        name,
        state: DynamicComponentState.UNSPECIFIED,
        reason: '',
        since: new Date(),
        restarts: 0,
        crashes: [],
        backoff: new Backoff(this.init.restartBackoff ?? D.DEFAULT_RESTART_BACKOFF, this.random),
        assignmentId: '',
        wanted: false
      }
      this.entries.set(name, e)
    }
    return e
  }

  private setState(e: Entry, state: DynamicComponentState, reason: string): void {
    if (e.state === state && e.reason === reason) return
    e.state = state
    e.reason = reason
    e.since = new Date()
    const failed = state === DynamicComponentState.FAILED || state === DynamicComponentState.BACKOFF
    this.log[failed ? 'warn' : 'info']('component state', { name: e.name, state: DynamicComponentState[state], reason })
    this.emit('changed')
  }

  // --- persistence and adoption ------------------------------------------------

  private async load(): Promise<Record<string, RunRecord>> {
    const file = await readStateFile(this.stateFile).catch((err: unknown) => {
      this.log.error('component state unreadable; starting with no assignments', { err })
      return undefined
    })
    if (file?.recoveredFromPrevious != null) this.log.warn('component state recovered from its previous copy', file.recoveredFromPrevious)
    if (file == null) return {}
    const s = JSON.parse(file.data.toString('utf8')) as PersistedState
    this.generation = s.generation
    this.assignments = s.assignments.map((a) => Assignment.fromJSON(a))
    this.known = s.known
    this.pinned = s.pinned ?? {}
    return s.running
  }

  private async persist(): Promise<void> {
    const running: Record<string, RunRecord> = {}
    for (const e of this.entries.values()) if (e.proc != null) running[e.name] = e.proc.record
    const s: PersistedState = {
      generation: this.generation,
      assignments: this.assignments.map((a) => Assignment.toJSON(a)),
      known: this.known,
      running,
      pinned: this.pinned
    }
    try {
      await writeStateFile(this.stateFile, Buffer.from(JSON.stringify(s)))
    } catch (err) {
      this.log.error('component state not saved', { err })
    }
  }

  /**
   * Processes a previous run started: adopted when they still run and
   * answer Hello; otherwise stopped (never left beside a new copy). A
   * process found by its socket argument with no record (state file lost)
   * is stopped too, so the planner starts exactly one.
   */
  private async adopt(running: Record<string, RunRecord>, signal: AbortSignal): Promise<void> {
    for (const record of Object.values(running)) {
      const e = this.entry(record.name)
      e.spec = this.known[record.name]
      const proc = ComponentProcess.adopt(record)
      if (proc == null) {
        this.log.info('component from the previous run is gone; it will be started again', { name: record.name })
        continue
      }
      try {
        await proc.hello(this.parametersOf(record.name), this.init.startTimeoutMs ?? D.DEFAULT_START_TIMEOUT_MS, signal)
        e.proc = proc
        await this.follow(e, true)
        e.lastUseMs = Date.now()
        this.setState(e, DynamicComponentState.RUNNING, '')
        this.log.info('component adopted', { name: record.name, pid: record.pid, version: record.version })
      } catch (err) {
        this.log.warn('component from the previous run does not answer; stopping it', { name: record.name, pid: record.pid, err })
        await proc.stop('not answering after an agent restart', this.init.stopGraceMs ?? D.DEFAULT_STOP_GRACE_MS)
      }
    }
    for (const orphan of this.orphans(running)) {
      this.log.warn('component process without a record; stopping it', orphan)
      try {
        process.kill(-orphan.pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    await this.persist()
  }

  /** Processes whose command line names one of our sockets but that we do not track. */
  private orphans(running: Record<string, RunRecord>): Array<{ pid: number; socket: string }> {
    const tracked = new Set(Object.values(running).map((r) => r.pid))
    const out: Array<{ pid: number; socket: string }> = []
    const needle = `\0--socket\0${this.runDir}/`
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === process.pid || tracked.has(Number(p))) continue
      let cmdline: string
      try {
        cmdline = `\0${readFileSync(`/proc/${p}/cmdline`, 'utf8')}`
      } catch {
        continue
      }
      const at = cmdline.indexOf(needle)
      if (at < 0 || processStartTime(Number(p)) == null) continue
      out.push({ pid: Number(p), socket: cmdline.slice(at + 10).split('\0')[0]! })
    }
    return out
  }

  private parametersOf(name: string): Record<string, string> {
    const a = this.assignments.find((x) => x.componentSpore === `component/${name}`)
    return { ...(a?.parameters ?? {}) }
  }

  private async follow(e: Entry, fromEnd: boolean): Promise<void> {
    const log = this.log.forComponent(`component:${e.name}`)
    e.follower = new LogFollower(this.logFile(e.name), (line) => log.info(line), {
      maxBytes: this.init.logMaxBytes ?? D.DEFAULT_LOG_MAX_BYTES
    })
    await e.follower.begin(fromEnd)
  }

  private logFile(name: string): string {
    return join(this.init.dir, 'logs', `${name}.log`)
  }

  // --- the periodic tick: exits, health, idle time, logs, spore changes -----------

  private async tick(): Promise<void> {
    const signal = this.controller?.signal
    if (signal == null || this.ticking) return
    this.ticking = true
    let replan = false
    try {
      const now = Date.now()
      for (const e of this.entries.values()) {
        await e.follower?.poll()
        if (e.blocked?.untilMs != null && now >= e.blocked.untilMs) {
          e.blocked = undefined
          replan = true
        }
        const proc = e.proc
        if (proc == null) continue
        if (!proc.alive()) {
          await e.follower?.poll()
          this.onExit(e, proc.exitText())
          replan = true
          continue
        }
        try {
          const h = await proc.health(this.init.healthTimeoutMs ?? D.DEFAULT_HEALTH_TIMEOUT_MS, signal)
          if (e.proc !== proc) continue
          if (e.lastWorkCount != null && h.workCount !== e.lastWorkCount) e.lastUseMs = now
          e.lastWorkCount = h.workCount
          // A running component keeps saying why a newer version is not the one running.
          if (h.healthy) this.setState(e, DynamicComponentState.RUNNING, e.blocked?.reason ?? '')
          else this.setState(e, DynamicComponentState.UNHEALTHY, `unhealthy: ${h.reason || 'no reason given'}`)
        } catch (err) {
          if (signal.aborted || e.proc !== proc) continue
          this.setState(e, DynamicComponentState.UNHEALTHY, `Health not answered: ${(err as Error).message}`)
        }
        if (e.spec?.onDemand === true && e.lastUseMs != null) {
          const idleMs = e.spec.idleTimeoutMs || this.init.idleTimeoutMs || D.DEFAULT_IDLE_TIMEOUT_MS
          if (now - e.lastUseMs >= idleMs && e.wanted) {
            e.wanted = false
            replan = true
          }
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

  /** An exit nobody asked for: a restart after a jittered backoff, or FAILED once the budget is spent. */
  private onExit(e: Entry, how: string): void {
    const proc = e.proc!
    proc.close()
    e.proc = undefined
    void releaseCgroup(this.cgroup, e.name)
    this.crashed(e, proc.record.digest, `process ${how}`)
    void this.persist()
  }

  private crashed(e: Entry, digest: string, what: string): void {
    const budget = this.init.restartBudget ?? D.DEFAULT_RESTART_BUDGET
    const now = Date.now()
    e.restarts++
    e.crashes = [...e.crashes.filter((t) => now - t < budget.windowMs), now]
    if (e.crashes.length > budget.maxRestarts) {
      const reason = `${what}; ${e.crashes.length} failures within ${Math.round(budget.windowMs / 1000)} s: restart budget spent`
      e.blocked = { digest, reason }
      this.setState(e, DynamicComponentState.FAILED, reason)
      return
    }
    const delayMs = e.backoff.next()
    e.blocked = { digest, reason: what, untilMs: now + delayMs }
    this.setState(e, DynamicComponentState.BACKOFF, `${what}; restarting in ${delayMs} ms`)
  }

  // --- the runner ---------------------------------------------------------------

  /** One reconcile at a time; a request during a run queues exactly one more. */
  readonly reconcile = coalescing(async (): Promise<void> => {
    const signal = this.controller?.signal
    if (signal == null || signal.aborted) return
    const desired = desiredComponents(this.assignments, this.components.catalogue(), this.known, {
      artifactMaxBytes: this.init.artifactMaxBytes ?? D.DEFAULT_ARTIFACT_MAX_BYTES
    })
    // An update command's version stands until the spore itself names other bytes.
    for (const d of desired) {
      const pin = this.pinned[d.name]
      if (pin == null || d.spec == null) continue
      if (pin.base === d.spec.digest) d.spec = pin.spec
      else delete this.pinned[d.name]
    }
    if (this.unusable != null) {
      for (const d of desired) {
        const e = this.entry(d.name)
        if (e.proc == null) this.setState(e, DynamicComponentState.FAILED, this.unusable)
      }
      return
    }
    const installed = await this.store.installed()
    for (const d of desired) {
      const e = this.entry(d.name)
      e.assignmentId = d.assignmentId
      if (d.spec != null && e.proc == null) e.spec = d.spec
      if (d.spec != null && !d.spec.onDemand) e.wanted = true
    }
    const observed: ObservedComponent[] = [...this.entries.values()].map((e) => ({
      name: e.name,
      installed: e.spec != null && installed.includes(e.spec.digest) ? [e.spec.digest] : [],
      ...(e.proc != null ? { running: { digest: e.proc.record.digest, parametersKey: e.proc.record.parametersKey } } : {}),
      ...(e.blocked != null ? { blocked: { digest: e.blocked.digest, reason: e.blocked.reason } } : {}),
      inUse: e.wanted
    }))
    // An install step is planned only for what is not installed: the spec digest decides.
    for (const o of observed) {
      const d = desired.find((x) => x.name === o.name)
      if (d?.spec != null) o.installed = installed.includes(d.spec.digest) ? [d.spec.digest] : []
    }
    const steps = planComponents(observed, desired)
    if (steps.length > 0) this.log.debug('component plan', { steps: steps.map((s) => `${s.type} ${s.name}`) })
    // A failed step ends its component's plan for this run (no start after a failed install).
    const failed = new Set<string>()
    for (const step of steps) {
      if (signal.aborted) return
      if (failed.has(step.name)) continue
      if (!(await this.execute(step, signal))) failed.add(step.name)
    }
    // Nothing to do and not running: say where it stands.
    for (const d of desired) {
      const e = this.entries.get(d.name)
      // Already IDLE keeps the reason it became idle for (stopped by assignment, idled out).
      if (e == null || e.proc != null || e.blocked != null || d.spec == null || e.state === DynamicComponentState.IDLE) continue
      if (!d.run) this.setState(e, DynamicComponentState.IDLE, 'assignment desired state is "stopped"')
      else if (d.spec.onDemand && !e.wanted) this.setState(e, DynamicComponentState.IDLE, 'on-demand: not in use')
    }
  })

  /** Executes one step; false when it failed (its reason is in the component's status). */
  private async execute(step: ComponentStep, signal: AbortSignal): Promise<boolean> {
    const e = this.entry(step.name)
    switch (step.type) {
      case 'refuse':
        if (e.proc == null) this.setState(e, DynamicComponentState.FAILED, step.reason)
        else this.log.warn('assignment refused; the running version is kept', { name: e.name, reason: step.reason })
        return false
      case 'stop':
        await this.stopProcess(e, step.reason)
        this.setState(e, DynamicComponentState.IDLE, step.reason)
        await this.persist()
        return true
      case 'remove': {
        await this.stopProcess(e, step.reason)
        this.entries.delete(step.name)
        delete this.known[step.name]
        await rm(this.logFile(step.name), { force: true })
        const freed = await this.store.gc(this.keepDigests())
        this.log.info('component removed', { name: step.name, reason: step.reason, freedBytes: freed })
        this.emit('changed')
        await this.persist()
        return true
      }
      case 'install':
        return this.install(e, step.spec, signal)
      case 'start':
        return this.startProcess(e, step.spec, step.parameters, step.reason, signal)
      case 'restart':
        await this.stopProcess(e, step.reason)
        return this.startProcess(e, step.spec, step.parameters, step.reason, signal)
      case 'upgrade':
        return this.upgrade(e, step.from, step.spec, step.parameters, signal)
    }
  }

  private keepDigests(): Set<string> {
    const keep = new Set<string>()
    for (const e of this.entries.values()) {
      if (e.spec != null) keep.add(e.spec.digest)
      if (e.proc != null) keep.add(e.proc.record.digest)
    }
    for (const s of Object.values(this.known)) keep.add(s.digest)
    return keep
  }

  private async install(e: Entry, spec: ComponentSpec, signal: AbortSignal): Promise<boolean> {
    if (e.proc == null) this.setState(e, DynamicComponentState.INSTALLING, `fetching ${spec.version} (${spec.digest})`)
    try {
      // Room first: artifacts nothing refers to any more go before a new one comes.
      await this.store.gc(new Set([...this.keepDigests(), spec.digest]))
      await this.store.install(spec, signal)
      // What runs stays the known version until the new one proved itself (startProcess).
      if (e.proc == null) this.known[e.name] = spec
      await this.persist()
      this.log.info('component installed', { name: e.name, version: spec.version, digest: spec.digest })
      if (e.proc == null) this.setState(e, DynamicComponentState.IDLE, 'installed')
      return true
    } catch (err) {
      if (signal.aborted) return false
      // Wrong bytes stay wrong: blocked until the spore names others. Anything else is tried again later.
      const permanent = !isArtifactFetchError(err) && !(isComponentInstallError(err) && err.kind === 'disk-full')
      const reason = `install failed: ${(err as Error).message}`
      e.blocked = permanent
        ? { digest: spec.digest, reason }
        : { digest: spec.digest, reason, untilMs: Date.now() + (this.init.installRetryMs ?? D.DEFAULT_INSTALL_RETRY_MS) }
      if (e.proc == null) this.setState(e, DynamicComponentState.FAILED, reason)
      else this.log.warn('new version not installed; the running one is kept', { name: e.name, reason })
      return false
    }
  }

  private async startProcess(
    e: Entry,
    spec: ComponentSpec,
    parameters: Record<string, string>,
    why: string,
    signal: AbortSignal
  ): Promise<boolean> {
    this.setState(e, DynamicComponentState.STARTING, why)
    const startedAt = Date.now()
    let proc: ComponentProcess | undefined
    try {
      proc = await ComponentProcess.spawn({
        spec,
        installDir: this.store.installDir(spec.digest),
        socket: join(this.runDir, `${spec.name}.sock`),
        logFile: this.logFile(spec.name),
        parameters,
        parametersKey: parametersKey(parameters),
        nodePath: this.init.nodePath ?? process.execPath,
        defaultHeapLimitMb: this.init.heapLimitMb ?? D.DEFAULT_HEAP_LIMIT_MB,
        path: this.init.path ?? D.DEFAULT_COMPONENT_PATH
      })
      e.proc = proc
      e.spec = spec
      if (e.follower == null) await this.follow(e, true)
      // Recorded before Hello: an agent killed now finds the process at its next start.
      await this.persist()
      await limitProcess(this.cgroup, spec.name, proc.record.pid, spec.memoryLimitBytes, spec.cpuMillis).catch((err: unknown) =>
        this.log.warn('cgroup limits not applied', { name: spec.name, err })
      )
      await proc.hello(parameters, this.init.startTimeoutMs ?? D.DEFAULT_START_TIMEOUT_MS, signal)
      e.lastUseMs = Date.now()
      e.lastWorkCount = undefined
      e.backoff.reset()
      this.known[spec.name] = spec
      await this.persist()
      this.setState(e, DynamicComponentState.RUNNING, '')
      this.log.info('component running', { name: spec.name, version: spec.version, pid: proc.record.pid, startMs: Date.now() - startedAt })
      return true
    } catch (err) {
      if (proc != null) {
        e.proc = undefined
        await proc.stop('failed to start', this.init.stopGraceMs ?? D.DEFAULT_STOP_GRACE_MS)
        await e.follower?.poll()
        await this.persist()
      }
      if (signal.aborted) return false
      this.crashed(e, spec.digest, `start failed: ${(err as Error).message}`)
      return false
    }
  }

  /** New version started after the old one stopped; the old one (still installed) comes back if the new one fails. */
  private async upgrade(
    e: Entry,
    from: string,
    spec: ComponentSpec,
    parameters: Record<string, string>,
    signal: AbortSignal
  ): Promise<boolean> {
    const old = e.spec?.digest === from ? e.spec : Object.values(this.known).find((s) => s.digest === from)
    await this.stopProcess(e, `upgrading to ${spec.version}`)
    if (await this.startProcess(e, spec, parameters, `upgrade from ${old?.version ?? from}`, signal)) {
      this.known[e.name] = spec
      await this.persist()
      await this.store.gc(this.keepDigests())
      return true
    }
    const reason = `upgrade to ${spec.version} failed (${e.reason}); rolled back to ${old?.version ?? from}`
    e.blocked = { digest: spec.digest, reason }
    if (old != null && (await this.startProcess(e, old, parameters, 'rollback', signal))) {
      e.blocked = { digest: spec.digest, reason }
      this.setState(e, DynamicComponentState.RUNNING, reason)
      this.log.warn('component upgrade rolled back', { name: e.name, reason })
    }
    return false
  }

  private async stopProcess(e: Entry, reason: string): Promise<void> {
    const proc = e.proc
    if (proc == null) return
    e.proc = undefined
    this.log.info('stopping component', { name: e.name, pid: proc.record.pid, reason })
    await proc.stop(reason, this.init.stopGraceMs ?? D.DEFAULT_STOP_GRACE_MS)
    await e.follower?.poll()
    e.follower = undefined
    await releaseCgroup(this.cgroup, e.name)
    this.emit('changed')
  }
}
