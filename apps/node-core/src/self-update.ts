import { setTimeout as sleep } from 'node:timers/promises'
import {
  HealthState,
  InvalidConfigError,
  Phase,
  type AbortOptions,
  type Logger,
  type NodeConfig,
  type UpdateCommand,
  type UpdateStatus
} from '@mycelium/core-interfaces'
import {
  DEFAULT_UPDATE_CHANNEL,
  SelfUpdater,
  commitTrial,
  isUpdateRefusedError,
  planUpdate,
  watchDecision,
  type BootRecord,
  type PeerArtifactSource,
  type Slot,
  type UpdateRequest
} from '@mycelium/self-update'
import { publishedManifest, releaseProblem, said, type PublishedRelease, type Refusal } from './self-update-release.js'
import { SelfUpdateStateFile } from './self-update-state.js'

export { SELF_UPDATE_STATE_FILE } from './self-update-state.js'

/** Where the slot launcher started this process (NODE_CORE_SLOT, NODE_CORE_SLOT_PREFIX); absent: not under the launcher. */
export interface SlotPlace {
  slot: Slot
  prefix: string
}

/** What the self-update handlers need from the node (node.ts hands them in). */
export interface SelfUpdateTargets {
  log: Logger
  version: string
  /** The network CA (PEM) the artifact server must present a certificate from. */
  caPem: () => string | undefined
  phase: () => Phase
  health: () => HealthState
  /** Resolves on the next status change (phase, health). */
  nextChange: () => Promise<void>
  /** Stops the node and exits with the launcher's restart code (into the trial slot). */
  requestRestart: () => void
  /** The boot record was read or written (status changed). */
  changed: () => void
  networkId: string
  /**
   * The trust bundle in force and every verified spore (`release/node-core`, `service/*`);
   * with `refresh` after a poll of the spore sources (a release published a moment ago).
   */
  release: (refresh?: boolean) => Promise<PublishedRelease | undefined>
  /** Alive peers to fetch an artifact from when its URLs fail (self-update-peers.ts); none without peer networking. */
  peers?: () => PeerArtifactSource[]
}

/** How long an ALLOW_DOWNGRADE operation lets the next update install a lower version. @default 1 hour */
export const DOWNGRADE_ALLOWANCE_MS = 3_600_000
/** The least time between two updates the channel watch starts (NodeConfig.update.watchMinInterval). @default 10 minutes */
export const DEFAULT_UPDATE_WATCH_MIN_INTERVAL_MS = 600_000
/** How often the channel watch looks at the verified spores (in memory; the spore client polls its sources). @default 5000 */
export const DEFAULT_UPDATE_WATCH_POLL_MS = 5000
/** The command id prefix of updates the channel watch starts (no manager command behind them). */
export const WATCH_COMMAND_PREFIX = 'watch:'

/** Self-update settings (NodeConfig.update, NODE_CORE_UPDATE_TRIAL_WINDOW_MS, the state directory). */
export interface NodeSelfUpdateInit {
  /** The trial window in ms (NODE_CORE_UPDATE_TRIAL_WINDOW_MS; default DEFAULT_TRIAL_WINDOW_MS). */
  trialWindowMs?: number
  /** Holds SELF_UPDATE_STATE_FILE; unset: the allowance and the watch's last start live in memory only. */
  stateDir?: string
  /** @default DEFAULT_UPDATE_CHANNEL */
  channel?: string
  /** @default false */
  watch?: boolean
  /** @default DEFAULT_UPDATE_WATCH_MIN_INTERVAL_MS */
  watchMinIntervalMs?: number
  /** @default DEFAULT_UPDATE_WATCH_POLL_MS */
  watchPollMs?: number
}

/** NodeConfig.update → init (durations already validated by the config loader). */
export function selfUpdateInitFor(config: Pick<NodeConfig, 'update'>, stateDir: string): NodeSelfUpdateInit {
  const u = config.update
  const interval = u?.watchMinInterval
  return {
    stateDir,
    channel: u?.channel || DEFAULT_UPDATE_CHANNEL,
    watch: u?.watch === true,
    ...(interval != null ? { watchMinIntervalMs: interval.seconds * 1000 + Math.round(interval.nanos / 1e6) } : {})
  }
}

const request = (u: UpdateCommand, commandId: string): UpdateRequest => ({
  commandId,
  component: u.component,
  version: u.version,
  artifactDigest: u.artifactDigest,
  artifactUrls: u.artifactUrls
})

/**
 * node-core's update command: the package's planner and runner, with the
 * two waits only the node can judge — the trial version waits to be MANAGED
 * and HEALTHY, then commits; a version that was rolled back to waits to be
 * MANAGED, then reports the failed update with the launcher's reason.
 * Opt-in (`update.watch`), a new release on the node's channel starts the same
 * path by itself (`start`, `watchOnce`).
 */
