import { join } from 'node:path'
import type { Logger, UpdateCommand } from '@mycelium/core-interfaces'
import type { BootstrapAgentComponents, BootstrapAgent } from '@mycelium/bootstrap-agent'
import { ComponentManager } from '@mycelium/component-manager'

/**
 * node-core's part of the dynamic components: one ComponentManager under
 * `<stateDir>/components`, fed the verified component spores of the agent's
 * spore client and the network CA of its trust bundle (artifact servers
 * must chain to it), and wired to the agent: assignments in, installed
 * components (capabilities) and the component report (heartbeats, status)
 * out.
 */
export function createNodeComponents(stateDir: string, log: Logger, agent: () => BootstrapAgent | undefined): ComponentManager {
  return new ComponentManager(
    {
      logger: log,
      catalogue: () => agent()?.sporeClient?.listComponents() ?? []
    },
    {
      dir: join(stateDir, 'components'),
      caPem: () => {
        const pem = agent()?.sporeClient?.bootstrap().trustBundle.caCertificatesPem ?? []
        return pem.length > 0 ? pem.join('\n') : undefined
      }
    }
  )
}

/** The agent's component hooks for a manager. */
export function agentComponentHooks(
  manager: () => ComponentManager,
  log: Logger
): Pick<BootstrapAgentComponents, 'onAssignments' | 'installedComponents' | 'componentsReport'> {
  return {
    onAssignments: (u) =>
      void manager()
        .setAssignments(u.generation, u.assignments)
        .catch((err: unknown) => log.error('assignments not applied', { err })),
    installedComponents: () => manager().installed(),
    componentsReport: () => ({ components: manager().status(), generation: manager().assignmentsGeneration })
  }
}

/** An `update` command naming a component: the manager's verified upgrade with rollback. */
export function updateComponent(manager: ComponentManager, cmd: UpdateCommand, signal?: AbortSignal): Promise<void> {
  return manager.update(
    { name: cmd.component, version: cmd.version, digest: cmd.artifactDigest, urls: cmd.artifactUrls },
    signal != null ? { signal } : {}
  )
}
