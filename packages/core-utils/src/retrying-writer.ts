import { NotStartedError } from '@mycelium/core-interfaces'
import { Backoff, type BackoffOptions } from './backoff.js'

/**
 * A durable write that must land eventually (a state file on a disk that is
 * full or read-only for a while), kept by one writer:
 * - one attempt at a time, always of the latest value: a newer value
 *   supersedes a pending one, and everything handed in before an attempt
 *   starts is covered by it (`write` is called synchronously when the attempt
 *   starts, so a lazy snapshot taken there sees every earlier change);
 * - a failed attempt is retried with capped, jittered backoff until one
 *   lands or the writer is closed; a new value cuts a waiting backoff short
 *   (a disk that came back is used at once) and a value handed in during an
 *   attempt is tried right after it — never alongside it, and once per value,
 *   so a burst of values cannot retry faster than values come;
 * - what happens is reported through `onFailed` / `onWritten` (the owner
 *   logs it and shows it in status; this class has no logger) and `failure`
 *   holds the error in force until a write lands.
 * Timers are unref'd: a retry never keeps the process alive.
 */
export interface RetryingWriterComponents<T> {
  /** Makes `value` durable (e.g. `writeStateFile`); a throw or rejection is a failed attempt. */
  write: (value: T) => Promise<void>
}

export interface RetryingWriterInit<T> {
  /**
   * Names what is written, in the `NotStartedError` of a value abandoned by
   * `close()`, e.g. "command journal /var/lib/mycelium/commands.bin".
   * @default 'retrying writer'
   */
  what?: string
  /** Delays between attempts after a failure (reset by a success). @default DEFAULT_RETRYING_WRITER.backoff ({ initialMs: 200, maxMs: 10_000 }) */
  backoff?: BackoffOptions
  /** Aborting it is `close()`. */
  signal?: AbortSignal
  /**
   * Every failed attempt, with the value it tried and the failure in force
   * before it (undefined: the first of a run of failures). Must not throw.
   */
  onFailed?: (err: Error, value: T, previous: Error | undefined) => void
  /** Every attempt that landed, with the failure it ended (undefined: none was in force). Must not throw. */
  onWritten?: (value: T, previous: Error | undefined) => void
  /** The jitter's random source. @default Math.random */
  random?: () => number
}

export const DEFAULT_RETRYING_WRITER = {
  what: 'retrying writer',
  backoff: { initialMs: 200, maxMs: 10_000 } satisfies BackoffOptions
}

interface Waiter {
  generation: number
  resolve: () => void
  reject: (err: Error) => void
}

export class RetryingWriter<T> {
  private readonly backoff: Backoff
  private readonly what: string
  /** The latest value handed in, and its generation (one per `write`). */
  private value: T | undefined
  private generation = 0
  /** The newest generation that landed. */
  private written = 0
  /** Generations up to this one were dropped by `close()` (never retried). */
  private abandoned = 0
  private waiters: Waiter[] = []
  private running = false
  private lastFailure: Error | undefined
  /** A value came after the last failure: the backoff wait is skipped. */
  private kicked = false
  private wake: (() => void) | undefined
  private closedFlag = false
  private readonly onAbort = (): void => this.close()

  constructor(
    private readonly components: RetryingWriterComponents<T>,
    private readonly init: RetryingWriterInit<T> = {}
  ) {
    this.what = init.what ?? DEFAULT_RETRYING_WRITER.what
    this.backoff = new Backoff({ ...DEFAULT_RETRYING_WRITER.backoff, ...init.backoff }, init.random)
    if (init.signal?.aborted === true) this.close()
    else init.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** The error of the last failed attempt, until an attempt lands. */
  get failure(): Error | undefined {
    return this.lastFailure
  }

  /** A value is waiting to be written (not yet landed, not abandoned by `close()`). */
  get pending(): boolean {
    return this.written < this.generation && this.abandoned < this.generation
  }

  /**
   * Hands in a value (superseding any pending one) and tries at once unless
   * an attempt is running (then right after it: a value handed in during an
   * attempt gets its own). Resolves when it (or a newer value) has landed;
   * rejects with the error of the first failed attempt that covered it (the
   * value stays pending and is retried) or a `NotStartedError` when
   * `close()` abandons it. After `close()` a value gets one attempt and is
   * never retried.
   */
  write(value: T): Promise<void> {
    this.value = value
    return this.waitFor(++this.generation)
  }

  /**
   * Resolves when nothing is pending; otherwise tries at once (cutting a
   * backoff wait short) and settles like `write` for the pending value.
   */
  flush(): Promise<void> {
    if (this.written === this.generation) return Promise.resolve()
    if (!this.pending) return Promise.reject(this.closedError())
    return this.waitFor(this.generation)
  }

  /**
   * Stops retrying (idempotent): a waiting retry ends, the pending value is
   * abandoned and its waiters rejected with `NotStartedError`. An attempt
   * already running finishes (and is reported).
   */
  close(): void {
    if (this.closedFlag) return
    this.closedFlag = true
    this.init.signal?.removeEventListener('abort', this.onAbort)
    this.abandoned = this.generation
    this.value = undefined
    this.wake?.()
    const err = this.closedError()
    for (const w of this.waiters.splice(0)) w.reject(err)
  }

  private closedError(): NotStartedError {
    return new NotStartedError(`${this.what} (closed before the write)`)
  }

  private waitFor(generation: number): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ generation, resolve, reject }))
    this.kicked = true
    this.wake?.()
    if (!this.running) {
      this.running = true
      void this.run()
    }
    return done
  }

  private async run(): Promise<void> {
    try {
      while (this.pending) {
        const generation = this.generation
        const value = this.value as T
        const previous = this.lastFailure
        try {
          await this.components.write(value)
        } catch (err) {
          const error = err instanceof Error ? err : new Error(String(err))
          this.lastFailure = error
          this.report(() => this.init.onFailed?.(error, value, previous))
          // The waiters of what this attempt covered hear of it now (a caller refusing work because
          // its write failed must not wait out a backoff). A value handed in while it ran was not
          // in it: it gets its own attempt at once (one per value, so retries never outpace values).
          this.kicked = this.generation > generation
          this.rejectUpTo(generation, error)
          if (this.closedFlag) {
            // No retries after close; a value written after it still gets its one attempt.
            this.abandoned = Math.max(this.abandoned, generation)
            continue
          }
          await this.pause(this.backoff.next())
          continue
        }
        this.written = generation
        this.lastFailure = undefined
        this.backoff.reset()
        if (!this.pending) this.value = undefined
        this.report(() => this.init.onWritten?.(value, previous))
        this.settle(generation)
      }
    } finally {
      // Cleared in the same turn the loop ends: a value handed in by a settled waiter starts a new loop.
      this.running = false
    }
  }

  private pause(delayMs: number): Promise<void> {
    if (this.kicked || this.closedFlag) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wake?.(), delayMs)
      timer.unref()
      this.wake = () => {
        clearTimeout(timer)
        this.wake = undefined
        resolve()
      }
    })
  }

  private rejectUpTo(generation: number, err: Error): void {
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (w.generation <= generation) w.reject(err)
      else still.push(w)
    }
    this.waiters = still
  }

  private settle(generation: number): void {
    const still: Waiter[] = []
    for (const w of this.waiters) {
      if (w.generation <= generation) w.resolve()
      else still.push(w)
    }
    this.waiters = still
  }

  /** A reporter's fault never ends the retries. */
  private report(callback: () => void): void {
    try {
      callback()
    } catch {
      // The owner's reporting failed; the write state above is still right.
    }
  }
}
