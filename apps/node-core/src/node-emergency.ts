import { EmergencyAction, HealthState, type ComponentHealth, type Logger, type NodeConfig } from '@mycelium/core-interfaces'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import { applyEmergency, type NodeCommandTargets } from './node-commands.js'
import { loadEmergencyMeasures, NO_MEASURES, type EmergencyMeasures } from './emergency-state.js'
import { stateDirOf } from './identity.js'
import type { NodePeers } from './node-peers.js'
import type { NodeSelfUpdate } from './self-update.js'
import { secureRandom } from './package-init.js'

/** What the node's emergency measures act on (node.ts hands them in). */
export interface NodeEmergencyComponents {
  config: Readonly<NodeConfig>
  log: Logger
  runtime: K3sRuntime
  peers: () => NodePeers | undefined
  /** ALLOW_DOWNGRADE is the self-update's. */
  selfUpdate: () => NodeSelfUpdate
  /** What restart and emergency commands act on (node-commands.ts). */
  targets: () => NodeCommandTargets
  /** Whether the node runs (a re-cordon stops retrying once it does not). */
  isStarted: () => boolean
  /** Status changed. */
  changed: () => void
}

/**
 * The emergency measures in force on a node (emergency-state.ts): persisted,
 * loaded before the components start (an ISOLATEd node starts no peer
 * networking), put on K3s again after a start, undone by RESUME.
 */
export class NodeEmergency {
  measures: EmergencyMeasures = { ...NO_MEASURES }

  constructor(private readonly c: NodeEmergencyComponents) {}

  /** Set by the STOP_ACCEPTING_WORKLOADS emergency action (the K3s node is cordoned). */
  get acceptingWorkloads(): boolean {
    return this.measures.acceptingWorkloads
  }

  /** Set by the ISOLATE emergency action (peer networking stopped). */
  get isolated(): boolean {
    return this.measures.isolated
  }

  /** The measures a previous run left in force (before any component starts). */
  async load(): Promise<void> {
    this.measures = await loadEmergencyMeasures(stateDirOf(this.c.config), this.c.log)
    if (this.measures.isolated || !this.measures.acceptingWorkloads)
      this.c.log.warn('emergency measures in force (RESUME undoes them)', { ...this.measures })
  }

  /** The agent's `emergency` hook: an operator-signed emergency command other than reset-to-last-known-good. */
  async apply(action: EmergencyAction, reason: string): Promise<void> {
    if (action === EmergencyAction.ALLOW_DOWNGRADE) {
      await this.c.selfUpdate().allowDowngrade(reason)
      this.c.log.warn('emergency action applied: the next self-update may install a lower version', { reason })
      return
    }
    this.measures = await applyEmergency(action, reason, this.measures, {
      ...this.c.targets(),
      startPeers: () => this.startPeers()
    })
    this.c.log.warn('emergency action applied', { action: EmergencyAction[action], reason })
    this.c.changed()
  }

  /** Health lines of the measures in force (workloads: DEGRADED while cordoned; peers: STOPPED while isolated). */
  healthLines(): { workloads?: ComponentHealth; peers?: ComponentHealth } {
    const m = this.measures
    const why = m.reason !== '' ? `: ${m.reason} (since ${m.since}; undo: RESUME)` : ''
    return {
      ...(!this.acceptingWorkloads
        ? {
            workloads: {
              name: 'workloads',
              state: HealthState.DEGRADED,
              reason: `not accepting new workloads (emergency)${why}`,
              restarts: 0
            }
          }
        : {}),
      ...(this.isolated
        ? { peers: { name: 'peers', state: HealthState.STOPPED, reason: `isolated from peers (emergency)${why}`, restarts: 0 } }
        : {})
    }
  }

  /** Peer networking again after RESUME: the components ISOLATE stopped, in start order. */
  private async startPeers(): Promise<void> {
    const p = this.c.peers()
    if (p == null) return
    for (const c of [p.server, p.monitor, ...(p.multicast != null ? [p.multicast] : [])]) await c.start()
  }

  /** A cordon in force is put on the K3s node again after a start (K3s may have been reset meanwhile); retried while K3s comes up. */
  recordon(): void {
    void (async () => {
      for (let attempt = 0; attempt < 10 && this.c.isStarted() && !this.acceptingWorkloads; attempt++) {
        try {
          await this.c.runtime.setSchedulable(false)
          return
        } catch (err) {
          this.c.log.warn('cordon not applied yet; retrying', { attempt, err })
          await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** attempt) * (0.5 + secureRandom() / 2)).unref())
        }
      }
    })()
  }
}
