import { EmergencyAction, NotFoundError, type Logger, type NodeConfig, type Startable } from '@mycelium/core-interfaces'
import { diagnosticsPath } from '@mycelium/bootstrap-agent'
import type { K3sRuntime } from '@mycelium/k3s-runtime'
import type { NodePeers } from './node-peers.js'
import { exportDiagnostics } from './recover.js'
import { stateDirOf } from './identity.js'
import { planEmergency, saveEmergencyMeasures, type EmergencyMeasures } from './emergency-state.js'

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

/**
 * Applies an emergency action: plans it on the measures in force
 * (emergency-state.ts), saves the new measures before acting (so a crash
 * mid-way re-applies them at the next start), then runs each step. A cordon
 * that fails (K3s not answering) fails the command; the measure stays in
 * force and the cordon is tried again at the next start or command.
 */
export async function applyEmergency(
  action: EmergencyAction,
  reason: string,
  current: EmergencyMeasures,
  t: NodeCommandTargets & { startPeers(): Promise<void> }
): Promise<EmergencyMeasures> {
  const stateDir = stateDirOf(t.config)
  const { next, steps } = planEmergency(current, action, reason, new Date())
  await saveEmergencyMeasures(stateDir, next)
  for (const step of steps) {
    switch (step) {
      case 'stop-peers':
        if (t.peers != null) for (const c of [t.peers.multicast, t.peers.monitor, t.peers.server]) await c?.stop()
        break
      case 'start-peers':
        await t.startPeers()
        break
      case 'cordon':
      case 'uncordon': {
        const done = await t.runtime.setSchedulable(step === 'uncordon')
        t.log.info(`k3s node ${step === 'cordon' ? 'cordoned' : 'uncordoned'}`, { result: done })
        break
      }
      case 'dump-diagnostics': {
        const out = diagnosticsPath(stateDir, new Date())
        await t.runtime.writeSnapshot()
        await exportDiagnostics(t.config, out)
        t.log.info('diagnostics written', { path: out })
        next.lastDiagnostics = out
        await saveEmergencyMeasures(stateDir, next)
        break
      }
    }
  }
  return next
}
