import { join } from 'node:path'
import { rm } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { findTimerDurationProblem, InvalidConfigError, NodeConfig, type AbortOptions, type Logger } from '@mycelium/core-interfaces'
import { isCorruptStateError, readStateFile, RetryingWriter, writeStateFile } from '@mycelium/core-utils'
import { nodeOwnedKeysTouched } from './config-ownership.js'

/**
 * The node's current and last-known-good NodeConfig, and a config on trial.
 * Files (checksummed, atomic): config/current.bin, config/lkg.bin and, during
 * a trial, config/trial.bin. A trial interrupted by a crash is reverted at the
 * next start: the node always boots on a config that proved healthy.
 */
export interface TrialInfo {
  version: number
  endsAtMs: number
}

/** How the last trial ended, kept (config/last-trial.bin) so a revert at boot is still reported to the manager. */
export interface LastTrial {
  version: number
  outcome: 'promoted' | 'reverted' | 'rejected'
  reason: string
  atMs: number
}

export class ConfigStore {
  /** Corruptions found (and survived) while loading, for status. */
  readonly problems: string[] = []

  private constructor(
    private readonly dir: string,
    private cur: NodeConfig,
    private lkg: NodeConfig,
    private trialInfo: TrialInfo | undefined,
    private readonly localConfig: NodeConfig,
    private readonly log?: Logger
  ) {
    const path = join(dir, 'last-trial.bin')
    this.lastTrialWriter = new RetryingWriter<LastTrial>(
      { write: (last) => writeStateFile(path, Buffer.from(JSON.stringify(last))) },
      {
        what: path,
        // One problem per file in `problems` (also one found at open): replaced while writes fail, removed when one lands.
        onFailed: (err, last) => {
          const problem = `${path}: cannot record how the trial of config v${last.version} ended (${last.outcome}): ${err.message}; kept in memory, retrying`
          const stale = this.problems.findIndex((p) => p.startsWith(`${path}: `))
          if (stale >= 0) this.problems.splice(stale, 1, problem)
          else {
            this.problems.push(problem)
            this.log?.error('config state problem', { problem, err })
          }
        },
        onWritten: () => {
          const stale = this.problems.findIndex((p) => p.startsWith(`${path}: `))
          if (stale < 0) return
          this.problems.splice(stale, 1)
          this.log?.info('config state writable again', { path })
        }
      }
    )
  }

  private last: LastTrial | undefined
  /** The last-trial record: only the newest outcome is written, retried until it lands or `close()`. */
  private readonly lastTrialWriter: RetryingWriter<LastTrial>

  /** Opens the store in `dir`; `initial` seeds an empty store. */
  static async open(dir: string, initial: NodeConfig, log?: Logger): Promise<ConfigStore> {
    const problems: string[] = []
    const read = async (name: string): Promise<NodeConfig | undefined> => {
      const path = join(dir, name)
      try {
        const content = await readStateFile(path)
        if (content == null) return undefined
        if (content.recoveredFromPrevious != null)
          problems.push(`${path}: ${content.recoveredFromPrevious.reason}; started on its previous good copy`)
        return NodeConfig.decode(content.data)
      } catch (err) {
        problems.push(isCorruptStateError(err) ? `${err.message}; ignored` : `${path}: ${(err as Error).message}; ignored`)
        return undefined
      }
    }
    const current = await read('current.bin')
    const lkg = await read('lkg.bin')
    const readJson = async <T>(name: string): Promise<T | undefined> => {
      try {
        const t = await readStateFile(join(dir, name))
        return t != null ? (JSON.parse(t.data.toString('utf8')) as T) : undefined
      } catch (err) {
        problems.push(`${join(dir, name)}: ${(err as Error).message}`)
        return undefined
      }
    }
    const trial = await readJson<TrialInfo>('trial.bin')
    const last = await readJson<LastTrial>('last-trial.bin')
    const store = new ConfigStore(dir, current ?? lkg ?? initial, lkg ?? current ?? initial, undefined, initial, log)
    store.last = last
    store.problems.push(...problems)
    for (const p of problems) log?.warn('config state problem', { problem: p })
    // A full or read-only disk must not stop the boot: the store runs on what
    // it read (a trial reverted in memory), reports why, and the next boot
    // reverts again. The outcome is recorded either way (recordTrial keeps it
    // in memory when it cannot be written), so the manager hears of it.
    const notSaved = (err: unknown): void => {
      store.problems.push(`${(err as Error).message}; running on the config in memory`)
      log?.error('config state not saved', { err })
    }
    if (current == null || lkg == null) await store.persist().catch(notSaved)
    if (trial != null) {
      const reason = `trial of config version ${trial.version} was interrupted by a restart`
      // A promote the process died in (lkg.bin written, trial.bin not yet removed) is a promote:
      // nothing to revert, and reporting "reverted" would tell the manager a version in force is not.
      const promoted = store.lkg.version === trial.version
      const changes = store.cur.version !== store.lkg.version
      await store.revert(reason).catch(notSaved)
      if (promoted) await store.recordTrial({ version: trial.version, outcome: 'promoted', reason: '' })
      else if (changes) await store.recordTrial({ version: trial.version, outcome: 'reverted', reason })
    }
    return store
  }

