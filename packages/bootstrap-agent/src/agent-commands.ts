import type { Endpoint, Logger, TrustBundle } from '@mycelium/core-interfaces'
import { defaultChannelOptions, endpointCredentials, type IdentityStore } from '@mycelium/basic-net'
import { trustedOperatorKeys, type TrustedKeys } from '@mycelium/spore-client'
import type { BootstrapAgentInit } from './agent-types.js'
import { CommandExecutor, type CommandHandlers } from './commands/executor.js'
import type { CommandJournal } from './commands/journal.js'
import { CommandSession } from './commands/session.js'
import type { ManagerClock } from './manager-clock.js'

/**
 * How the agent plugs in management commands, kept out of the runner so the
 * runner keeps to the machine: the executor built at start (the journal,
 * operator keys from the run's trust bundle, deadlines judged on the
 * manager's clock) and the command session opened once the handoff committed.
 */

/**
 * The operator keys the trust bundle holds for this network; none while no
 * bundle is known or when it holds none usable (commands that need an
 * operator's signature are then refused, never a thrown executor).
 */
export function operatorKeysOf(bundle: TrustBundle | undefined, networkId: string): TrustedKeys | undefined {
  try {
    return bundle != null ? trustedOperatorKeys(bundle, networkId) : undefined
  } catch {
    return undefined
  }
}

export interface AgentExecutorDeps {
  handlers: CommandHandlers
  journal: CommandJournal
  init: Pick<BootstrapAgentInit, 'networkId' | 'nodeId'>
  /** The run's trust bundle, read at every command (none before the run's spore client exists). */
  trustBundle: () => TrustBundle | undefined
  /** The manager's clock as the node follows it (the link's). */
  clock: ManagerClock
  log: Logger
}

/** The executor of a run: built at start so commands a crash left unfinished can be resumed before any session. */
export function createAgentExecutor(d: AgentExecutorDeps): CommandExecutor {
  return new CommandExecutor(d.handlers, d.journal, {
    networkId: d.init.networkId,
    nodeId: d.init.nodeId,
    operatorKeys: () => operatorKeysOf(d.trustBundle(), d.init.networkId),
    // Command deadlines are the manager's times: judged on its clock as followed on the monotonic one.
    now: () => d.clock.managerNowOrWall(),
    logger: d.log
  })
}

export interface AgentSessionDeps {
  executor: CommandExecutor
  /** The Network Manager the handoff committed with. */
  endpoint: Endpoint
  identity: IdentityStore
  init: Pick<BootstrapAgentInit, 'networkId' | 'nodeId'>
  leaseId: string
  log: Logger
}

/** The command session of a MANAGED node (not started): it dials the manager it holds its lease with, as a manager-only client. */
export function agentCommandSession(d: AgentSessionDeps): CommandSession {
  return new CommandSession(d.executor, {
    endpoint: d.endpoint,
    credentials: endpointCredentials(d.identity, { networkId: d.init.networkId, role: 'manager' }),
    channelOptions: defaultChannelOptions(d.init.networkId),
    identity: {
      networkId: d.init.networkId,
      nodeId: d.init.nodeId,
      spiffeId: d.identity.spiffeId,
      certificateSha256: d.identity.report().certificateSha256 ?? ''
    },
    leaseId: d.leaseId,
    logger: d.log
  })
}
