import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { DynamicComponentState, type Logger } from '@mycelium/core-interfaces'
import { LogFollower } from '@mycelium/core-utils'
import type { ArtifactStore } from './artifact-store.js'
import { limitProcess, releaseCgroup, type CgroupSupport } from './cgroup.js'
import type { ComponentTable, Entry } from './component-table.js'
import { ComponentProcess, type RunRecord } from './component-process.js'
import * as D from './defaults.js'
import type { ComponentManagerInit } from './manager-options.js'
import { findOrphans } from './orphans.js'
import { parametersKey, type ComponentSpec, type ComponentStep } from './planner.js'
import { crashVerdict, installFailure } from './supervision-policy.js'

export interface SupervisorComponents {
  log: Logger
  table: ComponentTable
  store: ArtifactStore
  /** The spec last proven for each component (the manager's, persisted with it); updated here in place. */
  known: () => Record<string, ComponentSpec>
  cgroup: () => CgroupSupport
  /** Saves the manager's state (assignments, known specs, running processes). */
  persist: () => Promise<void>
  /** Something status shows changed without a state change (a process stopped, a component removed). */
  changed: () => void
}

export type SupervisorInit = Pick<
  ComponentManagerInit,
  'dir' | 'restartBudget' | 'installRetryMs' | 'startTimeoutMs' | 'stopGraceMs' | 'heapLimitMb' | 'nodePath' | 'path' | 'logMaxBytes'
> & {
  /** Where the unix sockets go. */
  runDir: string
}

/**
 * Executes the planner's steps on processes and files, one component at a
 * time: installs (gc first, then fetch and verify), starts (spawn, record,
 * cgroup limits, Hello), stops, upgrades with rollback, and the accounting
 * of each exit or failed start (the verdicts come from supervision-policy).
 * Also adopts what a previous run left running. The manager serialises the
 * calls (one reconcile at a time).
 */
export class ComponentSupervisor {
  constructor(
    private readonly components: SupervisorComponents,
    private readonly init: SupervisorInit
  ) {}

  private get log(): Logger {
    return this.components.log
  }

  private get table(): ComponentTable {
    return this.components.table
  }

  logFile(name: string): string {
    return join(this.init.dir, 'logs', `${name}.log`)
  }

