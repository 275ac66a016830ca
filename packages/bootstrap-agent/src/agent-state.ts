import { join } from 'node:path'
import {
  PhaseTransition,
  readStateFile,
  TrustBundle,
  writeStateFile,
  type Logger
} from '@mycelium/core-interfaces'

/**
 * What the agent keeps between runs besides identity and config: the phase
 * history (bounded) and the trust bundle learnt at enrolment. Checksummed,
 * atomic; a corrupt file falls back to its previous copy and is reported.
 */
export interface PersistedAgentState {
  history: PhaseTransition[]
}

const AGENT_FILE = 'agent.bin'
const TRUST_FILE = 'trust-bundle.bin'

export class AgentStateStore {
  private readonly found = new Set<string>()

  /** Corruptions found (and survived), each once. */
  get problems(): string[] {
    return [...this.found]
  }
  private writing: Promise<void> = Promise.resolve()

  constructor(
    private readonly dir: string,
    private readonly log?: Logger
  ) {}

  private async read(name: string): Promise<Buffer | undefined> {
    const path = join(this.dir, name)
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
    const data = await this.read(AGENT_FILE)
    if (data == null) return []
    try {
      const json = JSON.parse(data.toString('utf8')) as { history?: unknown[] }
      return (json.history ?? []).map((h) => PhaseTransition.fromJSON(h))
    } catch (err) {
      this.found.add(`${join(this.dir, AGENT_FILE)}: ${(err as Error).message}; history ignored`)
      return []
    }
  }

  /**
   * Queues a write of the history; writes never overlap, and coalesce: while
   * one is in flight, later saves replace each other, so a burst of
   * transitions costs at most two writes and the last always wins.
   */
  saveHistory(history: PhaseTransition[]): Promise<void> {
    const queued = this.pendingHistory != null
    this.pendingHistory = history
    if (queued) return this.writing
    this.writing = this.writing
      .then(() => {
        const latest = this.pendingHistory ?? []
        this.pendingHistory = undefined
        return writeStateFile(join(this.dir, AGENT_FILE), Buffer.from(JSON.stringify({ history: latest.map((h) => PhaseTransition.toJSON(h)) })))
      })
      .catch((err: unknown) => {
        this.log?.error('could not save agent state', { err })
      })
    return this.writing
  }
  private pendingHistory?: PhaseTransition[]

  async loadTrustBundle(): Promise<TrustBundle | undefined> {
    const data = await this.read(TRUST_FILE)
    return data == null ? undefined : TrustBundle.decode(data)
  }

  async saveTrustBundle(bundle: TrustBundle): Promise<void> {
    await writeStateFile(join(this.dir, TRUST_FILE), TrustBundle.encode(bundle).finish())
  }

  flush(): Promise<void> {
    return this.writing
  }
}
