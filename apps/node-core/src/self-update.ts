import {
  HealthState,
  Phase,
  type Logger,
  type Spore,
  type TrustBundle,
  type UpdateCommand,
  type UpdateStatus
} from '@mycelium/core-interfaces'
import { verifyReleaseManifest } from '@mycelium/spore-client'
import {
  SelfUpdater,
  commitTrial,
  isUpdateRefusedError,
  planUpdate,
  type BootRecord,
  type Slot,
  type UpdateRequest
} from '@mycelium/self-update'

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
  /** The trust bundle in force and the `release/node-core` spore, after a refresh from the spore sources. */
  release: () => Promise<{ bundle: TrustBundle; spore?: Spore } | undefined>
}

/** How long an ALLOW_DOWNGRADE operation lets the next update install a lower version. @default 1 hour */
export const DOWNGRADE_ALLOWANCE_MS = 3_600_000

/** The trial window in ms (NODE_CORE_UPDATE_TRIAL_WINDOW_MS; default DEFAULT_TRIAL_WINDOW_MS). */
export interface NodeSelfUpdateInit {
  trialWindowMs?: number
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
 */
export class NodeSelfUpdate {
  private readonly updater?: SelfUpdater
  private downgradeAllowedUntilMs = 0

  /**
   * An operator-signed ALLOW_DOWNGRADE emergency operation: the next update (within
   * DOWNGRADE_ALLOWANCE_MS, in this process) may install a lower version.
   */
  allowDowngrade(): void {
    this.downgradeAllowedUntilMs = Date.now() + DOWNGRADE_ALLOWANCE_MS
  }

  private get downgradeAllowed(): boolean {
    return Date.now() < this.downgradeAllowedUntilMs
  }

  constructor(
    private readonly targets: SelfUpdateTargets,
    private readonly place: SlotPlace | undefined,
    init: NodeSelfUpdateInit = {}
  ) {
    if (place != null)
      this.updater = new SelfUpdater(
        { logger: targets.log },
        {
          prefix: place.prefix,
          caPem: () => targets.caPem(),
          ...(init.trialWindowMs != null ? { trialWindowMs: init.trialWindowMs } : {})
        }
      )
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

  /** Reads the boot record for status (at start; the launcher may have rolled back before this boot). */
  async refresh(): Promise<void> {
    if (this.updater != null) this.record = await this.updater.readRecord()
  }

  /** Slot, trial and last outcome for NodeStatus, heartbeats and /metrics; undefined when not under the launcher. */
  status(): UpdateStatus | undefined {
    if (this.place == null) return undefined
    const t = this.record?.trial
    const l = this.record?.last
    return {
      slot: this.place.slot,
      version: this.targets.version,
      trialVersion: t != null && t.slot === this.place.slot ? t.version : '',
      lastOutcome: l?.outcome ?? '',
      lastVersion: l?.version ?? '',
      lastReason: l?.reason ?? '',
      lastAt: l != null ? new Date(l.atMs) : undefined,
      lastCommandId: l?.commandId ?? ''
    }
  }

  /** Why a new update command is refused before it runs (REJECTED), or undefined. */
  async refuse(u: UpdateCommand, commandId: string): Promise<string | undefined> {
    // node.ts routes an update naming a component to the component manager; here it could only be a caller's mistake.
    if (u.component !== '') return `component "${u.component}": a component update is not a self-update`
    if (this.updater == null || this.place == null)
      return 'this agent was not started by the slot launcher (slot-launcher.cjs): it cannot update itself'
    const plan = planUpdate(request(u, commandId), {
      currentVersion: this.targets.version,
      runningSlot: this.place.slot,
      record: await this.updater.readRecord(),
      allowDowngrade: this.downgradeAllowed
    })
    if (plan.action === 'refuse') return plan.reason
    return plan.action === 'install' ? this.releaseProblem(u) : undefined
  }

  /**
   * When the trust bundle names release keys, the update must be the release a
   * `release/node-core` spore names, its manifest signed by enough release keys.
   * Without release keys the network signs no releases: the manager's command is trusted.
   */
  private async releaseProblem(u: UpdateCommand): Promise<string | undefined> {
    const r = await this.targets.release()
    if (r == null || (r.bundle.releaseKeys ?? []).length === 0) return undefined
    const body = r.spore?.body
    if (body?.$case !== 'release') return 'no release/node-core spore: this network signs its releases (release keys in the trust bundle)'
    let manifest
    try {
      manifest = verifyReleaseManifest(body.value, r.bundle, this.targets.networkId, 'release/node-core')
    } catch (err) {
      return (err as Error).message
    }
    if (manifest.component !== '' || manifest.version !== u.version || manifest.artifactDigest !== u.artifactDigest)
      return `release/node-core names ${manifest.version} (${manifest.artifactDigest}), not ${u.version} (${u.artifactDigest})`
    return undefined
  }

  /** Runs an accepted update (or the rest of one, after the restart into its trial or back). */
  async run(u: UpdateCommand, commandId: string): Promise<string | undefined> {
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
        return `refused: ${plan.reason}`
      case 'install': {
        const problem = await this.releaseProblem(u)
        if (problem != null) return `refused: ${problem}`
        this.downgradeAllowedUntilMs = 0 // one update per allowance
        try {
          await updater.install(request(u, commandId), plan)
        } catch (err) {
          return isUpdateRefusedError(err) ? `refused: ${(err as Error).message}` : (err as Error).message
        }
        log.info('restarting into the trial slot', { slot: plan.slot, version: u.version })
        this.targets.requestRestart()
        // The process exits; the trial version finishes this command.
        return new Promise<string | undefined>(() => undefined)
      }
      case 'confirm-trial': {
        log.info('trial: waiting to be MANAGED and HEALTHY', { version: this.targets.version, slot: this.place.slot })
        await this.until(() => this.targets.phase() === Phase.MANAGED && this.targets.health() === HealthState.HEALTHY)
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
        await this.until(() => this.targets.phase() === Phase.MANAGED)
        const record = (await updater.readRecord()) ?? this.record!
        if (record.last != null && !record.last.reported) {
          this.record = { ...record, last: { ...record.last, reported: true } }
          await updater.writeRecord(this.record)
        }
        return plan.outcome === 'committed' ? undefined : `rolled back to ${this.targets.version}: ${plan.reason}`
      }
    }
  }

  private async until(ready: () => boolean): Promise<void> {
    while (!ready()) await this.targets.nextChange()
  }
}

/** The slot the launcher started this process from, when it did. */
export function slotPlaceFromEnv(env: Record<string, string | undefined>): SlotPlace | undefined {
  const slot = env.NODE_CORE_SLOT
  const prefix = env.NODE_CORE_SLOT_PREFIX
  if ((slot !== 'a' && slot !== 'b') || prefix == null || prefix === '') return undefined
  return { slot, prefix }
}
