import { randomUUID, sign } from 'node:crypto'
import {
  InvalidInputError,
  CommandState,
  EmergencyAction,
  EmergencyOperation,
  HealthState,
  NodeConfig,
  Phase,
  msToDuration,
  type Command,
  type CommandUpdate
} from '@mycelium/core-interfaces'
import { signingKeyFromPem } from '@mycelium/spore-tools'
import type { DevNetwork } from './dev-network.js'

/**
 * What an operator does by hand on a dev network — list the nodes, send a
 * node a command (restart, reconfigure, update, operator-signed emergency),
 * push a config fragment to one node — as plain functions the control API
 * (control.ts) and the CLI share.
 */

/** One node as the Network Manager knows it. */
export interface NodeRow {
  nodeId: string
  /** When it enrolled (ISO 8601), "" when the state has no record. */
  enrolledAt: string
  registered: boolean
  managed: boolean
  /** Lease id, "" when none. */
  leaseId: string
  /** Milliseconds left on the lease (negative: expired); null without a lease. */
  leaseRemainingMs: number | null
  /** Phase in its last heartbeat ("" before the first). */
  phase: string
  /** Health in its last heartbeat ("" before the first). */
  health: string
  /** When its last heartbeat arrived (ISO 8601), "" before the first. */
  lastHeartbeatAt: string
  agentVersion: string
  configVersion: number | null
  /** Its components' health: "name STATE" each. */
  components: string[]
  /** A command session is open. */
  commandSession: boolean
}

export function nodeRows(net: DevNetwork): NodeRow[] {
  const ids = new Set([...Object.keys(net.state.nodes), ...net.networkManager.nodes.keys()])
  const now = net.networkManager.now()
  return [...ids].sort().map((nodeId) => {
    const record = net.networkManager.nodes.get(nodeId)
    const h = record?.lastHealth
    return {
      nodeId,
      enrolledAt: net.state.nodes[nodeId]?.enrolledAt ?? '',
      registered: (record?.registrations ?? 0) > 0,
      managed: record?.managed === true,
      leaseId: record?.lease?.leaseId ?? '',
      leaseRemainingMs: record?.lease != null ? (record.lease.expired ? -1 : record.lease.expiresAtMs - now) : null,
      phase: h != null ? (Phase[h.phase] ?? String(h.phase)) : '',
      health: h != null ? (HealthState[h.state] ?? String(h.state)) : '',
      lastHeartbeatAt: record?.lastHealthAtMs != null ? new Date(record.lastHealthAtMs).toISOString() : '',
      agentVersion: record?.capabilities?.agentVersion ?? '',
      configVersion: h?.configVersion ?? null,
      components: (h?.components ?? []).map((c) => `${c.name} ${HealthState[c.state] ?? c.state}`),
      commandSession: net.commands.isConnected(nodeId)
    }
  })
}

/** A table for a person. */
export function formatNodeRows(rows: NodeRow[], nowMs = Date.now()): string {
  if (rows.length === 0) return 'no nodes enrolled'
  const header = ['NODE', 'ENROLLED', 'REGISTERED', 'LEASE', 'PHASE', 'HEALTH', 'LAST HEARTBEAT', 'AGENT', 'CONFIG', 'COMPONENTS']
  const ago = (iso: string): string => (iso === '' ? '-' : `${Math.max(0, Math.round((nowMs - Date.parse(iso)) / 1000))}s ago`)
  const body = rows.map((r) => [
    r.nodeId,
    r.enrolledAt === '' ? '-' : 'yes',
    r.registered ? (r.managed ? 'managed' : 'yes') : 'no',
    r.leaseRemainingMs == null ? '-' : r.leaseRemainingMs < 0 ? 'expired' : `${Math.round(r.leaseRemainingMs / 1000)}s left`,
    r.phase.replace(/^PHASE_/, '') || '-',
    r.health.replace(/^HEALTH_STATE_/, '') || '-',
    ago(r.lastHeartbeatAt),
    r.agentVersion || '-',
    r.configVersion == null ? '-' : `v${r.configVersion}`,
    r.components.join(', ') || '-'
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)))
  return [header, ...body]
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd()
    )
    .join('\n')
}

