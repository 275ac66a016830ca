import { PhaseTransition, TrustBundle, type Logger, type NodeConfig } from '@mycelium/core-interfaces'
import { readStateFile, RetryingWriter, writeStateFile } from '@mycelium/core-utils'
import { agentStatePaths, type AgentStatePaths } from './state-layout.js'
import { CommandJournal, type CommandJournalInit } from './commands/journal.js'
import { ConfigStore } from './config-store.js'

/**
 * What the agent keeps between runs besides identity and config: the phase
 * history (bounded) and the trust bundle learnt at enrolment. Checksummed,
 * atomic; a corrupt file falls back to its previous copy and is reported.
 */
export interface PersistedAgentState {
  history: PhaseTransition[]
}

export class AgentStateStore {
  private readonly found = new Set<string>()
  /** The trust bundle learnt this run: kept in memory so a failed save never causes another enrolment. */
  private trustBundle?: TrustBundle
  /**
   * One writer per file: only the latest history is written, and a failed
   * write is retried with capped, jittered backoff until the disk takes it.
   * Never closed: a stopped agent's last history still lands.
   */
  private readonly history: RetryingWriter<Uint8Array>
  private readonly trust: RetryingWriter<Uint8Array>

  /** Corruptions found (and survived), each once, and the write failures in force (e.g. "disk full: <path> …"). */
  get problems(): string[] {
    const failures = [this.history.failure, this.trust.failure].flatMap((f) => (f != null ? [f.message] : []))
    return [...this.found, ...failures]
  }

  private readonly paths: Pick<AgentStatePaths, 'history' | 'trustBundle'>

  /** `state`: the state directory, or its paths (see state-layout.ts: the layout is known there). */
  constructor(
    state: string | Pick<AgentStatePaths, 'history' | 'trustBundle'>,
    private readonly log?: Logger
  ) {
    this.paths = typeof state === 'string' ? agentStatePaths(state) : state
    this.history = this.writerOf(this.paths.history)
    this.trust = this.writerOf(this.paths.trustBundle)
  }

  /** A file's writer: its failure is logged once per distinct error, and its recovery once. */
  private writerOf(path: string): RetryingWriter<Uint8Array> {
    return new RetryingWriter<Uint8Array>(
      { write: (data) => writeStateFile(path, data) },
      {
        what: path,
        onFailed: (err, _, previous) => {
          if (previous?.message !== err.message) this.log?.error('could not save state file', { path, err })
        },
        onWritten: (_, previous) => {
          if (previous != null) this.log?.info('state file writable again', { path })
        }
      }
    )
  }

  private async read(path: string): Promise<Buffer | undefined> {
    try {
      const content = await readStateFile(path)
      if (content?.recoveredFromPrevious != null) {
        const problem = `${path}: ${content.recoveredFromPrevious.reason}; started on its previous good copy`
        if (!this.found.has(problem)) this.log?.warn('state file recovered', { problem })
        this.found.add(problem)
      }
      return content?.data
    } catch (err) {
      const problem = `${(err as Error).message}; ignored`
      if (!this.found.has(problem)) this.log?.error('state file unusable', { problem })
      this.found.add(problem)
      return undefined
    }
  }

  async loadHistory(): Promise<PhaseTransition[]> {
    const data = await this.read(this.paths.history)
    if (data == null) return []
    try {
      const json = JSON.parse(data.toString('utf8')) as { history?: unknown[] }
      return (json.history ?? []).map((h) => PhaseTransition.fromJSON(h))
    } catch (err) {
      this.found.add(`${this.paths.history}: ${(err as Error).message}; history ignored`)
      return []
    }
  }

  /**
   * Queues a write of the history (only the latest history is written; a
   * failed write is retried with capped, jittered backoff until the disk
   * takes it; the failure is in `problems` meanwhile). Resolves after the
   * next write attempt, never rejects.
   */
  saveHistory(history: PhaseTransition[]): Promise<void> {
    const data = Buffer.from(JSON.stringify({ history: history.map((h) => PhaseTransition.toJSON(h)) }))
    return this.history.write(data).catch(() => undefined)
  }

  async loadTrustBundle(): Promise<TrustBundle | undefined> {
    if (this.trustBundle != null) return this.trustBundle
    const data = await this.read(this.paths.trustBundle)
    if (data == null) return undefined
    try {
      return TrustBundle.decode(data)
    } catch (err) {
      this.found.add(`${this.paths.trustBundle}: not a trust bundle (${(err as Error).message}); ignored`)
      return undefined
    }
  }

  /**
   * Keeps the bundle (in memory at once, so this run never enrols again for
   * it) and writes it; a failed write is reported and retried with backoff,
   * and rethrown only when `strict`.
   */
  async saveTrustBundle(bundle: TrustBundle, options: { strict?: boolean } = {}): Promise<void> {
    this.trustBundle = bundle
    try {
      await this.trust.write(TrustBundle.encode(bundle).finish())
    } catch (err) {
      if (options.strict === true) throw err
    }
  }

  /** Resolves when everything queued is written, or a write has failed (it is retried in the background). */
  async flush(): Promise<void> {
    await Promise.all([this.history.flush(), this.trust.flush()].map((p) => p.catch(() => undefined)))
  }
}

/** The state directory opened: its paths, the agent's own files, and openers for the stores in it. */
export interface AgentState {
  readonly paths: AgentStatePaths
  /** Phase history and trust bundle. */
  readonly store: AgentStateStore
  /** The config store (`local` seeds it on first use). */
  openConfig(local: NodeConfig): Promise<ConfigStore>
  openJournal(init?: Omit<CommandJournalInit, 'logger'>): Promise<CommandJournal>
}

/** Opens a state directory's layout (nothing is read until a store is opened or loaded). */
export function openAgentState(stateDir: string, options: { logger?: Logger } = {}): AgentState {
  const paths = agentStatePaths(stateDir)
  const logger = options.logger
  return {
    paths,
    store: new AgentStateStore(paths, logger),
    openConfig: (local) => ConfigStore.open(paths.configDir, local, logger),
    openJournal: (init = {}) => CommandJournal.open(paths.commands, { ...init, ...(logger != null ? { logger } : {}) })
  }
}
