import { EmergencyAction, InvalidInputError, NotFoundError, type Logger, type NodeConfig, type Startable } from '@mycelium/core-interfaces'
import { diagnosticsPath } from '@mycelium/bootstrap-agent'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import type { NodePeers } from './node-peers.js'
import { exportDiagnostics } from './recover.js'
import { stateDirOf } from './identity.js'

/** What node-core's own command handlers (restart, emergency) act on: node.ts hands them in. */
export interface NodeCommandTargets {
  config: Readonly<NodeConfig>
  log: Logger
  runtime: K3sRuntime
  peers?: NodePeers | undefined
  /** Core components a `restart <name>` restarts (stop in reverse, start in order). */
  components: Record<string, Startable[]>
  /** Dynamic components: `restart component/<name>` restarts one (or starts an on-demand one: its first use). */
  dynamic?: { restart(name: string): Promise<void> }
  /** Restarts the whole node (the `agent` component). */
  restartNode(): Promise<void>
}

/** The restart command: a core component by name, K3s, or the whole agent for "" / "agent". */
export async function restartComponent(component: string, t: NodeCommandTargets): Promise<void> {
  if (component === 'k3s-runtime' || component === 'k3s') {
    await t.runtime.restart(`restart command for ${component}`)
    return
  }
  if (component === '' || component === 'agent') {
    // After the command is journaled as succeeded: a restart from inside would cut its own report.
    setImmediate(() => void t.restartNode().catch((err: unknown) => t.log.error('agent restart failed', { err })))
    return
  }
  if (component.startsWith('component/') && t.dynamic != null) {
    await t.dynamic.restart(component.slice('component/'.length))
    return
  }
  const list = t.components[component]
  if (list == null)
    throw new NotFoundError(`unknown component "${component}" (known: agent, k3s-runtime, ${Object.keys(t.components).join(', ')})`)
  for (const c of [...list].reverse()) await c.stop()
  for (const c of list) await c.start()
}

/** The state an emergency action leaves (node health reports it). */
export interface EmergencyState {
  acceptingWorkloads: boolean
  isolated: boolean
}

/** Applies an emergency action; returns the flags it changes. */
export async function applyEmergency(action: EmergencyAction, t: NodeCommandTargets): Promise<Partial<EmergencyState>> {
  switch (action) {
    case EmergencyAction.ISOLATE:
      if (t.peers != null) {
        for (const c of [t.peers.multicast, t.peers.monitor, t.peers.server]) await c?.stop()
      }
      return { isolated: true }
    case EmergencyAction.STOP_ACCEPTING_WORKLOADS:
      return { acceptingWorkloads: false }
    case EmergencyAction.DUMP_DIAGNOSTICS: {
      const out = diagnosticsPath(stateDirOf(t.config), new Date())
      await t.runtime.writeSnapshot()
      await exportDiagnostics(t.config, out)
      t.log.info('diagnostics written', { path: out })
      return {}
    }
    default:
      throw new InvalidInputError(`emergency action ${EmergencyAction[action]} is not handled by node-core`, 'emergency command')
  }
}
