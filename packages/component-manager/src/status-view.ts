import {
  DynamicComponentState,
  HealthState,
  type ComponentHealth,
  type ComponentInfo,
  type DynamicComponentStatus
} from '@mycelium/core-interfaces'
import type { RunRecord } from './component-process.js'
import type { ComponentSpec, DesiredComponent } from './planner.js'

/**
 * How a component's entry reads in NodeStatus, capabilities and node
 * health, and which resting state one with nothing to do is in. Pure — the
 * manager measures the live process (pid, RSS) and passes it in.
 */

/** The part of an entry the views read. */
export interface StatusEntry {
  name: string
  state: DynamicComponentState
  reason: string
  since: Date
  restarts: number
  assignmentId: string
  spec?: Pick<ComponentSpec, 'version' | 'digest' | 'onDemand'>
  /** The process that runs now: its version is the one reported, whatever the spec says. */
  proc?: { record: Pick<RunRecord, 'version' | 'digest'> }
}

/** `live` is the process when it is alive (its pid and tree RSS); absent, both read 0. */
export function componentStatus(e: StatusEntry, live?: { pid: number; rssBytes: number }): DynamicComponentStatus {
  return {
    name: e.name,
    version: e.proc?.record.version ?? e.spec?.version ?? '',
    artifactDigest: e.proc?.record.digest ?? e.spec?.digest ?? '',
    state: e.state,
    restarts: e.restarts,
    reason: e.reason,
    rssBytes: live?.rssBytes ?? 0,
    assignmentId: e.assignmentId,
    pid: live?.pid ?? 0,
    onDemand: e.spec?.onDemand ?? false
  }
}

/** For capabilities: no memory, so they are re-sent only when this changes. */
export function componentInfo(s: DynamicComponentStatus): ComponentInfo {
  return {
    name: s.name,
    version: s.version,
    artifactDigest: s.artifactDigest,
    state: s.state,
    restarts: s.restarts,
    reason: s.reason
  }
}

/** Running or idle is healthy; anything else degrades the node, never fails it. */
export function componentHealth(e: StatusEntry): ComponentHealth {
  return {
    name: `component:${e.name}`,
    state: e.state === DynamicComponentState.RUNNING || e.state === DynamicComponentState.IDLE ? HealthState.HEALTHY : HealthState.DEGRADED,
    reason: e.reason,
    since: e.since,
    restarts: e.restarts
  }
}

/**
 * After a reconcile: where a component that is not running and not blocked
 * stands. One already IDLE keeps the reason it became idle for (stopped by
 * assignment, idled out); undefined leaves the state as it is.
 */
export function restingState(
  d: DesiredComponent,
  e: { state: DynamicComponentState; running: boolean; blocked: boolean; wanted: boolean } | undefined
): { state: DynamicComponentState; reason: string } | undefined {
  if (e == null || e.running || e.blocked || d.spec == null || e.state === DynamicComponentState.IDLE) return undefined
  if (!d.run) return { state: DynamicComponentState.IDLE, reason: 'assignment desired state is "stopped"' }
  if (d.spec.onDemand && !e.wanted) return { state: DynamicComponentState.IDLE, reason: 'on-demand: not in use' }
  return undefined
}
