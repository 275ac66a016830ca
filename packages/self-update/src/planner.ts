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

export type UpdatePlan =
  | { action: 'refuse'; reason: string }
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
    return { action: 'refuse', reason: `component updates ("${req.component}") are not handled by this agent version` }
  const r = facts.record
  if (r?.trial != null && r.trial.commandId === req.commandId) {
    return r.trial.slot === facts.runningSlot
      ? { action: 'confirm-trial' }
      : {
          action: 'refuse',
          reason: `update ${req.commandId} is on trial in slot ${r.trial.slot}, but this agent runs from slot ${facts.runningSlot}`
        }
  }
  if (r?.last?.commandId === req.commandId && (r.last.outcome === 'committed' || r.last.outcome === 'rolled-back')) {
    return { action: 'report', outcome: r.last.outcome, reason: r.last.reason }
  }
  if (r?.trial != null) return { action: 'refuse', reason: `another update (${r.trial.commandId}, version ${r.trial.version}) is on trial` }
  const digest = /^sha256:([0-9a-f]{64})$/.exec(req.artifactDigest)
  if (digest == null) return { action: 'refuse', reason: `artifact_digest "${req.artifactDigest}" is not sha256:<64 lowercase hex>` }
  const urls = req.artifactUrls.filter((u) => u.startsWith('https://'))
  if (urls.length === 0) return { action: 'refuse', reason: 'artifact_urls holds no https:// URL' }
  const cmp = compareVersions(req.version, facts.currentVersion)
  if (cmp == null)
    return { action: 'refuse', reason: `version "${req.version}" is not a semantic version (running ${facts.currentVersion})` }
  if (cmp === 0) return { action: 'refuse', reason: `version ${req.version} is already running` }
  if (cmp < 0 && facts.allowDowngrade !== true)
    return {
      action: 'refuse',
      reason: `version ${req.version} is lower than the running ${facts.currentVersion} (a downgrade needs an operator-signed emergency operation)`
    }
  return { action: 'install', slot: otherSlot(facts.runningSlot), previous: facts.runningSlot, sha256: digest[1]! }
}

/** Bytes an update needs free: the tarball, and its unpacked copy (bounded by `unpackFactor` × the tarball). */
export function requiredBytes(artifactBytes: number, unpackFactor: number, reserveBytes: number): number {
  return artifactBytes * (1 + unpackFactor) + reserveBytes
}