  /** The node's own config (the local YAML this store was opened with): the node-owned keys. */
  local(): NodeConfig {
    return this.localConfig
  }

  /** How the last trial ended (also after a restart), for heartbeats and status. */
  lastTrial(): LastTrial | undefined {
    return this.last
  }

  /**
   * Records how a trial ended (durably: a revert at the next boot is still
   * reported). Never throws: the outcome is kept in memory (heartbeats and
   * status still carry it); a failed write is logged, stays in `problems`
   * (status: state DEGRADED) and is retried with capped, jittered backoff
   * until the disk takes it, a newer outcome replaces it, or `close()`.
   */
  async recordTrial(t: Omit<LastTrial, 'atMs'>): Promise<void> {
    this.last = { ...t, atMs: Date.now() }
    await this.lastTrialWriter.write(this.last).catch(() => undefined)
  }

  /** Stops a pending retry of the last-trial record (what is not written by then stays in memory only). */
  close(): void {
    this.lastTrialWriter.close()
  }

  current(): NodeConfig {
    return this.cur
  }

  lastKnownGood(): NodeConfig {
    return this.lkg
  }

  trial(): TrialInfo | undefined {
    return this.trialInfo
  }

  /** Puts `config` on trial: it becomes current; the last-known-good stays. */
  async beginTrial(config: NodeConfig, windowMs: number): Promise<void> {
    this.trialInfo = { version: config.version, endsAtMs: Date.now() + windowMs }
    await writeStateFile(join(this.dir, 'trial.bin'), Buffer.from(JSON.stringify(this.trialInfo)))
    this.cur = config
    await writeStateFile(join(this.dir, 'current.bin'), NodeConfig.encode(config).finish())
  }

  /** The config on trial proved healthy: it becomes the last-known-good. */
  async promote(): Promise<void> {
    this.lkg = this.cur
    await writeStateFile(join(this.dir, 'lkg.bin'), NodeConfig.encode(this.lkg).finish())
    await this.endTrial()
    this.log?.info('config promoted to last-known-good', { version: this.lkg.version })
  }

  /** Back to the last-known-good config (no-op when already on it). */
  async revert(reason: string): Promise<boolean> {
    const changed = this.cur.version !== this.lkg.version || this.trialInfo != null
    if (changed) {
      this.log?.warn('config reverted to last-known-good', { from: this.cur.version, to: this.lkg.version, reason })
      this.cur = this.lkg
      await writeStateFile(join(this.dir, 'current.bin'), NodeConfig.encode(this.cur).finish())
    }
    await this.endTrial()
    return changed
  }

  /**
   * The stored current config cannot be put into effect at boot (a file it
   * names is gone): the node runs on the last-known-good or, when that fails
   * too, on the local config alone (version 0, also the new last-known-good).
   * The store follows, so heartbeats report the version really in force.
   */
  async bootFallback(to: 'last-known-good' | 'local', reason: string): Promise<void> {
    if (to === 'last-known-good') {
      await this.revert(reason)
      return
    }
    this.log?.warn('stored configs cannot be applied: back to the local config', { from: this.cur.version, reason })
    this.cur = NodeConfig.fromPartial({ ...this.localConfig, version: 0 })
    this.lkg = this.cur
    await this.persist()
    await this.endTrial()
  }

  private async endTrial(): Promise<void> {
    this.trialInfo = undefined
    await rm(join(this.dir, 'trial.bin'), { force: true })
  }

  private async persist(): Promise<void> {
    await writeStateFile(join(this.dir, 'current.bin'), NodeConfig.encode(this.cur).finish())
    await writeStateFile(join(this.dir, 'lkg.bin'), NodeConfig.encode(this.lkg).finish())
  }
}

/**
 * Checks a config delivered by a manager before it is tried: a higher
 * version, and the same network and node (a remote config never moves a
 * node). Throws InvalidConfigError naming the field.
 */
