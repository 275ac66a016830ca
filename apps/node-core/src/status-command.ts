import * as grpc from '@grpc/grpc-js'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import {
  DistressProblem,
  InvalidConfigError,
  UnavailableError,
  HealthState,
  NodeStatusClient,
  Phase,
  StatusReport,
  type GetStatusResponse,
  type WatchStatusResponse
} from '@mycelium/core-interfaces'
import { DEFAULT_CONFIG_FILE, DEFAULT_STATE_DIR } from './defaults.js'
import { devStatusSocket } from './dev-socket.js'
import { readRuntimeFile, runtimeRows, type RuntimeInfo } from './runtime-file.js'
import { componentStatusRows } from './components-status.js'

/**
 * The status socket's name in the state directory when status.socketPath is
 * unset. The name belongs to the agent's state layout (bootstrap-agent
 * agentStatePaths; a test holds them equal): restated here so `status` does
 * not load the agent.
 */
export const STATUS_SOCKET_NAME = 'status.sock'

/** "unix:///path" or "host:port" as given; a bare path becomes a unix address. */
export function statusTarget(address: string): string {
  return address.includes('://') || /^[^/]*:\d+$/.test(address) ? address : `unix://${address}`
}

/** Reads NodeStatus from a running agent (a socket path, "unix:///path" or "host:port"). */
export function fetchStatus(address: string, timeoutMs = 3000): Promise<StatusReport> {
  const client = new NodeStatusClient(statusTarget(address), grpc.credentials.createInsecure())
  return new Promise<StatusReport>((resolve, reject) =>
    client.getStatus({}, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res: GetStatusResponse) => {
      client.close()
      if (err != null)
        reject(new UnavailableError(`no agent answering on ${address}: ${err.details || err.message}`, undefined, { cause: err }))
      else resolve(res.status ?? StatusReport.fromPartial({}))
    })
  )
}

/**
 * Streams NodeStatus.WatchStatus to `onReport` until `signal` aborts
 * (resolves) or the stream fails (rejects with UnavailableError).
 */
export function watchStatus(address: string, onReport: (status: StatusReport) => void, signal: AbortSignal): Promise<void> {
  const client = new NodeStatusClient(statusTarget(address), grpc.credentials.createInsecure())
  return new Promise<void>((resolve, reject) => {
    const call = client.watchStatus({})
    const stop = (): void => call.cancel()
    signal.addEventListener('abort', stop, { once: true })
    call.on('data', (res: WatchStatusResponse) => onReport(res.status ?? StatusReport.fromPartial({})))
    const finish = (err?: grpc.ServiceError): void => {
      signal.removeEventListener('abort', stop)
      client.close()
      if (err == null || signal.aborted) resolve()
      else reject(new UnavailableError(`no agent answering on ${address}: ${err.details || err.message}`, undefined, { cause: err }))
    }
    call.on('error', finish)
    call.on('end', () => finish())
  })
}

/** Where `node-core status` looks, and what it knows of the daemon there. */
export interface StatusLocation {
  /** A socket path or host:port. */
  address: string
  /** How it was found, for errors ("--socket", "the config …", "the dev agent"). */
  from: string
  /** The daemon's <stateDir>/runtime.json, when found through a config. */
  runtime?: RuntimeInfo
}

/**
 * Finds the daemon: `--socket`; else the config (`--config`, or
 * DEFAULT_CONFIG_FILE when it exists) — the addresses in its state
 * directory's runtime.json, else its status.socketPath / the state
 * directory's socket / status.grpcListenAddress; else the dev agent's socket.
 */
