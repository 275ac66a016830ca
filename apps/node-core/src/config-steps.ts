import type { BootstrapAgent } from '@mycelium/bootstrap-agent'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import type { ConfigStep } from './live-config.js'
import type { NodePeers } from './node-peers.js'

/** What the live-config steps act on: the running node's parts (node.ts hands them in). */
export interface ConfigStepTargets {
  setLogLevel?: ((level: string) => void) | undefined
  agent: BootstrapAgent
  peers?: NodePeers | undefined
  runtime: K3sRuntime
  /** Multicast discovery is rebuilt (its group or port changed). */
  replaceMulticast(): Promise<void>
}

/**
 * Runs one step of `planReconfiguration` on its consumer: the runner beside
 * the pure planner (live-config.ts), as k3s-runtime's planner has its runner.
 */
export async function runConfigStep(step: ConfigStep, t: ConfigStepTargets): Promise<void> {
  switch (step.type) {
    case 'log-level':
      t.setLogLevel?.(step.level)
      return
    case 'agent-timing':
      t.agent.retune(step.tunables)
      return
    case 'spore-timing':
      t.agent.sporeClient?.retune(step)
      return
    case 'spore-sources':
      // Read from the effective config at the next poll (liveHttpsSources / liveFileSource).
      return
    case 'peer-seeds': {
      const monitor = t.peers?.monitor
      if (monitor == null) return
      const wanted = new Set(step.seeds.map((e) => e.address))
      for (const p of monitor.peers()) if (p.source === 'seed' && !wanted.has(p.address)) monitor.removePeer(p.address)
      for (const seed of step.seeds) monitor.addPeer({ endpoint: seed, source: 'seed' })
      return
    }
    case 'peer-timing':
      t.peers?.monitor.retune({ pingIntervalMs: step.pingIntervalMs, suspectPhi: step.suspectPhi })
      return
    case 'multicast':
      await t.replaceMulticast()
      return
    case 'k3s':
      // A config without a k3s section leaves the local one (effectiveConfig): only an explicit
      // `k3s.enabled: false` disables K3s (and even then it is left running, unsupervised).
      await t.runtime.reconfigure(step.k3s)
      return
    case 'labels':
      // Read from the effective config at the next registration (capabilities).
      return
  }
}
