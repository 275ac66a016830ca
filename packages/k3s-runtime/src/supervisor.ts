import { spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { silentLogger, UnavailableError, type Logger, type Startable } from '@mycelium/core-interfaces'
import { Backoff, readStateFile, writeFileAtomic, writeStateFile, type BackoffOptions } from '@mycelium/core-utils'
import { k3sConfigYaml, type RenderedK3s } from './k3s-config.js'
import { planK3s, type K3sStep } from './planner.js'
import { isAlive, LogFollower, processStartTime, type ProcessIdentity } from '@mycelium/core-utils'
import { findByConfigArg } from './process.js'
import {
  DEFAULT_K3S_MONITOR_INTERVAL_MS,
  DEFAULT_K3S_PROBE_INTERVAL_MS,
  DEFAULT_K3S_STOP_TIMEOUT_MS,
  K3S_KILL_WAIT_MS
} from './defaults.js'

/**
 * - `stopped`: not running and not asked to run.
 * - `starting`: running, not ready yet. `ready` / `not-ready`: readiness probe.
 * - `backoff`: exited unexpectedly; restarts after a jittered delay.
 * - `failed`: the restart budget is spent; waits for a new config or a restart command.
 * - `unmanaged`: left running, no longer supervised (k3s disabled in NodeConfig).
 */
export type K3sProcessState = 'stopped' | 'starting' | 'ready' | 'not-ready' | 'backoff' | 'failed' | 'unmanaged'

export interface K3sProcessStatus {
  state: K3sProcessState
  reason: string
  since: Date
  pid?: number
  /** Found running at start (a previous agent started it) rather than spawned by this one. */
  adopted: boolean
  /** Restarts after unexpected exits, by this supervisor instance. */
  restarts: number
  /** How the last run ended, e.g. "exit code 7", "signal SIGKILL". */
  lastExit?: string
}

export interface RestartBudget {
  /** Restarts allowed within `windowMs`; one more unexpected exit and the supervisor gives up. */
  restarts: number
  windowMs: number
}

export interface K3sSupervisorInit {
  /** Holds config.yaml, k3s.log and the supervisor's state (PID, applied config, recent crashes). */
  dir: string
  /** Tells whether the running K3s is ready (node-core: /readyz for servers, CRI RuntimeReady for agents). */
  probe: (rendered: RenderedK3s, signal: AbortSignal) => Promise<{ ready: boolean; reason: string }>
  /** Environment of the K3s process. Default: this process's. */
  env?: NodeJS.ProcessEnv
  /** @default DEFAULT_K3S_PROBE_INTERVAL_MS */
  probeIntervalMs?: number
  /** How often a K3s we did not spawn (adopted) is checked for life. @default DEFAULT_K3S_MONITOR_INTERVAL_MS */
  monitorIntervalMs?: number
  /** SIGTERM → SIGKILL grace on restart. K3s drains its components in a few seconds. @default DEFAULT_K3S_STOP_TIMEOUT_MS */
  stopTimeoutMs?: number
  /** @default { initialMs: 1000, maxMs: 60000, multiplier: 2 } */
  restartBackoff?: BackoffOptions
  /** @default 5 restarts within 10 minutes */
  restartBudget?: RestartBudget
  /** k3s.log is truncated past this size (its lines are in our log by then). @default 10 MiB */
  logMaxBytes?: number
}

interface Persisted {
  process?: ProcessIdentity
  applied?: RenderedK3s
  /** Times (ms) of recent unexpected exits: the budget survives agent restarts. */
  crashes: number[]
}

interface Running extends ProcessIdentity {
  /** Set when we spawned it: exit events come from node; else we poll /proc. */
  exited?: Promise<void>
  adopted: boolean
}

const STATE_FILE = 'supervisor.state'

export interface K3sSupervisorEvents {
  change: [K3sProcessStatus]
}

/**
 * Runs K3s as a child in its own process group (a signal to the agent's
 * group never reaches it), stdout/stderr appended to a file so K3s never
 * writes to a pipe that dies with the agent; the file is followed into the
 * core's logger. Restarts after unexpected exits with capped, jittered
 * backoff within a budget. Stopping the supervisor (agent stop, fallback,
 * crash) never signals K3s: pods keep running, as K3s itself promises; the
 * next agent adopts the running process by PID and start time.
 */
export class K3sSupervisor extends EventEmitter<K3sSupervisorEvents> implements Startable {
  private readonly log: Logger
  private readonly k3sLog: Logger
  private readonly backoff: Backoff
  private readonly budget: RestartBudget
  private readonly follower: LogFollower
  private current: K3sProcessStatus = { state: 'stopped', reason: 'not started', since: new Date(), adopted: false, restarts: 0 }
  private running: Running | undefined
  private applied: RenderedK3s | undefined
  private crashes: number[] = []
  private queue: Promise<void> = Promise.resolve()
  private started = false
  private timers = new Set<NodeJS.Timeout>()
  private probing: AbortController | undefined
  /** PID we are stopping on purpose: its exit is not a crash. */
  private stopping: number | undefined
  /** K3s's last line of output: why it exits is usually there. */
  private lastOutput = ''

  constructor(
    components: { logger?: Logger },
    private readonly init: K3sSupervisorInit
  ) {
    super()
    this.log = (components.logger ?? silentLogger()).forComponent('k3s-runtime')
    this.k3sLog = (components.logger ?? silentLogger()).forComponent('k3s')
    this.backoff = new Backoff(init.restartBackoff ?? { initialMs: 1000, maxMs: 60_000, multiplier: 2 })
    this.budget = init.restartBudget ?? { restarts: 5, windowMs: 10 * 60_000 }
    this.follower = new LogFollower(this.logPath, (line) => this.forwardLine(line), {
      intervalMs: 250,
      maxBytes: init.logMaxBytes ?? 10 * 1024 * 1024
    })
  }

  get configPath(): string {
    return join(this.init.dir, 'config.yaml')
  }

  get logPath(): string {
    return join(this.init.dir, 'k3s.log')
  }

  status(): K3sProcessStatus {
    return { ...this.current, ...(this.running != null ? { pid: this.running.pid } : {}) }
  }

  isStarted(): boolean {
    return this.started
  }

  /**
   * Loads the last state and adopts a K3s still running from a previous agent.
   * Idempotent; a start that fails stops supervising (never K3s) and rethrows.
   */
  async start(): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      await this.startSupervising()
    } catch (err) {
      this.stop()
      throw err
    }
  }

  private async startSupervising(): Promise<void> {
    const persisted = await this.load()
    this.applied = persisted.applied
    this.crashes = persisted.crashes
    const recorded = persisted.process != null && isAlive(persisted.process) ? persisted.process : undefined
    const proc = recorded ?? findByConfigArg(this.configPath)
    await this.follower.start(true)
    if (proc != null) {
      this.running = { ...proc, adopted: true }
      this.watchAdopted(this.running)
      this.setState('starting', `adopted k3s already running (pid ${proc.pid})`, { adopted: true })
    } else if (persisted.process != null) {
      this.setState('stopped', `k3s pid ${persisted.process.pid} from a previous run is gone`)
    }
    const recent = this.recentCrashes()
    if (this.running == null && recent.length > this.budget.restarts) {
      this.setState('failed', `${this.exitedTimes(recent.length)} before this agent started; restart budget spent`)
    }
    this.every(this.init.probeIntervalMs ?? DEFAULT_K3S_PROBE_INTERVAL_MS, () => void this.probe())
  }

  /** Stops supervising. Never signals K3s. */
  stop(): void {
    this.started = false
    for (const t of this.timers) clearInterval(t)
    this.timers.clear()
    this.probing?.abort()
    this.follower.stop()
    this.running = undefined
  }

  /**
   * Brings K3s to `desired` (undefined: k3s disabled) by the planner's steps,
   * one apply at a time. Resolves once the steps ran (not when K3s is ready).
   */
  apply(desired: RenderedK3s | undefined): Promise<K3sStep[]> {
    return this.enqueue(async () => {
      const running = this.running != null && isAlive(this.running)
      let steps = planK3s({ ...(this.applied != null ? { applied: this.applied } : {}), running }, desired, k3sConfigYaml)
      const changed = steps.some((s) => s.type === 'write-config')
      if (changed) this.crashes = [] // a new config gets a fresh budget
      // After the budget is spent only a new config (or a restart command) tries again;
      // in backoff, the timer restarts it.
      if ((this.current.state === 'failed' || this.current.state === 'backoff') && !changed) steps = steps.filter((s) => s.type !== 'start')
      for (const step of steps) await this.execute(step, desired)
      return steps
    })
  }

  /** The restart command: a fresh budget and one restart now (or a start). */
  restartNow(reason: string): Promise<void> {
    return this.enqueue(async () => {
      if (this.applied == null) throw new UnavailableError('k3s has never been started by this node (nothing to restart)')
      this.crashes = []
      this.backoff.reset()
      this.current = { ...this.current, restarts: 0 }
      if (this.running != null && isAlive(this.running)) await this.terminate(this.running)
      await this.spawn(this.applied, reason)
    })
  }

  private async execute(step: K3sStep, desired: RenderedK3s | undefined): Promise<void> {
    switch (step.type) {
      case 'write-config':
        await writeFileAtomic(this.configPath, step.yaml, { mode: 0o600 })
        return
      case 'start':
        await this.spawn(desired!, step.reason)
        return
      case 'restart':
        this.log.info('restarting k3s', { reason: step.reason })
        if (this.running != null) await this.terminate(this.running)
        await this.spawn(desired!, step.reason)
        return
      case 'unmanage':
        this.running = undefined
        this.applied = undefined
        await this.save()
        this.setState('unmanaged', step.reason)
        return
    }
  }

  private async spawn(rendered: RenderedK3s, reason: string): Promise<void> {
    if (!this.started) return
    const fd = openSync(this.logPath, 'a', 0o600)
    let child
    try {
      child = spawn(rendered.binary, [rendered.role, '--config', this.configPath, ...rendered.extraArgs], {
        detached: true, // own process group and session
        stdio: ['ignore', fd, fd],
        env: this.init.env ?? process.env
      })
    } finally {
      closeSync(fd)
    }
    const spawned = await new Promise<Error | undefined>((resolve) => {
      child.once('spawn', () => resolve(undefined))
      child.once('error', (err) => resolve(err))
    })
    this.applied = rendered
    if (spawned != null) {
      await this.save()
      void this.onExit(undefined, `could not start ${rendered.binary}: ${spawned.message}`)
      return
    }
    child.unref()
    const pid = child.pid!
    const running: Running = { pid, startTime: processStartTime(pid) ?? '', adopted: false }
    running.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        resolve()
        void this.onExit(running, signal != null ? `signal ${signal}` : `exit code ${code}`)
      })
    )
    this.running = running
    await this.save()
    this.log.info('k3s started', { pid, role: rendered.role, reason })
    this.setState('starting', `started pid ${pid} (${reason})`, { adopted: false })
  }

  /** SIGTERM to K3s itself (not its group: the containerd shims that keep pods alive must not get it), SIGKILL after the grace. */
  private async terminate(proc: Running): Promise<void> {
    this.stopping = proc.pid
    const gone = (): Promise<void> => proc.exited ?? this.pollUntilGone(proc)
    const signal = (sig: NodeJS.Signals): void => {
      try {
        process.kill(proc.pid, sig)
      } catch {
        // already gone
      }
    }
    signal('SIGTERM')
    const graceMs = this.init.stopTimeoutMs ?? DEFAULT_K3S_STOP_TIMEOUT_MS
    const inTime = await Promise.race([gone().then(() => true), sleep(graceMs).then(() => false)])
    if (!inTime) {
      this.log.warn('k3s did not stop in time, killing it', { pid: proc.pid, graceMs })
      signal('SIGKILL')
      await Promise.race([gone(), sleep(K3S_KILL_WAIT_MS)])
    }
    if (this.running === proc) this.running = undefined
  }

  private async pollUntilGone(proc: ProcessIdentity): Promise<void> {
    while (isAlive(proc)) await sleep(50)
  }

  private watchAdopted(proc: Running): void {
    const timer = this.every(this.init.monitorIntervalMs ?? DEFAULT_K3S_MONITOR_INTERVAL_MS, () => {
      if (this.running !== proc) return clearInterval(timer)
      if (!isAlive(proc)) {
        clearInterval(timer)
        this.timers.delete(timer)
        void this.onExit(proc, 'exited (not our child: status unknown)')
      }
    })
  }

  /** An exit: expected (we stopped it) or a crash to restart within the budget. */
  private async onExit(proc: Running | undefined, how: string): Promise<void> {
    if (proc != null && this.stopping === proc.pid) {
      this.stopping = undefined
      this.current = { ...this.current, lastExit: how }
      if (this.running === proc) this.running = undefined
      return
    }
    if (!this.started || (proc != null && this.running !== proc)) return
    this.running = undefined
    // The state changes at the exit itself: while its last words are read below, status must not
    // go on saying `ready` for a process that is gone (and has no pid).
    this.setState('not-ready', `k3s ${how}; reading its last output`)
    this.crashes = [...this.recentCrashes(), Date.now()]
    const crashes = this.crashes.length
    // Not awaited: the restart below must not wait on the disk. A failed write is logged
    // (the crash count stays in memory), never an unhandled rejection that kills the process.
    this.save().catch((err: unknown) => this.log.warn('k3s supervisor state not saved; kept in memory', { err }))
    this.current = { ...this.current, lastExit: how }
    await this.follower.poll() // its last words, before they are quoted
    if (!this.started) return
    const lastOutput = this.lastOutput
    if (crashes > this.budget.restarts) {
      this.log.error('k3s keeps exiting; restart budget spent, not restarting', {
        lastExit: how,
        crashes,
        windowMs: this.budget.windowMs,
        lastOutput
      })
      this.setState(
        'failed',
        `${this.exitedTimes(crashes)} (last: ${how}); restart budget spent${lastOutput ? `; last output: ${lastOutput}` : ''}`
      )
      return
    }
    const delay = this.backoff.next()
    this.log.warn('k3s exited unexpectedly; restarting after backoff', { lastExit: how, delayMs: delay, lastOutput })
    this.setState('backoff', `k3s ${how}; restarting in ${delay} ms`)
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      void this.enqueue(async () => {
        if (this.current.state !== 'backoff' || this.applied == null) return
        this.current = { ...this.current, restarts: this.current.restarts + 1 }
        await this.spawn(this.applied, `restart after ${how}`)
      })
    }, delay)
    this.timers.add(timer)
  }

  private exitedTimes(crashes: number): string {
    return `k3s exited ${crashes} times within ${Math.round(this.budget.windowMs / 1000)} s`
  }

  private recentCrashes(): number[] {
    const now = Date.now()
    return this.crashes.filter((t) => now - t < this.budget.windowMs)
  }

  private async probe(): Promise<void> {
    const state = this.current.state
    if (this.probing != null || this.applied == null || this.running == null) return
    if (state !== 'starting' && state !== 'ready' && state !== 'not-ready') return
    const running = this.running
    this.probing = new AbortController()
    try {
      const result = await this.init
        .probe(this.applied, this.probing.signal)
        .catch((err: unknown) => ({ ready: false, reason: (err as Error).message }))
      if (this.running !== running || !this.started) return
      if (result.ready) {
        if (this.current.state !== 'ready') this.backoff.reset()
        this.setState('ready', 'ready')
      } else if (this.current.state !== 'starting') {
        // Not ready is not a reason to restart: K3s can take minutes (etcd, image imports).
        this.setState('not-ready', result.reason)
      } else {
        this.current = { ...this.current, reason: `starting: ${result.reason}` }
      }
    } finally {
      this.probing = undefined
    }
  }

  private setState(state: K3sProcessState, reason: string, extra: Partial<K3sProcessStatus> = {}): void {
    const changed = state !== this.current.state
    const reasonChanged = reason !== this.current.reason
    this.current = { ...this.current, ...extra, state, reason, since: changed ? new Date() : this.current.since }
    if (changed) this.log.info('k3s state', { state, reason, ...(this.running != null ? { pid: this.running.pid } : {}) })
    // A new reason in the same state is news too (a probe's new error; the process gone while `not-ready`).
    if (changed || reasonChanged) this.emit('change', this.status())
  }

  private forwardLine(line: string): void {
    this.lastOutput = line.length > 300 ? `${line.slice(0, 300)}…` : line
    if (/level=(error|fatal|panic)/.test(line) || /^[EF]\d{4} /.test(line)) this.k3sLog.error(line)
    else if (/level=warn/.test(line) || /^W\d{4} /.test(line)) this.k3sLog.warn(line)
    else this.k3sLog.info(line)
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work)
    this.queue = result.then(
      () => undefined,
      () => undefined
    )
    return result
  }

  private every(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setInterval(fn, ms)
    timer.unref()
    this.timers.add(timer)
    return timer
  }

  private async load(): Promise<Persisted> {
    try {
      const content = await readStateFile(join(this.init.dir, STATE_FILE))
      if (content == null) return { crashes: [] }
      if (content.recoveredFromPrevious != null)
        this.log.warn('k3s supervisor state recovered from its previous copy', { reason: content.recoveredFromPrevious.reason })
      const parsed = JSON.parse(Buffer.from(content.data).toString('utf8')) as Persisted
      return { ...parsed, crashes: Array.isArray(parsed.crashes) ? parsed.crashes : [] }
    } catch (err) {
      // A lost state file costs adoption (the next apply starts K3s again), never the node.
      this.log.error('k3s supervisor state unreadable; starting without it', { err })
      return { crashes: [] }
    }
  }

  private async save(): Promise<void> {
    const persisted: Persisted = {
      ...(this.running != null ? { process: { pid: this.running.pid, startTime: this.running.startTime } } : {}),
      ...(this.applied != null ? { applied: this.applied } : {}),
      crashes: this.crashes
    }
    await writeStateFile(join(this.init.dir, STATE_FILE), Buffer.from(JSON.stringify(persisted)))
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
