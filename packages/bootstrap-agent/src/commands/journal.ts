import {
  Command,
  CommandState,
  InvalidInputError,
  isInvalidInputError,
  NotStartedError,
  silentLogger,
  type CommandUpdate,
  type Logger
} from '@mycelium/core-interfaces'
import { isCorruptStateError, readStateFile, RetryingWriter, writeStateFile, type BackoffOptions } from '@mycelium/core-utils'

/**
 * The command journal: a write-ahead record of every command the node saw,
 * remote or local. Invariants:
 * - a state is durable before the node acts on it: ACCEPTED (with the
 *   command itself) before anything runs, RUNNING before the handler is
 *   called, the outcome before it is reported as durable;
 * - a command id runs at most once, ever, within `retentionMs`: finished
 *   entries are dropped only when older than the retention *and* past their
 *   deadline (a re-send after the deadline is refused by validation anyway);
 *   unfinished entries are never dropped; at `maxEntries` new commands are
 *   refused instead of forgetting outcomes;
 * - an entry left unfinished by a crash gets exactly one rule at the next
 *   open (`planInterrupted`): resumed, or FAILED "interrupted by an agent
 *   restart";
 * - a failed write never wedges the journal: the caller is told (the
 *   executor refuses the command with the reason), the write is retried with
 *   capped, jittered backoff (at once when a new change comes), and the
 *   problem is visible in `problems` until a write succeeds.
 */
export interface JournalEntry {
  commandId: string
  kind: string
  source: 'remote' | 'local'
  updates: Array<{ state: CommandState; reason: string; at: string }>
  /** The command's deadline (ISO 8601), when it had one. */
  deadline?: string
  /** The command (protobuf, base64) while unfinished, so a restart can resume it. */
  command?: string
}

export const FINAL_STATES = new Set([CommandState.SUCCEEDED, CommandState.FAILED, CommandState.REJECTED])

export interface CommandJournalInit {
  /**
   * How long a finished command's outcome is kept: a re-sent id within it is
   * answered from the journal and never run again.
   * @default 86_400_000 (24 h)
   */
  retentionMs?: number
  /**
   * Most entries kept; at the limit new commands are refused with a reason
   * (outcomes within the retention are never dropped to make room).
   * @default 5000
   */
  maxEntries?: number
  /** Backoff of write retries after a failed write. @default { initialMs: 100, maxMs: 5000 } */
  retry?: BackoffOptions
  logger?: Logger
}

export const DEFAULT_COMMAND_JOURNAL = {
  retentionMs: 86_400_000,
  maxEntries: 5000,
  retry: { initialMs: 100, maxMs: 5000 } satisfies BackoffOptions
}

/** The journal holds `maxEntries` commands within their retention; nothing new is accepted. */
export class JournalFullError extends Error {
  static readonly NAME = 'JournalFullError'
  override readonly name = JournalFullError.NAME
  constructor(readonly maxEntries: number) {
    super(`command journal full (${maxEntries} entries within their retention); retry later`)
  }
}
export const isJournalFullError = (err: unknown): err is JournalFullError => err instanceof Error && err.name === JournalFullError.NAME

export const INTERRUPTED_REASON = 'interrupted by an agent restart'

/**
 * Whether running a command again after a crash mid-run has the same effect
 * as running it once: restarting a component, applying a config version in
 * try-mode, isolating or closing the node to new workloads, an update (its
 * handler resumes it by id); diagnostics dumps are not (a second file).
 */
export function isIdempotent(cmd: Command): boolean {
  const kind = cmd.kind
  if (kind == null) return false
  switch (kind.$case) {
    case 'restart':
    case 'reconfigure':
      return true
    case 'emergency':
      // The action is inside the signed operation; the executor re-validates it when resuming.
      return true
    case 'update':
      // The self-update handler answers an id seen again from its boot record (trial, outcome): never installed twice.
      return true
    default:
      return false
  }
}

export type InterruptedPlan = { action: 'resume'; command: Command; wasRunning: boolean } | { action: 'fail'; reason: string }

/**
 * The one rule for an entry found unfinished at open (pure): ACCEPTED (never
 * started) or RUNNING of an idempotent command, within its deadline and with
 * the command kept → resume; anything else → FAILED with why.
 */
