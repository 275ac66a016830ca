import { durationToMs, type Capabilities, type Logger, type RegisterNodeResponse } from '@mycelium/core-interfaces'
import { describeGrpcError } from './manager-link.js'
import type { ManagerClock } from './manager-clock.js'
import type { AgentEvent, Registration } from './phase-machine.js'

/**
 * What a RegisterNode answer grants, as the state machine keeps it: every
 * deadline measured from receipt on the link's monotonic clock, never the
 * manager's absolute times against our wall clock.
 */
export function registrationFrom(
  res: RegisterNodeResponse,
  clock: ManagerClock,
  fallbacks: { handoffDeadlineMs: number; heartbeatIntervalMs: number },
  log: Logger
): Registration {
  const expiresAtMs = res.lease?.expiresAt?.getTime()
  const remainingMs = res.leaseRemaining != null ? durationToMs(res.leaseRemaining, 0) : undefined
  // An older manager sends no time left: its lease (granted for ttl, expiring at expires_at) dates the grant on its clock.
  if (remainingMs == null && expiresAtMs != null && res.lease?.ttl != null) clock.observeGrant(expiresAtMs, durationToMs(res.lease.ttl, 0))
  const leaseDeadline = clock.deadline({ absoluteMs: expiresAtMs, relativeMs: remainingMs }) ?? clock.now()
  const handoffDeadline =
    clock.deadline({ absoluteMs: res.handoffDeadline?.getTime(), relativeMs: res.handoffTimeout != null ? durationToMs(res.handoffTimeout, 0) : undefined }) ??
    clock.now() + fallbacks.handoffDeadlineMs
  const skewMs = clock.skewMs()
  if (skewMs != null && Math.abs(skewMs) > 1000) log.warn('clock skew with the Network Manager', { skewMs, note: 'deadlines are kept on the monotonic clock' })
  return {
    leaseId: res.lease?.leaseId ?? '',
    leaseDeadline,
    heartbeatIntervalMs: durationToMs(res.heartbeatInterval, fallbacks.heartbeatIntervalMs),
    handoffId: res.handoffId,
    handoffDeadline
  }
}

/** A failed manager call as the machine's event, with the wait the manager asked for. */
export function failureOf<T extends 'registration-failed' | 'link-lost'>(type: T, err: unknown): Extract<AgentEvent, { type: T }> {
  const f = describeGrpcError(err)
  return { type, reason: f.reason, ...(f.retryAfterMs != null ? { retryAfterMs: f.retryAfterMs } : {}) } as Extract<AgentEvent, { type: T }>
}

/**
 * Decides which heartbeats carry the capabilities: the first of a stream,
 * then only one whose capabilities changed. A change a manager schedules on
 * (runtime availability, components, labels) is an info line; a runtime's
 * reason text may change often (restart countdowns) and is only debug.
 */
export function capabilityTracker(log: Logger, onChange: () => void): (capabilities: Capabilities) => boolean {
  let sent: string | undefined
  return (capabilities) => {
    const fingerprint = JSON.stringify(capabilities)
    const changed = fingerprint !== sent
    if (changed && sent != null) {
      onChange()
      const was = JSON.parse(sent) as Capabilities
      const significant =
        was.runtime?.availability !== capabilities.runtime?.availability ||
        JSON.stringify([was.components, was.labels]) !== JSON.stringify([capabilities.components, capabilities.labels])
      log[significant ? 'info' : 'debug']('capabilities changed; sending them with the heartbeat', { runtime: capabilities.runtime, components: capabilities.components })
    }
    sent = fingerprint
    return changed
  }
}
