import type { Capabilities, Logger, Phase } from '@mycelium/core-interfaces'
import { lastTrialReport, withStateProblems } from './agent-status.js'
import type { BootstrapAgentComponents } from './agent-types.js'
import { componentsReportFields } from './assignments.js'
import type { ConfigStore } from './config-store.js'
import type { HeartbeatHandlers } from './manager-link.js'
import { resourceUsage, type NodeHealth } from './node-facts.js'
import { capabilityTracker } from './registration.js'

/**
 * What each heartbeat of one stream tells the manager: phase, health (with
 * the state directory's problems), usage, workloads, config version and last
 * trial, components, self-update state — and the capabilities on the first
 * report of a stream and after that only when they changed. Apart from the
 * runner so what a manager sees is tested without a stream.
 */
export interface HeartbeatReportSource {
  phase: () => Phase
  health: () => NodeHealth
  /** Corrupt files survived and writes failing now: a DEGRADED `state` component naming the files. */
  stateProblems: () => string[]
  /** What the node can do now (compared at every beat). */
  capabilities: () => Capabilities
  config: () => Pick<ConfigStore, 'current' | 'lastTrial'>
  components: Pick<BootstrapAgentComponents, 'runtime' | 'componentsReport' | 'updateStatus'>
  /** Called when capabilities changed since the last report of the stream (a counter). */
  onCapabilitiesChanged: () => void
  log: Logger
}

/** The `report` hook of one heartbeat stream: build one per stream (it remembers what the stream was told). */
export function heartbeatReporter(s: HeartbeatReportSource): HeartbeatHandlers['report'] {
  const capabilitiesChanged = capabilityTracker(s.log, s.onCapabilitiesChanged)
  return () => {
    const h = withStateProblems(s.health(), s.stateProblems())
    const capabilities = s.capabilities()
    const changed = capabilitiesChanged(capabilities)
    return {
      phase: s.phase(),
      state: h.state,
      components: h.components,
      usage: resourceUsage(),
      workloads: s.components.runtime?.workloads?.() ?? [],
      configVersion: s.config().current().version,
      ...(changed ? { capabilities } : {}),
      ...componentsReportFields(s.components.componentsReport),
      update: s.components.updateStatus?.(),
      ...lastTrialReport(s.config())
    }
  }
}