export async function locateStatus(opts: { socket?: string; config?: string }, env: NodeJS.ProcessEnv): Promise<StatusLocation> {
  if (opts.socket != null) return { address: opts.socket, from: '--socket' }
  const file = opts.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined)
  if (file == null) return { address: devStatusSocket(), from: 'the dev agent (no --config, no ' + DEFAULT_CONFIG_FILE + ')' }
  const { loadConfig } = await import('./config.js')
  const config = await loadConfig({ file, env })
  const stateDir = config.stateDir || DEFAULT_STATE_DIR
  const runtime = await readRuntimeFile(stateDir)
  const configured = config.status?.socketPath ?? ''
  const socket = configured === 'off' ? '' : configured !== '' ? configured : join(stateDir, STATUS_SOCKET_NAME)
  const address = runtime?.statusAddresses[0] ?? (socket !== '' ? socket : (config.status?.grpcListenAddress ?? ''))
  if (address === '' || /:0$/.test(address))
    throw new InvalidConfigError(
      'no NodeStatus address: status.socketPath is "off" and status.grpcListenAddress is unset or chosen at run time (no runtime.json: is the daemon running?)',
      file
    )
  return { address: address.replace(/^unix:\/\//, ''), from: `the config ${file}`, ...(runtime != null ? { runtime } : {}) }
}

/** One line per state worth noticing (`status --watch`): phase, why, health, manager link, peers, config. */
export function formatStatusLine(s: StatusReport): string {
  const managers = s.managers.map((m) => `${m.service} ${m.state}`).join(', ') || 'none'
  const alive = s.peers.filter((p) => p.state === 'alive').length
  return [
    Phase[s.phase] ?? String(s.phase),
    `(${s.reason || '-'})`,
    `health ${HealthState[s.health] ?? '?'}`,
    `managers ${managers}`,
    `peers ${alive}/${s.peers.length}`,
    `config v${s.config?.currentVersion ?? 0}`
  ].join('  ')
}

/** The status table with where the daemon listens (from runtime.json). */
export function formatStatusWithRuntime(s: StatusReport, runtime: RuntimeInfo | undefined): string {
  const table = formatStatus(s)
  if (runtime == null) return table
  return `${runtimeRows(runtime)
    .map(([k, v]) => `${k.padEnd(9)}  ${v}`)
    .join('\n')}\n${table}`
}

const ago = (d: Date | undefined): string => (d == null ? '-' : `${Math.round((Date.now() - d.getTime()) / 1000)}s ago`)

/** The step inside the phase: "reconnection attempt 3 … (next in 2s; last error: …)". */
function progress(p: StatusReport['progress']): Array<[string, string]> {
  if (p == null || (p.step === '' && p.lastError === '')) return []
  const extra = [
    ...(p.nextAttemptAt != null ? [`next in ${Math.max(0, Math.round((p.nextAttemptAt.getTime() - Date.now()) / 1000))}s`] : []),
    ...(p.lastError !== '' ? [`last error: ${p.lastError}`] : [])
  ]
  return [['progress', `${p.step}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`]]
}

/** "k3s v7, logging v7, peers local, …": where each manager-owned section of the config in force came from. */
function sectionVersions(v: Record<string, number>): string {
  const entries = Object.entries(v).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? '-' : entries.map(([section, version]) => `${section} ${version > 0 ? `v${version}` : 'local'}`).join(', ')
}

/** A human table of the status. */
export function formatStatus(s: StatusReport): string {
  const rows: Array<[string, string]> = [
    ['node', `${s.identity?.nodeId ?? '?'} (${s.identity?.spiffeId ?? ''})`],
    ['phase', `${Phase[s.phase]} since ${ago(s.phaseSince)}`],
    ['reason', s.reason],
    ...progress(s.progress),
    [
      'identity',
      `${s.identityStatus?.reason || 'valid'}${s.identityStatus?.notAfter != null ? `, expires ${s.identityStatus.notAfter.toISOString()}` : ''}`
    ],
    ...s.managers.map((m): [string, string] => [
      m.service,
      `${m.endpoint?.address ?? '?'} ${m.state}, last seen ${ago(m.lastSeen)}, rtt ${m.heartbeatRttMs} ms`
    ]),
    ['health', `${HealthState[s.health] ?? '?'}${s.healthReason ? ` (${s.healthReason})` : ''}`],
    [
      'config',
      `current v${s.config?.currentVersion ?? 0}, last-known-good v${s.config?.lastKnownGoodVersion ?? 0}${s.config?.trialVersion ? `, trying v${s.config.trialVersion}` : ''}`
    ],
    ['config sections', sectionVersions(s.config?.sectionVersions ?? {})],
    ...(s.config?.lastTrial != null
      ? [
          [
            'last trial',
            `v${s.config.lastTrial.version} ${s.config.lastTrial.outcome}${s.config.lastTrial.reason ? `: ${s.config.lastTrial.reason}` : ''} (${ago(s.config.lastTrial.at)})`
          ] as [string, string]
        ]
      : []),
    ...(s.update != null
      ? [
          [
            'update',
            `slot ${s.update.slot}, ${s.update.version}${s.update.trialVersion ? ' on trial' : ''}${s.update.channel ? `, channel ${s.update.channel}${s.update.watch ? ' (watched)' : ''}` : ''}${s.update.lastOutcome ? `; last: ${s.update.lastVersion} ${s.update.lastOutcome}${s.update.lastReason ? ` (${s.update.lastReason})` : ''}` : ''}${s.update.lastRefusalCode ? `; refused ${s.update.lastRefusalVersion}: ${s.update.lastRefusalCode}` : ''}`
          ] as [string, string]
        ]
      : []),
    ['spores', `${s.spores?.sporeCount ?? 0} from ${s.spores?.activeSource || '-'}, ${s.spores?.rejectedCount ?? 0} rejected`],
    ...distressRows(s),
    ...s.peers.map((p): [string, string] => [
      `peer ${p.identity?.nodeId || '?'}`,
      `${p.endpoint?.address ?? '?'} ${p.state} (${p.source}), last seen ${ago(p.lastSeen)}`
    ]),
    ['runtime', `${s.runtime?.name ?? '-'}${s.runtime?.version ? ` ${s.runtime.version}` : ''}: ${s.runtime?.reason || 'available'}`],
    ...s.workloads.map((w): [string, string] => [
      `${w.kind} ${w.namespace ? `${w.namespace}/` : ''}${w.name}`,
      `${w.state}, id ${w.id.slice(0, 13)}, created ${ago(w.createdAt)}`
    ]),
    ...s.components.filter((c) => c.reason !== '').map((c): [string, string] => [`component ${c.name}`, c.reason]),
    ...componentStatusRows(s)
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const history = s.history
    .slice(-8)
    .map((h) => `  ${h.at?.toISOString() ?? ''}  ${Phase[h.from].padEnd(12)} → ${Phase[h.to].padEnd(12)} ${h.reason}`)
  return `${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\nrecent transitions:\n${history.join('\n')}\n`
}

/** Emergency contact: the last call for help sent (problem, when, peers asked, outcome) and the last help received. */
function distressRows(s: StatusReport): Array<[string, string]> {
  const sent = s.lastDistressSent
  const answered = s.lastDistressAnswered
  if (sent == null) return []
  const problem = (p: DistressProblem): string => (DistressProblem[p] ?? String(p)).replace(/^DISTRESS_PROBLEM_/, '')
  const rows: Array<[string, string]> = [
    [
      'distress sent',
      `${problem(sent.problem)} ${ago(sent.sentAt)} to ${sent.peersTried.join(', ') || 'no known peer'}: ${sent.answered ? `answered via ${sent.via}` : 'unanswered'}${sent.reason ? ` (${sent.reason})` : ''} [${s.distressRounds} round(s)]`
    ]
  ]
  if (answered != null)
    rows.push(['help received', `${ago(answered.sentAt)} via ${answered.via}: ${answered.applied.join(', ') || 'nothing taken'}`])
  return rows
}
