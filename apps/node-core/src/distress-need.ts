import { DistressProblem, HealthState, IdentityState, Phase } from '@mycelium/core-interfaces'

/**
 * Whether a node needs its peers' help, and what its call says: the beacon's
 * decision as a pure function of one snapshot of facts, apart from the beacon
 * (distress.ts) that gathers the facts, signs and sends, so which failures
 * raise a call — and in which order of seriousness — is tested without peers.
 */

/** Facts the decision reads (one snapshot, taken when the beacon checks). */
export interface DistressFacts {
  nowMs: number
  phase: Phase
  /** When the node last was MANAGED, or when it started when it never was. */
  lastManagedMs: number
  identity: { state: IdentityState; reason: string }
  /** Spores held (live or expired) and live ones; undefined before a trust bundle. */
  spores?: { held: number; live: number }
  /** The K3s runtime's health line (UNHEALTHY: restart budget spent). */
  k3s: { state: HealthState; reason: string }
  /** Config trials reverted in a row (reset by a promotion). */
  configRevertsInRow: number
  /** A core component the watchdog gave up on (its name and why), if any. */
  failedComponent?: { name: string; reason: string }
}

export interface DistressThresholds {
  /** No manager for this long raises a call for help. */
  unreachableMs: number
  /** This many reverted trials in a row is a loop. */
  configRevertLoop: number
}

/** What a call for help says: the problem (the most serious first), the evidence and whether a renewal is asked. */
export interface DistressNeed {
  problem: DistressProblem
  evidence: string[]
  /** Ask for a certificate for a CSR of the node's key. */
  renewal: boolean
}

const ms = (n: number): string => `${Math.round(n / 1000)} s`

/**
 * Whether the node needs help, and which (pure). Core failures that persist
 * (identity expiring without a manager, every spore expired, K3s budget
 * spent, a config revert loop, a failed core component) and a manager
 * unreachable beyond the threshold; a MANAGED node with a working identity
 * needs no peer: its manager hears it directly.
 */
export function distressNeeded(f: DistressFacts, t: DistressThresholds): DistressNeed | undefined {
  const managed = f.phase === Phase.MANAGED
  const offFor = f.nowMs - f.lastManagedMs
  const unreachable = !managed && offFor >= t.unreachableMs
  const identityAtRisk =
    f.identity.state === IdentityState.RENEWAL_DUE ||
    f.identity.state === IdentityState.EXPIRED ||
    f.identity.state === IdentityState.NOT_YET_VALID
  const evidence: string[] = []
  const problems: DistressProblem[] = []
  if (unreachable) {
    evidence.push(`no Network Manager for ${ms(offFor)} (phase ${Phase[f.phase]})`)
    problems.push(DistressProblem.MANAGERS_UNREACHABLE)
  }
  if (identityAtRisk && !managed) {
    evidence.push(`identity ${IdentityState[f.identity.state]}: ${f.identity.reason}`)
    problems.unshift(DistressProblem.IDENTITY_EXPIRING)
  }
  if (f.spores != null && f.spores.held > 0 && f.spores.live === 0) {
    evidence.push(`all ${f.spores.held} spores expired`)
    problems.unshift(DistressProblem.SPORES_EXPIRED)
  }
  if (f.k3s.state === HealthState.UNHEALTHY) {
    evidence.push(`k3s: ${f.k3s.reason}`)
    problems.unshift(DistressProblem.K3S_RESTART_BUDGET_SPENT)
  }
  if (f.configRevertsInRow >= t.configRevertLoop) {
    evidence.push(`${f.configRevertsInRow} config trials reverted in a row`)
    problems.unshift(DistressProblem.CONFIG_REVERT_LOOP)
  }
  if (f.failedComponent != null) {
    evidence.push(`${f.failedComponent.name}: ${f.failedComponent.reason}`)
    problems.unshift(DistressProblem.COMPONENT_FAILED)
  }
  // A core failure on a MANAGED node is the manager's to see in heartbeats: no peer is needed.
  if (problems.length === 0 || managed) return undefined
  return { problem: problems[0]!, evidence: evidence.map((e) => e.slice(0, 256)).slice(0, 16), renewal: identityAtRisk }
}
