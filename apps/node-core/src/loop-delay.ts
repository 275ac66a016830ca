import { monotonicMs } from '@mycelium/core-utils'

/**
 * How late the event loop runs, sampled by a timer: every `resolutionMs` a
 * tick records how much later than due it ran; `takeP99()` answers the 99th
 * percentile of the ticks since its last call and starts a new window.
 *
 * Why not perf_hooks' monitorEventLoopDelay: its histogram (HdrHistogram over
 * 1 ns – 2^63 ns at 3 significant figures) is ~360 KB of native memory, all of
 * it touched again by every reset — 0.4–0.5 MB of the idle daemon's RSS
 * (tools/bench footprint) to answer "is p99 over 500 ms", which ticks every
 * 100 ms answer as well, in a few hundred bytes. Ten timer callbacks a second
 * cost the idle daemon well under 1 % of its CPU.
 *
 * A loop blocked past the end of a window has not run its tick yet: the
 * lateness still pending counts as a sample, so a stall is seen by the first
 * check that runs after it, not one window later.
 */
export class LoopDelaySampler {
  private readonly samples: Float64Array
  private count = 0
  private next = 0
  private due = 0
  private timer?: NodeJS.Timeout

  constructor(
    private readonly resolutionMs = DEFAULT_LOOP_DELAY_RESOLUTION_MS,
    /** Samples kept per window; a longer window keeps its latest. */
    capacity = 256,
    private readonly now: () => number = monotonicMs
  ) {
    this.samples = new Float64Array(capacity)
  }

  start(): void {
    if (this.timer != null) return
    this.due = this.now() + this.resolutionMs
    this.timer = setInterval(() => this.tick(), this.resolutionMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** One tick (the timer's; tests call it with their clock): records how late it ran. */
  tick(): void {
    const t = this.now()
    this.record(Math.max(0, t - this.due))
    // Node reschedules an interval from when its callback runs.
    this.due = t + this.resolutionMs
  }

  /** The 99th percentile (ms) of this window's delays, the pending one included; then a new window. */
  takeP99(): number {
    const n = Math.min(this.count, this.samples.length)
    const window = Array.from(this.samples.subarray(0, n))
    const t = this.now()
    const pending = t - this.due
    if (pending > 0) {
      window.push(pending)
      // Counted up to now: the late tick, when it runs, records only what comes after.
      this.due = t
    }
    this.count = 0
    this.next = 0
    if (window.length === 0) return 0
    window.sort((a, b) => a - b)
    return window[Math.ceil(window.length * 0.99) - 1]!
  }

  private record(ms: number): void {
    this.samples[this.next] = ms
    this.next = (this.next + 1) % this.samples.length
    this.count++
  }
}

/**
 * How often the loop-delay tick runs: the resolution of the watchdog's p99 (its
 * threshold is DEFAULT_WATCHDOG.eventLoopDelayMs, 500 ms).
 * @default 100
 */
export const DEFAULT_LOOP_DELAY_RESOLUTION_MS = 100