export function validateRemoteConfig(config: NodeConfig, current: NodeConfig, where = 'remote NodeConfig', local?: NodeConfig): void {
  if (config.version <= current.version) {
    throw new InvalidConfigError(`version ${config.version} is not above the current ${current.version}`, `${where}.version`)
  }
  if (config.networkId !== '' && current.networkId !== '' && config.networkId !== current.networkId) {
    throw new InvalidConfigError(`network "${config.networkId}" is not this node's "${current.networkId}"`, `${where}.networkId`)
  }
  if (config.nodeId !== '' && current.nodeId !== '' && config.nodeId !== current.nodeId) {
    throw new InvalidConfigError(`node "${config.nodeId}" is not this node "${current.nodeId}"`, `${where}.nodeId`)
  }
  // A duration no timer can hold would fire every millisecond once applied.
  const timerProblem = findTimerDurationProblem(config)
  if (timerProblem != null) throw new InvalidConfigError(timerProblem, where)
  // Node-owned keys (identity, state dir, listen addresses, bootstrap discovery…) are the local YAML's alone.
  const touched = nodeOwnedKeysTouched(config, local ?? current)
  if (touched.length > 0) {
    throw new InvalidConfigError(
      `node-owned key${touched.length > 1 ? 's' : ''} ${touched.join(', ')} cannot be set by a manager (the node's local config owns ${touched.length > 1 ? 'them' : 'it'})`,
      where
    )
  }
}

export type TrialOutcome = { outcome: 'promoted'; version: number } | { outcome: 'reverted' | 'rejected'; version: number; reason: string }

export interface TrialOptions extends AbortOptions {
  /** How long the new config must stay healthy. */
  windowMs: number
  /** Puts a config into effect (the previous one, on revert). */
  apply: (config: NodeConfig) => Promise<void>
  /** Health during the window (`final` on the last check); false, a reason (string: unhealthy because…) or a throw reverts. */
  isHealthy: (check: { final: boolean }) => boolean | string | Promise<boolean | string>
  /** Checks what the generic validation cannot (values of the keys, files they name); a throw rejects the config unapplied. */
  validate?: (config: NodeConfig) => void
  /** Health checks per window. @default 10 */
  checks?: number
}

/**
 * Try-mode (like Talos `--mode=try`): validate, apply, and keep the config as
 * last-known-good only if the node stays healthy for the whole window; else
 * revert automatically. Aborting reverts too.
 */
export async function tryConfig(store: ConfigStore, config: NodeConfig, options: TrialOptions): Promise<TrialOutcome> {
  const outcome = await runTrial(store, config, options)
  await store.recordTrial(outcome.outcome === 'promoted' ? { ...outcome, reason: '' } : outcome) // a failed write: logged, in store.problems
  return outcome
}

async function runTrial(store: ConfigStore, config: NodeConfig, options: TrialOptions): Promise<TrialOutcome> {
  try {
    validateRemoteConfig(config, store.current(), 'remote NodeConfig', store.local())
    options.validate?.(config)
  } catch (err) {
    return { outcome: 'rejected', version: config.version, reason: (err as Error).message }
  }
  // Aborted while queued (an emergency reset, a stop): never put into effect.
  if (options.signal?.aborted === true)
    return { outcome: 'rejected', version: config.version, reason: `not tried: ${abortReason(options.signal)}` }
  await store.beginTrial(config, options.windowMs)
  const revert = async (reason: string): Promise<TrialOutcome> => {
    await store.revert(reason)
    await options.apply(store.current()).catch(() => undefined)
    return { outcome: 'reverted', version: config.version, reason }
  }
  try {
    await options.apply(config)
  } catch (err) {
    return revert(`applying it failed: ${(err as Error).message}`)
  }
  const checks = options.checks ?? 10
  for (let i = 0; i < checks; i++) {
    try {
      await sleep(options.windowMs / checks, undefined, options.signal != null ? { signal: options.signal } : {})
    } catch {
      return revert(`trial interrupted: ${abortReason(options.signal)}`)
    }
    let healthy: boolean | string
    try {
      healthy = await options.isHealthy({ final: i === checks - 1 })
    } catch (err) {
      return revert(`health check failed: ${(err as Error).message}`)
    }
    if (healthy !== true) {
      return revert(
        `unhealthy during the ${options.windowMs} ms confirmation window${typeof healthy === 'string' && healthy !== '' ? `: ${healthy}` : ''}`
      )
    }
  }
  // Reverted meanwhile by someone else (the last-known-good is in force again): promoting now
  // would make the old config last-known-good and report a version promoted that is not in force.
  if (store.trial()?.version !== config.version) {
    return { outcome: 'reverted', version: config.version, reason: `reverted during its trial (now on v${store.current().version})` }
  }
  await store.promote()
  return { outcome: 'promoted', version: config.version }
}

function abortReason(signal: AbortSignal | undefined): string {
  const why: unknown = signal?.reason
  return typeof why === 'string' ? why : why instanceof Error && why.name !== 'AbortError' ? why.message : 'aborted (the agent is stopping)'
}
