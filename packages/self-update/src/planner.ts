import { CONTRACT_VERSION_MAX, type ReleaseManifest, type Spore } from '@mycelium/core-interfaces'
import type { BootRecord, Slot } from './boot-record.js'
import { otherSlot } from './boot-record.js'

/** What a manager asks for (an `update` command with empty `component`). */
export interface UpdateRequest {
  commandId: string
  /** Empty: node-core itself. */
  component: string
  version: string
  /** "sha256:<64 hex>". */
  artifactDigest: string
  artifactUrls: string[]
  /** The artifact's size as the release manifest names it; 0 or unset: unknown (the server's or peer's word, then sha256). */
  sizeBytes?: number
}

/** What the node knows when it plans (all read before the plan; the plan reads nothing). */
export interface UpdateFacts {
  currentVersion: string
  /** The slot this process runs from. */
  runningSlot: Slot
  record: BootRecord | undefined
  /** An operator-signed emergency operation allows a lower version. */
  allowDowngrade?: boolean
}

/**
 * Why an update is refused, by name (status `last_refusal_code`, and the first word of
 * the command's REJECTED reason): a caller branches on this, never on the text.
 */
export type RefusalCode =
  | 'component'
  | 'wrong-slot'
  | 'trial-in-progress'
  | 'bad-digest'
  | 'no-https-url'
  | 'not-semver'
  | 'same-version'
  | 'downgrade'
  | 'channel-mismatch'
  | 'contract-unsupported'
  | 'release-unverified'
  | 'release-mismatch'
  | 'not-under-launcher'

export type UpdatePlan =
  | { action: 'refuse'; code: RefusalCode; reason: string }
  /** Download, verify and unpack into `slot`, then boot it as a trial. */
  | { action: 'install'; slot: Slot; previous: Slot; sha256: string }
  /** This process is the trial of this command: prove health in the window, then commit. */
  | { action: 'confirm-trial' }
  /** The outcome of this command is already in the boot record. */
  | { action: 'report'; outcome: 'committed' | 'rolled-back'; reason: string }

const SEMVER = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$/

/** -1, 0, 1 by semantic version precedence; undefined when either is not a version. */
export function compareVersions(a: string, b: string): number | undefined {
  const x = SEMVER.exec(a)
  const y = SEMVER.exec(b)
  if (x == null || y == null) return undefined
  for (let i = 1; i <= 3; i++) {
    const d = Number(x[i]) - Number(y[i])
    if (d !== 0) return Math.sign(d)
  }
  if (x[4] === y[4]) return 0
  if (x[4] == null) return 1 // a release is above its pre-releases
  if (y[4] == null) return -1
  return x[4] < y[4] ? -1 : 1
}

/**
 * The update decision (pure). Refusals say what and where, and leave the
 * slots untouched. A command seen again (the agent restarted into its trial,
 * or back after a rollback) is answered from the boot record, never installed twice.
 */
export function planUpdate(req: UpdateRequest, facts: UpdateFacts): UpdatePlan {
  if (req.component !== '')
    return { action: 'refuse', code: 'component', reason: `component updates ("${req.component}") are not handled by this agent version` }
  const r = facts.record
  if (r?.trial != null && r.trial.commandId === req.commandId) {
    return r.trial.slot === facts.runningSlot
      ? { action: 'confirm-trial' }
      : {
          action: 'refuse',
          code: 'wrong-slot',
          reason: `update ${req.commandId} is on trial in slot ${r.trial.slot}, but this agent runs from slot ${facts.runningSlot}`
        }
  }
  if (r?.last?.commandId === req.commandId && (r.last.outcome === 'committed' || r.last.outcome === 'rolled-back')) {
    return { action: 'report', outcome: r.last.outcome, reason: r.last.reason }
  }
  if (r?.trial != null)
    return {
      action: 'refuse',
      code: 'trial-in-progress',
      reason: `another update (${r.trial.commandId}, version ${r.trial.version}) is on trial`
    }
  const digest = /^sha256:([0-9a-f]{64})$/.exec(req.artifactDigest)
  if (digest == null)
    return { action: 'refuse', code: 'bad-digest', reason: `artifact_digest "${req.artifactDigest}" is not sha256:<64 lowercase hex>` }
  const urls = req.artifactUrls.filter((u) => u.startsWith('https://'))
  if (urls.length === 0) return { action: 'refuse', code: 'no-https-url', reason: 'artifact_urls holds no https:// URL' }
  const cmp = compareVersions(req.version, facts.currentVersion)
  if (cmp == null)
    return {
      action: 'refuse',
      code: 'not-semver',
      reason: `version "${req.version}" is not a semantic version (running ${facts.currentVersion})`
    }
  if (cmp === 0) return { action: 'refuse', code: 'same-version', reason: `version ${req.version} is already running` }
  if (cmp < 0 && facts.allowDowngrade !== true)
    return {
      action: 'refuse',
      code: 'downgrade',
      reason: `version ${req.version} is lower than the running ${facts.currentVersion} (a downgrade needs an operator-signed emergency operation)`
    }
  return { action: 'install', slot: otherSlot(facts.runningSlot), previous: facts.runningSlot, sha256: digest[1]! }
}

