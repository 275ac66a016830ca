import { CommandState, readStateFile, writeStateFile, type CommandUpdate } from '@mycelium/core-interfaces'

/**
 * Every command the node saw, remote or local, with its statuses: a repeated
 * command id is answered from here and never executed twice, also after a
 * restart. Persisted atomically after every change; bounded (oldest finished
 * entries are dropped first).
 */
export interface JournalEntry {
  commandId: string
  kind: string
  source: 'remote' | 'local'
  updates: Array<{ state: CommandState; reason: string; at: string }>
}

export const FINAL_STATES = new Set([CommandState.SUCCEEDED, CommandState.FAILED, CommandState.REJECTED])

export class CommandJournal {
  private writing: Promise<void> = Promise.resolve()
  readonly problems: string[] = []

  private constructor(
    private readonly path: string,
    private readonly entries: Map<string, JournalEntry>,
    private readonly limit: number
  ) {}

  static async open(path: string, limit = 500): Promise<CommandJournal> {
    const entries = new Map<string, JournalEntry>()
    const problems: string[] = []
    try {
      const content = await readStateFile(path)
      if (content?.recoveredFromPrevious != null) problems.push(`${path}: ${content.recoveredFromPrevious.reason}; started on its previous good copy`)
      if (content != null) for (const e of JSON.parse(content.data.toString('utf8')) as JournalEntry[]) entries.set(e.commandId, e)
    } catch (err) {
      problems.push(`${(err as Error).message}; journal started empty`)
    }
    const journal = new CommandJournal(path, entries, limit)
    journal.problems.push(...problems)
    return journal
  }

  get(commandId: string): JournalEntry | undefined {
    return this.entries.get(commandId)
  }

  /** The final update of a finished command. */
  outcome(commandId: string): CommandUpdate | undefined {
    const last = this.entries.get(commandId)?.updates.at(-1)
    if (last == null || !FINAL_STATES.has(last.state)) return undefined
    return { commandId, state: last.state, reason: last.reason, at: new Date(last.at), replayed: true }
  }

  /** Ids of finished commands, newest first (sent at registration). */
  completedIds(max = 50): string[] {
    return [...this.entries.values()].filter((e) => this.outcome(e.commandId) != null).map((e) => e.commandId).reverse().slice(0, max)
  }

  async record(commandId: string, kind: string, source: JournalEntry['source'], state: CommandState, reason: string): Promise<void> {
    let entry = this.entries.get(commandId)
    if (entry == null) {
      entry = { commandId, kind, source, updates: [] }
      this.entries.set(commandId, entry)
    }
    entry.updates.push({ state, reason, at: new Date().toISOString() })
    this.evict()
    const data = Buffer.from(JSON.stringify([...this.entries.values()]))
    this.writing = this.writing.then(() => writeStateFile(this.path, data))
    await this.writing
  }

  private evict(): void {
    for (const [id] of this.entries) {
      if (this.entries.size <= this.limit) return
      if (this.outcome(id) != null) this.entries.delete(id)
    }
  }
}