/** What `command` sends: its kind and arguments, as the CLI and the control API take them. */
export type CommandSpec =
  | { kind: 'restart'; component?: string }
  | { kind: 'reconfigure'; config: Record<string, unknown>; confirmWindowMs?: number }
  | { kind: 'update'; component?: string; version: string; artifactDigest: string; artifactUrls: string[] }
  | { kind: 'emergency'; action: string; reason: string }

const EMERGENCY_ACTIONS: Record<string, EmergencyAction> = {
  isolate: EmergencyAction.ISOLATE,
  'stop-accepting-workloads': EmergencyAction.STOP_ACCEPTING_WORKLOADS,
  'reset-to-last-known-good': EmergencyAction.RESET_TO_LAST_KNOWN_GOOD,
  'dump-diagnostics': EmergencyAction.DUMP_DIAGNOSTICS
}
export const EMERGENCY_ACTION_NAMES = Object.keys(EMERGENCY_ACTIONS)

/** Checks a command spec from outside; errors name the field. */
export function parseCommandSpec(input: unknown): CommandSpec {
  const a = (input ?? {}) as Record<string, unknown>
  const str = (key: string, required: boolean): string | undefined => {
    const v = a[key]
    if (v == null || v === '') {
      if (required) throw new InvalidInputError(`${key} is required`, `command ${String(a.kind)}`)
      return undefined
    }
    if (typeof v !== 'string') throw new InvalidInputError(`${key} must be a string`, `command ${String(a.kind)}`)
    return v
  }
  switch (a.kind) {
    case 'restart': {
      const component = str('component', false)
      return { kind: 'restart', ...(component != null ? { component } : {}) }
    }
    case 'reconfigure': {
      if (typeof a.config !== 'object' || a.config == null || Array.isArray(a.config))
        throw new InvalidInputError('config must be a NodeConfig in proto JSON form', 'command reconfigure')
      const ms = a.confirmWindowMs
      if (ms != null && (!Number.isInteger(ms) || (ms as number) <= 0))
        throw new InvalidInputError('confirmWindowMs must be a positive integer', 'command reconfigure')
      return { kind: 'reconfigure', config: a.config as Record<string, unknown>, ...(ms != null ? { confirmWindowMs: ms as number } : {}) }
    }
    case 'update': {
      const digest = str('artifactDigest', true)!
      if (!/^sha256:[0-9a-f]{64}$/.test(digest))
        throw new InvalidInputError('artifactDigest must be sha256:<64 hex digits>', 'command update')
      const urls = a.artifactUrls
      if (!Array.isArray(urls) || urls.length === 0 || urls.some((u) => typeof u !== 'string'))
        throw new InvalidInputError('artifactUrls must be a non-empty list of strings', 'command update')
      const component = str('component', false)
      return {
        kind: 'update',
        ...(component != null ? { component } : {}),
        version: str('version', true)!,
        artifactDigest: digest,
        artifactUrls: urls as string[]
      }
    }
    case 'emergency': {
      const action = str('action', true)!
      if (EMERGENCY_ACTIONS[action] == null)
        throw new InvalidInputError(`action must be one of ${EMERGENCY_ACTION_NAMES.join(', ')}`, 'command emergency')
      return { kind: 'emergency', action, reason: str('reason', false) ?? 'operator request (dev-network command)' }
    }
    default:
      throw new InvalidInputError('kind must be restart, reconfigure, update or emergency', 'command')
  }
}

/** The next config version a node will take: above what it runs and what the manager offers. */
function nextConfigVersion(net: DevNetwork, nodeId: string): number {
  const running = net.networkManager.nodes.get(nodeId)?.lastHealth?.configVersion ?? 0
  return Math.max(running, net.networkManager.desiredConfig.version) + 1
}

