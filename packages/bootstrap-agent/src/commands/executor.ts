import { EventEmitter } from 'node:events'
import {
  CommandState,
  durationToMs,
  EmergencyAction,
  silentLogger,
  type Command,
  type CommandUpdate,
  type Logger,
  type NodeConfig,
  type UpdateCommand
} from '@mycelium/core-interfaces'
import type { TrustedKeys } from '@mycelium/spore-client'
import type { TrialOutcome } from '../config-store.js'
import { CommandJournal } from './journal.js'
import { validateCommand, type Validation } from './validate.js'

/** What the node does for each command kind (node-core provides them). */
export interface CommandHandlers {
  /** Restart a core component by name, or the whole agent for "". */
  restart(component: string): Promise<void>
  /** Apply in try-mode; only `promoted` is success. */
  reconfigure(config: NodeConfig, confirmWindowMs: number | undefined): Promise<TrialOutcome>
  /** An operator-signed emergency action. */
  emergency(action: EmergencyAction, reason: string): Promise<void>
  /** Self-update: why an update is refused before anything runs (REJECTED), or undefined. Absent: every update is refused. */
  refuseUpdate?(update: UpdateCommand, commandId: string): Promise<string | undefined>
  /** Runs an accepted update to its end (it may span agent restarts: resumed by id); a reason when it failed. */
  update?(update: UpdateCommand, commandId: string): Promise<string | undefined>
}

export interface ExecutorInit {
  networkId: string
  nodeId: string
  /** Operator keys in force (from the trust bundle). */
  operatorKeys: () => TrustedKeys | undefined
  /**
   * The manager's "now" as this node follows it: command deadlines are the
   * manager's times, so a node whose wall clock is off by seconds (or jumps)
   * must not judge them on its own clock. @default Date.now
   */
  now?: () => number
  logger?: Logger
}

export interface ExecutorEvents {
  update: [update: CommandUpdate, source: 'remote' | 'local']
}

const kindOf = (c: Command): string => c.kind?.$case ?? 'unknown'

/**
 * Runs commands one at a time: validate (reject with a reason, nothing run),
 * then accepted → running → succeeded/failed, each made durable in the
 * journal before the node acts on it (write-ahead). A command whose ACCEPTED
 * cannot be journaled (disk full, read-only, journal full) is REJECTED with
 * that reason and never run. A repeated id is answered with its current
 * status and never run again. A command still running at its deadline is
 * reported failed. Commands left unfinished by a crash are resumed or failed
 * once (`resumeInterrupted`), and every remote status the manager may not
 * have received is re-sent when a command session opens (`undelivered`).
 */
export class CommandExecutor extends EventEmitter<ExecutorEvents> {
  private queue: Promise<void> = Promise.resolve()
  private readonly log: Logger
  private readonly undeliveredIds = new Set<string>()
  private resumed = false
  private readonly now: () => number

  constructor(
    private readonly handlers: CommandHandlers,
    readonly journal: CommandJournal,
    private readonly init: ExecutorInit
  ) {
    super()
    this.now = init.now ?? Date.now
    this.log = (init.logger ?? silentLogger()).forComponent('bootstrap-agent:commands')
  }

  submit(cmd: Command, source: 'remote' | 'local'): Promise<void> {
    return this.enqueue(() => this.execute(cmd, source))
  }

