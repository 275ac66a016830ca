import { randomBytes } from 'node:crypto'
import { durationToMs, type NodeConfig } from '@mycelium/core-interfaces'
import {
  DEFAULT_CONFIG_CONFIRM_WINDOW_MS,
  DEFAULT_HANDOFF_DEADLINE_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_MISSED_ACKS_BEFORE_FALLBACK,
  DEFAULT_RECONNECT,
  agentStatePaths
} from '@mycelium/bootstrap-agent'
import { DEFAULT_CLOCK_SLACK_MS, DEFAULT_REFRESH_INTERVAL_MS, DEFAULT_SOURCE_TIMEOUT_MS } from '@mycelium/spore-client'
import { DEFAULT_LOG_LEVEL } from './defaults.js'
import { DEFAULT_MULTICAST_PORT, DEFAULT_PING_INTERVAL_MS, DEFAULT_SUSPECT_PHI } from '@mycelium/basic-net'

/**
 * The one place a NodeConfig becomes each package's init (memberlist's
 * `DefaultLANConfig` is the model): an unset key (or a proto3 zero, which
 * means unset) takes the owning package's `DEFAULT_*` constant. node-core's
 * constructor and its live-config planner both read through here, so a
 * default is never restated in the app.
 */

/** The bootstrap agent's manager-owned timings (handoff.*, reconnect.*), every one filled in. */
export interface AgentTimings {
  handoffDeadlineMs: number
  configConfirmWindowMs: number
  defaultHeartbeatIntervalMs: number
  missedAcksBeforeFallback: number
  reconnect: { initialMs: number; maxMs: number; multiplier: number }
}

export function agentTimings(c: NodeConfig): AgentTimings {
  return {
    handoffDeadlineMs: durationToMs(c.handoff?.commitDeadline, DEFAULT_HANDOFF_DEADLINE_MS),
    configConfirmWindowMs: durationToMs(c.handoff?.configConfirmWindow, DEFAULT_CONFIG_CONFIRM_WINDOW_MS),
    defaultHeartbeatIntervalMs: durationToMs(c.handoff?.defaultHeartbeatInterval, DEFAULT_HEARTBEAT_INTERVAL_MS),
    missedAcksBeforeFallback: c.handoff?.missedAcksBeforeFallback || DEFAULT_MISSED_ACKS_BEFORE_FALLBACK,
    reconnect: {
      initialMs: durationToMs(c.reconnect?.initial, DEFAULT_RECONNECT.initialMs),
      maxMs: durationToMs(c.reconnect?.max, DEFAULT_RECONNECT.maxMs),
      multiplier: c.reconnect?.multiplier || DEFAULT_RECONNECT.multiplier
    }
  }
}

/** The spore client's timings (discovery.clockSlack, discovery.refreshInterval). */
export function sporeTimings(c: NodeConfig): { clockSlackMs: number; refreshIntervalMs: number } {
  return {
    clockSlackMs: durationToMs(c.discovery?.clockSlack, DEFAULT_CLOCK_SLACK_MS),
    refreshIntervalMs: durationToMs(c.discovery?.refreshInterval, DEFAULT_REFRESH_INTERVAL_MS)
  }
}

/** One spore source call's timeout (discovery.sourceTimeout). */
export function sourceTimeoutMs(c: NodeConfig): number {
  return durationToMs(c.discovery?.sourceTimeout, DEFAULT_SOURCE_TIMEOUT_MS)
}

/** The peer monitor's timings (peers.pingInterval, peers.phiThreshold). */
export function peerTimings(c: NodeConfig): { pingIntervalMs: number; suspectPhi: number } {
  return {
    pingIntervalMs: durationToMs(c.peers?.pingInterval, DEFAULT_PING_INTERVAL_MS),
    suspectPhi: c.peers?.phiThreshold || DEFAULT_SUSPECT_PHI
  }
}

/** peers.multicastGroup ("239.x.y.z[:port]") as multicast discovery's init; {} leaves basic-net's defaults. */
export function multicastGroup(c: NodeConfig): { group?: string; port?: number } {
  const text = c.peers?.multicastGroup ?? ''
  if (text === '') return {}
  const [group, port] = text.split(':')
  return { group: group!, port: port != null ? Number(port) : DEFAULT_MULTICAST_PORT }
}

/** logging.level, or the default. */
export function logLevel(c: NodeConfig): string {
  return c.logging?.level || DEFAULT_LOG_LEVEL
}

/**
 * The jitter source node-core injects (retry backoff, endpoint shuffle): a
 * number in [0, 1) from the OS CSPRNG, so nodes booted from one image do not
 * share a Math.random sequence.
 */
export const secureRandom = (): number => randomBytes(6).readUIntBE(0, 6) / 2 ** 48

/**
 * The NodeStatus unix socket: `status.socketPath`; unset or "" (proto3's
 * unset), the state directory's (its layout owns the name); "off": none ("").
 */
export function statusSocketPath(c: NodeConfig, stateDir: string): string {
  const configured = c.status?.socketPath ?? ''
  if (configured === 'off') return ''
  return configured !== '' ? configured : agentStatePaths(stateDir).statusSocket
}
