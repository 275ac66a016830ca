import type { Logger, Startable } from '@mycelium/core-interfaces'

export interface RestartBudget {
  /** Restarts allowed within `windowMs`. @default 5 */
  maxRestarts?: number
  /** @default 600000 (10 minutes) */
  windowMs?: number
}

/**
 * Keeps the node running through unexpected errors: on a crash the node's
 * components are stopped and started again (their state is on disk, so
 * nothing is lost), up to a budget of restarts per window. When the budget is
 * spent, `onGiveUp` runs — the bin exits non-zero so systemd restarts the
 * whole agent. Workloads are never touched.
 */
export class Supervisor {
  private readonly restarts: number[] = []
  private restarting?: Promise<void>

  constructor(
    private readonly target: Startable,
    private readonly budget: RestartBudget,
    private readonly log: Logger,
    private readonly onGiveUp: (err: unknown) => void,
    private readonly now: () => number = Date.now
  ) {}

  /** Restarts left in the current window. */
  get remaining(): number {
    const windowStart = this.now() - (this.budget.windowMs ?? 600_000)
    return (this.budget.maxRestarts ?? 5) - this.restarts.filter((t) => t > windowStart).length
  }

  /** Reports a crash; restarts the target unless the budget is spent. */
  crashed(err: unknown): Promise<void> {
    if (this.restarting != null) return this.restarting // one restart covers errors raised meanwhile
    if (this.remaining <= 0) {
      this.log.error('restart budget spent; giving up', { err, maxRestarts: this.budget.maxRestarts ?? 5 })
      this.onGiveUp(err)
      return Promise.resolve()
    }
    this.restarts.push(this.now())
    this.log.error('unexpected error; restarting components', { err, restartsLeft: this.remaining })
    this.restarting = (async () => {
      try {
        await this.target.stop()
        await this.target.start()
      } catch (restartErr) {
        this.log.error('restart failed', { err: restartErr })
        this.onGiveUp(restartErr)
      } finally {
        this.restarting = undefined
      }
    })()
    return this.restarting
  }
}
