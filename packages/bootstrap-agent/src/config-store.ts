import { join } from 'node:path'
import { rm } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  InvalidConfigError,
  isCorruptStateError,
  NodeConfig,
  readStateFile,
  writeStateFile,
  type AbortOptions,
  type Logger
} from '@mycelium/core-interfaces'

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

export class ConfigStore {
  /** Corruptions found (and survived) while loading, for status. */
  readonly problems: string[] = []

  private constructor(
    private readonly dir: string,
    private cur: NodeConfig,
    private lkg: NodeConfig,
    private trialInfo: TrialInfo | undefined,
    private readonly log?: Logger
  ) {}

  /** Opens the store in `dir`; `initial` seeds an empty store. */
  static async open(dir: string, initial: NodeConfig, log?: Logger): Promise<ConfigStore> {
    const problems: string[] = []
    const read = async (name: string): Promise<NodeConfig | undefined> => {
      const path = join(dir, name)
      try {
        const content = await readStateFile(path)
        if (content == null) return undefined
        if (content.recoveredFromPrevious != null) problems.push(`${path}: ${content.recoveredFromPrevious.reason}; started on its previous good copy`)
        return NodeConfig.decode(content.data)
      } catch (err) {
        problems.push(isCorruptStateError(err) ? `${err.message}; ignored` : `${path}: ${(err as Error).message}; ignored`)
        return undefined
      }
    }
    const current = await read('current.bin')
    const lkg = await read('lkg.bin')
    let trial: TrialInfo | undefined
    try {
      const t = await readStateFile(join(dir, 'trial.bin'))
      if (t != null) trial = JSON.parse(t.data.toString('utf8')) as TrialInfo
    } catch (err) {
      problems.push(`${join(dir, 'trial.bin')}: ${(err as Error).message}`)
    }
    const store = new ConfigStore(dir, current ?? lkg ?? initial, lkg ?? current ?? initial, undefined, log)
    store.problems.push(...problems)
    for (const p of problems) log?.warn('config state problem', { problem: p })
    // A full or read-only disk must not stop the boot: the store runs on what
    // it read (a trial reverted in memory), reports why, and the next boot
    // reverts again.
    try {
      if (current == null || lkg == null) await store.persist()
      if (trial != null) await store.revert(`trial of config version ${trial.version} was interrupted by a restart`)
    } catch (err) {
      store.problems.push(`${(err as Error).message}; running on the config in memory`)
      log?.error('config state not saved', { err })
    }
    return store
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
export function validateRemoteConfig(config: NodeConfig, current: NodeConfig, where = 'remote NodeConfig'): void {
  if (config.version <= current.version) {
    throw new InvalidConfigError(`version ${config.version} is not above the current ${current.version}`, `${where}.version`)
  }
  if (config.networkId !== '' && current.networkId !== '' && config.networkId !== current.networkId) {
    throw new InvalidConfigError(`network "${config.networkId}" is not this node's "${current.networkId}"`, `${where}.networkId`)
  }
  if (config.nodeId !== '' && current.nodeId !== '' && config.nodeId !== current.nodeId) {
    throw new InvalidConfigError(`node "${config.nodeId}" is not this node "${current.nodeId}"`, `${where}.nodeId`)
  }
}

export type TrialOutcome = { outcome: 'promoted'; version: number } | { outcome: 'reverted' | 'rejected'; version: number; reason: string }

export interface TrialOptions extends AbortOptions {
  /** How long the new config must stay healthy. */
  windowMs: number
  /** Puts a config into effect (the previous one, on revert). */
  apply: (config: NodeConfig) => Promise<void>
  /** Health during the window; false (or a throw) reverts. */
  isHealthy: () => boolean | Promise<boolean>
  /** Health checks per window. @default 10 */
  checks?: number
}

/**
 * Try-mode (like Talos `--mode=try`): validate, apply, and keep the config as
 * last-known-good only if the node stays healthy for the whole window; else
 * revert automatically. Aborting reverts too.
 */
export async function tryConfig(store: ConfigStore, config: NodeConfig, options: TrialOptions): Promise<TrialOutcome> {
  try {
    validateRemoteConfig(config, store.current())
  } catch (err) {
    return { outcome: 'rejected', version: config.version, reason: (err as Error).message }
  }
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
      return revert('trial interrupted')
    }
    let healthy: boolean
    try {
      healthy = await options.isHealthy()
    } catch (err) {
      healthy = false
      return revert(`health check failed: ${(err as Error).message}`)
    }
    if (!healthy) return revert(`unhealthy during the ${options.windowMs} ms confirmation window`)
  }
  await store.promote()
  return { outcome: 'promoted', version: config.version }
}