/** Bytes an update needs free: the tarball, and its unpacked copy (bounded by `unpackFactor` × the tarball). */
export function requiredBytes(artifactBytes: number, unpackFactor: number, reserveBytes: number): number {
  return artifactBytes * (1 + unpackFactor) + reserveBytes
}

/** The channel a node follows when its config names none, and a manifest's empty channel. @default "stable" */
export const DEFAULT_UPDATE_CHANNEL = 'stable'

/** What a release manifest demands of the node that installs it. */
export interface ReleaseDemands {
  version: string
  /** The lowest contract version the release speaks with the managers; 0: no demand. */
  minContractVersion: number
  /** Empty: DEFAULT_UPDATE_CHANNEL. */
  channel: string
}

/** What this node and its network offer. */
export interface ReleaseOffer {
  /** NodeConfig.update.channel (empty: DEFAULT_UPDATE_CHANNEL). */
  channel: string
  /**
   * The highest contract version every manager of the network speaks (the lowest
   * `contract_versions.max` of the service spores); the release must be able to talk to all of them.
   */
  networkContractMax: number
}

/**
 * Whether a release fits this node (pure): its channel is the node's, and the network's
 * managers speak a contract version the release speaks. Undefined when it fits.
 */
export function releaseRefusal(release: ReleaseDemands, offer: ReleaseOffer): { code: RefusalCode; reason: string } | undefined {
  const theirs = release.channel || DEFAULT_UPDATE_CHANNEL
  const ours = offer.channel || DEFAULT_UPDATE_CHANNEL
  if (theirs !== ours)
    return {
      code: 'channel-mismatch',
      reason: `release ${release.version} is on channel "${theirs}", this node follows "${ours}" (update.channel)`
    }
  if (release.minContractVersion > offer.networkContractMax)
    return {
      code: 'contract-unsupported',
      reason: `release ${release.version} needs contract version ${release.minContractVersion} or higher, the network's managers speak at most ${offer.networkContractMax}`
    }
  return undefined
}

/** The highest contract version every manager speaks: the lowest `contract_versions.max` of the service spores (this agent's when none says). */
export function networkContractMax(spores: Array<{ name: string; spore: Spore }>): number {
  let max: number | undefined
  for (const s of spores) {
    const body = s.spore.body
    const m = body?.$case === 'service' ? (body.value.contractVersions?.max ?? 0) : 0
    if (m > 0) max = Math.min(max ?? m, m)
  }
  return max ?? CONTRACT_VERSION_MAX
}

export type WatchDecision = 'update' | 'other-channel' | 'not-newer' | 'trial-on' | 'rolled-back-before' | 'too-soon'

/**
 * What the channel watch (NodeConfig.update.watch) does with the release it sees (pure):
 * only a higher version on the node's channel, never while a trial is on, never again a
 * version that was rolled back (the last outcome), at most once per `minIntervalMs`.
 */
export function watchDecision(f: {
  manifest: Pick<ReleaseManifest, 'component' | 'version' | 'channel'>
  channel: string
  currentVersion: string
  record: BootRecord | undefined
  nowMs: number
  lastStartMs: number
  minIntervalMs: number
}): WatchDecision {
  const m = f.manifest
  if ((m.channel || DEFAULT_UPDATE_CHANNEL) !== (f.channel || DEFAULT_UPDATE_CHANNEL)) return 'other-channel'
  if (m.component !== '' || (compareVersions(m.version, f.currentVersion) ?? 0) <= 0) return 'not-newer'
  if (f.record?.trial != null) return 'trial-on'
  if (f.record?.last?.outcome === 'rolled-back' && f.record.last.version === m.version) return 'rolled-back-before'
  if (f.nowMs - f.lastStartMs < f.minIntervalMs) return 'too-soon'
  return 'update'
}