  /**
   * Applies the restart rule to every entry found unfinished at open (once):
   * FAILED "interrupted by an agent restart", or run to its end. Their
   * statuses are sent on the next command session.
   */
  resumeInterrupted(): Promise<void> {
    if (this.resumed) return this.queue
    this.resumed = true
    for (const { entry, plan } of this.journal.interrupted) {
      if (entry.source === 'remote') this.undeliveredIds.add(entry.commandId)
      void this.enqueue(async () => {
        if (plan.action === 'fail') {
          await this.report(entry.commandId, entry.kind, entry.source, CommandState.FAILED, plan.reason)
          return
        }
        const cmd = plan.command
        const verdict = validateCommand(cmd, {
          nowMs: this.now(),
          networkId: this.init.networkId,
          nodeId: this.init.nodeId,
          operatorKeys: this.init.operatorKeys()
        })
        if (!verdict.ok) {
          await this.report(
            cmd.commandId,
            entry.kind,
            entry.source,
            CommandState.FAILED,
            `interrupted by an agent restart and not resumed: ${verdict.reason}`
          )
          return
        }
        this.log.info('resuming a command interrupted by an agent restart', {
          commandId: cmd.commandId,
          kind: entry.kind,
          wasRunning: plan.wasRunning
        })
        await this.run(cmd, entry.source, verdict, plan.wasRunning ? 'resumed after an agent restart' : 'started after an agent restart')
      })
    }
    return this.queue
  }

  /** Current statuses of remote commands the manager may not have received. */
  undelivered(): CommandUpdate[] {
    return [...this.undeliveredIds].flatMap((id) => this.journal.current(id) ?? [])
  }

