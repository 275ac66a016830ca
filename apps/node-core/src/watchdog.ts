import { HealthState, type ComponentHealth, type Logger, type Startable } from '@mycelium/core-interfaces'
import { LoopDelaySampler } from './loop-delay.js'

/** One long-lived component the watchdog watches: a liveness probe, and how to restart it with its state (its files are on disk). */
export interface WatchedComponent {
  name: string
  /** Resolves true while the component makes progress; false, a throw or no answer within `probeTimeoutMs` is a failure. */
  probe(): boolean | Promise<boolean>
  /** The component's Startable parts, stopped in reverse and started in order on a restart. */
  parts: Startable[]
}

export interface WatchdogInit {
  /** @default DEFAULT_WATCHDOG.intervalMs */
  intervalMs?: number
  /** @default DEFAULT_WATCHDOG.probeTimeoutMs */
  probeTimeoutMs?: number
  /** Restarts per component within `windowMs` before it is given up on (escalated). @default DEFAULT_WATCHDOG.maxRestarts */
  maxRestarts?: number
  /** @default DEFAULT_WATCHDOG.windowMs */
  windowMs?: number
  /** Event-loop delay (p99) above this is reported DEGRADED. @default DEFAULT_WATCHDOG.eventLoopDelayMs */
  eventLoopDelayMs?: number
  /** How long a part's stop may take in a restart before it is left behind (a hung component may not stop). @default DEFAULT_WATCHDOG.stopTimeoutMs */
  stopTimeoutMs?: number
}

export const DEFAULT_WATCHDOG = {
  /** @default 5000 */
  intervalMs: 5000,
  /** @default 3000 */
  probeTimeoutMs: 3000,
  /** @default 3 */
  maxRestarts: 3,
  /** @default 600000 (10 minutes) */
  windowMs: 600_000,
  /** @default 500 */
  eventLoopDelayMs: 500,
  /** @default 10000 */
  stopTimeoutMs: 10_000
} as const

/** What the watchdog knows of one component. */
interface Watch {
  component: WatchedComponent
  restarts: number[]
  failed?: string
  lastProblem?: string
  /** Restarted, and not yet seen answering since. */
  recovering?: boolean
}

/**
 * Per-component liveness: every `intervalMs` each component's probe must
 * answer true within `probeTimeoutMs`; a hang or a failure restarts the
 * component (stop in reverse, start in order: its state is on disk), within
 * a budget per window, then escalates — its health line turns UNHEALTHY and
 * `failed()` names it (node-core raises a distress call from it). Also
 * samples the event-loop delay (perf_hooks) and reports a stalled loop.
 * Checks never overlap; stop() aborts the loop.
 */
export class Watchdog implements Startable {
  private readonly watches: Watch[]
  private timer?: NodeJS.Timeout
  private checking?: Promise<void>
  private loopDelay?: LoopDelaySampler
  private loopDelayMs = 0
  private loopStalled = false
  private readonly listeners = new Set<() => void>()

  constructor(
    components: WatchedComponent[],
    private readonly log: Logger,
    private readonly init: WatchdogInit = {},
    private readonly now: () => number = Date.now
  ) {
    this.watches = components.map((component) => ({ component, restarts: [] }))
  }

  isStarted(): boolean {
    return this.timer != null
  }

