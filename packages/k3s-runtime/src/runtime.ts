import { Availability, type K3sConfig, type RuntimeCapability, type Startable } from '@mycelium/core-interfaces'
import { findK3sBinary, k3sVersion } from './binary.js'

export interface K3sRuntimeInit {
  k3s: K3sConfig | undefined
  /** The PATH to search when no binary is configured (node-core passes process.env.PATH). */
  path?: string
}

/**
 * The node's container runtime as the rest of the core sees it. When K3s is
 * disabled or not installed it reports "unavailable" with the reason and the
 * rest of the core runs normally (that is what a developer machine shows).
 */
export class K3sRuntime implements Startable {
  private current: RuntimeCapability = { name: 'k3s', availability: Availability.UNAVAILABLE, version: '', reason: 'not checked yet' }
  private started = false

  constructor(private readonly init: K3sRuntimeInit) {}

  isStarted(): boolean {
    return this.started
  }

  async start(): Promise<void> {
    this.started = true
    const k3s = this.init.k3s
    if (k3s == null || !k3s.enabled) {
      this.current = { ...this.current, reason: 'disabled in NodeConfig (k3s.enabled is false)' }
      return
    }
    const found = await findK3sBinary(k3s.binaryPath, this.init.path ?? '')
    if ('missing' in found) {
      this.current = { ...this.current, reason: found.missing }
      return
    }
    const version = await k3sVersion(found.binary)
    this.current =
      'version' in version
        ? { name: 'k3s', availability: Availability.AVAILABLE, version: version.version, reason: '' }
        : { ...this.current, reason: version.error }
  }

  stop(): void {
    // Never stops K3s: workloads keep running whatever happens to the agent.
    this.started = false
  }

  capability(): RuntimeCapability {
    return { ...this.current }
  }
}
