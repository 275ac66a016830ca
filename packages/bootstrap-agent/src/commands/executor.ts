import { EventEmitter } from 'node:events'
import {
  CommandState,
  durationToMs,
  EmergencyAction,
  silentLogger,
  type Command,
  type CommandUpdate,
  type Logger,
  type NodeConfig
} from '@mycelium/core-interfaces'
import type { TrustedKeys } from '@mycelium/spore-client'
import type { TrialOutcome } from '../config-store.js'
import { CommandJournal } from './journal.js'
import { validateCommand } from './validate.js'

/** What the node does for each command kind (node-core provides them). */
export interface CommandHandlers {
  /** Restart a core component by name, or the whole agent for "". */
  restart(component: string): Promise<void>
  /** Apply in try-mode; only `promoted` is success. */
  reconfigure(config: NodeConfig, confirmWindowMs: number | undefined): Promise<TrialOutcome>
  /** An operator-signed emergency action. */
  emergency(action: EmergencyAction, reason: string): Promise<void>
}

export interface ExecutorInit {
  networkId: string
  nodeId: string
  /** Operator keys in force (from the trust bundle). */
  operatorKeys: () => TrustedKeys | undefined
  logger?: Logger
}

export interface ExecutorEvents {
  update: [update: CommandUpdate, source: 'remote' | 'local']
}

const kindOf = (c: Command): string => c.kind?.$case ?? 'unknown'

/**
 * Runs commands one at a time: validate (reject with a reason, nothing run),
 * then accepted → running → succeeded/failed, each journaled before it is
 * reported. A repeated id is answered with the journaled outcome and never
 * run again. A command still running at its deadline is reported failed.
 */
export class CommandExecutor extends EventEmitter<ExecutorEvents> {
  private queue: Promise<void> = Promise.resolve()
  private readonly log: Logger

  constructor(
    private readonly handlers: CommandHandlers,
    readonly journal: CommandJournal,
    private readonly init: ExecutorInit
  ) {
    super()
    this.log = (init.logger ?? silentLogger()).forComponent('bootstrap-agent:commands')
  }

  submit(cmd: Command, source: 'remote' | 'local'): Promise<void> {
    const run = this.queue.then(() => this.execute(cmd, source))
    this.queue = run.catch(() => undefined)
    return run
  }

  private async report(cmd: Command, source: 'remote' | 'local', state: CommandState, reason = ''): Promise<void> {
    await this.journal.record(cmd.commandId, kindOf(cmd), source, state, reason)
    const log = state === CommandState.FAILED || state === CommandState.REJECTED ? this.log.warn.bind(this.log) : this.log.info.bind(this.log)
    log('command', { commandId: cmd.commandId, kind: kindOf(cmd), state: CommandState[state], reason, source })
    this.emit('update', { commandId: cmd.commandId, state, reason, at: new Date(), replayed: false }, source)
  }

  private async execute(cmd: Command, source: 'remote' | 'local'): Promise<void> {
    const known = this.journal.get(cmd.commandId)
    if (known != null) {
      const outcome = this.journal.outcome(cmd.commandId)
      this.log.info('repeated command answered from the journal', { commandId: cmd.commandId })
      if (outcome != null) this.emit('update', outcome, source)
      return
    }
    const verdict = validateCommand(cmd, { nowMs: Date.now(), networkId: this.init.networkId, nodeId: this.init.nodeId, operatorKeys: this.init.operatorKeys() })
    if (!verdict.ok) {
      await this.report(cmd, source, CommandState.REJECTED, verdict.reason)
      return
    }
    const kind = cmd.kind!
    if (kind.$case === 'update') {
      // No self-update path exists yet: say so instead of pretending.
      await this.report(cmd, source, CommandState.REJECTED, 'update is not supported by this agent version (no self-update path yet)')
      return
    }
    await this.report(cmd, source, CommandState.ACCEPTED)
    await this.report(cmd, source, CommandState.RUNNING)
    const work = (async (): Promise<string | undefined> => {
      switch (kind.$case) {
        case 'restart':
          await this.handlers.restart(kind.value.component)
          return undefined
        case 'reconfigure': {
          const outcome = await this.handlers.reconfigure(kind.value.config!, kind.value.confirmWindow != null ? durationToMs(kind.value.confirmWindow, 0) : undefined)
          return outcome.outcome === 'promoted' ? undefined : `config v${outcome.version} ${outcome.outcome}: ${outcome.reason}`
        }
        case 'emergency':
          await this.handlers.emergency(verdict.operation!.action, verdict.operation!.reason)
          return undefined
      }
    })()
    const deadlineMs = cmd.deadline != null ? cmd.deadline.getTime() - Date.now() : undefined
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<string>((resolve) => {
      if (deadlineMs != null) timer = setTimeout(() => resolve(`deadline exceeded while running (${cmd.deadline!.toISOString()})`), Math.max(0, deadlineMs))
    })
    try {
      const failure = await Promise.race([work, timeout])
      if (failure == null) await this.report(cmd, source, CommandState.SUCCEEDED)
      else await this.report(cmd, source, CommandState.FAILED, failure)
    } catch (err) {
      await this.report(cmd, source, CommandState.FAILED, (err as Error).message)
    } finally {
      clearTimeout(timer)
    }
  }
}