  start(): void {
    if (this.timer != null) return
    this.loopDelay = new LoopDelaySampler()
    this.loopDelay.start()
    this.timer = setInterval(() => void this.check(), this.init.intervalMs ?? DEFAULT_WATCHDOG.intervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    this.loopDelay?.stop()
    this.loopDelay = undefined
    await this.checking
  }

  /** Called on every change of what health() says (a restart, a give-up, a recovery, the event loop stalling or not). Returns an unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private changed(): void {
    for (const l of this.listeners) l()
  }

  /** One round of probes (the timer calls it; tests call it directly). */
  check(): Promise<void> {
    this.checking ??= this.round().finally(() => {
      this.checking = undefined
    })
    return this.checking
  }

  private async round(): Promise<void> {
    if (this.loopDelay != null) {
      this.loopDelayMs = this.loopDelay.takeP99()
      const stalled = this.loopDelayMs > (this.init.eventLoopDelayMs ?? DEFAULT_WATCHDOG.eventLoopDelayMs)
      if (stalled !== this.loopStalled) {
        this.loopStalled = stalled
        if (stalled) this.log.warn('watchdog: event loop stalled', { p99DelayMs: Math.round(this.loopDelayMs) })
        else this.log.info('watchdog: event loop responsive again', { p99DelayMs: Math.round(this.loopDelayMs) })
        this.changed()
      }
    }
    for (const w of this.watches) {
      if (w.failed != null) continue
      const problem = await this.probe(w.component)
      if (problem == null) {
        if (w.recovering === true) {
          w.recovering = false
          this.log.info('watchdog: component answering again after its restart', { component: w.component.name })
          this.changed()
        }
        continue
      }
      w.lastProblem = problem
      const windowStart = this.now() - (this.init.windowMs ?? DEFAULT_WATCHDOG.windowMs)
      w.restarts = w.restarts.filter((t) => t > windowStart)
      const max = this.init.maxRestarts ?? DEFAULT_WATCHDOG.maxRestarts
      if (w.restarts.length >= max) {
        w.failed = `${problem}; ${max} restarts within ${Math.round((this.init.windowMs ?? DEFAULT_WATCHDOG.windowMs) / 1000)} s did not help`
        this.log.error('watchdog: component given up on', { component: w.component.name, reason: w.failed })
        this.changed()
        continue
      }
      w.restarts.push(this.now())
      this.log.warn('watchdog: restarting component', { component: w.component.name, problem, restartsLeft: max - w.restarts.length })
      try {
        for (const p of [...w.component.parts].reverse()) await this.stopPart(w.component.name, p)
        for (const p of w.component.parts) await p.start()
      } catch (err) {
        this.log.error('watchdog: restart failed', { component: w.component.name, err })
      }
      w.recovering = true
      this.changed()
    }
  }

  /** A part's stop, bounded: a hung component may never finish stopping; it is left behind (logged) and started anew. */
  private async stopPart(name: string, part: Startable): Promise<void> {
    const timeoutMs = this.init.stopTimeoutMs ?? DEFAULT_WATCHDOG.stopTimeoutMs
    let timer: NodeJS.Timeout | undefined
    const left = await Promise.race([
      Promise.resolve(part.stop()).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs)
      })
    ]).finally(() => clearTimeout(timer))
    if (left) this.log.warn('watchdog: component did not stop in time; left behind and started anew', { component: name, timeoutMs })
  }

  private async probe(c: WatchedComponent): Promise<string | undefined> {
    const timeoutMs = this.init.probeTimeoutMs ?? DEFAULT_WATCHDOG.probeTimeoutMs
    let timer: NodeJS.Timeout | undefined
    try {
      const ok = await Promise.race([
        Promise.resolve().then(() => c.probe()),
        new Promise<'hung'>((resolve) => {
          timer = setTimeout(() => resolve('hung'), timeoutMs)
        })
      ])
      if (ok === 'hung') return `no answer within ${timeoutMs} ms (hung)`
      return ok ? undefined : 'made no progress'
    } catch (err) {
      return `failed: ${(err as Error).message}`
    } finally {
      clearTimeout(timer)
    }
  }

  /** The first component given up on, if any (a distress fact). */
  failed(): { name: string; reason: string } | undefined {
    const w = this.watches.find((x) => x.failed != null)
    return w != null ? { name: w.component.name, reason: w.failed! } : undefined
  }

  /** Health lines: each component given up on (UNHEALTHY) or restarted in the window (DEGRADED), and a stalled event loop. */
  health(): ComponentHealth[] {
    const lines: ComponentHealth[] = []
    for (const w of this.watches) {
      if (w.failed != null)
        lines.push({ name: `watchdog:${w.component.name}`, state: HealthState.UNHEALTHY, reason: w.failed, restarts: w.restarts.length })
      else if (w.restarts.length > 0)
        lines.push({
          name: `watchdog:${w.component.name}`,
          state: HealthState.DEGRADED,
          reason: `restarted ${w.restarts.length} time(s): ${w.lastProblem ?? ''}`,
          restarts: w.restarts.length
        })
    }
    const limit = this.init.eventLoopDelayMs ?? DEFAULT_WATCHDOG.eventLoopDelayMs
    if (this.loopDelayMs > limit)
      lines.push({
        name: 'event-loop',
        state: HealthState.DEGRADED,
        reason: `p99 delay ${Math.round(this.loopDelayMs)} ms (over ${limit} ms)`,
        restarts: 0
      })
    return lines
  }
}