  /** Executes one step; false when it failed (its reason is in the component's status). */
  async execute(step: ComponentStep, signal: AbortSignal): Promise<boolean> {
    const e = this.table.entry(step.name)
    switch (step.type) {
      case 'refuse':
        if (e.proc == null) this.table.setState(e, DynamicComponentState.FAILED, step.reason)
        else this.log.warn('assignment refused; the running version is kept', { name: e.name, reason: step.reason })
        return false
      case 'stop':
        await this.stopProcess(e, step.reason)
        this.table.setState(e, DynamicComponentState.IDLE, step.reason)
        await this.components.persist()
        return true
      case 'remove': {
        await this.stopProcess(e, step.reason)
        this.table.delete(step.name)
        delete this.components.known()[step.name]
        await rm(this.logFile(step.name), { force: true })
        const freed = await this.components.store.gc(this.keepDigests())
        this.log.info('component removed', { name: step.name, reason: step.reason, freedBytes: freed })
        this.components.changed()
        await this.components.persist()
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

  /** Every digest something refers to (an entry's spec, a running process, a known spec): gc keeps these. */
  private keepDigests(): Set<string> {
    const keep = new Set<string>()
    for (const e of this.table.values()) {
      if (e.spec != null) keep.add(e.spec.digest)
      if (e.proc != null) keep.add(e.proc.record.digest)
    }
    for (const s of Object.values(this.components.known())) keep.add(s.digest)
    return keep
  }

  private async install(e: Entry, spec: ComponentSpec, signal: AbortSignal): Promise<boolean> {
    if (e.proc == null) this.table.setState(e, DynamicComponentState.INSTALLING, `fetching ${spec.version} (${spec.digest})`)
    try {
      // Room first: artifacts nothing refers to any more go before a new one comes.
      await this.components.store.gc(new Set([...this.keepDigests(), spec.digest]))
      await this.components.store.install(spec, signal)
      // What runs stays the known version until the new one proved itself (startProcess).
      if (e.proc == null) this.components.known()[e.name] = spec
      await this.components.persist()
      this.log.info('component installed', { name: e.name, version: spec.version, digest: spec.digest })
      if (e.proc == null) this.table.setState(e, DynamicComponentState.IDLE, 'installed')
      return true
    } catch (err) {
      if (signal.aborted) return false
      const failure = installFailure(err, Date.now(), this.init.installRetryMs ?? D.DEFAULT_INSTALL_RETRY_MS)
      e.blocked = { digest: spec.digest, ...failure }
      if (e.proc == null) this.table.setState(e, DynamicComponentState.FAILED, failure.reason)
      else this.log.warn('new version not installed; the running one is kept', { name: e.name, reason: failure.reason })
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
    this.table.setState(e, DynamicComponentState.STARTING, why)
    const startedAt = Date.now()
    let proc: ComponentProcess | undefined
    try {
      proc = await ComponentProcess.spawn({
        spec,
        installDir: this.components.store.installDir(spec.digest),
        socket: join(this.init.runDir, `${spec.name}.sock`),
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
      await this.components.persist()
      await limitProcess(this.components.cgroup(), spec.name, proc.record.pid, spec.memoryLimitBytes, spec.cpuMillis).catch(
        (err: unknown) => this.log.warn('cgroup limits not applied', { name: spec.name, err })
      )
      await proc.hello(parameters, this.init.startTimeoutMs ?? D.DEFAULT_START_TIMEOUT_MS, signal)
      e.lastUseMs = Date.now()
      e.lastWorkCount = undefined
      e.backoff.reset()
      this.components.known()[spec.name] = spec
      await this.components.persist()
      this.table.setState(e, DynamicComponentState.RUNNING, '')
      this.log.info('component running', { name: spec.name, version: spec.version, pid: proc.record.pid, startMs: Date.now() - startedAt })
      return true
    } catch (err) {
      if (proc != null) {
        e.proc = undefined
        await proc.stop('failed to start', this.init.stopGraceMs ?? D.DEFAULT_STOP_GRACE_MS)
        await e.follower?.poll()
        await this.components.persist()
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
    const old = e.spec?.digest === from ? e.spec : Object.values(this.components.known()).find((s) => s.digest === from)
    await this.stopProcess(e, `upgrading to ${spec.version}`)
    if (await this.startProcess(e, spec, parameters, `upgrade from ${old?.version ?? from}`, signal)) {
      this.components.known()[e.name] = spec
      await this.components.persist()
      await this.components.store.gc(this.keepDigests())
      return true
    }
    const reason = `upgrade to ${spec.version} failed (${e.reason}); rolled back to ${old?.version ?? from}`
    e.blocked = { digest: spec.digest, reason }
    if (old != null && (await this.startProcess(e, old, parameters, 'rollback', signal))) {
      e.blocked = { digest: spec.digest, reason }
      this.table.setState(e, DynamicComponentState.RUNNING, reason)
      this.log.warn('component upgrade rolled back', { name: e.name, reason })
    }
    return false
  }

  async stopProcess(e: Entry, reason: string): Promise<void> {
    const proc = e.proc
    if (proc == null) return
    e.proc = undefined
    this.log.info('stopping component', { name: e.name, pid: proc.record.pid, reason })
    await proc.stop(reason, this.init.stopGraceMs ?? D.DEFAULT_STOP_GRACE_MS)
    await e.follower?.poll()
    e.follower = undefined
    await releaseCgroup(this.components.cgroup(), e.name)
    this.components.changed()
  }

  /** An exit nobody asked for: a restart after a jittered backoff, or FAILED once the budget is spent. */
  onExit(e: Entry, how: string): void {
    const proc = e.proc!
    proc.close()
    e.proc = undefined
    void releaseCgroup(this.components.cgroup(), e.name)
    this.crashed(e, proc.record.digest, `process ${how}`)
    void this.components.persist()
  }

  private crashed(e: Entry, digest: string, what: string): void {
    const budget = this.init.restartBudget ?? D.DEFAULT_RESTART_BUDGET
    e.restarts++
    const verdict = crashVerdict(e.crashes, Date.now(), budget, what, () => e.backoff.next())
    e.crashes = verdict.crashes
    if (verdict.budgetSpent) {
      e.blocked = { digest, reason: verdict.reason }
      this.table.setState(e, DynamicComponentState.FAILED, verdict.reason)
      return
    }
    e.blocked = { digest, reason: what, untilMs: verdict.retryAtMs }
    this.table.setState(e, DynamicComponentState.BACKOFF, verdict.reason)
  }

  /** Follows the component's log file into the agent's logger (as `component:<name>`). */
  async follow(e: Entry, fromEnd: boolean): Promise<void> {
    const log = this.log.forComponent(`component:${e.name}`)
    e.follower = new LogFollower(this.logFile(e.name), (line) => log.info(line), {
      maxBytes: this.init.logMaxBytes ?? D.DEFAULT_LOG_MAX_BYTES
    })
    await e.follower.begin(fromEnd)
  }

  /**
   * Processes a previous run started: adopted when they still run and
   * answer Hello; otherwise stopped (never left beside a new copy). A
   * process found by its socket argument with no record (state file lost)
   * is stopped too, so the planner starts exactly one.
   */
  async adopt(
    running: Record<string, RunRecord>,
    parametersOf: (name: string) => Record<string, string>,
    signal: AbortSignal
  ): Promise<void> {
    for (const record of Object.values(running)) {
      const e = this.table.entry(record.name)
      e.spec = this.components.known()[record.name]
      const proc = ComponentProcess.adopt(record)
      if (proc == null) {
        this.log.info('component from the previous run is gone; it will be started again', { name: record.name })
        continue
      }
      try {
        await proc.hello(parametersOf(record.name), this.init.startTimeoutMs ?? D.DEFAULT_START_TIMEOUT_MS, signal)
        e.proc = proc
        await this.follow(e, true)
        e.lastUseMs = Date.now()
        this.table.setState(e, DynamicComponentState.RUNNING, '')
        this.log.info('component adopted', { name: record.name, pid: record.pid, version: record.version })
      } catch (err) {
        this.log.warn('component from the previous run does not answer; stopping it', { name: record.name, pid: record.pid, err })
        await proc.stop('not answering after an agent restart', this.init.stopGraceMs ?? D.DEFAULT_STOP_GRACE_MS)
      }
    }
    const tracked = new Set(Object.values(running).map((r) => r.pid))
    for (const orphan of findOrphans(this.init.runDir, tracked)) {
      this.log.warn('component process without a record; stopping it', orphan)
      try {
        process.kill(-orphan.pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    await this.components.persist()
  }
}