export class NodeSelfUpdate {
  private readonly updater?: SelfUpdater
  private readonly init: Required<Omit<NodeSelfUpdateInit, 'stateDir' | 'trialWindowMs'>>
  /** The downgrade allowance and the watch's last start (SELF_UPDATE_STATE_FILE). */
  private readonly state: SelfUpdateStateFile
  private lastRefusal?: Refusal & { version: string; atMs: number }
  /** An install under way (a command's or the watch's): a second one waits for the next turn. */
  private installing = false
  private watchAbort?: AbortController
  private watching?: Promise<void>

  constructor(
    private readonly targets: SelfUpdateTargets,
    private readonly place: SlotPlace | undefined,
    init: NodeSelfUpdateInit = {}
  ) {
    this.state = new SelfUpdateStateFile(init.stateDir, targets.log)
    this.init = {
      channel: init.channel || DEFAULT_UPDATE_CHANNEL,
      watch: init.watch === true,
      watchMinIntervalMs: init.watchMinIntervalMs ?? DEFAULT_UPDATE_WATCH_MIN_INTERVAL_MS,
      watchPollMs: init.watchPollMs ?? DEFAULT_UPDATE_WATCH_POLL_MS
    }
    if (place != null)
      this.updater = new SelfUpdater(
        { logger: targets.log, ...(targets.peers != null ? { peers: targets.peers } : {}) },
        {
          prefix: place.prefix,
          caPem: () => targets.caPem(),
          ...(init.trialWindowMs != null ? { trialWindowMs: init.trialWindowMs } : {})
        }
      )
  }

  /**
   * An operator-signed ALLOW_DOWNGRADE emergency operation: the next update (within
   * DOWNGRADE_ALLOWANCE_MS) may install a lower version. Kept in the state file: a
   * restart (or the crash of a first attempt) does not lose it; the install it allows
   * consumes it.
   */
  async allowDowngrade(reason = ''): Promise<void> {
    await this.state.save({ ...this.state.current, downgradeAllowedUntilMs: Date.now() + DOWNGRADE_ALLOWANCE_MS, downgradeReason: reason })
    this.targets.changed()
  }

  private get downgradeAllowed(): boolean {
    return this.state.downgradeAllowed
  }

  /** The last boot record read or written (status). */
  private recordRead?: BootRecord

  private get record(): BootRecord | undefined {
    return this.recordRead
  }

  private set record(r: BootRecord | undefined) {
    this.recordRead = r
    this.targets.changed()
  }

  /** Reads the boot record for status (at start; the launcher may have rolled back before this boot) and the state file. */
  async refresh(): Promise<void> {
    await this.state.load()
    if (this.updater != null) this.record = await this.updater.readRecord()
  }

  /** Slot, trial and last outcome for NodeStatus, heartbeats and /metrics; undefined when not under the launcher. */
  status(): UpdateStatus | undefined {
    if (this.place == null) return undefined
    const t = this.record?.trial
    const l = this.record?.last
    const r = this.lastRefusal
    return {
      slot: this.place.slot,
      version: this.targets.version,
      trialVersion: t != null && t.slot === this.place.slot ? t.version : '',
      lastOutcome: l?.outcome ?? '',
      lastVersion: l?.version ?? '',
      lastReason: l?.reason ?? '',
      lastAt: l != null ? new Date(l.atMs) : undefined,
      lastCommandId: l?.commandId ?? '',
      lastRefusalCode: r?.code ?? '',
      lastRefusalReason: r?.reason ?? '',
      lastRefusalVersion: r?.version ?? '',
      lastRefusalAt: r != null ? new Date(r.atMs) : undefined,
      channel: this.init.channel,
      watch: this.init.watch,
      downgradeAllowedUntil: this.downgradeAllowed ? new Date(this.state.current.downgradeAllowedUntilMs) : undefined
    }
  }

  /** Remembers a refusal for status and says it (the command's reason). */
  private refused(r: Refusal, version: string): string {
    this.lastRefusal = { ...r, version, atMs: Date.now() }
    this.targets.log.warn('update refused', { code: r.code, reason: r.reason, version })
    this.targets.changed()
    return said(r)
  }

