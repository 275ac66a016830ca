import { readFileSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { durationToMs, InvalidConfigError, type Duration, type Endpoint, type K3sConfig, type NodeConfig } from '@mycelium/core-interfaces'
import { validateK3sConfig } from '@mycelium/k3s-runtime'
import { LOG_LEVELS } from './config-rules.js'
import { agentTimings, logLevel, type AgentTimings, peerTimings, sourceTimeoutMs, sporeTimings } from './package-init.js'

/**
 * How a change of the config in force reaches the running node: a pure
 * planner turns (previous, next) effective configs into steps, each for
 * one consumer; node-core's runner executes them (MyceliumNode.applyEffective).
 * Every manager-owned key has exactly one consumer (CONFIG_CONSUMERS); a
 * test fails when a schema key has none.
 */
export type ConfigStep =
  | { type: 'log-level'; level: string }
  | { type: 'agent-timing'; tunables: AgentTimings }
  | { type: 'spore-timing'; clockSlackMs: number; refreshIntervalMs: number }
  | { type: 'spore-sources'; httpsUrls: string[]; httpsCaFile: string; sourceTimeoutMs: number }
  | { type: 'peer-seeds'; seeds: Endpoint[] }
  | { type: 'peer-timing'; pingIntervalMs: number; suspectPhi: number }
  | { type: 'multicast'; enabled: boolean; group: string; interfaceAddress: string }
  | { type: 'k3s'; k3s: K3sConfig | undefined }
  | { type: 'labels'; labels: Record<string, string> }

export type ConfigStepType = ConfigStep['type']

/** The consumer of every manager-owned key (`section.field`, or a section owned whole). */
export const CONFIG_CONSUMERS: Readonly<Record<string, ConfigStepType>> = Object.freeze({
  labels: 'labels',
  'discovery.httpsUrls': 'spore-sources',
  'discovery.httpsCaFile': 'spore-sources',
  'discovery.sourceTimeout': 'spore-sources',
  'discovery.clockSlack': 'spore-timing',
  'discovery.refreshInterval': 'spore-timing',
  'peers.seeds': 'peer-seeds',
  'peers.pingInterval': 'peer-timing',
  'peers.phiThreshold': 'peer-timing',
  'peers.multicastEnabled': 'multicast',
  'peers.multicastGroup': 'multicast',
  'peers.multicastInterface': 'multicast',
  'handoff.commitDeadline': 'agent-timing',
  'handoff.configConfirmWindow': 'agent-timing',
  'handoff.defaultHeartbeatInterval': 'agent-timing',
  'handoff.missedAcksBeforeFallback': 'agent-timing',
  'reconnect.initial': 'agent-timing',
  'reconnect.max': 'agent-timing',
  'reconnect.multiplier': 'agent-timing',
  k3s: 'k3s',
  'logging.level': 'log-level'
})

/** Each consumer's values in a config (defaults filled in); a step is planned when they differ. */
const VALUES: { [T in ConfigStepType]: (c: NodeConfig) => Omit<Extract<ConfigStep, { type: T }>, 'type'> } = {
  'log-level': (c) => ({ level: logLevel(c) }),
  'agent-timing': (c) => ({ tunables: agentTimings(c) }),
  'spore-timing': (c) => sporeTimings(c),
  'spore-sources': (c) => ({
    httpsUrls: [...(c.discovery?.httpsUrls ?? [])],
    httpsCaFile: c.discovery?.httpsCaFile ?? '',
    sourceTimeoutMs: sourceTimeoutMs(c)
  }),
  'peer-seeds': (c) => ({ seeds: [...(c.peers?.seeds ?? [])] }),
  'peer-timing': (c) => peerTimings(c),
  multicast: (c) => ({
    enabled: c.peers?.multicastEnabled ?? false,
    group: c.peers?.multicastGroup ?? '',
    interfaceAddress: c.peers?.multicastInterface ?? ''
  }),
  k3s: (c) => ({ k3s: c.k3s }),
  labels: (c) => ({ labels: { ...c.labels } })
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

/** The steps that take `next` into effect on a node running `prev`. Pure. */
export function planReconfiguration(prev: NodeConfig, next: NodeConfig): ConfigStep[] {
  const steps: ConfigStep[] = []
  for (const type of Object.keys(VALUES) as ConfigStepType[]) {
    const a = VALUES[type](prev)
    const b = VALUES[type](next)
    if (!same(a, b)) steps.push({ type, ...b } as ConfigStep)
  }
  return steps
}

export { LOG_LEVELS }

/**
 * Checks the manager-owned values node-core consumes, before a config is
 * tried: throws InvalidConfigError naming the key (the trial is then
 * rejected, nothing applied).
 */
export function validateManagedValues(c: NodeConfig, where = 'NodeConfig'): void {
  const level = c.logging?.level ?? ''
  if (level !== '' && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new InvalidConfigError(`"${level}" is not one of ${LOG_LEVELS.join(', ')}`, `${where}.logging.level`)
  }
  for (const [i, url] of (c.discovery?.httpsUrls ?? []).entries()) {
    let ok: boolean
    try {
      ok = new URL(url).protocol === 'https:'
    } catch {
      ok = false
    }
    if (!ok) throw new InvalidConfigError(`"${url}" is not an https:// URL`, `${where}.discovery.httpsUrls[${i}]`)
  }
  if (c.discovery?.httpsCaFile) readCaFile(c.discovery.httpsCaFile, `${where}.discovery.httpsCaFile`)
  if (c.k3s != null) validateK3sConfig(c.k3s, `${where}.k3s`)
  validateRanges(c, where)
}

/**
 * The durations consumers take: a period (or timeout, window, deadline)
 * must be above zero — a zero or negative one would be ignored by the
 * consumer while status shows it in force, or (configConfirmWindow) skip
 * the health gate; a slack may be zero.
 */
const DURATION_KEYS: ReadonlyArray<
  [section: 'discovery' | 'peers' | 'handoff' | 'reconnect', field: string, min: 'above-zero' | 'zero-or-more']
> = [
  ['discovery', 'clockSlack', 'zero-or-more'],
  ['discovery', 'refreshInterval', 'above-zero'],
  ['discovery', 'sourceTimeout', 'above-zero'],
  ['peers', 'pingInterval', 'above-zero'],
  ['handoff', 'commitDeadline', 'above-zero'],
  ['handoff', 'configConfirmWindow', 'above-zero'],
  ['handoff', 'defaultHeartbeatInterval', 'above-zero'],
  ['reconnect', 'initial', 'above-zero'],
  ['reconnect', 'max', 'above-zero']
]

/** Ranges of the manager-owned numbers, durations and addresses (0 / "" / unset: the default). */
function validateRanges(c: NodeConfig, where: string): void {
  for (const [section, field, min] of DURATION_KEYS) {
    const d = (c[section] as Record<string, unknown> | undefined)?.[field] as Duration | undefined
    if (d == null) continue
    const ms = durationToMs(d, 0)
    if (!Number.isFinite(ms) || ms < 0 || (min === 'above-zero' && ms === 0)) {
      throw new InvalidConfigError(
        `${ms} ms is not a valid ${field} (${min === 'above-zero' ? 'must be above 0' : 'must be 0 or more'})`,
        `${where}.${section}.${field}`
      )
    }
  }
  const phi = c.peers?.phiThreshold ?? 0
  if (phi !== 0 && !(Number.isFinite(phi) && phi > 0))
    throw new InvalidConfigError(`${phi} is not a suspicion threshold (must be above 0)`, `${where}.peers.phiThreshold`)
  const multiplier = c.reconnect?.multiplier ?? 0
  if (multiplier !== 0 && !(Number.isFinite(multiplier) && multiplier >= 1)) {
    throw new InvalidConfigError(`${multiplier} is not a backoff growth factor (must be 1 or more)`, `${where}.reconnect.multiplier`)
  }
  const group = c.peers?.multicastGroup ?? ''
  if (group !== '') {
    const [ip, port, ...rest] = group.split(':')
    const first = Number(ip?.split('.')[0])
    if (rest.length > 0 || !isIPv4(ip ?? '') || first < 224 || first > 239) {
      throw new InvalidConfigError(
        `"${group}" is not an IPv4 multicast group (224.0.0.0–239.255.255.255), optionally with ":port"`,
        `${where}.peers.multicastGroup`
      )
    }
    if (port != null && !(/^\d+$/.test(port) && Number(port) >= 1 && Number(port) <= 65_535)) {
      throw new InvalidConfigError(`port "${port}" of "${group}" is not 1–65535`, `${where}.peers.multicastGroup`)
    }
  }
  const iface = c.peers?.multicastInterface ?? ''
  if (iface !== '' && !isIPv4(iface))
    throw new InvalidConfigError(`"${iface}" is not an IPv4 interface address`, `${where}.peers.multicastInterface`)
}

/**
 * Refuses manager-owned keys this node has no consumer for: peers.* on a
 * node whose local config sets no peers.listenAddress (no peer networking
 * runs; the values would be shown in force and do nothing).
 */
export function validateAgainstLocal(remote: NodeConfig, local: NodeConfig, where = 'remote NodeConfig'): void {
  if ((local.peers?.listenAddress ?? '') !== '') return
  const p = remote.peers
  if (p == null) return
  const set: string[] = []
  if (p.seeds.length > 0) set.push('seeds')
  if (p.multicastEnabled) set.push('multicastEnabled')
  if (p.multicastGroup !== '') set.push('multicastGroup')
  if (p.multicastInterface !== '') set.push('multicastInterface')
  if (p.pingInterval != null) set.push('pingInterval')
  if (p.phiThreshold !== 0) set.push('phiThreshold')
  if (set.length > 0) {
    throw new InvalidConfigError(
      `${set.map((k) => `peers.${k}`).join(', ')} cannot take effect: this node runs no peer networking (its local config sets no peers.listenAddress)`,
      where
    )
  }
}

/** Reads a pinned CA file (PEM); a missing or non-PEM file is an InvalidConfigError naming the key. */
export function readCaFile(path: string, where: string): string {
  let pem: string
  try {
    pem = readFileSync(path, 'utf8')
  } catch (err) {
    throw new InvalidConfigError(`cannot read ${path}: ${(err as Error).message}`, where)
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidConfigError(`${path} holds no PEM certificate`, where)
  return pem
}

/**
 * The config as status shows it (`node-core status`, WatchStatus, /status):
 * secrets blanked — identity.joinToken (from YAML, MYCELIUM_IDENTITY__JOIN_TOKEN
 * or --set). The paths of secret files stay visible.
 */
export function withoutSecrets(c: NodeConfig): NodeConfig {
  if (!c.identity?.joinToken) return c
  return { ...c, identity: { ...c.identity, joinToken: '' } }
}
