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
  /** Why the last write of each file failed, until one succeeds (e.g. "disk full: <path> …"). */
  private readonly writeFailures = new Map<string, string>()
  /** The trust bundle learnt this run: kept in memory so a failed save never causes another enrolment. */
  private trustBundle?: TrustBundle
  private unsavedTrust?: Uint8Array

  /** Corruptions found (and survived), each once, and the write failures in force. */
  get problems(): string[] {
    return [...this.found, ...this.writeFailures.values()]
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

  /** Writes a file, keeping its failure visible in `problems` until a write of it succeeds. */
  private async write(name: string, data: Uint8Array): Promise<void> {
    const path = join(this.dir, name)
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

  /** Queues a write of the history; writes never overlap, the last wins; a failure is reported, and the next save retries. */
  saveHistory(history: PhaseTransition[]): Promise<void> {
    const data = Buffer.from(JSON.stringify({ history: history.map((h) => PhaseTransition.toJSON(h)) }))
    this.writing = this.writing
      .then(async () => {
        const trust = this.unsavedTrust
        if (trust != null) await this.write(TRUST_FILE, trust).then(() => (this.unsavedTrust = this.unsavedTrust === trust ? undefined : this.unsavedTrust), () => undefined)
        await this.write(AGENT_FILE, data)
      })
      .catch(() => undefined)
    return this.writing
  }

  async loadTrustBundle(): Promise<TrustBundle | undefined> {
    if (this.trustBundle != null) return this.trustBundle
    const data = await this.read(TRUST_FILE)
    if (data == null) return undefined
    try {
      return TrustBundle.decode(data)
    } catch (err) {
      this.found.add(`${join(this.dir, TRUST_FILE)}: not a trust bundle (${(err as Error).message}); ignored`)
      return undefined
    }
  }

  /**
   * Keeps the bundle (in memory at once, so this run never enrols again for
   * it) and writes it; a failed write is reported and retried with every
   * history save (each phase change), and rethrown only when `strict`.
   */
  async saveTrustBundle(bundle: TrustBundle, options: { strict?: boolean } = {}): Promise<void> {
    this.trustBundle = bundle
    const data = TrustBundle.encode(bundle).finish()
    try {
      await this.write(TRUST_FILE, data)
      this.unsavedTrust = undefined
    } catch (err) {
      this.unsavedTrust = data
      if (options.strict === true) throw err
    }
  }

  flush(): Promise<void> {
    return this.writing
  }
}