  /** Why a new update command is refused before it runs (REJECTED), or undefined. */
  async refuse(u: UpdateCommand, commandId: string): Promise<string | undefined> {
    // node.ts routes an update naming a component to the component manager; here it could only be a caller's mistake.
    if (u.component !== '')
      return this.refused({ code: 'component', reason: `component "${u.component}": a component update is not a self-update` }, u.version)
    if (this.updater == null || this.place == null)
      return this.refused(
        {
          code: 'not-under-launcher',
          reason: 'this agent was not started by the slot launcher (slot-launcher.cjs): it cannot update itself'
        },
        u.version
      )
    const plan = planUpdate(request(u, commandId), {
      currentVersion: this.targets.version,
      runningSlot: this.place.slot,
      record: await this.updater.readRecord(),
      allowDowngrade: this.downgradeAllowed
    })
    if (plan.action === 'refuse') return this.refused(plan, u.version)
    if (plan.action !== 'install') return undefined
    const { refusal } = await this.releaseProblem(u)
    return refusal != null ? this.refused(refusal, u.version) : undefined
  }

  /** A verified artifact this node holds (kept after its install), served to peers by PeerAssist.FetchArtifact. */
  heldArtifact(digest: string): Promise<{ path: string; size: number } | undefined> {
    return this.updater?.heldArtifact(digest) ?? Promise.resolve(undefined)
  }

  /** Whether the update fits the release the network published (self-update-release.ts), polled afresh. */
  private async releaseProblem(u: UpdateCommand): Promise<{ refusal?: Refusal; sizeBytes: number }> {
    return releaseProblem(u, await this.targets.release(true), { networkId: this.targets.networkId, channel: this.init.channel })
  }

  /** Runs an accepted update (or the rest of one, after the restart into its trial or back). */
  async run(u: UpdateCommand, commandId: string, options: AbortOptions = {}): Promise<string | undefined> {
    const updater = this.updater
    if (updater == null || this.place == null) return 'this agent was not started by the slot launcher'
    this.record = await updater.readRecord()
    const plan = planUpdate(request(u, commandId), {
      currentVersion: this.targets.version,
      runningSlot: this.place.slot,
      record: this.record,
      allowDowngrade: this.downgradeAllowed
    })
    const log = this.targets.log
    switch (plan.action) {
      case 'refuse':
        return `refused: ${this.refused(plan, u.version)}`
      case 'install': {
        const { refusal, sizeBytes } = await this.releaseProblem(u)
        if (refusal != null) return `refused: ${this.refused(refusal, u.version)}`
        if (this.installing)
          return `refused: ${this.refused({ code: 'trial-in-progress', reason: 'another update is being installed' }, u.version)}`
        this.installing = true
        try {
          // One update per allowance: consumed (durably) before the install it allows.
          if (this.state.current.downgradeAllowedUntilMs !== 0)
            await this.state.save({ ...this.state.current, downgradeAllowedUntilMs: 0, downgradeReason: '' })
          await updater.install({ ...request(u, commandId), sizeBytes }, plan, options)
        } catch (err) {
          return isUpdateRefusedError(err) ? `refused: ${(err as Error).message}` : (err as Error).message
        } finally {
          this.installing = false
        }
        log.info('restarting into the trial slot', { slot: plan.slot, version: u.version })
        this.targets.requestRestart()
        // The process exits; the trial version finishes this command.
        return new Promise<string | undefined>(() => undefined)
      }
      case 'confirm-trial': {
        log.info('trial: waiting to be MANAGED and HEALTHY', { version: this.targets.version, slot: this.place.slot })
        await this.until(() => this.targets.phase() === Phase.MANAGED && this.targets.health() === HealthState.HEALTHY, options)
        const record = (await updater.readRecord()) ?? this.record!
        if (record.trial?.commandId !== commandId) return 'the trial was ended by the launcher before it was committed'
        const committed = commitTrial(record, Date.now())
        // Reported by the SUCCEEDED this returns (journaled first: a crash before it resumes to the same answer).
        this.record = { ...committed, last: { ...committed.last!, reported: true } }
        await updater.writeRecord(this.record)
        log.info('update committed', { version: this.targets.version, slot: this.place.slot })
        return undefined
      }
      case 'report': {
        await this.until(() => this.targets.phase() === Phase.MANAGED, options)
        const record = (await updater.readRecord()) ?? this.record!
        if (record.last != null && !record.last.reported) {
          this.record = { ...record, last: { ...record.last, reported: true } }
          await updater.writeRecord(this.record)
        }
        return plan.outcome === 'committed' ? undefined : `rolled back to ${this.targets.version}: ${plan.reason}`
      }
    }
  }

