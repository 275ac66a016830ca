import { cpus, freemem, loadavg, release, totalmem } from 'node:os'
import {
  Availability,
  DynamicComponentState,
  HealthState,
  type Capabilities,
  type ComponentHealth,
  type ComponentInfo,
  type ResourceUsage,
  type RuntimeCapability,
  type WorkloadStatus
} from '@mycelium/core-interfaces'

/** What the container runtime (k3s-runtime) tells the agent. */
export interface RuntimeView {
  capability(): RuntimeCapability
  workloads?(): WorkloadStatus[]
}

export const NO_RUNTIME: RuntimeView = {
  capability: () => ({ name: 'k3s', availability: Availability.UNAVAILABLE, version: '', reason: 'no container runtime configured' })
}

/** The node's health as heartbeats and config trials see it. */
export interface NodeHealth {
  state: HealthState
  components: ComponentHealth[]
}

export const ALWAYS_HEALTHY = (): NodeHealth => ({ state: HealthState.HEALTHY, components: [] })

/**
 * The capabilities sent at registration (and with a heartbeat when they
 * change). Components: the container runtime while it is available (K3s and
 * its version), then `installed` (dynamic components).
 */
export function nodeCapabilities(
  runtime: RuntimeView,
  labels: Record<string, string>,
  agentVersion: string,
  installed: ComponentInfo[] = [],
  host: HostFacts = hostFacts()
): Capabilities {
  const rt = runtime.capability()
  const components: ComponentInfo[] = [
    ...(rt.availability === Availability.AVAILABLE
      ? [{ name: rt.name, version: rt.version, artifactDigest: '', state: DynamicComponentState.UNSPECIFIED, restarts: 0, reason: '' }]
      : []),
    ...installed
  ]
  return {
    ...host,
    runtime: rt,
    components,
    labels,
    agentVersion
  }
}

/** What the host is (read once per agent: `os.cpus()` is not free, and capabilities are compared every heartbeat). */
export interface HostFacts {
  cpuCores: number
  cpuModel: string
  memoryBytes: number
  os: string
  osRelease: string
  arch: string
}

export function hostFacts(): HostFacts {
  const cpu = cpus()
  return {
    cpuCores: cpu.length,
    cpuModel: cpu[0]?.model ?? '',
    memoryBytes: totalmem(),
    os: process.platform,
    osRelease: release(),
    arch: process.arch
  }
}

/** How long one sample of the host's usage serves every heartbeat that asks (the values move slower than that). */
export const RESOURCE_SAMPLE_MS = 500

let sample: { atMs: number; usage: ResourceUsage } | undefined

/**
 * Load, free memory and the agent's RSS for a heartbeat. Each is a system
 * call and a parse (/proc): sampled at most every RESOURCE_SAMPLE_MS per
 * process, so agents sharing a process (the fleet bench runs hundreds) or a
 * burst of reports do not read them again and again.
 */
export function resourceUsage(nowMs = Date.now()): ResourceUsage {
  if (sample == null || nowMs - sample.atMs >= RESOURCE_SAMPLE_MS || nowMs < sample.atMs) {
    sample = {
      atMs: nowMs,
      usage: { loadAverage1m: loadavg()[0] ?? 0, memoryFreeBytes: freemem(), agentRssBytes: process.memoryUsage.rss() }
    }
  }
  return { ...sample.usage }
}
