import { PhaseTransition, TrustBundle, type Logger, type NodeConfig } from '@mycelium/core-interfaces'
import { Backoff, readStateFile, writeStateFile } from '@mycelium/core-utils'
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
  /** Why the last write of each file failed, until one succeeds (e.g. "disk full: <path> …"). */
  private readonly writeFailures = new Map<string, string>()
  /** The trust bundle learnt this run: kept in memory so a failed save never causes another enrolment. */
  private trustBundle?: TrustBundle
  private unsavedTrust?: Uint8Array
  private unsavedHistory?: Buffer
  private writer?: Promise<void>
  /** Resolved when the writer is idle or a write failed (flush never waits out a broken disk). */
  private settled: Array<() => void> = []
  private readonly backoff = new Backoff({ initialMs: 200, maxMs: 10_000 })

  /** Corruptions found (and survived), each once, and the write failures in force. */
  get problems(): string[] {
    return [...this.found, ...this.writeFailures.values()]
  }

  private readonly paths: Pick<AgentStatePaths, 'history' | 'trustBundle'>

  /** `state`: the state directory, or its paths (see state-layout.ts: the layout is known there). */
  constructor(
    state: string | Pick<AgentStatePaths, 'history' | 'trustBundle'>,
    private readonly log?: Logger
  ) {
    this.paths = typeof state === 'string' ? agentStatePaths(state) : state
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

  /** Writes a file, keeping its failure visible in `problems` until a write of it succeeds. */
  private async write(path: string, data: Uint8Array): Promise<void> {
    try {
      await writeStateFile(path, data)
      if (this.writeFailures.delete(path)) this.log?.info('state file writable again', { path })
    } catch (err) {
      const message = (err as Error).message
      if (this.writeFailures.get(path) !== message) this.log?.error('could not save state file', { path, err })
      this.writeFailures.set(path, message)
      throw err
    }
  }

  /**
   * Queues a write of the history. Writes are coalesced (one writer; only the
   * latest history is written) and a failed write is retried with capped,
   * jittered backoff until the disk takes it; the failure is in `problems`
   * meanwhile. Resolves after the next write attempt.
   */
  saveHistory(history: PhaseTransition[]): Promise<void> {
    this.unsavedHistory = Buffer.from(JSON.stringify({ history: history.map((h) => PhaseTransition.toJSON(h)) }))
    return this.kick()
  }

  private kick(): Promise<void> {
    const settled = new Promise<void>((resolve) => this.settled.push(resolve))
    this.writer ??= this.drain().finally(() => {
      this.writer = undefined
      this.settle()
    })
    return settled
  }

  private settle(): void {
    for (const resolve of this.settled.splice(0)) resolve()
  }

  private async drain(): Promise<void> {
    while (this.unsavedHistory != null || this.unsavedTrust != null) {
      const trust = this.unsavedTrust
      const history = this.unsavedHistory
      try {
        if (trust != null) {
          await this.write(this.paths.trustBundle, trust)
          if (this.unsavedTrust === trust) this.unsavedTrust = undefined
        }
        if (history != null) {
          await this.write(this.paths.history, history)
          if (this.unsavedHistory === history) this.unsavedHistory = undefined
        }
        this.backoff.reset()
      } catch {
        this.settle()
        // Unref'd: a retry never keeps the process alive, and a stopped agent's last history still lands.
        await new Promise<void>((resolve) => setTimeout(resolve, this.backoff.next()).unref())
      }
    }
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
    const data = TrustBundle.encode(bundle).finish()
    try {
      await this.write(this.paths.trustBundle, data)
    } catch (err) {
      if (options.strict === true) throw err
      this.unsavedTrust = data
      void this.kick()
    }
  }

  /** Resolves when everything queued is written, or a write has failed (it is retried in the background). */
  flush(): Promise<void> {
    return this.writer == null ? Promise.resolve() : new Promise<void>((resolve) => this.settled.push(resolve))
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