  /**
   * Starts the channel watch when `update.watch` is on (and this agent runs under the
   * launcher), and finishes an update the watch started before a restart (confirm its
   * trial, or log its rollback). Idempotent.
   */
  async start(): Promise<void> {
    if (this.place == null || this.watchAbort != null) return
    const signal = (this.watchAbort = new AbortController()).signal
    const pending = this.record?.trial?.commandId ?? (this.record?.last?.reported === false ? this.record.last.commandId : undefined)
    if (pending?.startsWith(WATCH_COMMAND_PREFIX) === true) void this.finishWatched(pending, signal)
    if (!this.init.watch) return
    this.targets.log.info('watching for releases', { channel: this.init.channel, minIntervalMs: this.init.watchMinIntervalMs })
    this.watching = (async () => {
      while (!signal.aborted) {
        await this.watchOnce({ signal }).catch((err: unknown) => {
          if (!signal.aborted) this.targets.log.warn('release watch failed; trying again', { err })
        })
        await sleep(this.init.watchPollMs, undefined, { signal, ref: false }).catch(() => undefined)
      }
    })()
  }

  isStarted(): boolean {
    return this.watchAbort != null
  }

  async stop(): Promise<void> {
    this.watchAbort?.abort()
    this.watchAbort = undefined
    await this.watching
    this.watching = undefined
  }

  /** The rest of an update the watch started (no command stream to answer: the log and status say it). */
  private async finishWatched(commandId: string, signal: AbortSignal): Promise<void> {
    const version = this.record?.trial?.version ?? this.record?.last?.version ?? ''
    const outcome = await this.run({ component: '', version, artifactDigest: '', artifactUrls: [] }, commandId, { signal }).catch(
      (err: unknown) => (err as Error).message
    )
    if (signal.aborted) return
    if (outcome == null) this.targets.log.info('update from the release watch done', { version: this.targets.version, commandId })
    else this.targets.log.error('update from the release watch failed', { version, commandId, reason: outcome })
  }

  /**
   * One look of the channel watch (pure decision in `watchDecision`): a verified
   * `release/node-core` on this node's channel, higher than the running version, not a
   * version that was rolled back, no trial on, the last watch start long enough ago →
   * the same path as an `update` command (`run`), under a `watch:` id.
   */
  async watchOnce(options: AbortOptions = {}): Promise<void> {
    if (this.updater == null || this.installing) return
    const r = await this.targets.release(false)
    if (r == null) return
    let manifest
    try {
      manifest = publishedManifest(r, this.targets.networkId)
    } catch {
      return // refused where it is used; an unverified release never starts anything
    }
    if (manifest == null) return
    const record = await this.updater.readRecord()
    const decision = watchDecision({
      manifest,
      channel: this.init.channel,
      currentVersion: this.targets.version,
      record,
      nowMs: Date.now(),
      lastStartMs: this.state.current.watchLastStartMs,
      minIntervalMs: this.init.watchMinIntervalMs
    })
    if (decision !== 'update') return
    const commandId = `${WATCH_COMMAND_PREFIX}${manifest.version}:${manifest.artifactDigest.slice(7, 19)}`
    this.targets.log.info('a new release on the watched channel: updating', {
      version: manifest.version,
      channel: this.init.channel,
      commandId
    })
    await this.state.save({ ...this.state.current, watchLastStartMs: Date.now() })
    const outcome = await this.run(
      { component: '', version: manifest.version, artifactDigest: manifest.artifactDigest, artifactUrls: manifest.artifactUrls },
      commandId,
      options
    )
    if (outcome != null)
      this.targets.log.warn('update from the release watch not installed', { version: manifest.version, reason: outcome })
  }

  private async until(ready: () => boolean, options: AbortOptions): Promise<void> {
    while (!ready()) {
      options.signal?.throwIfAborted()
      await this.targets.nextChange()
    }
  }
}

/**
 * NODE_CORE_UPDATE_TRIAL_WINDOW_MS (the window written into a trial): an integer of ms from
 * 1000 to 86400000 (the same bounds the launcher checks), else an InvalidConfigError naming it.
 */
export function trialWindowFromEnv(env: Record<string, string | undefined>): number | undefined {
  const text = env.NODE_CORE_UPDATE_TRIAL_WINDOW_MS
  if (text == null || text === '') return undefined
  const n = Number(text)
  if (!/^\d+$/.test(text.trim()) || n < 1000 || n > 86_400_000)
    throw new InvalidConfigError(`"${text}" is not an integer of milliseconds from 1000 to 86400000`, 'NODE_CORE_UPDATE_TRIAL_WINDOW_MS')
  return n
}

/** The slot the launcher started this process from, when it did. */
export function slotPlaceFromEnv(env: Record<string, string | undefined>): SlotPlace | undefined {
  const slot = env.NODE_CORE_SLOT
  const prefix = env.NODE_CORE_SLOT_PREFIX
  if ((slot !== 'a' && slot !== 'b') || prefix == null || prefix === '') return undefined
  return { slot, prefix }
}
