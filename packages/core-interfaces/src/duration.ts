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