/** The Command for `spec` to `nodeId`; an emergency is signed with the network's operator key. */
export function buildCommand(net: DevNetwork, nodeId: string, spec: CommandSpec, now = Date.now()): Command {
  const commandId = `op-${randomUUID()}`
  const base = { commandId, issuedAt: new Date(now), deadline: new Date(now + 60_000), issuer: 'operator (dev-network)' }
  switch (spec.kind) {
    case 'restart':
      return { ...base, kind: { $case: 'restart', value: { component: spec.component ?? '' } } }
    case 'reconfigure': {
      const config = NodeConfig.fromJSON({ networkId: net.networkId, ...spec.config })
      if (spec.config.version == null) config.version = nextConfigVersion(net, nodeId)
      return {
        ...base,
        kind: {
          $case: 'reconfigure',
          value: { config, ...(spec.confirmWindowMs != null ? { confirmWindow: msToDuration(spec.confirmWindowMs) } : {}) }
        }
      }
    }
    case 'update':
      return {
        ...base,
        kind: {
          $case: 'update',
          value: {
            component: spec.component ?? '',
            version: spec.version,
            artifactDigest: spec.artifactDigest,
            artifactUrls: spec.artifactUrls
          }
        }
      }
    case 'emergency': {
      const operation = Buffer.from(
        EmergencyOperation.encode({
          commandId,
          networkId: net.networkId,
          nodeId,
          action: EMERGENCY_ACTIONS[spec.action]!,
          reason: spec.reason,
          expiresAt: new Date(now + 10 * 60_000)
        }).finish()
      )
      const keys = net.state.operatorKeys.map((pem, i) => signingKeyFromPem(pem, `operator key ${i}`))
      return {
        ...base,
        kind: {
          $case: 'emergency',
          value: { operation, signatures: keys.map((k) => ({ keyId: k.keyId, signature: sign(null, operation, k.privateKey) })) }
        }
      }
    }
  }
}

/** A line of a command's progress, as the control API streams it (one JSON object per line). */
export type CommandEvent =
  | { event: 'sent'; commandId: string; nodeId: string; kind: string; connected: boolean }
  | { event: 'update'; commandId: string; state: string; reason: string; at: string }
  | { event: 'end'; commandId: string; state: string; final: boolean }

const FINAL = new Set([CommandState.SUCCEEDED, CommandState.FAILED, CommandState.REJECTED])

/**
 * Sends `spec` to `nodeId` and reports every status update until a final one
 * (or `timeoutMs`, or `signal`). A node without a command session gets it
 * when it connects (the channel queues it).
 */
export async function runCommand(
  net: DevNetwork,
  nodeId: string,
  spec: CommandSpec,
  onEvent: (e: CommandEvent) => void,
  options: { timeoutMs?: number; signal?: AbortSignal } = {}
): Promise<CommandEvent & { event: 'end' }> {
  if (!net.state.nodes[nodeId] && !net.networkManager.nodes.has(nodeId))
    throw new InvalidInputError(`no node "${nodeId}" in this network (see: dev-network nodes)`, 'command --node')
  const command = buildCommand(net, nodeId, spec)
  const id = command.commandId
  return new Promise((resolve) => {
    let last = CommandState.UNSPECIFIED
    const finish = (final: boolean): void => {
      clearTimeout(timer)
      net.commands.off('update', onUpdate)
      options.signal?.removeEventListener('abort', aborted)
      const end = { event: 'end' as const, commandId: id, state: CommandState[last] ?? String(last), final }
      onEvent(end)
      resolve(end)
    }
    const onUpdate = (from: string, u: CommandUpdate): void => {
      if (from !== nodeId || u.commandId !== id) return
      last = u.state
      onEvent({
        event: 'update',
        commandId: id,
        state: CommandState[u.state] ?? String(u.state),
        reason: u.reason,
        at: (u.at ?? new Date()).toISOString()
      })
      if (FINAL.has(u.state)) finish(true)
    }
    const aborted = (): void => finish(false)
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 60_000)
    options.signal?.addEventListener('abort', aborted, { once: true })
    net.commands.on('update', onUpdate)
    onEvent({ event: 'sent', commandId: id, nodeId, kind: spec.kind, connected: net.commands.isConnected(nodeId) })
    net.commands.send(nodeId, command)
  })
}

/** A line for a person. */
export function formatCommandEvent(e: CommandEvent): string {
  switch (e.event) {
    case 'sent':
      return `${e.commandId}: ${e.kind} sent to ${e.nodeId}${e.connected ? '' : ' (no command session now: queued until it connects)'}`
    case 'update':
      return `${e.at}  ${e.state.replace(/^COMMAND_STATE_/, '')}${e.reason ? `: ${e.reason}` : ''}`
    case 'end':
      return e.final
        ? `final: ${e.state.replace(/^COMMAND_STATE_/, '')}`
        : `no final status yet (last: ${e.state.replace(/^COMMAND_STATE_/, '')})`
  }
}