  /** The command session wrote this id's latest status to an open stream. */
  markDelivered(commandId: string): void {
    this.undeliveredIds.delete(commandId)
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task)
    this.queue = run.catch((err: unknown) => this.log.error('command task failed', { err }))
    return run
  }

  private emitUpdate(update: CommandUpdate, source: 'remote' | 'local'): void {
    if (source === 'remote') this.undeliveredIds.add(update.commandId)
    this.emit('update', update, source)
  }

  /**
   * Journals a state, then reports it. Returns false when it could not be
   * made durable; the update is still reported (it is what happened) and the
   * journal keeps retrying the write in the background.
   */
  private async report(
    commandId: string,
    kind: string,
    source: 'remote' | 'local',
    state: CommandState,
    reason = '',
    cmd?: Command
  ): Promise<boolean> {
    let durable = true
    try {
      await this.journal.record(commandId, kind, source, state, reason, cmd != null ? { command: cmd } : {})
    } catch (err) {
      durable = false
      this.log.error('command state not journaled', { commandId, state: CommandState[state], err })
    }
    const log =
      state === CommandState.FAILED || state === CommandState.REJECTED ? this.log.warn.bind(this.log) : this.log.info.bind(this.log)
    log('command', { commandId, kind, state: CommandState[state], reason, source })
    this.emitUpdate({ commandId, state, reason, at: new Date(), replayed: false }, source)
    return durable
  }

  /** Refuses a command that was never journaled, so a later re-send can still run it. */
  private refuse(cmd: Command, source: 'remote' | 'local', reason: string): void {
    this.log.warn('command', { commandId: cmd.commandId, kind: kindOf(cmd), state: 'REJECTED', reason, source })
    this.emitUpdate({ commandId: cmd.commandId, state: CommandState.REJECTED, reason, at: new Date(), replayed: false }, source)
  }

  private async execute(cmd: Command, source: 'remote' | 'local'): Promise<void> {
    const current = this.journal.current(cmd.commandId)
    if (current != null) {
      // Never run twice; always tell the sender where the command stands.
      this.log.info('repeated command answered from the journal', { commandId: cmd.commandId, state: CommandState[current.state] })
      this.emitUpdate(current, source)
      return
    }
    const verdict = validateCommand(cmd, {
      nowMs: this.now(),
      networkId: this.init.networkId,
      nodeId: this.init.nodeId,
      operatorKeys: this.init.operatorKeys()
    })
    if (!verdict.ok) {
      await this.reportRefusal(cmd, source, verdict.reason)
      return
    }
    if (cmd.kind!.$case === 'update') {
      const refusal =
        this.handlers.refuseUpdate != null
          ? await this.handlers.refuseUpdate(cmd.kind!.value, cmd.commandId)
          : 'update is not supported by this agent version (no self-update path yet)'
      if (refusal != null) {
        await this.reportRefusal(cmd, source, refusal)
        return
      }
    }
    // Write-ahead: the command is durable (ACCEPTED and RUNNING, with the
    // command) before anything runs; if it cannot be, it does not run.
    try {
      await this.journal.begin(cmd, kindOf(cmd), source)
    } catch (err) {
      this.refuse(cmd, source, `not accepted: the command journal cannot be written (${(err as Error).message})`)
      return
    }
    for (const state of [CommandState.ACCEPTED, CommandState.RUNNING]) {
      this.log.info('command', { commandId: cmd.commandId, kind: kindOf(cmd), state: CommandState[state], reason: '', source })
      this.emitUpdate({ commandId: cmd.commandId, state, reason: '', at: new Date(), replayed: false }, source)
    }
    await this.run(cmd, source, verdict)
  }

  /** A refusal is journaled when it can be; when it cannot, it is still sent (nothing ran). */
  private async reportRefusal(cmd: Command, source: 'remote' | 'local', reason: string): Promise<void> {
    try {
      await this.journal.record(cmd.commandId, kindOf(cmd), source, CommandState.REJECTED, reason)
    } catch (err) {
      this.log.error('command refusal not journaled', { commandId: cmd.commandId, err })
    }
    this.refuse(cmd, source, reason)
  }

  /** Runs a command whose RUNNING is journaled (`resumeReason`: journal RUNNING again first, for a resumed one). */
  private async run(cmd: Command, source: 'remote' | 'local', verdict: Validation & { ok: true }, resumeReason?: string): Promise<void> {
    const kind = cmd.kind!
    // RUNNING is durable before the handler runs: after a crash the node knows it may have run.
    if (resumeReason != null && !(await this.report(cmd.commandId, kindOf(cmd), source, CommandState.RUNNING, resumeReason, cmd))) {
      // Still unfinished on disk: the next start applies the restart rule again.
      await this.report(
        cmd.commandId,
        kindOf(cmd),
        source,
        CommandState.FAILED,
        `not resumed: the command journal cannot be written (${this.journal.writeFailure ?? 'write failed'})`
      )
      return
    }
    const work = (async (): Promise<string | undefined> => {
      switch (kind.$case) {
        case 'restart':
          await this.handlers.restart(kind.value.component)
          return undefined
        case 'reconfigure': {
          const outcome = await this.handlers.reconfigure(
            kind.value.config!,
            kind.value.confirmWindow != null ? durationToMs(kind.value.confirmWindow, 0) : undefined
          )
          return outcome.outcome === 'promoted' ? undefined : `config v${outcome.version} ${outcome.outcome}: ${outcome.reason}`
        }
        case 'emergency':
          await this.handlers.emergency(verdict.operation!.action, verdict.operation!.reason)
          return undefined
        case 'update':
          return this.handlers.update != null
            ? this.handlers.update(kind.value, cmd.commandId)
            : 'update is not supported by this agent version'
        default:
          return `${(kind as { $case: string }).$case} cannot be run`
      }
    })()
    const deadlineMs = cmd.deadline != null ? cmd.deadline.getTime() - this.now() : undefined
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<string>((resolve) => {
      if (deadlineMs != null)
        timer = setTimeout(() => resolve(`deadline exceeded while running (${cmd.deadline!.toISOString()})`), Math.max(0, deadlineMs))
    })
    try {
      const failure = await Promise.race([work, timeout])
      if (failure == null) await this.report(cmd.commandId, kindOf(cmd), source, CommandState.SUCCEEDED)
      else await this.report(cmd.commandId, kindOf(cmd), source, CommandState.FAILED, failure)
    } catch (err) {
      await this.report(cmd.commandId, kindOf(cmd), source, CommandState.FAILED, (err as Error).message)
    } finally {
      clearTimeout(timer)
    }
  }
}
