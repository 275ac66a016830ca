import {
  durationToMs,
  HandoffOutcome,
  msToDuration,
  Phase,
  supportedContractVersions,
  type Capabilities,
  type Logger,
  type RegisterNodeResponse
} from '@mycelium/core-interfaces'
import type { IdentityStore } from '@mycelium/basic-net'
import type { BootstrapAgentInit } from './agent-types.js'
import type { CommandJournal } from './commands/journal.js'
import { DEFAULT_HANDOFF_DEADLINE_MS, DEFAULT_HEARTBEAT_INTERVAL_MS } from './defaults.js'
import { describeGrpcError, type ManagerLink } from './manager-link.js'
import type { ManagerClock } from './manager-clock.js'
import type { AgentEvent, MachineState, Registration } from './phase-machine.js'

/**
 * Registration and the two-phase handoff commit with the Network Manager,
 * as the agent's REGISTRATION and HANDOFF actions: each returns the machine's
 * event, never throws for a manager's refusal or failure.
 */
export interface ManagerStepDeps {
  link: ManagerLink
  init: Pick<BootstrapAgentInit, 'networkId' | 'nodeId' | 'handoffDeadlineMs' | 'defaultHeartbeatIntervalMs'>
  identity: IdentityStore
  state: MachineState
  configVersion: number
  capabilities: () => Capabilities
  bootId: string
  /** Its completed commands are sent so a manager never re-sends them. */
  journal?: CommandJournal
  /** The registration reply (its assignments), before the machine hears of it. */
  onRegistered?: (res: RegisterNodeResponse) => void
  log: Logger
}

/** Dials the state's endpoints (in order) and registers. */
export async function registerStep(d: ManagerStepDeps, signal: AbortSignal): Promise<AgentEvent> {
  d.link.close()
  try {
    await d.link.connect([...d.state.endpoints], signal)
  } catch (err) {
    return { type: 'registration-failed', reason: (err as Error).message }
  }
  try {
    const res = await d.link.register(
      {
        identity: {
          networkId: d.init.networkId,
          nodeId: d.init.nodeId,
          spiffeId: d.identity.spiffeId,
          certificateSha256: d.identity.report().certificateSha256 ?? ''
        },
        capabilities: d.capabilities(),
        contractVersions: supportedContractVersions(),
        configVersion: d.configVersion,
        bootId: d.bootId,
        fromPhase: d.state.phase === Phase.FALLBACK ? Phase.FALLBACK : Phase.DISCOVERY,
        completedCommandIds: d.journal?.completedIds() ?? [],
        ...(d.journal != null ? { commandRetention: msToDuration(d.journal.retention) } : {})
      },
      signal
    )
    const fallbacks = {
      handoffDeadlineMs: d.init.handoffDeadlineMs ?? DEFAULT_HANDOFF_DEADLINE_MS,
      heartbeatIntervalMs: d.init.defaultHeartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS
    }
    const registration = registrationFrom(res, d.link.clock, fallbacks, d.log)
    d.onRegistered?.(res)
    return { type: 'registered', registration }
  } catch (err) {
    return failureOf('registration-failed', err)
  }
}

/** Commits the handoff of the state's registration, within our deadline and never later than the manager's. */
export async function commitStep(d: ManagerStepDeps, signal: AbortSignal): Promise<AgentEvent> {
  const r = d.state.registration!
  // Both measured from receipt, on the monotonic clock.
  const deadlineMs = Math.max(
    0,
    Math.floor(Math.min(d.init.handoffDeadlineMs ?? DEFAULT_HANDOFF_DEADLINE_MS, d.link.clock.remainingMs(r.handoffDeadline)))
  )
  try {
    const res = await d.link.commit(r.handoffId, r.leaseId, d.configVersion, deadlineMs, signal)
    if (res === 'timeout') return { type: 'handoff-timeout', reason: `no confirmation within ${deadlineMs} ms` }
    if (res.outcome === HandoffOutcome.CONFIRMED) return { type: 'handoff-confirmed' }
    return {
      type: 'handoff-refused',
      reason: res.reason || 'refused',
      ...(res.retryAfter != null ? { retryAfterMs: durationToMs(res.retryAfter, 0) } : {})
    }
  } catch (err) {
    return failureOf('link-lost', err)
  }
}

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
    clock.deadline({
      absoluteMs: res.handoffDeadline?.getTime(),
      relativeMs: res.handoffTimeout != null ? durationToMs(res.handoffTimeout, 0) : undefined
    }) ?? clock.now() + fallbacks.handoffDeadlineMs
  const skewMs = clock.skewMs()
  if (skewMs != null && Math.abs(skewMs) > 1000)
    log.warn('clock skew with the Network Manager', { skewMs, note: 'deadlines are kept on the monotonic clock' })
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
  return { type, reason: f.message, ...(f.retryAfterMs != null ? { retryAfterMs: f.retryAfterMs } : {}) } as Extract<
    AgentEvent,
    { type: T }
  >
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
      log[significant ? 'info' : 'debug']('capabilities changed; sending them with the heartbeat', {
        runtime: capabilities.runtime,
        components: capabilities.components
      })
    }
    sent = fingerprint
    return changed
  }
}
