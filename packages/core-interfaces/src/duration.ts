import type { Duration } from './generated/google/protobuf/duration.js'

/** Milliseconds in a protobuf Duration; `fallbackMs` when it is unset. */
export function durationToMs(duration: Duration | undefined, fallbackMs: number): number {
  if (duration == null) return fallbackMs
  return duration.seconds * 1000 + Math.trunc(duration.nanos / 1e6)
}

/** A protobuf Duration for a (non-negative) number of milliseconds. */
export function msToDuration(ms: number): Duration {
  const whole = Math.max(0, Math.round(ms))
  return { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1e6 }
}

/** Longest delay a Node.js timer holds; setTimeout fires after 1 ms beyond it (a busy loop). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Why a Duration cannot drive a timer (not finite, negative, or beyond MAX_TIMER_MS), or undefined. */
export function timerDurationProblem(duration: Duration): string | undefined {
  const ms = duration.seconds * 1000 + duration.nanos / 1e6
  if (!Number.isFinite(ms)) return 'is not a finite duration'
  if (ms < 0 || duration.seconds < 0 || duration.nanos < 0) return `is negative (${duration.seconds}s ${duration.nanos}ns)`
  if (ms > MAX_TIMER_MS) return `is ${Math.round(ms)} ms, longer than ${MAX_TIMER_MS} ms (~24.8 days), the longest a timer holds`
  return undefined
}

/**
 * The first Duration inside a decoded message (a NodeConfig from a manager,
 * say) that cannot drive a timer, as "<path> <problem>"; undefined when all can.
 */
export function findTimerDurationProblem(message: unknown, path = ''): string | undefined {
  if (message == null || typeof message !== 'object' || message instanceof Date || ArrayBuffer.isView(message)) return undefined
  const o = message as Record<string, unknown>
  const keys = Object.keys(o)
  if (keys.length === 2 && typeof o.seconds === 'number' && typeof o.nanos === 'number') {
    const problem = timerDurationProblem(o as unknown as Duration)
    return problem != null ? `${path || 'duration'} ${problem}` : undefined
  }
  for (const key of keys) {
    const problem = findTimerDurationProblem(o[key], path === '' ? key : `${path}.${key}`)
    if (problem != null) return problem
  }
  return undefined
}
