import { join } from 'node:path'

/**
 * The state directory's layout, known here and nowhere else: the daemon,
 * the agent and the recovery tools (node-core `recover`) all reach a file
 * through `openAgentState(stateDir)`.
 *
 *   <stateDir>/
 *     agent.bin            phase history (AgentStateStore)
 *     trust-bundle.bin     trust bundle learnt at enrolment (AgentStateStore)
 *     commands.bin         command journal (CommandJournal)
 *     config/              current, last-known-good, trial (ConfigStore)
 *     spores/cache.bin     verified spores for offline boot (spore-client)
 *     identity/            node.key, node.crt, ca.crt unless configured elsewhere
 *     status.sock          NodeStatus gRPC unless configured elsewhere
 *     diagnostics-<time>.tar.gz   the DUMP_DIAGNOSTICS emergency action's export
 *
 * A file moved aside keeps its name with a suffix (`displaced`), so an
 * operator finds it beside the one that replaced it.
 */
export interface AgentStatePaths {
  dir: string
  history: string
  trustBundle: string
  commands: string
  configDir: string
  sporeCache: string
  identityDir: string
  identityKey: string
  identityCertificate: string
  identityCa: string
  statusSocket: string
}

export function agentStatePaths(stateDir: string): AgentStatePaths {
  const identityDir = join(stateDir, 'identity')
  return {
    dir: stateDir,
    history: join(stateDir, 'agent.bin'),
    trustBundle: join(stateDir, 'trust-bundle.bin'),
    commands: join(stateDir, 'commands.bin'),
    configDir: join(stateDir, 'config'),
    sporeCache: join(stateDir, 'spores', 'cache.bin'),
    identityDir,
    identityKey: join(identityDir, 'node.key'),
    identityCertificate: join(identityDir, 'node.crt'),
    identityCa: join(identityDir, 'ca.crt'),
    statusSocket: join(stateDir, 'status.sock')
  }
}

/** Where a file moved aside (a certificate before re-enrolment) goes: beside it, suffixed. */
export const displaced = (path: string): string => `${path}.old`

/** Where a diagnostics export made at `at` goes (the DUMP_DIAGNOSTICS emergency action). */
export const diagnosticsPath = (stateDir: string, at: Date): string =>
  join(stateDir, `diagnostics-${at.toISOString().replace(/[:.]/g, '-')}.tar.gz`)
