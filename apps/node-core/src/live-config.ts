import { readFileSync } from 'node:fs'
import { durationToMs, InvalidConfigError, type Endpoint, type K3sConfig, type NodeConfig } from '@mycelium/core-interfaces'
import type { AgentTunables } from '@mycelium/bootstrap-agent'
import { validateK3sConfig } from '@mycelium/k3s-runtime'

/**
 * How a change of the config in force reaches the running node: a pure
 * planner turns (previous, next) effective configs into steps, each for
 * one consumer; node-core's runner executes them (MyceliumNode.applyEffective).
 * Every manager-owned key has exactly one consumer (CONFIG_CONSUMERS); a
 * test fails when a schema key has none.
 */
export type ConfigStep =
  | { type: 'log-level'; level: string }
  | { type: 'agent-timing'; tunables: Required<Omit<AgentTunables, 'reconnect'>> & { reconnect: { initialMs: number; maxMs: number; multiplier: number } } }
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
  'log-level': (c) => ({ level: c.logging?.level || 'info' }),
  'agent-timing': (c) => ({
    tunables: {
      handoffDeadlineMs: durationToMs(c.handoff?.commitDeadline, 10_000),
      configConfirmWindowMs: durationToMs(c.handoff?.configConfirmWindow, 30_000),
      defaultHeartbeatIntervalMs: durationToMs(c.handoff?.defaultHeartbeatInterval, 1000),
      missedAcksBeforeFallback: c.handoff?.missedAcksBeforeFallback || 3,
      reconnect: { initialMs: durationToMs(c.reconnect?.initial, 500), maxMs: durationToMs(c.reconnect?.max, 30_000), multiplier: c.reconnect?.multiplier || 2 }
    }
  }),
  'spore-timing': (c) => ({ clockSlackMs: durationToMs(c.discovery?.clockSlack, 30_000), refreshIntervalMs: durationToMs(c.discovery?.refreshInterval, 60_000) }),
  'spore-sources': (c) => ({ httpsUrls: [...(c.discovery?.httpsUrls ?? [])], httpsCaFile: c.discovery?.httpsCaFile ?? '', sourceTimeoutMs: durationToMs(c.discovery?.sourceTimeout, 10_000) }),
  'peer-seeds': (c) => ({ seeds: [...(c.peers?.seeds ?? [])] }),
  'peer-timing': (c) => ({ pingIntervalMs: durationToMs(c.peers?.pingInterval, 1000), suspectPhi: c.peers?.phiThreshold || 8 }),
  multicast: (c) => ({ enabled: c.peers?.multicastEnabled ?? false, group: c.peers?.multicastGroup ?? '', interfaceAddress: c.peers?.multicastInterface ?? '' }),
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

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const

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
    let ok = false
    try {
      ok = new URL(url).protocol === 'https:'
    } catch {
      ok = false
    }
    if (!ok) throw new InvalidConfigError(`"${url}" is not an https:// URL`, `${where}.discovery.httpsUrls[${i}]`)
  }
  if (c.discovery?.httpsCaFile) readCaFile(c.discovery.httpsCaFile, `${where}.discovery.httpsCaFile`)
  if (c.k3s != null) validateK3sConfig(c.k3s, `${where}.k3s`)
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
