import { HealthState, Phase, type ComponentHealth, type PhaseTransition, type StatusReport, SERVICE_NAMES } from '@mycelium/core-interfaces'
import type { IdentityStore } from '@mycelium/basic-net'
import type { SporeClientStatus } from '@mycelium/spore-client'
import type { ConfigStore } from './config-store.js'
import type { ManagerLink } from './manager-link.js'
import type { RuntimeView } from './node-facts.js'
import { attemptOf, type MachineState } from './phase-machine.js'
import { componentsReportFields, type ComponentsReport } from './assignments.js'

export interface StatusInput {
  /** Dynamic components and the assignment generation applied (none without a component manager). */
  componentsReport?: () => ComponentsReport
  networkId: string
  nodeId: string
  identity: IdentityStore
  state: MachineState
  phaseSince: number
  /** When the scheduled retry fires (wall clock), while one is scheduled. */
  nextAttemptAtMs?: number
  history: PhaseTransition[]
  link: ManagerLink
  leaseId: string
  spores: SporeClientStatus | undefined
  config: ConfigStore | undefined
  /** State corruptions survived (reported as the DEGRADED `state` component). */
  problems: string[]
  extraComponents: ComponentHealth[]
  runtime: RuntimeView
  agentVersion: string
  startedAt: Date
  bootId: string
}

/** The NodeStatus message of an agent. */
export function buildStatusReport(i: StatusInput): StatusReport {
  const components = componentsReportFields(i.componentsReport)
  const identity = i.identity.report()
  const trial = i.config?.trial()
  const lastTrial = i.config?.lastTrial()
  const link = i.link
  return {
    identity: {
      networkId: i.networkId,
      nodeId: i.nodeId,
      spiffeId: i.identity.spiffeId,
      certificateSha256: identity.certificateSha256 ?? ''
    },
    phase: i.state.phase,
    reason: i.state.reason,
    dynamicComponents: components.dynamicComponents,
    assignmentsGeneration: components.appliedAssignmentsGeneration,
    phaseSince: new Date(i.phaseSince),
    history: i.history,
    managers:
      link.endpoint != null
        ? [
            {
              service: SERVICE_NAMES.networkManager,
              endpoint: link.endpoint,
              state: i.state.phase === Phase.MANAGED ? 'connected' : i.state.phase === Phase.FALLBACK ? 'down' : 'connecting',
              ...(link.lastAckMs != null ? { lastSeen: new Date(link.lastAckMs) } : {}),
              heartbeatRttMs: link.lastRttMs ?? 0,
              leaseId: i.leaseId,
              ...(link.leaseDeadline != null ? { leaseExpiresAt: link.leaseExpiresAt() } : {})
            }
          ]
        : [],
    peers: [],
    config: {
      currentVersion: i.config?.current().version ?? 0,
      lastKnownGoodVersion: i.config?.lastKnownGood().version ?? 0,
      trialVersion: trial?.version ?? 0,
      ...(trial != null ? { trialEndsAt: new Date(trial.endsAtMs) } : {}),
      sectionVersions: {},
      ...(lastTrial != null
        ? { lastTrial: { version: lastTrial.version, outcome: lastTrial.outcome, reason: lastTrial.reason, at: new Date(lastTrial.atMs) } }
        : {})
    },
    components: [
      {
        name: 'state',
        state: i.problems.length > 0 ? HealthState.DEGRADED : HealthState.HEALTHY,
        reason: i.problems.join('; '),
        restarts: 0
      },
      ...i.extraComponents
    ],
    identityStatus: {
      state: identity.state,
      reason: identity.reason,
      ...(identity.notAfter != null ? { notAfter: identity.notAfter } : {})
    },
    runtime: i.runtime.capability(),
    workloads: i.runtime.workloads?.() ?? [],
    spores: {
      activeSource: i.spores?.activeSource ?? '',
      sporeCount: i.spores?.sporeCount ?? 0,
      rejectedCount: i.spores?.rejectedCount ?? 0,
      ...(i.spores?.lastUpdateMs != null ? { lastUpdate: new Date(i.spores.lastUpdateMs) } : {})
    },
    agentVersion: i.agentVersion,
    startedAt: i.startedAt,
    bootId: i.bootId,
    progress: {
      step: i.state.step,
      attempt: attemptOf(i.state),
      ...(i.nextAttemptAtMs != null ? { nextAttemptAt: new Date(i.nextAttemptAtMs) } : {}),
      lastError: i.state.lastError
    },
    // Filled in by the node (node-core aggregates component health).
    health: HealthState.UNSPECIFIED,
    healthReason: '',
    distressRounds: 0 // filled in by the node (its distress beacon)
  }
}

/**
 * The node's health as sent on heartbeats, with the state directory's
 * problems (a full or read-only disk, a corrupt file survived) as a DEGRADED
 * `state` component naming the files: the manager sees what status shows.
 */
export function withStateProblems<H extends { state: HealthState; components: ComponentHealth[] }>(health: H, problems: string[]): H {
  if (problems.length === 0) return health
  return {
    ...health,
    state: health.state === HealthState.HEALTHY ? HealthState.DEGRADED : health.state,
    components: [...health.components, { name: 'state', state: HealthState.DEGRADED, reason: problems.join('; '), restarts: 0 }]
  }
}

/** The last config trial as a heartbeat field (so the manager sees a revert, also one made at boot). */
export function lastTrialReport(store: Pick<ConfigStore, 'lastTrial'>): {
  lastConfigTrial?: { version: number; outcome: string; reason: string; at: Date }
} {
  const t = store.lastTrial()
  return t != null ? { lastConfigTrial: { version: t.version, outcome: t.outcome, reason: t.reason, at: new Date(t.atMs) } } : {}
}