export function planInterrupted(entry: JournalEntry, nowMs: number): InterruptedPlan {
  const last = entry.updates.at(-1)
  const wasRunning = last?.state === CommandState.RUNNING
  if (entry.deadline != null && Date.parse(entry.deadline) <= nowMs) {
    return { action: 'fail', reason: `${INTERRUPTED_REASON}; its deadline ${entry.deadline} has passed` }
  }
  let command: Command | undefined
  try {
    command = entry.command != null ? Command.decode(Buffer.from(entry.command, 'base64')) : undefined
  } catch {
    command = undefined
  }
  if (command == null) return { action: 'fail', reason: `${INTERRUPTED_REASON} (the journal did not keep the command to resume it)` }
  if (wasRunning && !isIdempotent(command))
    return { action: 'fail', reason: `${INTERRUPTED_REASON} while running (${entry.kind} is not safe to run again)` }
  return { action: 'resume', command, wasRunning }
}

export class CommandJournal {
  /** Problems found at open (corrupt file, previous copy used), each once. */
  private readonly loadProblems: string[] = []
  /** Unfinished entries found at open, with their rule; the executor applies them. */
  readonly interrupted: Array<{ entry: JournalEntry; plan: InterruptedPlan }> = []
  private readonly log: Logger
  private readonly retentionMs: number
  private readonly maxEntries: number
  /** One writer: each attempt writes the latest snapshot, so concurrent changes share one write. */
  private readonly writer: RetryingWriter<void>
  private closed = false

  private constructor(
    readonly path: string,
    private readonly entries: Map<string, JournalEntry>,
    init: CommandJournalInit
  ) {
    this.log = (init.logger ?? silentLogger()).forComponent('bootstrap-agent:journal')
    this.retentionMs = init.retentionMs ?? DEFAULT_COMMAND_JOURNAL.retentionMs
    this.maxEntries = init.maxEntries ?? DEFAULT_COMMAND_JOURNAL.maxEntries
    this.writer = new RetryingWriter<void>(
      // The snapshot is taken when the attempt starts: it covers every change recorded before.
      { write: () => writeStateFile(this.path, Buffer.from(JSON.stringify([...this.entries.values()]))) },
      {
        what: `command journal ${path}`,
        backoff: { ...DEFAULT_COMMAND_JOURNAL.retry, ...init.retry },
        onFailed: (err, _, previous) => {
          if (previous?.message !== err.message)
            this.log.error('command journal write failed; retrying with backoff', { path: this.path, err })
        },
        onWritten: (_, previous) => {
          if (previous != null) this.log.info('command journal writable again', { path: this.path, was: previous.message })
        }
      }
    )
  }

  /** Opens (never throws on bad content: problems are reported) and plans the unfinished entries. */
  static async open(path: string, init: CommandJournalInit | number = {}): Promise<CommandJournal> {
    // A number is the old `limit` argument.
    const options = typeof init === 'number' ? { maxEntries: init } : init
    const entries = new Map<string, JournalEntry>()
    const problems: string[] = []
    try {
      const content = await readStateFile(path)
      if (content?.recoveredFromPrevious != null)
        problems.push(`${path}: ${content.recoveredFromPrevious.reason}; started on its previous good copy`)
      if (content != null) {
        const parsed = JSON.parse(content.data.toString('utf8')) as unknown
        if (!Array.isArray(parsed)) throw new InvalidInputError('not a journal (expected a list of entries)', path)
        for (const e of parsed as JournalEntry[])
          if (typeof e?.commandId === 'string' && Array.isArray(e.updates)) entries.set(e.commandId, e)
      }
    } catch (err) {
      // Both name the file already (CorruptStateError by path, InvalidInputError by `where`).
      const message = isCorruptStateError(err) || isInvalidInputError(err) ? err.message : `${path}: ${(err as Error).message}`
      problems.push(`${message}; journal started empty (commands seen before may run again)`)
    }
    const journal = new CommandJournal(path, entries, options)
    journal.loadProblems.push(...problems)
    for (const p of problems) journal.log.error('command journal problem', { problem: p })
    const now = Date.now()
    for (const entry of entries.values()) {
      if (!FINAL_STATES.has(entry.updates.at(-1)?.state ?? CommandState.UNSPECIFIED))
        journal.interrupted.push({ entry, plan: planInterrupted(entry, now) })
    }
    return journal
  }

  /** Load problems, and the current write problem while writes fail (e.g. "disk full: <path> …"). */
  get problems(): string[] {
    const failure = this.writeFailure
    return failure != null ? [...this.loadProblems, failure] : [...this.loadProblems]
  }

