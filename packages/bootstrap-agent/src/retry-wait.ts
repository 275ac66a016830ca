import { setTimeout as sleep } from 'node:timers/promises'
import { anySignal } from '@mycelium/core-utils'

/**
 * The one retry wait of the agent (FALLBACK and RECOVERY): at most one runs;
 * it can be cut short (`now()`: retry at once, e.g. an identity repaired while
 * waiting) or superseded (`cancel()`: the machine moved on) without stopping
 * the run. While one waits, `nextAttemptAtMs` says when it fires (status).
 */
export class RetryWait {
  private current?: AbortController
  /** When the scheduled retry fires (wall clock), while one waits. */
  nextAttemptAtMs?: number

  get waiting(): boolean {
    return this.current != null
  }

  /**
   * Waits `delayMs`. Resolves true when the retry is due (the delay passed,
   * or `now()`), false when superseded; rejects when `signal` (the run) aborts.
   */
  async wait(delayMs: number, signal: AbortSignal): Promise<boolean> {
    const wait = new AbortController()
    this.cancel()
    this.current = wait
    const at = Date.now() + delayMs
    this.nextAttemptAtMs = at
    const both = anySignal([signal, wait.signal]) // not AbortSignal.any: `signal` lives as long as the run
    try {
      await sleep(delayMs, undefined, { signal: both.signal })
      return true
    } catch (err) {
      if (signal.aborted || !wait.signal.aborted) throw err
      // Superseded: the machine already moved on, nothing to report.
      return wait.signal.reason === 'now'
    } finally {
      both.dispose()
      if (this.current === wait) this.current = undefined
      // Only our own value: a newer retry's next attempt stays visible.
      if (this.nextAttemptAtMs === at) this.nextAttemptAtMs = undefined
    }
  }

  /** Retry at once (only while a retry waits). */
  now(): void {
    this.current?.abort('now')
  }

  /** The waiting retry belongs to a previous state: drop it. */
  cancel(): void {
    this.current?.abort('superseded')
    this.current = undefined
  }

  reset(): void {
    this.cancel()
    this.nextAttemptAtMs = undefined
  }
}