  /** Why the journal cannot be written right now, if it cannot. */
  get writeFailure(): string | undefined {
    return this.writer.failure?.message
  }

  /** How long a finished outcome is kept (told to the manager at registration). */
  get retention(): number {
    return this.retentionMs
  }

  get size(): number {
    return this.entries.size
  }

  get(commandId: string): JournalEntry | undefined {
    return this.entries.get(commandId)
  }

  /** The latest update of a command (final or not), as a replay. */
  current(commandId: string): CommandUpdate | undefined {
    const last = this.entries.get(commandId)?.updates.at(-1)
    if (last == null) return undefined
    return { commandId, state: last.state, reason: last.reason, at: new Date(last.at), replayed: true }
  }

  /** The final update of a finished command. */
  outcome(commandId: string): CommandUpdate | undefined {
    const update = this.current(commandId)
    return update != null && FINAL_STATES.has(update.state) ? update : undefined
  }

  /** Ids of finished commands, newest first (sent at registration). */
  completedIds(max = 50): string[] {
    return [...this.entries.values()]
      .filter((e) => this.outcome(e.commandId) != null)
      .map((e) => e.commandId)
      .reverse()
      .slice(0, max)
  }

  /**
   * Records a new state and resolves once it is durable. Rejects with the
   * write error (or JournalFullError for a new id at the limit) — the change
   * stays in memory and is retried in the background, except for a refused
   * new id, which is not recorded at all.
   */
  async record(
    commandId: string,
    kind: string,
    source: JournalEntry['source'],
    state: CommandState,
    reason: string,
    extra: { command?: Command } = {}
  ): Promise<void> {
    this.apply(commandId, kind, source, [state], reason, extra)
    await this.persist()
  }

  /**
   * ACCEPTED and RUNNING in one durable write, with the command: the start of
   * a new command. Rejects (and forgets the id) when it cannot be made durable.
   */
  async begin(cmd: Command, kind: string, source: JournalEntry['source']): Promise<void> {
    this.apply(cmd.commandId, kind, source, [CommandState.ACCEPTED, CommandState.RUNNING], '', { command: cmd })
    try {
      await this.persist()
    } catch (err) {
      this.forget(cmd.commandId)
      throw err
    }
  }

  private apply(
    commandId: string,
    kind: string,
    source: JournalEntry['source'],
    states: CommandState[],
    reason: string,
    extra: { command?: Command }
  ): void {
    let entry = this.entries.get(commandId)
    if (entry == null) {
      this.prune(Date.now())
      if (this.entries.size >= this.maxEntries) throw new JournalFullError(this.maxEntries)
      entry = { commandId, kind, source, updates: [] }
      if (extra.command?.deadline != null) entry.deadline = extra.command.deadline.toISOString()
      this.entries.set(commandId, entry)
    }
    const at = new Date().toISOString()
    for (const state of states) entry.updates.push({ state, reason, at })
    if (FINAL_STATES.has(states.at(-1)!)) delete entry.command
    else if (extra.command != null) entry.command = Buffer.from(Command.encode(extra.command).finish()).toString('base64')
  }

  /** Removes an entry that was never acted on (its ACCEPTED could not be made durable). */
  forget(commandId: string): void {
    if (this.entries.delete(commandId)) void this.persist().catch(() => undefined)
  }

  /** Resolves when everything recorded so far is durable (or rejects with the write error). */
  flush(): Promise<void> {
    return this.writer.flush()
  }

  /** Stops background retries (what is not durable by then stays unwritten). */
  close(): void {
    this.closed = true
    this.writer.close()
  }

  private prune(nowMs: number): void {
    for (const [id, e] of this.entries) {
      const last = e.updates.at(-1)
      if (last == null || !FINAL_STATES.has(last.state)) continue
      const kept = Date.parse(last.at) + this.retentionMs > nowMs || (e.deadline != null && Date.parse(e.deadline) > nowMs)
      if (!kept) this.entries.delete(id)
    }
  }

  /**
   * A closed journal writes nothing more: the next run's journal owns the file.
   * A new change tries at once, also while a retry is waiting: a disk that
   * came back is used by the next command, not after the backoff.
   */
  private persist(): Promise<void> {
    if (this.closed) return Promise.reject(new NotStartedError(`command journal ${this.path}`))
    return this.writer.write()
  }
}
